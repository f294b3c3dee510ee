//! The dashboard's live rollout page, in headless Chromium: a viewer opens the
//! rollout page of a protected env, a release manager starts a rollout from the
//! CLI through the server, and the page (never reloaded) follows it through
//! wave 1 passing, wave 2's failed verification and the automatic rollback.
//! Against a real Prefect server and a process worker running the flows from
//! the server's store.

mod common;

use std::path::Path;
use std::time::Duration;

use common::pages::sign_in;
use common::server::{create_token, Server};
use flowgate_testkit::prefect::{PrefectServer, PrefectWorker};
use flowgate_testkit::webdriver::Browser;
use flowgate_testkit::{GitProject, Run};

const POOL: &str = "dashboard-rollout";

fn flow(name: &str, body: &str) -> String {
    format!("from prefect import flow\n\n@flow(name=\"{name}\", log_prints=True)\ndef {name}():\n    {body}\n")
}

fn through(p: &GitProject, port: u16, token: &str, args: &[&str]) -> Run {
    let url = format!("http://127.0.0.1:{port}");
    p.run_with_env(common::bin(), args, &[("FLOWGATE_SERVER", url.as_str()), ("FLOWGATE_TOKEN", token)])
}

#[test]
fn in_chromium_a_rollout_started_from_the_cli_is_watched_live_to_its_automatic_rollback() {
    let prefect = PrefectServer::start();
    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("server.db").display());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let config = dir.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "ledger = \"{ledger}\"\nartifacts = \"file://{}\"\n\n[projects.watched.envs.prod]\n\
             prefect_api_url = \"{}\"\nname_prefix = \"dr-\"\nwork_pool = \"{POOL}\"\n\
             rollout = {{ waves = [[\"alpha\"], [\"beta\"]], verify = {{ runs = 1, timeout = \"300s\" }} }}\n",
            store.display(),
            prefect.api_url()
        ),
    )
    .unwrap();
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write(
        "flowgate.toml",
        "[project]\nname = \"watched\"\n\n[flows.alpha]\nentrypoint = \"flows/alpha.py:alpha\"\n\n\
         [flows.beta]\nentrypoint = \"flows/beta.py:beta\"\n\n[envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n",
    );
    p.write("flows/alpha.py", &flow("alpha", "print(\"alpha v1\")"));
    p.write("flows/beta.py", &flow("beta", "print(\"beta v1\")"));
    p.commit("v1");
    let ci = create_token(dir.path(), &ledger, "ci", &["--role", "releaser:prod"]);
    let viewer = create_token(dir.path(), &ledger, "viewer", &["--role", "viewer"]);
    let server = Server::start(&["--config", &config.display().to_string()]);
    let port = server.port;
    let bin_dir = Path::new(common::bin()).parent().unwrap().to_path_buf();
    let worker = PrefectWorker::start(&prefect.api_url(), POOL, Some(&bin_dir));

    through(&p, port, &ci, &["build"]).success();
    let release = ["release", "--all", "--env", "prod", "--build", "HEAD", "--create-work-pools"];
    through(&p, port, &ci, &release).success();
    p.write("flows/alpha.py", &flow("alpha", "print(\"alpha v2\")"));
    p.write("flows/beta.py", &flow("beta", "raise RuntimeError(\"beta is broken\")"));
    p.commit("v2: beta raises");
    through(&p, port, &ci, &["build"]).success();

    // The viewer opens the page before anything happens, and marks it: a reload would lose the mark.
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::start();
    sign_in(&browser, &base, &viewer);
    browser.goto(&format!("{base}/projects/watched"));
    browser.click(&browser.wait_for("p.rollouts a[href='/projects/watched/envs/prod/rollout']").remove(0));
    browser.wait_for("#rollout[data-status='none']");
    browser.execute("window.flowgateMark = 'not reloaded';");

    let start = ["rollout", "start", "--to", "prod", "--build", "HEAD", "--reason", "weekly", "--detach"];
    through(&p, port, &ci, &start).success();
    let log = || format!("--- worker\n{}\n--- server\n{}", worker.log(), server.log());
    let live = |css: &str, what: &str| {
        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            browser.wait_for_within(css, Duration::from_secs(240));
        }));
        assert!(found.is_ok(), "the page never showed {what}\n{}", log());
    };
    live("#rollout[data-status='running']", "the rollout running");
    live("#rollout tr[data-wave='1'][data-outcome='passed']", "wave 1 passing");
    let link = browser.wait_for("#rollout tr[data-wave='1'] span.run-completed a").remove(0);
    assert!(browser.text(&link).len() > 3, "{}", browser.source());
    browser.screenshot("dashboard-rollout-wave-1-passed");
    live("#rollout[data-status='failed'] tr[data-wave='2'][data-outcome='rolled-back']", "the automatic rollback");
    let failed_run = browser.wait_for("#rollout tr[data-wave='2'] span.run-failed").remove(0);
    assert!(browser.text(&failed_run).ends_with("FAILED"), "{}", browser.source());
    let failure = browser.text(&browser.wait_for("#rollout p.failure").remove(0));
    assert!(failure.contains("beta"), "{failure}");
    browser.screenshot("dashboard-rollout-rolled-back");
    assert_eq!(browser.execute("return window.flowgateMark;"), "not reloaded", "the page was reloaded");

    // Each run links to its page in the Prefect UI of the env's server.
    let ui = prefect.api_url().trim_end_matches("/api").to_string();
    let source = browser.source();
    assert!(source.contains(&format!("href=\"{ui}/runs/flow-run/")), "{source}");
    drop(worker);
}
