//! The builder every gate table uses: one move of flow `etl` into `prod`, with
//! the upstream history, runs and approvals each case adds in a line or two.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use flowgate_core::{
    evaluate, Approval, Audit, Build, BuildId, Digest, EnvName, FlowKey, FreezeWindow, GateInput, GateStatus, MoveKind,
    Policy, Release, RunOutcome, RunState, Verdict,
};

/// Every case's clock counts in minutes from this instant.
pub fn t(minutes: i64) -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(minutes)
}
pub fn ms(millis: i64) -> TimeDelta {
    TimeDelta::milliseconds(millis)
}
pub fn env(s: &str) -> EnvName {
    s.parse().unwrap()
}
pub fn flow(s: &str) -> FlowKey {
    s.parse().unwrap()
}
pub fn build_id(n: u8) -> BuildId {
    format!("{n:020x}").parse().unwrap()
}
pub const RELEASE: MoveKind = MoveKind::Release;
pub fn rollback(to: i64) -> MoveKind {
    MoveKind::Rollback { to_revision: to }
}
pub fn hours(h: u64) -> Option<Duration> {
    Some(Duration::from_secs(h * 3600))
}
pub fn window(from: DateTime<Utc>, until: DateTime<Utc>, reason: Option<&str>) -> FreezeWindow {
    FreezeWindow { from, until, reason: reason.map(String::from) }
}
pub fn wait(until: DateTime<Utc>) -> GateStatus {
    GateStatus::Wait { until: Some(until) }
}
pub const PASS: GateStatus = GateStatus::Pass;
pub const REFUSE: GateStatus = GateStatus::Refuse;
pub const WAIT_UNKNOWN: GateStatus = GateStatus::Wait { until: None };

/// A move of flow `etl` into `prod` by `carol` at `t(600)`, built up per case.
#[derive(Clone)]
pub struct Case {
    pub policy: Policy,
    pub flow: FlowKey,
    pub build: Build,
    pub releaser: String,
    pub upstream: BTreeMap<EnvName, Vec<Release>>,
    pub runs: Vec<RunOutcome>,
    pub approvals: Vec<Approval>,
    pub provenance: Vec<flowgate_core::Provenance>,
    pub verified_branches: bool,
    /// `compatible_parameters`: the new schema, its changes, what the env sends.
    pub schema: Option<serde_json::Value>,
    pub changes: Vec<flowgate_core::ParameterChange>,
    pub uses: Vec<flowgate_core::gates::ParameterUse>,
    pub now: DateTime<Utc>,
}

pub fn case(policy: Policy) -> Case {
    Case {
        policy,
        flow: flow("etl"),
        build: Build {
            id: build_id(1),
            bundle: Digest::of(b"bundle"),
            bundle_size: 1,
            file_count: 1,
            images: Default::default(),
            commit: "c".repeat(40),
            branch: Some("main".into()),
            dirty: false,
            author: "dev".into(),
            created_at: t(0),
            settings: None,
        },
        releaser: "carol".into(),
        upstream: BTreeMap::new(),
        runs: Vec::new(),
        approvals: Vec::new(),
        provenance: Vec::new(),
        verified_branches: false,
        schema: None,
        changes: Vec::new(),
        uses: Vec::new(),
        now: t(600),
    }
}

/// A policy gating on `qa` upstream, plus `extra`'s gates.
pub fn after_qa(extra: Policy) -> Policy {
    Policy { after: vec![env("qa")], ..extra }
}

impl Case {
    pub fn now(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }
    /// As a server decides: `branches` believes only verified CI refs.
    pub fn on_server(mut self) -> Self {
        self.verified_branches = true;
        self
    }
    pub fn branch(mut self, branch: Option<&str>) -> Self {
        self.build.branch = branch.map(String::from);
        self
    }
    /// Revision `revision` of flow `etl` in `in_env` pointed at build `b` at `at`.
    pub fn rel(self, in_env: &str, revision: i64, b: u8, kind: MoveKind, at: DateTime<Utc>) -> Self {
        self.rel_of("etl", in_env, revision, b, kind, at)
    }
    pub fn rel_of(mut self, f: &str, in_env: &str, revision: i64, b: u8, kind: MoveKind, at: DateTime<Utc>) -> Self {
        let release = Release {
            flow: flow(f),
            env: env(in_env),
            revision,
            build: build_id(b),
            previous_build: None,
            kind,
            actor: "dave".into(),
            reason: None,
            created_at: at,
            audit: Audit::default(),
        };
        self.upstream.entry(env(in_env)).or_default().push(release);
        self
    }
    pub fn run(mut self, in_env: &str, id: &str, state: RunState) -> Self {
        let name = format!("run-{id}");
        self.runs.push(RunOutcome { env: env(in_env), flow_run_id: id.into(), name, state });
        self
    }
    pub fn runs(self, in_env: &str, count: usize, state: RunState, prefix: &str) -> Self {
        (0..count).fold(self, |c, i| c.run(in_env, &format!("{prefix}{i}"), state))
    }
    /// An approval by `actor` of build `b` for `in_env`, for flow `f` (None: every flow).
    pub fn approve(mut self, actor: &str, in_env: &str, b: u8, f: Option<&str>) -> Self {
        self.approvals.push(Approval {
            env: env(in_env),
            build: build_id(b),
            flow: f.map(flow),
            actor: actor.into(),
            reason: "looks good".into(),
            created_at: t(1),
            verified: None,
        });
        self
    }
    /// A registration of the build through a server, by a CI job of
    /// `repository` on `git_ref` (`method` oidc), or by an API token (`None`).
    pub fn registered(mut self, by_ci: Option<(&str, &str)>) -> Self {
        let (method, claims) = match by_ci {
            Some((repository, git_ref)) => (
                flowgate_core::AuthMethod::Oidc,
                [("repository", repository), ("ref", git_ref), ("sha", "cccc"), ("run_id", "7")]
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .into(),
            ),
            None => (flowgate_core::AuthMethod::Token, BTreeMap::new()),
        };
        let registrar = flowgate_core::Verified {
            subject: "registrar".into(),
            method,
            issuer: None,
            claims,
            request_id: format!("req-{}", self.provenance.len()),
        };
        self.provenance.push(flowgate_core::Provenance { registrar, recorded_at: t(0) });
        self
    }
    pub fn verdict(&self) -> Verdict {
        let target = env("prod");
        evaluate(&GateInput {
            policy: &self.policy,
            flow: &self.flow,
            env: &target,
            build: &self.build,
            releaser: &self.releaser,
            upstream: &self.upstream,
            runs: &self.runs,
            approvals: &self.approvals,
            provenance: &self.provenance,
            verified_branches: self.verified_branches,
            parameters: flowgate_core::gates::ParameterEvidence {
                schema: self.schema.as_ref(),
                changes: &self.changes,
                uses: &self.uses,
            },
            now: self.now,
        })
    }
}

/// (what, case, the gate looked at (it must yield exactly one result), its status, a fragment of its detail)
pub type Row = (&'static str, Case, &'static str, GateStatus, &'static str);

pub fn check(rows: Vec<Row>) {
    let mut failures = Vec::new();
    for (what, case, gate, status, fragment) in rows {
        let verdict = case.verdict();
        let found: Vec<_> = verdict.results.iter().filter(|r| r.gate == gate).collect();
        let [result] = found.as_slice() else {
            failures.push(format!("{what}: expected one `{gate}` result, got {:?}", verdict.results));
            continue;
        };
        if result.status != status || !result.detail.contains(fragment) {
            failures.push(format!("{what}:\n  expected {gate} {status:?} `…{fragment}…`\n  got      {result:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
