//! Helpers for the dashboard's tests: pages over HTTP, a signed-in session,
//! the form token a page carries, and a project with two builds whose store
//! the server reads.

use std::path::Path;

use flowgate_testkit::http::{exchange, Answer};
use flowgate_testkit::webdriver::Browser;
use flowgate_testkit::GitProject;

use super::server::Server;

pub fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> Answer {
    exchange(server.port, "GET", path, headers, b"")
}

pub fn post_form(server: &Server, path: &str, headers: &[(&str, &str)], form: &str) -> Answer {
    let mut all = headers.to_vec();
    all.push(("Content-Type", "application/x-www-form-urlencoded"));
    exchange(server.port, "POST", path, &all, form.as_bytes())
}

/// A project whose store is the server's `STORE/alpha`, so the server reads
/// the bundles direct mode wrote: two builds, the second with a changed file,
/// made on a branch whose name holds markup; qa runs the second.
pub fn two_builds(dir: &Path, ledger: &str) -> (GitProject, String, String) {
    std::fs::create_dir_all(dir.join("store/alpha")).unwrap();
    let alpha = GitProject::new();
    alpha.write(".gitignore", ".flowgate/\n");
    alpha.write("flows/ingest.py", "from prefect import flow\n\n\n@flow\ndef main(day: str = \"today\"):\n    pass\n");
    alpha.write(
        "flowgate.toml",
        &format!(
            "[project]\nname = \"alpha\"\nledger = \"{ledger}\"\nartifacts = \"file://{}/store/alpha\"\n\n\
             [envs.qa]\n\n[envs.prod]\n\n[flows.ingest]\nentrypoint = \"flows/ingest.py:main\"\n",
            dir.display()
        ),
    );
    alpha.commit("first");
    super::run(&alpha, &["build"]).success();
    super::run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD"]).success();
    super::run(&alpha, &["release", "--all", "--env", "prod", "--build", "HEAD"]).success();
    let first = super::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();
    alpha.git(&["checkout", "-q", "-b", "feat-<b>x</b>"]);
    alpha.write("flows/helpers.py", "DAY = 'today'\n");
    alpha.commit("second");
    super::run(&alpha, &["build"]).success();
    let reason = "<script>alert('x')</script>";
    super::run(&alpha, &["release", "--all", "--env", "qa", "--build", "HEAD", "--reason", reason]).success();
    let second = super::run(&alpha, &["builds", "--json"]).success().json()[0]["id"].as_str().unwrap().to_string();
    (alpha, first, second)
}

pub fn session_of(server: &Server, token: &str) -> String {
    let origin = format!("http://127.0.0.1:{}", server.port);
    let signed_in = post_form(server, "/login", &[("Origin", origin.as_str())], &format!("token={token}"));
    let cookie = signed_in.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

/// The value of the first `name="form_token"` field of a page.
pub fn form_token(page: &str) -> String {
    let at = page.find("name=\"form_token\" value=\"").expect("a form token field") + 25;
    page[at..].split('"').next().unwrap().to_string()
}

/// Signs the browser in with `token` at `base` (signing out first if needed).
pub fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/login"));
    let field = browser.wait_for("input[name=token]").remove(0);
    browser.type_into(&field, token);
    browser.click(&browser.wait_for("form[action='/login'] button").remove(0));
    browser.wait_for("ul.projects");
}
