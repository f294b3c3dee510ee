//! Crash safety: `build`, `release`, `sync` and `rollout watch` killed with
//! SIGKILL at seeded random points, 120 trials against a real Prefect server.
//! After every kill `flowgate fsck` must find the ledger and the store
//! consistent, and running the killed command again must complete.
//!
//! The kill point of each trial is drawn from [0, 1.5 × the command's measured
//! duration], so kills land before, during and after the interesting steps.
//! Set FLOWGATE_CRASH_TRIALS to run more (or fewer) trials, FLOWGATE_CRASH_SEED
//! to replay a sequence.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, run};
use flowgate_testkit::prefect::PrefectServer;
use flowgate_testkit::GitProject;

const FLOWS: usize = 8;
/// Files per build: enough that packing and uploading take a while.
const FILES: usize = 400;

fn project(api_url: &str) -> GitProject {
    let p = GitProject::new();
    p.write(".gitignore", ".flowgate/\n");
    let mut config = "[project]\nname = \"crash\"\nwork_pool = \"crash-pool\"\n\n".to_string();
    for i in 0..FLOWS {
        config.push_str(&format!("[flows.c{i}]\nentrypoint = \"flows/hello.py:hello\"\n\n"));
    }
    config.push_str(&format!("[envs.qa]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"crash-\"\n\n"));
    config.push_str(&format!(
        "[envs.prod]\nprefect_api_url = \"{api_url}\"\nname_prefix = \"crashp-\"\n\
         rollout = {{ waves = [[\"c0\", \"c1\"], [\"c2\", \"c3\", \"c4\"], [\"*\"]] }}\n"
    ));
    p.write("flowgate.toml", &config);
    p.write("flows/hello.py", "from prefect import flow\n\n@flow(name=\"hello\")\ndef hello():\n    pass\n");
    change_tree(&p, 0);
    p.commit("start");
    p
}

/// Rewrites the data files so the next build has new content.
fn change_tree(p: &GitProject, round: u64) {
    for i in 0..FILES {
        p.write(&format!("data/{:03}/{i}.txt", i % 20), &format!("round {round} file {i}\n").repeat(64));
    }
}

/// xorshift64*, seeded: the same seed replays the same trials.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn command(p: &GitProject, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(p.path())
        .args(args)
        .env_remove("FLOWGATE_ENV")
        .env("FLOWGATE_ACTOR", "crash@example.com")
        .env("FLOWGATE_USER", "tester")
        .env("FLOWGATE_CACHE_DIR", p.cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs `args` and kills it with SIGKILL after `after` (if still running).
/// Returns true when the kill landed (the command had not finished).
fn run_and_kill(p: &GitProject, args: &[&str], after: Duration) -> bool {
    let mut child = command(p, args).spawn().expect("spawn flowgate");
    let deadline = Instant::now() + after;
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return false;
        }
        if Instant::now() >= deadline {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn timed(p: &GitProject, args: &[&str]) -> Duration {
    let started = Instant::now();
    run(p, args).success();
    started.elapsed()
}

#[test]
fn sigkill_at_random_points_leaves_a_consistent_ledger_and_store_and_the_rerun_completes() {
    let trials: u64 = std::env::var("FLOWGATE_CRASH_TRIALS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seed: u64 = std::env::var("FLOWGATE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0xc0ffee);
    let server = PrefectServer::start();
    let p = project(&server.api_url());
    let mut rng = Rng(seed);

    // The commands' undisturbed durations set the range of kill points. They are
    // first measured once each (a cold build, a first release that creates pools)
    // and then follow each rerun's time, so a busy or idle machine keeps about
    // two kills in three landing mid-command.
    let build_time = timed(&p, &["build"]);
    let release_time = timed(&p, &["release", "--all", "--env", "qa", "--build", "HEAD", "--create-work-pools"]);
    let sync_time = timed(&p, &["sync", "--env", "qa"]);
    let rollout_time = {
        let started = Instant::now();
        run(&p, &["rollout", "start", "--to", "prod", "--build", "HEAD", "--interval", "1"]).success();
        started.elapsed()
    };

    let mut typical_of = [build_time, release_time, sync_time, rollout_time];
    let mut landed = 0;
    for trial in 0..trials {
        let kind = rng.next() % 4;
        let fraction = (rng.next() % 1500) as f64 / 1000.0;
        let args: Vec<String> = match kind {
            0 => {
                change_tree(&p, trial + 1);
                p.commit(&format!("trial {trial}"));
                vec!["build".into()]
            }
            1 => {
                run(&p, &["build"]).success();
                let args = ["release", "--all", "--env", "qa", "--build", "HEAD"];
                args.iter().map(|s| s.to_string()).collect()
            }
            2 => vec!["sync".into(), "--env".into(), "qa".into()],
            _ => {
                change_tree(&p, trial + 1);
                p.commit(&format!("trial {trial}"));
                run(&p, &["build"]).success();
                run(&p, &["rollout", "start", "--to", "prod", "--build", "HEAD", "--detach"]).success();
                let args = ["rollout", "watch", "--env", "prod", "--interval", "1"];
                args.iter().map(|s| s.to_string()).collect()
            }
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let typical = &mut typical_of[kind as usize];
        let after = typical.mul_f64(fraction);
        landed += usize::from(run_and_kill(&p, &args, after));

        let fsck = run(&p, &["fsck"]);
        assert_eq!(
            fsck.code,
            0,
            "trial {trial} (seed {seed}): `{}` killed after {after:?}; fsck found:\n{}\n{}",
            args.join(" "),
            fsck.stdout,
            fsck.stderr
        );
        let rerun_started = Instant::now();
        let rerun = run(&p, &args);
        *typical = (*typical + rerun_started.elapsed()) / 2;
        assert_eq!(
            rerun.code,
            0,
            "trial {trial} (seed {seed}): rerunning `{}` after a kill at {after:?} failed:\n{}",
            args.join(" "),
            rerun.stderr
        );
    }
    eprintln!("{trials} trials, {landed} kills landed before the command finished (seed {seed})");
    assert!(
        landed as u64 >= trials / 3,
        "too few kills landed mid-command ({landed} of {trials}): the harness proves little"
    );
}
