//! The CI recipes and the Dockerfile snippet in `docs/ci/` are copied into users'
//! repositories, where a mistake shows only on their first pipeline. So they are
//! checked here, offline: each recipe against its published schema (vendored in
//! check-jsonschema), every `flowgate ...` command in them against the real
//! binary's parser, the pinned version against this crate's, and every install
//! command against the one docs/PACKAGING.md documents.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flowgate_testkit::cli_help;

const GITHUB: &str = "docs/ci/github/flowgate.yml";
const GITLAB: &str = "docs/ci/gitlab/.gitlab-ci.yml";
/// The same pipelines through a flowgate server, each job's ID token its credential.
const GITHUB_SERVER: &str = "docs/ci/github/flowgate-server.yml";
const GITLAB_SERVER: &str = "docs/ci/gitlab/.gitlab-ci-server.yml";
/// Preview environments opened on a pull (merge) request and closed when it ends.
const GITHUB_PREVIEW: &str = "docs/ci/github/flowgate-preview.yml";
const GITLAB_PREVIEW: &str = "docs/ci/gitlab/.gitlab-ci-preview.yml";
const DOCKERFILE: &str = "docs/ci/docker/Dockerfile";
const PACKAGING: &str = "docs/PACKAGING.md";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = repo_root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("Failed to read `{}`: {e}", path.display()))
}

/// check-jsonschema from PATH: scripts/test puts the pinned one (scripts/lib.sh,
/// PYTHON_TOOLS) there. Missing, the test fails: the schemas are the point.
fn check_jsonschema() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("check-jsonschema"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`check-jsonschema` is not on PATH ({}); run through scripts/test, or `source scripts/lib.sh && \
                 ensure_python_tools` first",
                path.to_string_lossy()
            )
        })
}

fn validate(schema: &str, file: &Path) -> Output {
    Command::new(check_jsonschema())
        .args(["--builtin-schema", schema])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("Failed to run check-jsonschema on `{}`: {e}", file.display()))
}

fn assert_valid(schema: &str, relative: &str) {
    let out = validate(schema, &repo_root().join(relative));
    assert!(
        out.status.success(),
        "`{relative}` does not validate against `{schema}`:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The recipe with one key misspelled must fail the same check: proves the
/// schema is really applied and strict about keys.
fn assert_misspelling_rejected(schema: &str, relative: &str, key: &str, typo: &str) {
    let text = read(relative);
    assert!(text.contains(key), "`{relative}` has no `{key}` to misspell");
    let dir = tempfile::tempdir().expect("temp dir");
    let broken = dir.path().join(Path::new(relative).file_name().expect("file name"));
    std::fs::write(&broken, text.replacen(key, typo, 1)).expect("write the broken copy");
    let out = validate(schema, &broken);
    assert!(!out.status.success(), "`{schema}` accepted `{relative}` with `{key}` misspelled as `{typo}`");
}

#[test]
fn github_workflow_validates_against_the_github_workflows_schema() {
    for recipe in [GITHUB, GITHUB_SERVER, GITHUB_PREVIEW] {
        assert_valid("vendor.github-workflows", recipe);
        assert_misspelling_rejected("vendor.github-workflows", recipe, "runs-on:", "runs_on:");
    }
}

#[test]
fn gitlab_ci_validates_against_the_gitlab_ci_schema() {
    for recipe in [GITLAB, GITLAB_SERVER, GITLAB_PREVIEW] {
        assert_valid("vendor.gitlab-ci", recipe);
        assert_misspelling_rejected("vendor.gitlab-ci", recipe, "resource_group:", "resource_grup:");
    }
}

/// Shell lines of a recipe: `\`-continued lines joined, comments and YAML block
/// indicators dropped, and the YAML list marker, `run:` key or Dockerfile `RUN`
/// in front of a command removed. Each comes with its 1-based line number.
fn shell_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let (start, mut line) = pending.take().unwrap_or((index + 1, String::new()));
        line.push_str(raw.trim());
        if let Some(stripped) = line.strip_suffix('\\') {
            pending = Some((start, format!("{stripped} ")));
            continue;
        }
        let mut rest = line.as_str();
        while let Some(stripped) = rest.strip_prefix("- ") {
            rest = stripped.trim_start();
        }
        for prefix in ["run:", "RUN "] {
            rest = rest.strip_prefix(prefix).map_or(rest, str::trim_start);
        }
        if !rest.is_empty() && !rest.starts_with('#') && !rest.starts_with('|') && !rest.starts_with('>') {
            out.push((start, rest.to_string()));
        }
    }
    out
}

/// Splits a shell line into commands (at `&&`, `||`, `;`, `|`, `&`) of words,
/// with quotes removed, redirections (`> FILE`, `>> FILE`, `< FILE`) dropped and
/// `$VARIABLES` left as written: clap takes them as values.
fn shell_commands(line: &str) -> Result<Vec<Vec<String>>, String> {
    let mut commands = vec![Vec::new()];
    let mut word: Option<String> = None;
    // The next word is a redirection's target, not an argument.
    let mut target = false;
    // Ends the word being read: an argument of the current command, or the
    // target of a redirection, which is dropped.
    let end_word = |commands: &mut Vec<Vec<String>>, word: &mut Option<String>, target: &mut bool| {
        if let Some(w) = word.take() {
            if !std::mem::take(target) {
                commands.last_mut().expect("a command").push(w);
            }
        }
    };
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                let text = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => text.extend(chars.next()),
                        Some(other) => text.push(other),
                        None => return Err(format!("unterminated {c} quote in `{line}`")),
                    }
                }
            }
            '\\' => word.get_or_insert_with(String::new).extend(chars.next()),
            '#' if word.is_none() => break,
            '>' | '<' => {
                end_word(&mut commands, &mut word, &mut target);
                chars.next_if_eq(&c);
                target = true;
            }
            '&' | '|' | ';' => {
                end_word(&mut commands, &mut word, &mut target);
                if c != ';' && chars.peek() == Some(&c) {
                    chars.next();
                }
                commands.push(Vec::new());
            }
            c if c.is_whitespace() => end_word(&mut commands, &mut word, &mut target),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    end_word(&mut commands, &mut word, &mut target);
    commands.retain(|words| !words.is_empty());
    Ok(commands)
}

/// The arguments of each `flowgate` command in a recipe (leading `NAME=value`
/// assignments skipped), with the line it is on.
fn flowgate_commands(relative: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for (line_no, line) in shell_lines(&read(relative)).into_iter().filter(|(_, l)| l.contains("flowgate")) {
        let commands = shell_commands(&line).unwrap_or_else(|e| panic!("{relative}:{line_no}: {e}"));
        for words in commands {
            let mut words = words.into_iter().skip_while(|w| w.contains('=') && !w.starts_with('-')).peekable();
            if words.next_if(|w| w == "flowgate" || w.ends_with("/flowgate")).is_some() {
                out.push((line_no, words.collect()));
            }
        }
    }
    out
}

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flowgate"))
}

/// Whether the real binary accepts `flowgate ARGS`: its parser reads ARGS with
/// `--help` appended (an unknown subcommand or flag, a stray positional or a
/// malformed value stops it before help), and every flag appears in the help of
/// the subcommand, as it does when the recipe runs for real.
fn check_command(args: &[String]) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut with_help: Vec<&str> = args.iter().map(String::as_str).collect();
    with_help.push("--help");
    let out = cli_help::run(bin(), &with_help, dir.path());
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    // The (sub)subcommand the words name, `rollout start` as much as `release`:
    // its help lists the flags it takes.
    let mut path: Vec<String> = Vec::new();
    let mut help = cli_help::help(bin(), &path);
    for word in args.iter().take_while(|a| !a.starts_with('-')) {
        if !cli_help::listed_commands(&help).contains(word) {
            break;
        }
        path.push(word.clone());
        help = cli_help::help(bin(), &path);
    }
    let sub = path.join(" ");
    for flag in args.iter().filter(|a| a.starts_with('-')) {
        let flag = flag.split('=').next().unwrap_or(flag);
        if !help.contains(&format!("{flag} ")) && !help.contains(&format!("{flag},")) {
            return Err(format!("`{flag}` is not in the help of `flowgate {sub}`"));
        }
    }
    Ok(())
}

#[test]
fn the_command_check_rejects_what_flowgate_does_not_accept() {
    let words = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(check_command(&words("promote --from qa --to prod --reason x")), Ok(()));
    assert_eq!(check_command(&words("rollout start --to prod --from qa --reason x")), Ok(()));
    assert_eq!(check_command(&words("approve HEAD --env prod --reason x")), Ok(()));
    for bad in [
        "promote --from qa --too prod",
        "promot --from qa",
        "build extra",
        "rollback x --env qa --to HEAD",
        "rollout strat --to prod",
        "rollout start --to prod --form qa",
        "approve HEAD --env prod --reasn x",
    ] {
        assert!(check_command(&words(bad)).is_err(), "`flowgate {bad}` passed the check");
    }
}

/// Every flowgate command of a recipe is accepted; returns the subcommands (or
/// lone flags) seen, so each test can insist the ones it expects are there.
fn assert_commands_accepted(relative: &str) -> BTreeSet<String> {
    let commands = flowgate_commands(relative);
    let rejected: Vec<String> = commands
        .iter()
        .filter_map(|(line, args)| {
            check_command(args).err().map(|e| format!("{relative}:{line}: `flowgate {}`: {e}", args.join(" ")))
        })
        .collect();
    assert!(rejected.is_empty(), "flowgate rejects commands of the recipe:\n{}", rejected.join("\n"));
    commands.into_iter().filter_map(|(_, args)| args.into_iter().next()).collect()
}

#[test]
fn github_workflow_commands_are_accepted_by_flowgate() {
    let seen = assert_commands_accepted(GITHUB);
    for sub in ["build", "release", "approve", "rollout", "status"] {
        assert!(seen.contains(sub), "`{GITHUB}` runs no `flowgate {sub}` (found: {seen:?})");
    }
    assert_rolls_out_qa_to_prod(GITHUB);
}

#[test]
fn gitlab_ci_commands_are_accepted_by_flowgate() {
    let seen = assert_commands_accepted(GITLAB);
    for sub in ["build", "release", "approve", "rollout", "status"] {
        assert!(seen.contains(sub), "`{GITLAB}` runs no `flowgate {sub}` (found: {seen:?})");
    }
    assert_rolls_out_qa_to_prod(GITLAB);
}

#[test]
fn server_recipes_go_through_the_server_with_the_jobs_id_token_and_no_secret() {
    for (recipe, credential) in [(GITHUB_SERVER, "id-token: write"), (GITLAB_SERVER, "FLOWGATE_ID_TOKEN:")] {
        let seen = assert_commands_accepted(recipe);
        for sub in ["build", "release", "rollout", "status"] {
            assert!(seen.contains(sub), "`{recipe}` runs no `flowgate {sub}` (found: {seen:?})");
        }
        assert_rolls_out_qa_to_prod(recipe);
        let text = read(recipe);
        assert!(text.contains(credential), "`{recipe}` does not give its jobs an ID token (`{credential}`)");
        assert!(text.contains("aud: flowgate") || text.contains("default `flowgate`"), "`{recipe}`: audience");
        let secrets = ["secrets.", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "API_KEY", "FLOWGATE_TOKEN"];
        for secret in secrets {
            assert!(!text.contains(secret), "`{recipe}` names a stored secret `{secret}`: the server holds them");
        }
    }
    assert!(read(GITHUB_SERVER).contains("FLOWGATE_SERVER: ${{ vars.FLOWGATE_SERVER }}"));
}

#[test]
fn preview_recipes_open_a_preview_of_the_branch_and_close_it_when_the_request_ends() {
    for (recipe, closing) in [(GITHUB_PREVIEW, "github.event.action == 'closed'"), (GITLAB_PREVIEW, "action: stop")] {
        assert_commands_accepted(recipe);
        let previews: Vec<Vec<String>> = flowgate_commands(recipe)
            .into_iter()
            .map(|(_, args)| args)
            .filter(|args| args.first().map(String::as_str) == Some("preview"))
            .collect();
        let verbs: Vec<&str> = previews.iter().map(|args| args[1].as_str()).collect();
        assert_eq!(verbs, ["up", "down"], "`{recipe}`: {previews:?}");
        for args in &previews {
            assert!(
                args.contains(&"--branch".to_string()),
                "`{recipe}`: `flowgate {}` names no branch",
                args.join(" ")
            );
        }
        assert!(previews[0].windows(2).any(|w| w == ["--from", "qa"]), "`{recipe}`: not placed like qa");
        let text = read(recipe);
        assert!(text.contains(closing), "`{recipe}` has no job for the request's end (`{closing}`)");
        let builds = flowgate_commands(recipe).into_iter().filter(|(_, a)| a[0] == "build").count();
        assert_eq!(builds, 1, "`{recipe}` must build the branch before its preview");
    }
}

/// The manual prod promotion is a rollout of exactly what qa runs.
fn assert_rolls_out_qa_to_prod(relative: &str) {
    let rollouts: Vec<Vec<String>> = flowgate_commands(relative)
        .into_iter()
        .map(|(_, args)| args)
        .filter(|a| a.starts_with(&["rollout".into()]))
        .collect();
    let from_qa_to_prod = |args: &Vec<String>| {
        args.get(1).is_some_and(|s| s == "start")
            && args.windows(2).any(|w| w == ["--to", "prod"])
            && args.windows(2).any(|w| w == ["--from", "qa"])
    };
    assert!(
        rollouts.iter().any(from_qa_to_prod),
        "`{relative}` runs no `flowgate rollout start --to prod --from qa`: {rollouts:?}"
    );
}

#[test]
fn dockerfile_commands_are_accepted_by_flowgate() {
    let seen = assert_commands_accepted(DOCKERFILE);
    assert!(seen.contains("--version"), "`{DOCKERFILE}` does not check `flowgate --version` (found: {seen:?})");
}

/// The `FLOWGATE_VERSION` a recipe pins: `FLOWGATE_VERSION: "X"` in YAML,
/// `ARG FLOWGATE_VERSION=X` in a Dockerfile.
fn pinned_version(relative: &str) -> String {
    let text = read(relative);
    let pins: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("FLOWGATE_VERSION:").or_else(|| l.strip_prefix("ARG FLOWGATE_VERSION="))
        })
        .map(|v| v.trim().trim_matches('"'))
        .collect();
    assert_eq!(pins.len(), 1, "`{relative}` should pin FLOWGATE_VERSION once, pins {pins:?}");
    pins[0].to_string()
}

#[test]
fn recipes_pin_this_version_of_flowgate() {
    for relative in [GITHUB, GITLAB, GITHUB_SERVER, GITLAB_SERVER, GITHUB_PREVIEW, GITLAB_PREVIEW, DOCKERFILE] {
        assert_eq!(pinned_version(relative), env!("CARGO_PKG_VERSION"), "`{relative}` pins another flowgate");
    }
}

/// The install commands of the recipes, with the pinned version filled in, are
/// word for word the ones docs/PACKAGING.md tells users to run.
#[test]
fn install_commands_are_the_documented_ones() {
    let docs = read(PACKAGING);
    for relative in [GITHUB, GITLAB, GITHUB_SERVER, GITLAB_SERVER, GITHUB_PREVIEW, GITLAB_PREVIEW, DOCKERFILE] {
        let version = pinned_version(relative);
        let mut installs = 0;
        for (line_no, line) in shell_lines(&read(relative)) {
            let line = line.replace("${FLOWGATE_VERSION}", &version).replace("$FLOWGATE_VERSION", &version);
            for command in line.split("&&").map(str::trim).filter(|c| c.contains("pip install")) {
                installs += 1;
                assert!(docs.contains(command), "{relative}:{line_no}: `{command}` is not in `{PACKAGING}`");
            }
        }
        assert!(installs > 0, "`{relative}` installs no flowgate");
    }
}

/// The commands in a fenced block of the README's `## Install` section.
fn readme_install_lines() -> Vec<String> {
    let readme = read("README.md");
    let section: Vec<&str> =
        readme.lines().skip_while(|l| *l != "## Install").skip(1).take_while(|l| !l.starts_with("## ")).collect();
    let mut fenced = false;
    let mut out = Vec::new();
    for line in section {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push(line.to_string());
        }
    }
    out
}

/// The README's Install section pins this version, in the command
/// docs/PACKAGING.md documents, and its completion and man commands are
/// accepted by flowgate.
#[test]
fn readme_install_section_pins_this_version_and_its_commands_are_accepted() {
    let lines = readme_install_lines();
    let install = format!("pip install \"prefect-flowgate=={}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        lines.iter().any(|l| l.starts_with(&install)),
        "README's Install section does not run `{install}`: {lines:?}"
    );
    assert!(read(PACKAGING).contains(&install), "`{install}` is not in `{PACKAGING}`");
    let mut seen = BTreeSet::new();
    for line in lines.iter().filter(|l| l.starts_with("flowgate ")) {
        let words = shell_commands(line).unwrap_or_else(|e| panic!("README: {e}")).remove(0);
        let args = &words[1..];
        if let Err(e) = check_command(args) {
            panic!("README: `{line}`: {e}");
        }
        seen.insert(args.iter().take(2).cloned().collect::<Vec<_>>().join(" "));
    }
    for expected in ["completions bash", "completions zsh", "completions fish", "man", "man --dir", "--version"] {
        assert!(seen.contains(expected), "README's Install section has no `flowgate {expected}` (found: {seen:?})");
    }
}
