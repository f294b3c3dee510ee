//! Gates that read the upstream envs: `after`, `soak` (ledger history) and
//! `min_successful_runs`, `max_failure_rate` (flow runs).

use super::builder::*;
use flowgate_core::{Policy, RunState};

#[test]
fn after_needs_the_build_current_upstream_or_replaced_without_a_rollback() {
    let p = after_qa(Policy::default());
    let two = Policy { after: vec![env("qa"), env("staging")], ..Policy::default() };
    check(vec![
        (
            "current",
            case(p.clone()).rel("qa", 1, 2, RELEASE, t(0)).rel("qa", 2, 1, RELEASE, t(10)),
            "after",
            PASS,
            "build `00000000000000000001` is current in `qa` for flow `etl` (r2 since 2026-01-01T00:10:00Z)",
        ),
        (
            "no history",
            case(p.clone()),
            "after",
            REFUSE,
            "build `00000000000000000001` was never released to `qa` for flow `etl`",
        ),
        ("empty history", case(p.clone()).rel("qa", 1, 2, RELEASE, t(0)), "after", REFUSE, "never released to `qa`"),
        (
            "replaced by a release",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).rel("qa", 2, 2, RELEASE, t(30)),
            "after",
            PASS,
            "from r1 until r2 replaced it at 2026-01-01T00:30:00Z",
        ),
        (
            "rolled back",
            case(p.clone()).rel("qa", 1, 2, RELEASE, t(0)).rel("qa", 2, 1, RELEASE, t(5)).rel(
                "qa",
                3,
                2,
                rollback(1),
                t(9),
            ),
            "after",
            REFUSE,
            "was rolled back in `qa` at r3 (2026-01-01T00:09:00Z by `dave`)",
        ),
        // Given out of order: revisions, not list order, decide.
        (
            "rolled back then released again",
            case(p.clone()).rel("qa", 4, 1, RELEASE, t(20)).rel("qa", 3, 2, rollback(1), t(9)).rel(
                "qa",
                2,
                1,
                RELEASE,
                t(5),
            ),
            "after",
            PASS,
            "is current in `qa` for flow `etl` (r4",
        ),
        (
            "other flows' history is ignored",
            case(p).rel_of("report", "qa", 1, 1, RELEASE, t(0)),
            "after",
            REFUSE,
            "never released to `qa`",
        ),
        (
            "every upstream env is needed",
            case(two).rel("qa", 1, 1, RELEASE, t(0)),
            "after",
            REFUSE,
            "build `00000000000000000001` was never released to `staging`",
        ),
    ]);
}

#[test]
fn soak_counts_the_longest_stretch_not_ended_by_a_rollback() {
    let p = after_qa(Policy { soak: hours(2), ..Policy::default() });
    check(vec![
        (
            "exactly the soak",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).now(t(120)),
            "soak",
            PASS,
            "soaked in `qa` for 2h (2h needed)",
        ),
        (
            "one ms short",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).now(t(120) - ms(1)),
            "soak",
            wait(t(120)),
            "current in `qa` for 1h59m59.999s of the 2h soak (since r1); it passes at 2026-01-01T02:00:00Z",
        ),
        (
            "a finished stretch long enough",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).rel("qa", 2, 2, RELEASE, t(180)),
            "soak",
            PASS,
            "for 3h (2h needed)",
        ),
        (
            "a finished stretch too short",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).rel("qa", 2, 2, RELEASE, t(60)),
            "soak",
            REFUSE,
            "for at most 1h of the 2h soak and is no longer current there",
        ),
        (
            "rolled back after a long stretch",
            case(p.clone()).rel("qa", 1, 2, RELEASE, t(0)).rel("qa", 2, 1, RELEASE, t(10)).rel(
                "qa",
                3,
                2,
                rollback(1),
                t(300),
            ),
            "soak",
            REFUSE,
            "rolled back in `qa` at r3; time before a rollback does not count",
        ),
        (
            "rolled back, current again",
            case(p.clone()).rel("qa", 1, 1, RELEASE, t(0)).rel("qa", 2, 2, rollback(0), t(300)).rel(
                "qa",
                3,
                1,
                RELEASE,
                t(570),
            ),
            "soak",
            wait(t(690)),
            "for 30m of the 2h soak (since r3)",
        ),
        (
            "never released",
            case(p),
            "soak",
            REFUSE,
            "never released to `qa` for flow `etl`, so it has not soaked there (2h needed)",
        ),
        (
            "no upstream env",
            case(Policy { soak: hours(2), ..Policy::default() }),
            "soak",
            REFUSE,
            "`soak` needs `after`",
        ),
    ]);
}

#[test]
fn min_successful_runs_wait_while_current_and_refuse_after() {
    let p = after_qa(Policy { min_successful_runs: 3, ..Policy::default() });
    let current = case(p.clone()).rel("qa", 1, 1, RELEASE, t(0));
    let replaced = current.clone().rel("qa", 2, 2, RELEASE, t(60));
    check(vec![
        (
            "enough",
            current.clone().runs("qa", 3, RunState::Completed, "ok"),
            "min_successful_runs",
            PASS,
            "completed 3 of the 3 runs needed in `qa`",
        ),
        (
            "too few, current",
            current.clone().runs("qa", 2, RunState::Completed, "ok").run("qa", "f", RunState::Failed),
            "min_successful_runs",
            WAIT_UNKNOWN,
            "completed 2 of the 3 runs needed in `qa`; waiting for more runs in `qa`",
        ),
        (
            "too few, replaced",
            replaced.runs("qa", 2, RunState::Completed, "ok"),
            "min_successful_runs",
            REFUSE,
            "no longer current there, so no more runs will come",
        ),
        (
            "other envs and repeats do not count",
            current.runs("qa", 2, RunState::Completed, "ok").run("qa", "ok0", RunState::Completed).run(
                "dev",
                "d",
                RunState::Completed,
            ),
            "min_successful_runs",
            WAIT_UNKNOWN,
            "completed 2 of the 3",
        ),
    ]);
}

#[test]
fn max_failure_rate_counts_finished_runs_only() {
    let rate = |max| after_qa(Policy { max_failure_rate: Some(max), ..Policy::default() });
    check(vec![
        ("nothing finished", case(rate(0.0)).run("qa", "c", RunState::Cancelled).run("qa", "u", RunState::Unfinished), "max_failure_rate", PASS, "has no finished runs in `qa`"),
        ("exactly at the limit", case(rate(0.1)).runs("qa", 9, RunState::Completed, "ok").run("qa", "f", RunState::Failed).run("qa", "c", RunState::Cancelled), "max_failure_rate", PASS, "1 of 10 finished runs of build `00000000000000000001` in `qa` failed or crashed (10%), within the 10% allowed"),
        ("above the limit", case(rate(0.1)).runs("qa", 8, RunState::Completed, "ok").run("qa", "f1", RunState::Failed).run("qa", "f2", RunState::Crashed), "max_failure_rate", REFUSE, "2 of 10 finished runs of build `00000000000000000001` in `qa` failed or crashed (20%), above the 10% allowed: `run-f1` (f1, failed in `qa`), `run-f2` (f2, crashed in `qa`)"),
        ("zero allows none", case(rate(0.0)).runs("qa", 50, RunState::Completed, "ok").run("qa", "x", RunState::Crashed), "max_failure_rate", REFUSE, "1 of 51"),
        ("names at most five", case(rate(0.5)).runs("qa", 7, RunState::Failed, "f").run("qa", "ok", RunState::Completed), "max_failure_rate", REFUSE, "`run-f4` (f4, failed in `qa`), and 2 more"),
    ]);
}
