//! The dashboard's actions in an env the server protects (ledger-only here, so
//! no Prefect server is needed; the live rollout is watched against a real one
//! in dashboard_rollout.rs): a releaser previews a promotion with its gate
//! verdicts, is kept from confirming while a gate refuses, confirms once it
//! passes, rolls a flow back from its history, starts a rollout the server
//! drives, and cannot abort one that is not running. A viewer is shown none of
//! the forms and its posts are refused. Each move records the verified caller.

mod common;

use common::pages::{form_token, get, post_form, session_of, two_builds};
use common::server::{create_token, ledger_dump_at, Server};

#[test]
fn a_releaser_promotes_after_a_preview_rolls_back_and_starts_a_rollout_and_a_viewer_can_do_none() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    // qa runs the second build, prod the first.
    let (_alpha, first, second) = two_builds(dir.path(), &ledger);
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}/store\"\n\n[projects.alpha.envs.prod]\n\
             policy = {{ approval = true }}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let rm = create_token(dir.path(), &ledger, "rm", &["--role", "releaser:prod", "--role", "approver:prod"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let server = Server::start(&["--config", &config.display().to_string()]);
    let session = session_of(&server, &rm);
    let as_viewer = format!("Bearer {viewer}");

    // The diff offers the promotion to the releaser only.
    let diff = get(&server, "/projects/alpha/diff?from=qa&to=prod", &[("Cookie", &session)]);
    assert!(diff.body.contains("<button>Preview promotion from qa to prod</button>"), "{}", diff.body);
    let token = form_token(&diff.body);
    let seen = get(&server, "/projects/alpha/diff?from=qa&to=prod", &[("Authorization", &as_viewer)]);
    assert!(!seen.body.contains("class=\"promote\""), "{}", seen.body);

    // The preview shows the gate verdicts and changes nothing; while the
    // approval gate refuses there is nothing to confirm.
    let before = ledger_dump_at(&ledger, dir.path());
    let preview = format!("from=qa&reason=weekly+release&form_token={token}");
    let refused = post_form(&server, "/projects/alpha/envs/prod/promote", &[("Cookie", &session)], &preview);
    assert_eq!(refused.status, 200, "{}", refused.body);
    for needle in ["gates NOT passed", "approval", "The gates refuse this promotion", &second[..8]] {
        assert!(refused.body.contains(needle), "missing {needle}: {}", refused.body);
    }
    assert!(!refused.body.contains("class=\"confirm-promote\""), "{}", refused.body);
    let forced = format!("{preview}&confirm=yes");
    let forced = post_form(&server, "/projects/alpha/envs/prod/promote", &[("Cookie", &session)], &forced);
    assert_eq!(forced.status, 403, "{}", forced.body);
    let viewers =
        post_form(&server, "/projects/alpha/envs/prod/promote", &[("Authorization", &as_viewer)], "from=qa&reason=x");
    assert_eq!(viewers.status, 403, "{}", viewers.body);
    assert!(viewers.body.contains("`viewer` lacks the `releaser` role on env `prod`"), "{}", viewers.body);
    let tokenless =
        post_form(&server, "/projects/alpha/envs/prod/promote", &[("Cookie", &session)], "from=qa&reason=x");
    assert_eq!(tokenless.status, 403, "{}", tokenless.body);
    let reasonless = format!("from=qa&reason=+&form_token={token}");
    let reasonless = post_form(&server, "/projects/alpha/envs/prod/promote", &[("Cookie", &session)], &reasonless);
    assert_eq!(reasonless.status, 400, "{}", reasonless.body);
    assert_eq!(ledger_dump_at(&ledger, dir.path()), before, "a preview or a refused promotion changed the ledger");

    // Approved, the preview passes and offers the confirmation, which promotes.
    let approve = format!("env=prod&reason=qa+looked+fine&form_token={token}");
    let approved =
        post_form(&server, &format!("/projects/alpha/builds/{second}/approve"), &[("Cookie", &session)], &approve);
    assert_eq!(approved.status, 303, "{}", approved.body);
    let preview = post_form(
        &server,
        "/projects/alpha/envs/prod/promote",
        &[("Cookie", &session)],
        &format!("from=qa&reason=weekly+release&form_token={token}"),
    );
    assert!(preview.body.contains("gates passed") && preview.body.contains("Would move"), "{}", preview.body);
    assert!(preview.body.contains("<button>Promote qa to prod</button>"), "{}", preview.body);
    let confirm = format!("from=qa&reason=weekly+release&confirm=yes&form_token={token}");
    let promoted = post_form(&server, "/projects/alpha/envs/prod/promote", &[("Cookie", &session)], &confirm);
    assert_eq!(promoted.status, 200, "{}", promoted.body);
    let history = get(&server, "/projects/alpha/flows/ingest/envs/prod", &[("Cookie", &session)]);
    assert!(history.body.contains("<td class=\"actor\">rm (token)</td>"), "{}", history.body);
    assert!(history.body.contains("weekly release"), "{}", history.body);

    // The history offers the rollback to the releaser only; it returns prod to the first build.
    assert!(history.body.contains("<button>Roll ingest back in prod</button>"), "{}", history.body);
    let viewed = get(&server, "/projects/alpha/flows/ingest/envs/prod", &[("Authorization", &as_viewer)]);
    assert!(!viewed.body.contains("class=\"rollback\""), "{}", viewed.body);
    let back = format!("reason=broke+the+report&form_token={token}");
    let rolled = post_form(&server, "/projects/alpha/flows/ingest/envs/prod/rollback", &[("Cookie", &session)], &back);
    assert_eq!(
        (rolled.status, rolled.header("location")),
        (303, Some("/projects/alpha/flows/ingest/envs/prod")),
        "{rolled:?}"
    );
    let matrix = get(&server, "/projects/alpha", &[("Cookie", &session)]);
    assert!(matrix.body.matches(&first[..8]).count() >= 1, "{}", matrix.body);

    // A rollout page: the releaser may start one (the server drives it, this
    // env has no Prefect server to verify with) and abort a running one only.
    let page = get(&server, "/projects/alpha/envs/prod/rollout", &[("Cookie", &session)]);
    assert!(
        page.body.contains("<option>qa</option>") && page.body.contains("Abort the active rollout"),
        "{}",
        page.body
    );
    let viewed = get(&server, "/projects/alpha/envs/prod/rollout", &[("Authorization", &as_viewer)]);
    assert!(!viewed.body.contains("class=\"start-rollout\""), "{}", viewed.body);
    let abort = post_form(
        &server,
        "/projects/alpha/envs/prod/rollout/abort",
        &[("Cookie", &session)],
        &format!("reason=stop&form_token={token}"),
    );
    assert_eq!(abort.status, 400, "{}", abort.body);
    assert!(abort.body.contains("`prod` has no active rollout"), "{}", abort.body);
    let start = format!("build=&from=qa&reason=roll+it+out&form_token={token}");
    let started = post_form(&server, "/projects/alpha/envs/prod/rollout/start", &[("Cookie", &session)], &start);
    assert_eq!(
        (started.status, started.header("location")),
        (303, Some("/projects/alpha/envs/prod/rollout")),
        "{started:?}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let page = get(&server, "/projects/alpha/envs/prod/rollout", &[("Cookie", &session)]);
        if page.body.contains("data-status=\"succeeded\"") {
            assert!(page.body.contains("started by rm"), "{}", page.body);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the rollout never succeeded: {}\n{}", page.body, server.log());
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}
