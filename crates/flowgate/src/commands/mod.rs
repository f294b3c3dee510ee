//! One module per verb. Each takes validated values and a printer and returns
//! `Result<()>`; the exit status comes from the error kind (see `exit.rs`).

pub mod approve;
mod build;
mod build_check;
mod build_code;
mod build_signatures;
pub mod builds;
mod client;
mod completions;
pub mod deploy;
pub mod diff;
pub mod flow_changes;
pub mod fsck;
mod gate_parameters;
pub mod gates;
pub mod gc;
pub mod history;
mod init;
mod local_bundle;
pub mod moves;
pub mod pin;
pub mod plan;
mod preview;
mod preview_server;
mod pull;
mod rollout;
mod rollout_client;
pub mod rollout_drive;
pub mod rollout_start;
mod rollout_verify;
pub mod rollout_view;
mod schema_fallback;
mod serve;
mod settings;
pub mod status;
pub(crate) mod status_all;
pub mod sync;
pub mod unchanged;
pub mod which;

use anyhow::Result;

use crate::cli::{AdminCommand, Cli, Command};
use crate::printer::Printer;
use crate::project::{working_dir, Project};

pub async fn run(cli: Cli) -> Result<()> {
    let printer = Printer { json: cli.global.json, quiet: cli.global.quiet };
    let cwd = working_dir(cli.global.directory.as_deref())?;
    match cli.command {
        Command::Init(args) => init::run(&cwd, args, printer),
        Command::Completions(args) => completions::completions(args, printer),
        Command::Man(args) => completions::man(&cwd, args, printer),
        Command::Pull(args) => pull::run(&cwd, args, printer).await,
        Command::Serve(args) => serve::serve(&cwd, args).await,
        Command::Admin(AdminCommand::Token(command)) => serve::token(&cwd, command, printer).await,
        Command::Login(args) => client::login(args, printer).await,
        Command::Logout(args) => client::logout(args, printer).await,
        Command::Whoami(args) => client::whoami(args, printer).await,
        command => {
            let project = Project::discover(&cwd)?;
            match command {
                Command::Build(args) => build::run(&project, args, printer).await,
                Command::Builds(args) => builds::list(&project, args, printer).await,
                Command::Show(args) => builds::show(&project, args, printer).await,
                Command::Release(args) => moves::release(&project, args, printer).await,
                Command::Promote(args) => moves::promote(&project, args, printer).await,
                Command::Rollback(args) => moves::rollback(&project, args, printer).await,
                Command::Status(args) if args.all_projects => status_all::run(&project, printer).await,
                Command::Status(args) => status::run(&project, args, printer).await,
                Command::History(args) => history::run(&project, args, printer).await,
                Command::Diff(args) => diff::run(&project, args, printer).await,
                Command::Plan(args) => plan::run(&project, args, printer).await,
                Command::Sync(args) => sync::run(&project, args, printer).await,
                Command::Which(args) => which::run(&project, args, printer).await,
                Command::Approve(args) => approve::run(&project, args, printer).await,
                Command::Rollout(command) => rollout::run(&project, command, printer).await,
                Command::Preview(command) => preview::run(&project, command, printer).await,
                Command::Fsck(args) => fsck::run(&project, args, printer).await,
                Command::Gc(args) => gc::run(&project, args, printer).await,
                Command::Pin(args) => pin::pin(&project, args, printer).await,
                Command::Pins => pin::list(&project, printer).await,
                Command::Init(_)
                | Command::Pull(_)
                | Command::Completions(_)
                | Command::Man(_)
                | Command::Serve(_)
                | Command::Admin(_)
                | Command::Login(_)
                | Command::Logout(_)
                | Command::Whoami(_) => {
                    unreachable!("handled above")
                }
            }
        }
    }
}
