//! The dashboard's reading pages and sign-in: an API token's session cookie
//! (HttpOnly and SameSite=Strict, not Secure on loopback) or a trusted single
//! sign-on proxy's header; the projects, the matrix, a flow's history, a
//! build (approved from its page by an approver only), the env diff; every
//! user-controlled string escaped, refusals as pages, forged forms refused.
//! Over HTTP, and in headless Chromium through WebDriver.

mod common;

use common::pages::{form_token, get, post_form, session_of, sign_in, two_builds};
use common::server::{create_token, released_project, Server};
use flowgate_testkit::webdriver::Browser;

#[test]
fn sign_in_sets_a_strict_cookie_and_the_matrix_escapes_what_users_typed() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let server = Server::start(&["--ledger", &ledger]);
    let build = common::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();

    // Without a credential a page sends the browser to sign in.
    let answer = get(&server, "/projects/alpha", &[]);
    assert_eq!((answer.status, answer.header("location")), (303, Some("/login")), "{answer:?}");
    assert_eq!(get(&server, "/login", &[]).status, 200);

    // A refused token gets the form again and no cookie; a post from another site is refused.
    let wrong = format!("token=fgt_{}", "1".repeat(64));
    let refused = post_form(&server, "/login", &[], &wrong);
    assert_eq!((refused.status, refused.header("set-cookie")), (401, None), "{refused:?}");
    let form = format!("token={viewer}");
    let forged = post_form(&server, "/login", &[("Origin", "https://evil.example")], &form);
    assert_eq!((forged.status, forged.header("set-cookie")), (403, None), "{forged:?}");
    let forged = post_form(&server, "/login", &[("Sec-Fetch-Site", "cross-site")], &form);
    assert_eq!(forged.status, 403, "{forged:?}");

    // Signed in: a cookie a script cannot read, sent only by this site's own pages.
    let origin = format!("http://127.0.0.1:{}", server.port);
    let signed_in = post_form(&server, "/login", &[("Origin", origin.as_str())], &form);
    assert_eq!((signed_in.status, signed_in.header("location")), (303, Some("/")), "{signed_in:?}");
    let cookie = signed_in.header("set-cookie").expect("a session cookie").to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "a loopback server marks its cookie Secure: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();

    let projects = get(&server, "/", &[("Cookie", session.as_str())]);
    assert!(projects.body.contains("<a href=\"/projects/alpha\">alpha</a>"), "{}", projects.body);
    // Across projects: every project's rows whose flow matches.
    let across = get(&server, "/?q=inge", &[("Cookie", session.as_str())]);
    assert!(across.body.contains("<h2><a href=\"/projects/alpha\">alpha</a></h2>"), "{}", across.body);
    assert!(across.body.contains("<th class=\"flow\">ingest</th>"), "{}", across.body);
    let none = get(&server, "/?q=%3Ci%3Ezzz", &[("Cookie", session.as_str())]);
    assert!(none.body.contains("No project has a flow matching “&lt;i&gt;zzz”"), "{}", none.body);
    let matrix = get(&server, "/projects/alpha", &[("Cookie", session.as_str())]);
    assert_eq!(matrix.status, 200, "{}", matrix.body);
    for needle in ["<th>qa</th>", "<th class=\"flow\">ingest</th>", &build[..8], "viewer"] {
        assert!(matrix.body.contains(needle), "missing {needle}: {}", matrix.body);
    }
    // The API's bearer header signs a page in too.
    let bearer = format!("Bearer {viewer}");
    assert_eq!(get(&server, "/projects/alpha", &[("Authorization", bearer.as_str())]).status, 200);

    // What a user typed comes back as text, never as markup.
    let filtered = get(&server, "/projects/alpha?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E", &[("Cookie", &session)]);
    assert!(filtered.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", filtered.body);
    assert!(!filtered.body.contains("<script>"), "{}", filtered.body);
    let missing = get(&server, "/projects/%3Cb%3Enope", &[("Cookie", &session)]);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("`&lt;b&gt;nope`"), "{}", missing.body);

    // A flow's history in an env: the verified mover, the reason as text.
    let reason = "<script>alert('x')</script> & <b>bold</b>";
    common::run(&alpha, &["release", "--all", "--env", "prod", "--build", "HEAD", "--reason", reason]).success();
    let matrix = get(&server, "/projects/alpha", &[("Cookie", &session)]);
    assert!(matrix.body.contains("href=\"/projects/alpha/flows/ingest/envs/prod\""), "{}", matrix.body);
    let history = get(&server, "/projects/alpha/flows/ingest/envs/prod", &[("Cookie", &session)]);
    assert_eq!(history.status, 200, "{}", history.body);
    assert!(
        history.body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        history.body
    );
    assert!(!history.body.contains("<script>") && !history.body.contains("<b>bold"), "{}", history.body);
    assert!(history.body.contains("tester@example.com"), "the mover is not shown: {}", history.body);
    let never = get(&server, "/projects/alpha/flows/ingest/envs/staging", &[("Cookie", &session)]);
    assert_eq!(never.status, 404, "{}", never.body);
    assert!(never.body.contains("`ingest` has never been released in `staging`"), "{}", never.body);
    let bad = get(&server, "/projects/alpha/flows/no%20such/envs/qa", &[("Cookie", &session)]);
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Signing out clears the cookie; a revoked token is signed out at once.
    let out = post_form(&server, "/logout", &[("Cookie", &session)], "");
    assert!(out.header("set-cookie").is_some_and(|c| c.contains("Max-Age=0")), "{out:?}");
    common::server::admin(dir.path(), &["admin", "token", "revoke", "viewer", "--ledger", &ledger]).success();
    let revoked = get(&server, "/projects/alpha", &[("Cookie", &session)]);
    assert_eq!((revoked.status, revoked.header("location")), (303, Some("/login")), "{revoked:?}");
}

#[test]
fn in_chromium_a_viewer_signs_in_and_reads_the_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let alpha = released_project(&ledger);
    common::run(&alpha, &["release", "--all", "--env", "prod", "--build", "HEAD", "--reason", "ship"]).success();
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let server = Server::start(&["--ledger", &ledger]);
    let build = common::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();
    let base = format!("http://127.0.0.1:{}", server.port);

    let browser = Browser::start();
    browser.goto(&format!("{base}/projects/alpha"));
    assert!(browser.url().ends_with("/login"), "not sent to sign in: {}", browser.url());
    let field = browser.wait_for("input[name=token]").remove(0);
    browser.type_into(&field, &viewer);
    browser.click(&browser.wait_for("form[action='/login'] button").remove(0));
    browser.wait_for("ul.projects");
    let cookie = browser.cookies().into_iter().find(|c| c["name"] == "flowgate_session").expect("the session cookie");
    assert_eq!((cookie["httpOnly"].as_bool(), cookie["sameSite"].as_str()), (Some(true), Some("Strict")), "{cookie}");

    browser.click(&browser.wait_for("a[href='/projects/alpha']").remove(0));
    let heads: Vec<String> = browser.wait_for("table.matrix thead th").iter().map(|e| browser.text(e)).collect();
    // No env is protected here: the columns are the envs with pointers, by name.
    assert_eq!(heads, ["flow", "prod", "qa"]);
    let cells: Vec<String> = browser.find_all("table.matrix td.cell").iter().map(|e| browser.text(e)).collect();
    assert_eq!(cells.len(), 2, "{cells:?}");
    assert!(cells.iter().all(|c| c.starts_with(&build[..8])), "{cells:?}");
    let shot = browser.screenshot("dashboard-viewer-matrix");
    assert!(std::fs::metadata(&shot).map(|m| m.len() > 1000).unwrap_or(false), "{}", shot.display());
}

#[test]
fn a_build_page_shows_what_it_carries_and_only_an_approver_gets_the_form_that_approves_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let (_alpha, first, second) = two_builds(dir.path(), &ledger);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let lead = create_token(dir.path(), &ledger, "lead", &["--role", "approver:prod"]);
    let artifacts = format!("file://{}/store", dir.path().display());
    let server = Server::start(&["--ledger", &ledger, "--artifacts", &artifacts]);
    let as_viewer = format!("Bearer {viewer}");
    let page = |path: &str, auth: (&str, &str)| get(&server, path, &[auth]);

    let shown = page(&format!("/projects/alpha/builds/{}", &second[..10]), ("Authorization", &as_viewer));
    assert_eq!(shown.status, 200, "{}", shown.body);
    let build_line = format!("build    {second}");
    for needle in [
        build_line.as_str(),
        "branch   feat-&lt;b&gt;x&lt;/b&gt;",
        "<td>qa</td><td>ingest</td>",
        "+ flows/helpers.py",
        "None: the build carries no deployment",
        "No approval recorded.",
    ] {
        assert!(shown.body.contains(needle), "missing {needle}: {}", shown.body);
    }
    assert!(shown.body.contains(&format!("href=\"/projects/alpha/builds/{first}\"")), "{}", shown.body);
    assert!(!shown.body.contains("<b>x</b>"), "{}", shown.body);
    assert!(!shown.body.contains("class=\"approve\""), "a viewer is offered the approve form: {}", shown.body);
    let missing = page("/projects/alpha/builds/deadbeef", ("Authorization", &as_viewer));
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.body.contains("no build `deadbeef` in project `alpha`"), "{}", missing.body);

    // The approver on prod gets one form: for prod.
    let session = session_of(&server, &lead);
    let shown = page(&format!("/projects/alpha/builds/{second}"), ("Cookie", &session));
    assert!(shown.body.contains("<button>Approve for prod</button>"), "{}", shown.body);
    assert!(!shown.body.contains("Approve for qa"), "{}", shown.body);
    let token = form_token(&shown.body);

    // Forged approvals change nothing: a viewer's, one without the session's
    // form token, one posted from another site.
    let before = common::server::ledger_dump_at(&ledger, dir.path());
    let action = format!("/projects/alpha/builds/{second}/approve");
    let form = format!("env=prod&reason=ship&form_token={token}");
    // (A bearer header needs no form token: no other site can make a browser send one.)
    let viewers = post_form(&server, &action, &[("Authorization", &as_viewer)], "env=prod&reason=ship");
    assert_eq!(viewers.status, 403, "{}", viewers.body);
    assert!(viewers.body.contains("`viewer` lacks the `approver` role on env `prod`"), "{}", viewers.body);
    let tokenless = post_form(&server, &action, &[("Cookie", &session)], "env=prod&reason=ship");
    assert_eq!(tokenless.status, 403, "{}", tokenless.body);
    let foreign = post_form(&server, &action, &[("Cookie", &session), ("Origin", "https://evil.example")], &form);
    assert_eq!(foreign.status, 403, "{}", foreign.body);
    let qa = post_form(&server, &action, &[("Cookie", &session)], &format!("env=qa&reason=ship&form_token={token}"));
    assert_eq!(qa.status, 403, "{}", qa.body);
    assert_eq!(common::server::ledger_dump_at(&ledger, dir.path()), before, "a refused approval changed the ledger");

    let approved = post_form(&server, &action, &[("Cookie", &session)], &form);
    assert_eq!(
        (approved.status, approved.header("location")),
        (303, Some(format!("/projects/alpha/builds/{second}").as_str())),
        "{approved:?}"
    );
    let shown = page(&format!("/projects/alpha/builds/{second}"), ("Cookie", &session));
    assert!(
        shown.body.contains("<td>prod</td><td>every flow</td><td class=\"actor\">lead (token)</td>"),
        "{}",
        shown.body
    );

    // The env diff, as `flowgate diff` prints it; `which` needs a protected env.
    let diff = page("/projects/alpha/diff?from=prod&to=qa", ("Authorization", &as_viewer));
    assert!(diff.body.contains(&format!("~ ingest: prod {} -&gt; qa {}", &first[..8], &second[..8])), "{}", diff.body);
    assert!(diff.body.contains("    + flows/helpers.py"), "{}", diff.body);
    let bad = page("/projects/alpha/diff?from=prod&to=Not%20An%20Env", ("Authorization", &as_viewer));
    assert_eq!(bad.status, 400, "{}", bad.body);
    let which = page("/projects/alpha/which?run=abc", ("Authorization", &as_viewer));
    assert!(which.body.contains("protects no env of `alpha`"), "{}", which.body);
}

#[test]
fn in_chromium_a_viewer_cannot_approve_an_approver_can_and_a_cross_site_post_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let (_alpha, _first, second) = two_builds(dir.path(), &ledger);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let lead = create_token(dir.path(), &ledger, "lead", &["--role", "approver:prod"]);
    let artifacts = format!("file://{}/store", dir.path().display());
    let server = Server::start(&["--ledger", &ledger, "--artifacts", &artifacts]);
    let base = format!("http://127.0.0.1:{}", server.port);
    let build_page = format!("{base}/projects/alpha/builds/{second}");
    let action = format!("/projects/alpha/builds/{second}/approve");

    // A viewer reads the build and is offered no approve button; a request
    // forged with its session is refused and changes nothing.
    let browser = Browser::start();
    sign_in(&browser, &base, &viewer);
    browser.goto(&build_page);
    browser.wait_for("pre.shown");
    assert!(browser.find_all("form.approve").is_empty(), "{}", browser.source());
    browser.screenshot("dashboard-viewer-build");
    let cookie = browser.cookies().into_iter().find(|c| c["name"] == "flowgate_session").expect("the session cookie");
    let session = format!("flowgate_session={}", cookie["value"].as_str().unwrap());
    let before = common::server::ledger_dump_at(&ledger, dir.path());
    let forged = post_form(&server, &action, &[("Cookie", &session)], "env=prod&reason=forged");
    assert_eq!(forged.status, 403, "{}", forged.body);

    // Another site's page that posts the approve form at once is refused.
    let evil = format!(
        "data:text/html,<form method=post action='{base}{action}'><input name=env value=prod>\
         <input name=reason value=forged></form><script>document.forms[0].submit()</script>"
    );
    browser.goto(&evil);
    browser.wait_for("p.problem");
    assert!(browser.source().contains("posted from another site"), "{}", browser.source());
    browser.screenshot("dashboard-cross-site-refused");
    assert_eq!(common::server::ledger_dump_at(&ledger, dir.path()), before, "a refused approval changed the ledger");

    // The approver signs in, approves with a reason, and the ledger records it as theirs.
    browser.goto(&base);
    browser.click(&browser.wait_for("header form button").remove(0));
    browser.wait_for("input[name=token]");
    sign_in(&browser, &base, &lead);
    browser.goto(&build_page);
    let reason = browser.wait_for("form.approve input[name=reason]").remove(0);
    browser.type_into(&reason, "checked the qa runs");
    browser.click(&browser.wait_for("form.approve button").remove(0));
    let rows: Vec<String> = browser.wait_for("table.approvals tbody tr").iter().map(|r| browser.text(r)).collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("prod") && rows[0].contains("lead (token)") && rows[0].contains("checked the qa runs"),
        "{rows:?}"
    );
    browser.screenshot("dashboard-approver-approved");
    let after = common::server::ledger_dump_at(&ledger, dir.path());
    let approval = after.lines().find(|l| l.starts_with("[alpha] approvals")).expect("an approval row");
    for needle in ["checked the qa runs", "lead", "subject", "token"] {
        assert!(approval.contains(needle), "missing {needle}: {approval}");
    }
}

/// A server config giving single sign-on to the proxy at `proxy`: everyone at
/// acme.example may view, the release-leads group may approve prod.
fn sso_config(dir: &std::path::Path, proxy: &str) -> String {
    let path = dir.join(format!("sso-{proxy}.toml"));
    std::fs::write(
        &path,
        format!(
            "[sso]\ntrusted_proxies = [\"{proxy}\"]\ngroups_header = \"X-Forwarded-Groups\"\n\n\
             [[access]]\nissuer = \"sso\"\nclaims = {{ email = \"*@acme.example\" }}\nroles = [\"viewer\"]\n\n\
             [[access]]\nissuer = \"sso\"\nclaims = {{ groups = \"*,release-leads,*\" }}\nroles = [\"approver:prod\"]\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn behind_a_trusted_single_sign_on_proxy_its_user_header_signs_people_in_with_their_groups_roles() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let (_alpha, _first, second) = two_builds(dir.path(), &ledger);
    let artifacts = format!("file://{}/store", dir.path().display());
    let config = sso_config(dir.path(), "127.0.0.1");
    let server = Server::start(&["--config", &config, "--ledger", &ledger, "--artifacts", &artifacts]);
    let build_page = format!("/projects/alpha/builds/{second}");
    let ann = [("X-Forwarded-Email", "ann@acme.example"), ("X-Forwarded-Groups", "data")];
    let lead = [("X-Forwarded-Email", "lee@acme.example"), ("X-Forwarded-Groups", "data, release-leads")];

    let page = get(&server, &build_page, &ann);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<span>ann@acme.example</span>"), "{}", page.body);
    assert!(!page.body.contains("class=\"approve\""), "{}", page.body);
    let eve = get(&server, &build_page, &[("X-Forwarded-Email", "eve@elsewhere.example")]);
    assert_eq!(eve.status, 403, "{}", eve.body);
    assert!(eve.body.contains("`eve@elsewhere.example` lacks the `viewer` role"), "{}", eve.body);

    // The proxy's session is a cookie the browser sends by itself, so a form
    // carries a token that must match the form cookie set with the page.
    let page = get(&server, &build_page, &lead);
    assert!(page.body.contains("<button>Approve for prod</button>"), "{}", page.body);
    let set = page.header("set-cookie").expect("a form cookie").to_string();
    assert!(set.starts_with("flowgate_form=") && set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let form_cookie = set.split(';').next().unwrap().to_string();
    let token = form_token(&page.body);
    assert_eq!(form_cookie, format!("flowgate_form={token}"));
    let action = format!("{build_page}/approve");
    let form = format!("env=prod&reason=read+the+qa+runs&form_token={token}");
    let cookieless = post_form(&server, &action, &lead, &form);
    assert_eq!(cookieless.status, 403, "{}", cookieless.body);
    let with_cookie: Vec<(&str, &str)> = lead.iter().copied().chain([("Cookie", form_cookie.as_str())]).collect();
    let approved = post_form(&server, &action, &with_cookie, &form);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let page = get(&server, &build_page, &ann);
    assert!(page.body.contains("<td class=\"actor\">lee@acme.example (sso)</td>"), "{}", page.body);

    // From anywhere but the configured proxy the header signs no one in.
    let config = sso_config(dir.path(), "10.1.2.3");
    let elsewhere = Server::start(&["--config", &config, "--ledger", &ledger, "--artifacts", &artifacts]);
    let page = get(&elsewhere, &build_page, &lead);
    assert_eq!((page.status, page.header("location")), (303, Some("/login")), "{page:?}");
}
