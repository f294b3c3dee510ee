//! The `flowgate` binary: parses the command line, sets up logging, runs one
//! command and maps its outcome to the documented exit codes.

mod cli;
mod client;
mod commands;
mod exit;
mod git;
mod printer;
mod project;
mod refs;
mod registry;
mod server;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;
use crate::exit::{is_broken_pipe, status_of, Status};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return command_line_error(&err),
    };
    init_tracing(cli.global.verbose, cli.global.quiet);
    raise_open_files_limit();
    let json = cli.global.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: Failed to start the async runtime: {err}");
            return ExitCode::from(Status::Failure as u8);
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::from(Status::Success as u8),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(Status::Success as u8),
        Err(err) => {
            let status = status_of(&err);
            report(&err, status, json);
            ExitCode::from(status as u8)
        }
    }
}

/// Prints the whole error chain on stderr; with `--json`, also one JSON document
/// on stdout so scripts reading stdout always get valid JSON.
fn report(err: &anyhow::Error, status: Status, json: bool) {
    let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
    eprintln!("error: {}", chain[0]);
    for cause in &chain[1..] {
        eprintln!("  caused by: {cause}");
    }
    if json {
        let doc = serde_json::json!({ "error": { "message": chain.join(": "), "exit_code": status as u8 } });
        println!("{doc}");
    }
}

/// Help and version go to stdout with exit 0; a bad command line is a usage
/// error (2), and with `--json` stdout still gets one JSON document saying so.
fn command_line_error(err: &clap::Error) -> ExitCode {
    if !err.use_stderr() {
        let _ = err.print();
        return ExitCode::from(Status::Success as u8);
    }
    let _ = err.print();
    if std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json") {
        let rendered = err.render().to_string();
        let message: Vec<&str> = rendered
            .lines()
            .take_while(|l| !l.starts_with("Usage:"))
            .map(|l| l.trim().trim_start_matches("error: "))
            .filter(|l| !l.is_empty())
            .collect();
        let doc = serde_json::json!({ "error": { "message": message.join(" "), "exit_code": Status::Usage as u8 } });
        println!("{doc}");
    }
    ExitCode::from(Status::Usage as u8)
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info,sqlx=warn",
        (false, 2) => "debug,sqlx=info",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colour only on a terminal: a log written to a file or a pipe stays plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false)
        .init();
}

/// Raises the soft limit on open files to the hard one, as Go programs do at start:
/// packing keeps a handle on as many directories of the tree as the limit allows
/// (each saves path lookups), so a higher limit makes packing a large tree
/// faster. Best effort: a failure leaves the limit as it was.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!(error = %e, "cannot raise the open files limit");
        }
    }
}
