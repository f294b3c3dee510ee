//! `flowgate completions SHELL` and `flowgate man [--dir DIR]`: shell completion
//! scripts and roff man pages generated from the clap definitions in `cli/`,
//! so they cannot drift from the parser. Neither needs a project.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::CommandFactory;
use clap_mangen::Man;
use serde::Serialize;

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use crate::printer::Printer;

#[derive(Serialize)]
struct Completions<'a> {
    shell: String,
    script: &'a str,
}

pub fn completions(args: CompletionsArgs, printer: Printer) -> Result<()> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "flowgate", &mut script);
    let script =
        String::from_utf8(script).with_context(|| format!("The `{}` completion script is not UTF-8", args.shell))?;
    printer.result(&Completions { shell: args.shell.to_string(), script: &script }, |out| out.push_str(&script))
}

#[derive(Serialize)]
struct Pages {
    /// Where the pages were written; absent when the page was printed.
    dir: Option<PathBuf>,
    /// File names, top level first, then each subcommand depth first.
    pages: Vec<String>,
    /// The printed page (without `--dir`).
    roff: Option<String>,
}

pub fn man(cwd: &Path, args: ManArgs, printer: Printer) -> Result<()> {
    let Some(dir) = args.dir else {
        let (name, roff) = page(&built(Cli::command()))?;
        let result = Pages { dir: None, pages: vec![name], roff: Some(roff) };
        return printer.result(&result, |out| out.push_str(result.roff.as_deref().unwrap_or_default()));
    };
    let dir = cwd.join(dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("Failed to create `{}`", dir.display()))?;
    let mut names = Vec::new();
    for (name, roff) in pages(Cli::command())? {
        let path = dir.join(&name);
        std::fs::write(&path, roff).with_context(|| format!("Failed to write `{}`", path.display()))?;
        names.push(name);
    }
    let result = Pages { dir: Some(dir), pages: names, roff: None };
    printer.result(&result, |out| {
        let dir = result.dir.as_deref().unwrap_or(Path::new("."));
        for name in &result.pages {
            out.push_str(&format!("Wrote {}\n", dir.join(name).display()));
        }
    })
}

/// `flowgate.1` and one page per subcommand (`flowgate-release.1`,
/// `flowgate-rollout-start.1`, ...), parents before their children. clap's
/// `help` subcommand gets none: `man flowgate` is the help.
pub fn pages(cmd: clap::Command) -> Result<Vec<(String, String)>> {
    fn collect(cmd: &clap::Command, out: &mut Vec<(String, String)>) -> Result<()> {
        out.push(page(cmd)?);
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            collect(sub, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    collect(&built(cmd), &mut out)?;
    Ok(out)
}

/// The command as the pages describe it: built (so subcommands know their
/// full names, `flowgate-rollout-start`) and without clap's `help` subcommand.
fn built(cmd: clap::Command) -> clap::Command {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One command's page: its file name and roff text.
fn page(cmd: &clap::Command) -> Result<(String, String)> {
    let man = Man::new(cmd.clone());
    let name = man.get_filename();
    let roff = render(&man, cmd).with_context(|| format!("Failed to render the man page `{name}`"))?;
    Ok((name, roff))
}

/// The sections clap_mangen writes, except that `after_help` (the examples)
/// becomes an EXAMPLES section in no-fill mode: clap_mangen's own EXTRA
/// section fills the lines into one paragraph, which ruins a command to copy.
fn render(man: &Man, cmd: &clap::Command) -> std::io::Result<String> {
    let mut sections: Vec<Vec<u8>> = Vec::new();
    let mut section = |f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| -> std::io::Result<()> {
        let mut buf = Vec::new();
        f(&mut buf)?;
        sections.push(buf);
        Ok(())
    };
    section(&|w| man.render_title(w))?;
    section(&|w| man.render_name_section(w))?;
    section(&|w| man.render_synopsis_section(w))?;
    section(&|w| man.render_description_section(w))?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        section(&|w| man.render_options_section(w))?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        section(&|w| man.render_subcommands_section(w))?;
    }
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        let text = after.to_string();
        section(&|w| {
            w.extend(after_help_section(&text).into_bytes());
            Ok(())
        })?;
    }
    if cmd.get_version().is_some() {
        section(&|w| man.render_version_section(w))?;
    }
    // Each clap_mangen call starts with the same two-line preamble defining the
    // apostrophe string `Aq`; once, at the top of the page, is enough.
    let mut page = String::new();
    for (index, bytes) in sections.into_iter().enumerate() {
        let text = String::from_utf8(bytes).map_err(std::io::Error::other)?;
        let text = if index == 0 { text.as_str() } else { text.strip_prefix(PREAMBLE).unwrap_or(&text) };
        page.push_str(text);
    }
    Ok(ascii(&page))
}

/// Non-ASCII characters (`×` in an about line) as groff's `\[uXXXX]` escapes:
/// troff itself reads bytes, so a page piped straight into `groff` (no
/// preconv, as `man` would run) still renders them, without warnings.
fn ascii(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    for c in page.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out
}

/// What the roff crate (clap_mangen's writer) puts at the start of each render.
const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";

/// `Examples:` followed by indented lines becomes `.SH EXAMPLES` and the lines
/// verbatim (dedented, no filling); text without such a heading goes under NOTES.
fn after_help_section(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let heading = match lines.first() {
        Some(first) if first.ends_with(':') && !first.starts_with(' ') => {
            let heading = first.trim_end_matches(':').to_uppercase();
            lines.remove(0);
            heading
        }
        _ => "NOTES".to_string(),
    };
    let indent =
        lines.iter().filter(|l| !l.trim().is_empty()).map(|l| l.len() - l.trim_start().len()).min().unwrap_or(0);
    let mut out = format!(".SH {heading}\n.nf\n");
    for line in lines {
        if line.trim().is_empty() {
            out.push_str(".sp\n");
        } else {
            out.push_str(&escape_line(&line[indent..]));
            out.push('\n');
        }
    }
    out.push_str(".fi\n");
    out
}

/// One line of text for roff, rendered as the same ASCII characters: `-`, `'`,
/// `` ` ``, `~` and `^` would otherwise come out as typographic look-alikes
/// (hyphen, right quote, ...) that a shell does not accept when copied.
fn escape_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    if line.starts_with('.') {
        out.push_str("\\&");
    }
    for c in line.chars() {
        match c {
            '\\' => out.push_str("\\e"),
            '-' => out.push_str("\\-"),
            '\'' => out.push_str("\\*(Aq"),
            '`' => out.push_str("\\(ga"),
            '~' => out.push_str("\\(ti"),
            '^' => out.push_str("\\(ha"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};

    use super::*;

    fn script(shell: clap_complete::Shell) -> String {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "flowgate", &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    /// Every subcommand as the words that reach it (`["admin", "token", "create"]`),
    /// nested ones included (clap's `help` left out).
    fn paths() -> Vec<Vec<String>> {
        fn walk(cmd: &clap::Command, above: &[String], out: &mut Vec<Vec<String>>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut path = above.to_vec();
                path.push(sub.get_name().to_string());
                out.push(path.clone());
                walk(sub, &path, out);
            }
        }
        let mut out = Vec::new();
        walk(&Cli::command(), &[], &mut out);
        out
    }

    /// Runs a tool the test cannot do without, naming the package that has it.
    fn run(tool: &str, package: &str, args: &[&str], stdin: &str) -> std::process::Output {
        let mut child = Command::new(tool)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("Failed to run `{tool}` ({e}); install Debian's `{package}`"));
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), stdin.as_bytes()).expect("write stdin");
        child.wait_with_output().expect("wait")
    }

    #[test]
    fn bash_script_parses_and_completes_every_subcommand() {
        let script = script(clap_complete::Shell::Bash);
        let out = run("bash", "bash", &["-n"], &script);
        assert!(out.status.success(), "`bash -n` rejects the script: {}", String::from_utf8_lossy(&out.stderr));
        // What bash offers at TAB: the script's function called as `complete -F` calls it.
        let complete = |words: &str| {
            let call = format!(
                "{script}\n\
                 COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))\n\
                 _flowgate flowgate \"${{COMP_WORDS[-1]}}\" \"${{COMP_WORDS[-2]}}\"\n\
                 printf '%s\\n' \"${{COMPREPLY[@]}}\"\n"
            );
            let out = run("bash", "bash", &[], &call);
            assert!(out.status.success(), "completing `{words}`: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).expect("UTF-8").lines().map(String::from).collect::<Vec<_>>()
        };
        for path in paths() {
            let (name, parents) = path.split_last().expect("a path has a name");
            let words = format!("flowgate {} ''", parents.join(" "));
            let offered = complete(&words);
            assert!(offered.contains(name), "TAB after `{words}` offers no `{name}`: {offered:?}");
        }
        assert_eq!(complete("flowgate rel"), ["release"]);
        assert_eq!(complete("flowgate rollout start --dr"), ["--dry-run"]);
    }

    #[test]
    fn zsh_and_fish_scripts_name_every_subcommand() {
        for shell in [clap_complete::Shell::Zsh, clap_complete::Shell::Fish] {
            let script = script(shell);
            // clap_complete's fish script completes two levels of subcommands:
            // `flowgate admin token` is offered, `create` after it is not.
            let depth = if shell == clap_complete::Shell::Fish { 2 } else { usize::MAX };
            for path in paths().into_iter().filter(|p| p.len() <= depth) {
                let name = path.last().expect("a path has a name");
                assert!(
                    script.contains(&format!("'{name}")) || script.contains(&format!(" {name} ")),
                    "{shell}: {name}"
                );
            }
            assert!(script.contains("dry-run"), "{shell} script has no flags:\n{script}");
        }
    }

    /// `groff -man -Tutf8 -ww` (every warning on) reads every page without a
    /// single warning.
    #[test]
    fn every_man_page_renders_without_warnings() {
        let pages = pages(Cli::command()).expect("pages");
        assert!(pages.iter().any(|(name, _)| name == "flowgate-rollout-start.1"), "{:?}", pages.len());
        for (name, roff) in &pages {
            let out = run("groff", "groff-base", &["-man", "-Tutf8", "-ww", "-z"], roff);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && stderr.is_empty(), "groff on `{name}`:\n{stderr}");
            assert_eq!(roff.matches(".ds Aq").count(), 2, "`{name}` defines `Aq` more than once:\n{roff}");
        }
    }

    /// Each example reads, once rendered, as the same ASCII a shell accepts:
    /// no hyphens, curly quotes or modifier tildes in place of `-`, `'`, `~`.
    #[test]
    fn man_page_examples_render_as_typed() {
        let cmd = built(Cli::command());
        let mut commands = vec![&cmd];
        let mut checked = 0;
        while let Some(cmd) = commands.pop() {
            commands.extend(cmd.get_subcommands());
            let Some(after) = cmd.get_after_help().map(ToString::to_string) else { continue };
            let (name, roff) = page(cmd).expect("page");
            let out = run("groff", "groff-base", &["-man", "-Tutf8", "-P-c", "-P-b", "-P-u"], &roff);
            let text = String::from_utf8(out.stdout).expect("UTF-8");
            for example in after.lines().map(str::trim).filter(|l| l.starts_with("flowgate ")) {
                assert!(text.lines().any(|l| l.trim() == example), "`{name}` renders no line `{example}`:\n{text}");
                checked += 1;
            }
        }
        assert!(checked > 40, "only {checked} examples checked");
    }

    #[test]
    fn after_help_becomes_an_unfilled_section() {
        assert_eq!(
            after_help_section("Examples:\n  flowgate x --y 'z'\n\n  .dot ~/a^b\\c"),
            ".SH EXAMPLES\n.nf\nflowgate x \\-\\-y \\*(Aqz\\*(Aq\n.sp\n\\&.dot \\(ti/a\\(hab\\ec\n.fi\n"
        );
        assert!(after_help_section("Plain words.").starts_with(".SH NOTES\n.nf\nPlain words.\n"));
    }
}
