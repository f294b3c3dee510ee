//! Per-flow change detection (issue 16): each build records every flow's code
//! closure; `release --all` and `promote` move only the flows a commit changed
//! (a shared module moves exactly the flows importing it; a dynamic import
//! makes a flow depend on the whole bundle), a rollout's waves hold only those,
//! and `--force` moves them all.
//! The code is recorded with the deployment settings a build carries, which
//! exist for envs with a Prefect server; these tests move with `--no-sync`.

mod common;

use common::run;
use flowgate_testkit::GitProject;
use serde_json::Value;

const CONFIG: &str = "[project]\nname = \"changes\"\n\n\
[flows.a]\nentrypoint = \"flows/a.py:a\"\n\n\
[flows.b]\nentrypoint = \"flows/b.py:b\"\n\n\
[flows.c]\nentrypoint = \"flows/c.py:c\"\n\n\
[flows.d]\nentrypoint = \"flows/d.py:d\"\n\n\
[flows.e]\nentrypoint = \"flows/d.py:e\"\ndepends = [\"plugins/**\"]\n\n\
[envs.qa]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n\n[envs.prod]\nprefect_api_url = \"http://127.0.0.1:9/api\"\n";

fn flow(name: &str, import: &str) -> String {
    format!("from prefect import flow\n{import}\n\n@flow\ndef {name}():\n    pass\n")
}

fn project() -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    p.write("flowgate.toml", CONFIG);
    p.write("lib/__init__.py", "");
    p.write("lib/common.py", "RETRIES = 3\n");
    p.write("flows/a.py", &flow("a", "from lib.common import RETRIES"));
    p.write("flows/b.py", &flow("b", "from lib import common"));
    p.write("flows/c.py", &flow("c", "import json"));
    p.write(
        "flows/d.py",
        "import importlib\n\nfrom prefect import flow\n\n\n@flow\ndef d(name: str = \"x\"):\n    importlib.import_module(name)\n\n\n\
         @flow\ndef e(name: str = \"x\"):\n    importlib.import_module(name)\n",
    );
    p.write("plugins/x.py", "X = 1\n");
    p.commit("five flows");
    p
}

fn build(p: &GitProject) -> String {
    run(p, &["build", "--json"]).success().json()["build"]["id"].as_str().unwrap().to_string()
}

/// The flows moved and the flows left unchanged.
fn release(p: &GitProject, extra: &[&str]) -> (Vec<String>, Vec<String>) {
    let mut args = vec!["release", "--all", "--env", "qa", "--build", "HEAD", "--no-sync", "--json"];
    args.extend_from_slice(extra);
    moved(&run(p, &args).success().json())
}

fn moved(answer: &Value) -> (Vec<String>, Vec<String>) {
    let names = |key: &str| -> Vec<String> {
        let mut all: Vec<String> = answer[key]
            .as_array()
            .map(|a| a.iter().map(|m| m["flow"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        all.sort();
        all
    };
    (names("moves"), names("unchanged"))
}

fn edit(p: &GitProject, file: &str, text: &str) {
    p.write(file, text);
    p.commit(&format!("edit {file}"));
    build(p);
}

#[test]
fn release_all_moves_only_the_flows_a_commit_changed() {
    let p = project();
    let first = build(&p);
    let shown = run(&p, &["show", &first]).success().stdout;
    assert!(shown.contains("code     d: ") && shown.contains("flows/d.py:8: importlib.import_module(name)"), "{shown}");
    // `e` declares its dependencies: the dynamic import no longer widens it.
    let e = shown.lines().find(|l| l.starts_with("code     e:")).expect("a code line for e");
    assert!(!e.contains("whole bundle"), "{shown}");
    assert_eq!(release(&p, &[]).0, ["a", "b", "c", "d", "e"]);

    // A flow's own file: that flow, and the one that depends on the whole bundle.
    edit(&p, "flows/c.py", &flow("c", "import json  # edited"));
    // A rollout's waves hold only those too.
    let planned =
        run(&p, &["rollout", "start", "--to", "qa", "--build", "HEAD", "--dry-run", "--json"]).success().json();
    let waved: Vec<&str> =
        planned["body"]["waves"][0]["flows"].as_array().unwrap().iter().map(|f| f["flow"].as_str().unwrap()).collect();
    assert_eq!((waved, moved(&planned).1), (vec!["c", "d"], vec!["a".into(), "b".into(), "e".into()]), "{planned}");
    assert_eq!(release(&p, &[]), (vec!["c".into(), "d".into()], vec!["a".into(), "b".into(), "e".into()]));

    // A shared module: exactly the flows importing it (and the whole-bundle one).
    edit(&p, "lib/common.py", "RETRIES = 5\n");
    assert_eq!(release(&p, &[]), (vec!["a".into(), "b".into(), "d".into()], vec!["c".into(), "e".into()]));

    // A declared dependency.
    edit(&p, "plugins/x.py", "X = 2\n");
    assert_eq!(release(&p, &[]), (vec!["d".into(), "e".into()], vec!["a".into(), "b".into(), "c".into()]));

    // A file no flow loads: nothing but the whole-bundle flow; --force moves every flow.
    edit(&p, "README.md", "notes\n");
    let text = run(&p, &["release", "--all", "--env", "qa", "--build", "HEAD", "--no-sync"]).success().stdout;
    assert!(text.contains("unchanged a: keeps build"), "{text}");
    assert_eq!(release(&p, &["--force"]).0, ["a", "b", "c", "e"], "d already moved above");

    // Promotion moves what differs; a second one finds nothing to move.
    let (first_promotion, _) =
        moved(&run(&p, &["promote", "--from", "qa", "--to", "prod", "--no-sync", "--json"]).success().json());
    assert_eq!(first_promotion, ["a", "b", "c", "d", "e"]);
    edit(&p, "flows/a.py", &flow("a", "from lib.common import RETRIES  # edited"));
    release(&p, &[]);
    let promoted =
        moved(&run(&p, &["promote", "--from", "qa", "--to", "prod", "--no-sync", "--json"]).success().json());
    // b, c and e run the very builds in both envs: nothing to decide for them.
    assert_eq!(promoted, (vec!["a".into(), "d".into()], vec![]));
}

/// Each flow's code digest in a `build --json` answer's qa settings.
fn digests(answer: &Value) -> Vec<(String, String)> {
    let qa = answer["build"]["settings"]["qa"].as_object().expect("qa settings");
    qa.iter().map(|(flow, s)| (flow.clone(), s["code"]["digest"].as_str().expect("a digest").to_string())).collect()
}

/// `build -vv --json`: the answer, and whether the closures came from the cache.
fn build_logged(p: &GitProject) -> (Value, bool) {
    let out = run(p, &["-vv", "build", "--json"]).success();
    let cached = out.stderr.contains("flow code from the cache");
    (out.json(), cached)
}

#[test]
fn closures_of_an_unchanged_tree_come_from_the_cache_never_stale_or_damaged() {
    let p = project();
    // The stat index trusts no file changed in the 2 s before a scan (racy-git rule).
    let settle = || std::thread::sleep(std::time::Duration::from_millis(2_100));
    settle();
    let (first, cached) = build_logged(&p);
    assert!(!cached, "a first build has no cache to read");
    assert!(p.path().join(".flowgate/cache/closures.json").is_file());

    // A new commit of the same files: the stat index vouches for every file.
    p.commit("nothing changed");
    let (same, cached) = build_logged(&p);
    assert!(cached, "an unchanged tree's closures are read again");
    assert_eq!(digests(&same), digests(&first));

    // A damaged cache is computed anew, to the same answer.
    p.write(".flowgate/cache/closures.json", "{ not json");
    p.commit("nothing changed again");
    let (repaired, cached) = build_logged(&p);
    assert!(!cached);
    assert_eq!(digests(&repaired), digests(&first));

    // A changed shared module: the cache is stale, and only its importers' digests move.
    p.write("lib/common.py", "RETRIES = 4\n");
    p.commit("retries");
    let (changed, cached) = build_logged(&p);
    assert!(!cached, "a changed file is read, not taken from the cache");
    let moved: Vec<String> = digests(&changed)
        .into_iter()
        .zip(digests(&first))
        .filter(|(now, before)| now != before)
        .map(|(now, _)| now.0)
        .collect();
    assert_eq!(moved, ["a", "b", "d"], "d loads the whole bundle; e declared its files");
}

/// `flow c`'s `days` parameter type in a `build --json` answer's qa settings.
fn days_type(answer: &Value) -> String {
    let schema = &answer["build"]["settings"]["qa"]["c"]["parameter_schema"];
    schema["properties"]["days"]["type"].as_str().unwrap_or_else(|| panic!("no days type in {schema}")).to_string()
}

#[test]
fn flow_signatures_of_an_unchanged_tree_come_from_the_cache_never_stale_or_damaged() {
    let p = project();
    p.write("lib/types.py", "Days = int\n");
    p.write(
        "flows/c.py",
        "from prefect import flow\n\nfrom lib.types import Days\n\n\n@flow\ndef c(days: Days = 1):\n    pass\n",
    );
    p.commit("typed days");
    let build = |p: &GitProject| {
        let out = run(p, &["-vv", "build", "--json"]).success();
        let cached = out.stderr.contains("flow signatures from the cache");
        (out.json(), cached)
    };
    // The stat index trusts no file changed in the 2 s before a scan (racy-git rule).
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (first, cached) = build(&p);
    assert!(!cached, "a first build has no cache to read");
    assert_eq!(days_type(&first), "integer");
    assert!(p.path().join(".flowgate/cache/flows.json").is_file());

    p.commit("nothing changed");
    let (same, cached) = build(&p);
    assert!(cached, "an unchanged tree's signatures are read again");
    assert_eq!(same["build"]["settings"], first["build"]["settings"]);

    p.write(".flowgate/cache/flows.json", "{ not json");
    p.commit("nothing changed again");
    let (repaired, cached) = build(&p);
    assert!(!cached);
    assert_eq!(repaired["build"]["settings"], first["build"]["settings"]);

    // A module a parameter's type comes from changed, and the stat index vouches
    // for it: the cache's hash of it is stale, so it is read anew.
    p.write("lib/types.py", "Days = str\n");
    p.commit("days are text");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let (changed, cached) = build(&p);
    assert!(!cached, "a changed file is read, not taken from the cache");
    assert_eq!(days_type(&changed), "string");
}
