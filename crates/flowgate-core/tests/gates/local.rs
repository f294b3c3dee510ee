//! Gates the target env decides alone: `freeze`, `branches`, `provenance`, `approval`.

use super::builder::*;
use flowgate_core::{Policy, ProvenanceRule};

#[test]
fn freeze_waits_inside_a_window_and_follows_touching_ones() {
    let one = |reason| Policy { freeze: vec![window(t(60), t(120), reason)], ..Policy::default() };
    let chain = Policy {
        // 60–120 touches 120–180, which overlaps 150–240; 241–300 leaves a gap.
        freeze: vec![
            window(t(241), t(300), None),
            window(t(150), t(240), Some("migration")),
            window(t(120), t(180), None),
            window(t(60), t(120), Some("holidays")),
        ],
        ..Policy::default()
    };
    check(vec![
        (
            "before the window",
            case(one(None)).now(t(60) - ms(1)),
            "freeze",
            PASS,
            "the next freeze starts at 2026-01-01T01:00:00Z",
        ),
        (
            "start is inclusive",
            case(one(None)).now(t(60)),
            "freeze",
            wait(t(120)),
            "frozen from 2026-01-01T01:00:00Z until 2026-01-01T02:00:00Z",
        ),
        ("last ms inside", case(one(Some("holidays"))).now(t(120) - ms(1)), "freeze", wait(t(120)), "(holidays)"),
        (
            "end is exclusive",
            case(one(None)).now(t(120)),
            "freeze",
            PASS,
            "`prod` is not frozen at 2026-01-01T02:00:00Z",
        ),
        (
            "touching and overlapping windows chain",
            case(chain.clone()).now(t(90)),
            "freeze",
            wait(t(240)),
            "until 2026-01-01T04:00:00Z (holidays)",
        ),
        ("inside a later window of the chain", case(chain.clone()).now(t(160)), "freeze", wait(t(240)), "(migration)"),
        (
            "in the gap after the chain",
            case(chain).now(t(240)),
            "freeze",
            PASS,
            "next freeze starts at 2026-01-01T04:01:00Z",
        ),
    ]);
}

#[test]
fn branches_are_globs_and_a_detached_head_matches_none() {
    let policy = Policy { branches: vec!["main".into(), "release/*".into()], ..Policy::default() };
    check(vec![
        ("main", case(policy.clone()), "branches", PASS, "comes from branch `main`, which `prod` accepts"),
        ("glob", case(policy.clone()).branch(Some("release/2.1")), "branches", PASS, "`release/2.1`"),
        (
            "other branch",
            case(policy.clone()).branch(Some("feature/x")),
            "branches",
            REFUSE,
            "branch `feature/x`; `prod` accepts only builds from `main`, `release/*`",
        ),
        ("detached", case(policy).branch(None), "branches", REFUSE, "detached HEAD"),
    ]);
}

#[test]
fn provenance_needs_a_ci_registration_on_the_ref_whatever_the_branch_says() {
    let rule = |repository: Option<&str>| Policy {
        provenance: Some(ProvenanceRule { git_ref: "refs/heads/main".into(), repository: repository.map(Into::into) }),
        ..Policy::default()
    };
    let main = Some(("acme/flows", "refs/heads/main"));
    let feature = Some(("acme/flows", "refs/heads/feature"));
    check(vec![
        (
            "a job on main",
            case(rule(None)).registered(main),
            "provenance",
            PASS,
            "on `refs/heads/main` at sha `cccc` (run 7)",
        ),
        (
            "never registered through a server",
            case(rule(None)),
            "provenance",
            REFUSE,
            "requires build `00000000000000000001` registered by CI on ref `refs/heads/main`; no CI job registered it",
        ),
        (
            // The build record says branch `main`: only the verified claims count.
            "a job on a feature branch, the record saying main",
            case(rule(None)).branch(Some("main")).registered(feature),
            "provenance",
            REFUSE,
            "CI jobs registered it only on `refs/heads/feature` of `acme/flows`",
        ),
        ("a token, not a CI job", case(rule(None)).registered(None), "provenance", REFUSE, "no CI job registered it"),
        (
            "one of several",
            case(rule(None)).registered(feature).registered(main),
            "provenance",
            PASS,
            "`refs/heads/main`",
        ),
        (
            "another repository",
            case(rule(Some("acme/flows"))).registered(Some(("evil/fork", "refs/heads/main"))),
            "provenance",
            REFUSE,
            "ref `refs/heads/main` of `acme/flows`",
        ),
        ("the repository glob", case(rule(Some("acme/*"))).registered(main), "provenance", PASS, "`acme/flows`"),
    ]);
}

#[test]
fn on_a_server_branches_believes_only_the_refs_of_ci_jobs_that_registered_the_build() {
    let main_only = Policy { branches: vec!["main".into()], ..Policy::default() };
    let main = Some(("acme/flows", "refs/heads/main"));
    let feature = Some(("acme/flows", "refs/heads/feature"));
    check(vec![
        (
            "a job on main",
            case(main_only.clone()).on_server().registered(main),
            "branches",
            PASS,
            "on branch `main` (verified)",
        ),
        (
            "the record says main, no CI job registered it",
            case(main_only.clone()).on_server().branch(Some("main")).registered(None),
            "branches",
            REFUSE,
            "its branch is not verified (the record says `main`)",
        ),
        (
            "the record says main, a job on a feature branch registered it",
            case(main_only.clone()).on_server().branch(Some("main")).registered(feature),
            "branches",
            REFUSE,
            "registered by CI jobs on `feature` (verified)",
        ),
        (
            "a tag is no branch",
            case(main_only.clone()).on_server().registered(Some(("acme/flows", "refs/tags/v1"))),
            "branches",
            REFUSE,
            "not verified",
        ),
        (
            "in direct mode the record counts",
            case(main_only).branch(Some("main")),
            "branches",
            PASS,
            "comes from branch `main`",
        ),
    ]);
}

#[test]
fn approvals_count_distinct_people_for_this_build_env_and_flow() {
    let one = Policy { approvals: 1, ..Policy::default() };
    let two = Policy { approvals: 2, ..Policy::default() };
    let four_eyes = Policy { approvals: 1, separate_approver: true, ..Policy::default() };
    check(vec![
        ("one of one", case(one.clone()).approve("alice", "prod", 1, Some("etl")), "approval", PASS, "has 1 of the 1 approvals needed for `prod` (`alice`)"),
        ("the same person twice", case(two.clone()).approve("alice", "prod", 1, None).approve(" Alice ", "prod", 1, Some("etl")), "approval", REFUSE, "has 1 of the 2 approvals needed for `prod` (`alice`); approve it with `flowgate approve 00000000000000000001 --env prod`"),
        ("two people, one for every flow", case(two).approve("alice", "prod", 1, None).approve("bob", "prod", 1, Some("etl")), "approval", PASS, "(`alice`, `bob`)"),
        ("other flow, env or build", case(one).approve("a", "prod", 1, Some("report")).approve("b", "qa", 1, None).approve("c", "prod", 2, None), "approval", REFUSE, "has 0 of the 1 approvals needed for `prod` (none)"),
        ("own approval with separate_approver", case(four_eyes.clone()).approve("carol", "prod", 1, None), "approval", REFUSE, "approvals by `carol`, who makes this move, do not count (`separate_approver`)"),
        ("another person with separate_approver", case(four_eyes).approve("carol", "prod", 1, None).approve("bob", "prod", 1, None), "approval", PASS, "(`bob`); approvals by `carol`"),
    ]);
}
