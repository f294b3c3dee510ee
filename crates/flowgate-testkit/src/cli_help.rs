//! The real binary's help, walked: `--help` of the top level and of every
//! subcommand, found by reading the `Commands:` list of each help, so a new
//! subcommand is covered the day it lands. Help is wrapped at a fixed width and
//! printed without colour, whatever the terminal.

use std::path::Path;
use std::process::{Command, Output};

/// The width help is wrapped at: fixed, so snapshots do not depend on the terminal.
pub const COLUMNS: &str = "100";

/// Runs `bin ARGS` in `dir` with help at [`COLUMNS`], no colour forced and no
/// inherited `FLOWGATE_ENV`.
pub fn run(bin: &Path, args: &[&str], dir: &Path) -> Output {
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", COLUMNS)
        .env("LINES", "50")
        .env_remove("FLOWGATE_ENV")
        .env_remove("CLICOLOR_FORCE")
        .output()
        .unwrap_or_else(|e| panic!("Failed to run `flowgate {}`: {e}", args.join(" ")))
}

/// `--help` of `flowgate PATH...` (run in a new empty directory), which must succeed.
pub fn help(bin: &Path, path: &[String]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let out = run(bin, &args, dir.path());
    assert!(out.status.success(), "`flowgate {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Every name a help lists under `Commands:`, clap's own `help` included:
/// entries are indented two spaces, wrapped descriptions further.
pub fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter(|l| !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

/// The subcommands a help lists: [`listed_commands`] without clap's `help`.
pub fn subcommands_in(help: &str) -> Vec<String> {
    listed_commands(help).into_iter().filter(|name| name != "help").collect()
}

/// Every command path with its help: `[]` (the top level), `[init]`, ...,
/// `[rollout]`, `[rollout, start]`, ... in the order `--help` lists them.
pub fn all_helps(bin: &Path) -> Vec<(Vec<String>, String)> {
    fn walk(bin: &Path, path: Vec<String>, out: &mut Vec<(Vec<String>, String)>) {
        let text = help(bin, &path);
        let subs = subcommands_in(&text);
        out.push((path.clone(), text));
        for sub in subs {
            let mut child = path.clone();
            child.push(sub);
            walk(bin, child, out);
        }
    }
    let mut out = Vec::new();
    walk(bin, Vec::new(), &mut out);
    out
}

/// A command path as typed: `flowgate rollout start`.
pub fn display(path: &[String]) -> String {
    std::iter::once("flowgate").chain(path.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}
