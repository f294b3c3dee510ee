//! The dashboard's first pages: signing in with an API token (a session
//! cookie, HttpOnly and SameSite=Strict, not Secure on loopback), the projects,
//! one project's matrix and a flow's history in an env, every user-controlled
//! string escaped, refusals as pages. Over HTTP, and in headless Chromium
//! through WebDriver.

mod common;

use common::server::{create_token, released_project, Server};
use flowgate_testkit::http::{exchange, Answer};
use flowgate_testkit::webdriver::Browser;

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    exchange(server.port, "GET", path, headers, b"")
}

fn post_form(server: &Server, path: &str, headers: &[(&str, &str)], form: &str) -> Answer {
    let mut all = headers.to_vec();
    all.push(("Content-Type", "application/x-www-form-urlencoded"));
    exchange(server.port, "POST", path, &all, form.as_bytes())
}

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
    assert!(never.body.contains("has never been released"), "{}", never.body);
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
