//! Fixtures of secrets audits: random secrets, every form a secret may take in
//! output (raw, percent-encoded, the base64 of an HTTP Basic header), a search
//! of recorded runs for them, and a runner that runs each command at `-vvv` as
//! text and as JSON. The encodings share no code with flowgate: base64 comes
//! from the coreutils tool.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::{percent_encode, GitProject, RecordedRun, Run};

/// 32 random hex digits, from std's per-process random hasher keys.
pub fn random_hex() -> String {
    let word = || RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", word(), word())
}

/// `base64(text)` by the coreutils tool.
pub fn base64(text: &str) -> String {
    let mut child =
        Command::new("base64").arg("-w0").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("base64");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    String::from_utf8(child.wait_with_output().expect("base64").stdout).expect("utf-8").trim().to_string()
}

/// The secrets of one test and every form each may take in output.
#[derive(Debug, Default)]
pub struct Secrets {
    /// (what it is, the text that must never show)
    forms: Vec<(String, String)>,
}

impl Secrets {
    pub fn new() -> Self {
        Self::default()
    }

    /// `secret` itself and its percent-encoding.
    pub fn add(&mut self, what: &str, secret: &str) {
        self.forms.push((what.to_string(), secret.to_string()));
        let encoded = percent_encode(secret);
        if encoded != secret {
            self.forms.push((format!("{what} (percent-encoded)"), encoded));
        }
    }

    /// An auth string sent as HTTP Basic: the string and its base64.
    pub fn add_basic(&mut self, what: &str, auth: &str) {
        self.add(what, auth.split_once(':').map_or(auth, |(_, secret)| secret));
        self.forms.push((format!("{what} (Basic header)"), base64(auth)));
    }

    /// Every line of every run's output that shows a secret, described.
    pub fn in_runs(&self, runs: &[RecordedRun]) -> Vec<String> {
        let mut out = Vec::new();
        for run in runs {
            let command = format!("`flowgate {}` (exit {})", run.args.join(" "), run.code);
            out.extend(self.hits(&format!("{command} stdout"), &run.stdout));
            out.extend(self.hits(&format!("{command} stderr"), &run.stderr));
        }
        out
    }

    /// Every line of `text` that shows a secret, described.
    pub fn hits(&self, source: &str, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (number, line) in text.lines().enumerate() {
            for (what, form) in &self.forms {
                if line.contains(form.as_str()) {
                    out.push(format!("{source}, line {}: {what} in `{}`", number + 1, line.trim()));
                }
            }
        }
        out
    }
}

/// Runs one command of `bin` in a project twice, at `-vvv` as text and as
/// JSON, with `env`; checks the exit code of both, and that the JSON run
/// printed one JSON document. Counts its runs, so an audit can check that the
/// project's recording ([`GitProject::record_runs`]) kept every one.
#[derive(Debug)]
pub struct Runner<'a> {
    p: &'a GitProject,
    bin: &'a Path,
    env: Vec<(String, String)>,
    runs: Cell<usize>,
}

impl<'a> Runner<'a> {
    pub fn new(p: &'a GitProject, bin: &'a Path, env: Vec<(String, String)>) -> Self {
        Self { p, bin, env, runs: Cell::new(0) }
    }

    /// The variables every run gets.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// How many runs were made.
    pub fn runs(&self) -> usize {
        self.runs.get()
    }

    fn run_in(&self, cwd: &Path, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        env.extend_from_slice(extra);
        self.runs.set(self.runs.get() + 1);
        self.p.run_in(self.bin, cwd, args, &env)
    }

    /// Both modes; returns the JSON run's document.
    #[track_caller]
    pub fn both(&self, args: &[&str], code: i32) -> serde_json::Value {
        self.both_with(args, code, &[])
    }

    /// Both modes with `extra` variables.
    #[track_caller]
    pub fn both_with(&self, args: &[&str], code: i32, extra: &[(&str, &str)]) -> serde_json::Value {
        self.both_in(self.p.path(), args, code, extra)
    }

    /// Both modes in `cwd`, with `extra` variables.
    #[track_caller]
    pub fn both_in(&self, cwd: &Path, args: &[&str], code: i32, extra: &[(&str, &str)]) -> serde_json::Value {
        self.each_in(cwd, args, (code, code), extra)
    }

    /// Both modes, whatever they exit with (for a test of output only).
    pub fn any(&self, args: &[&str]) {
        for mode in [&["-vvv"][..], &["-vvv", "--json"]] {
            let mut all = mode.to_vec();
            all.extend_from_slice(args);
            self.run_in(self.p.path(), &all, &[]);
        }
    }

    /// For a command that changes state, the JSON run (second) may meet the
    /// state the text run left: its exit code is given apart.
    #[track_caller]
    pub fn each(&self, args: &[&str], codes: (i32, i32)) -> serde_json::Value {
        self.each_in(self.p.path(), args, codes, &[])
    }

    /// [`Runner::each`] in `cwd`, with `extra` variables.
    #[track_caller]
    pub fn each_in(&self, cwd: &Path, args: &[&str], codes: (i32, i32), extra: &[(&str, &str)]) -> serde_json::Value {
        let mut text_args = vec!["-vvv"];
        text_args.extend_from_slice(args);
        let text = self.run_in(cwd, &text_args, extra);
        assert!(!text.stderr.is_empty(), "`{text_args:?}` logged nothing at -vvv");
        assert_eq!(text.code, codes.0, "`{text_args:?}`\n--- stdout\n{}\n--- stderr\n{}", text.stdout, text.stderr);
        let mut json_args = vec!["-vvv", "--json"];
        json_args.extend_from_slice(args);
        let json = self.run_in(cwd, &json_args, extra);
        assert_eq!(json.code, codes.1, "`{json_args:?}`\n--- stdout\n{}\n--- stderr\n{}", json.stdout, json.stderr);
        json.json()
    }
}
