//! Help that teaches, errors that point the right way, and the generated
//! completions and man pages, all through the real binary: `--help` of the top
//! level and of every subcommand (found by walking `flowgate --help`, so a new
//! subcommand is covered the day it lands) is snapshotted, ends with examples
//! that the parser accepts, and a mistyped subcommand or flag gets a suggestion.
//!
//! Snapshots live in `tests/snapshots/help__*.snap`. After a deliberate change
//! (or a new subcommand), regenerate and review them with
//! `INSTA_UPDATE=always cargo nextest run -p flowgate --test help` (or
//! `cargo insta test --accept -p flowgate --test help`) and `git diff`.

use std::path::{Path, PathBuf};
use std::process::Output;

use flowgate_testkit::cli_help::{self, display, COLUMNS};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_flowgate"))
}

/// `flowgate ARGS` in `dir`, at the fixed width, as the walk runs it.
fn flowgate(args: &[&str], dir: &Path) -> Output {
    cli_help::run(bin(), args, dir)
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

/// Every command path with its help, top level first (see [`cli_help::all_helps`]).
fn all_helps() -> Vec<(Vec<String>, String)> {
    cli_help::all_helps(bin())
}

#[test]
fn the_walk_finds_every_subcommand_and_the_rollout_ones() {
    let paths: Vec<String> = all_helps().iter().map(|(path, _)| path.join(" ")).collect();
    for expected in
        ["", "init", "release", "approve", "rollout", "rollout start", "rollout watch", "completions", "man"]
    {
        assert!(paths.iter().any(|p| p == expected), "`{expected}` not found by the walk: {paths:?}");
    }
    assert!(!paths.iter().any(|p| p == "help" || p.ends_with(" help")), "clap's `help` was walked: {paths:?}");
}

fn snapshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

#[test]
fn help_of_every_command_matches_its_snapshot() {
    let mut failures = Vec::new();
    for (path, text) in all_helps() {
        let name = if path.is_empty() { "flowgate".to_string() } else { format!("flowgate_{}", path.join("_")) };
        let file = snapshot_dir().join(format!("help__{name}.snap"));
        let exists = file.is_file();
        let assertion = std::panic::catch_unwind(|| {
            insta::with_settings!({
                description => format!("{} --help, COLUMNS={COLUMNS}", display(&path)),
                omit_expression => true,
                // The commit changes with every commit; the version is checked in version.rs.
                filters => vec![(r"\d+\.\d+\.\d+ \(commit [0-9a-f]{12}(-dirty)?\)", "[VERSION]")],
            }, {
                insta::assert_snapshot!(name.clone(), text);
            });
        });
        match (assertion, exists) {
            (Ok(()), _) => {}
            (Err(_), false) => {
                failures.push(format!("`{} --help` has no snapshot `{}`", display(&path), file.display()))
            }
            (Err(_), true) => failures.push(format!("`{} --help` differs from `{}`", display(&path), file.display())),
        }
    }
    assert!(
        failures.is_empty(),
        "{}\nIf the change is intended, regenerate with `INSTA_UPDATE=always cargo nextest run -p flowgate --test \
         help` (or `cargo insta test --accept -p flowgate --test help`) and review `git diff`.",
        failures.join("\n")
    );
}

/// The example commands of a help text: the indented lines under `Examples:`,
/// up to the first line that is not indented. Each is a `flowgate` command or a
/// `#` comment; anything else (a command wrapped onto a second line) is an error.
fn examples(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let section = text.lines().skip_while(|l| *l != "Examples:").skip(1);
    for line in section.take_while(|l| l.starts_with("  ") || l.is_empty()).filter(|l| !l.is_empty()) {
        match line.trim_start() {
            l if l.starts_with("flowgate ") => out.push(l.to_string()),
            l if l.starts_with('#') => {}
            l => return Err(format!("example line `{l}` is neither a `flowgate` command nor a `#` comment")),
        }
    }
    Ok(out)
}

/// The words of one shell command as the shell would pass them: quotes removed,
/// stopping at an unquoted redirection, pipe, list operator or comment.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
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
            '>' | '<' | '|' | '&' | ';' => break,
            c if c.is_whitespace() => words.extend(word.take()),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[test]
fn words_split_like_a_shell() {
    assert_eq!(
        words(r#"flowgate release --reason "fix #42" x"#),
        Ok(vec!["flowgate".into(), "release".into(), "--reason".into(), "fix #42".into(), "x".into()])
    );
    assert_eq!(words("flowgate man | man -l -"), Ok(vec!["flowgate".into(), "man".into()]));
    assert_eq!(
        words("flowgate completions zsh > ~/f # c"),
        Ok(vec!["flowgate".into(), "completions".into(), "zsh".into()])
    );
    assert!(words(r#"flowgate release --reason "open"#).is_err());
}

/// Every help has at least one example (the top level included), each example
/// is a command of the subcommand whose help shows it, and the real parser
/// accepts it: `--help` appended, so an unknown subcommand or flag, a stray
/// positional or a malformed value fails it, and nothing runs.
#[test]
fn every_help_has_examples_that_the_parser_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut problems = Vec::new();
    for (path, text) in all_helps() {
        let here = display(&path);
        let examples = match examples(&text) {
            Ok(examples) if examples.is_empty() => {
                problems.push(format!("`{here} --help` has no `Examples:` with a `flowgate` command"));
                continue;
            }
            Ok(examples) => examples,
            Err(e) => {
                problems.push(format!("`{here} --help`: {e}"));
                continue;
            }
        };
        for example in examples {
            let mut args = match words(&example) {
                Ok(words) => words,
                Err(e) => {
                    problems.push(format!("`{here} --help`: {e}"));
                    continue;
                }
            };
            args.remove(0);
            if !args.starts_with(&path) {
                problems.push(format!("`{here} --help` shows `{example}`, a command of another subcommand"));
            }
            args.push("--help".into());
            let out = flowgate(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir.path());
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                problems.push(format!("`{here} --help` shows `{example}`, which flowgate rejects:\n{stderr}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check above is not vacuous: these are rejected.
#[test]
fn a_wrong_example_is_rejected() {
    let dir = tempfile::tempdir().expect("temp dir");
    for bad in ["flowgate relase --env qa", "flowgate release --evn qa", "flowgate rollback x --to HEAD"] {
        let mut args: Vec<String> = words(bad).expect("words").split_off(1);
        args.push("--help".into());
        let out = flowgate(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir.path());
        assert_eq!(out.status.code(), Some(2), "`{bad} --help` was accepted");
    }
    assert!(examples("Examples:\n  flowgate release --all --env qa --build HEAD --reason\n  \"wrapped\"\n").is_err());
}

fn assert_suggests(args: &[&str], tip: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = flowgate(args, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "`flowgate {}` should be a usage error:\n{stderr}", args.join(" "));
    assert!(stderr.contains(tip), "`flowgate {}` does not suggest `{tip}`:\n{stderr}", args.join(" "));
    assert!(out.stdout.is_empty(), "a usage error printed on stdout");
}

#[test]
fn a_mistyped_subcommand_suggests_the_right_one() {
    assert_suggests(&["relase"], "tip: a similar subcommand exists: 'release'");
    assert_suggests(&["rollout", "stat", "--env", "prod"], "'status'");
    assert_suggests(&["completion", "bash"], "'completions'");
}

#[test]
fn a_mistyped_flag_suggests_the_right_one() {
    assert_suggests(&["release", "--dryrun"], "tip: a similar argument exists: '--dry-run'");
    assert_suggests(&["promote", "--form", "qa", "--to", "prod"], "tip: a similar argument exists: '--from'");
}

/// `completions` and `man` work anywhere (no flowgate.toml here), print on
/// stdout, and `man --dir` writes one page per command the walk finds.
/// (What is in the scripts and pages is tested in src/commands/completions.rs.)
#[test]
fn completions_and_man_need_no_project_and_cover_every_command() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (shell, start) in [("bash", "_flowgate()"), ("zsh", "#compdef flowgate"), ("fish", "")] {
        let out = flowgate(&["completions", shell], dir.path());
        assert!(out.status.success(), "`flowgate completions {shell}`: {}", String::from_utf8_lossy(&out.stderr));
        let script = stdout(&out);
        assert!(script.starts_with(start) && script.contains("rollout"), "`{shell}` script:\n{script}");
    }
    let out = flowgate(&["man"], dir.path());
    assert!(out.status.success(), "`flowgate man`: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("\n.TH flowgate 1 "), "`flowgate man` printed no page:\n{}", stdout(&out));

    let out = flowgate(&["man", "--dir", "pages"], dir.path());
    assert!(out.status.success(), "`flowgate man --dir`: {}", String::from_utf8_lossy(&out.stderr));
    let mut written: Vec<String> = std::fs::read_dir(dir.path().join("pages"))
        .expect("pages written")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> =
        all_helps().into_iter().map(|(path, _)| format!("{}.1", display(&path).replace(' ', "-"))).collect();
    expected.sort();
    assert_eq!(written, expected);
}
