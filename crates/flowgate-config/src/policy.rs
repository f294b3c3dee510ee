//! The typed `rollout` of an env, and the `policy` read from the config (the
//! type lives in the core, next to the gate evaluation that enforces it).

use std::time::Duration;

use flowgate_core::FlowKey;
use globset::{Glob, GlobMatcher};
use serde_json::Map;

// The policy moved to the core, where gate evaluation reads it; the config
// crate keeps exporting it so `flowgate_config::Policy` works as before.
pub use flowgate_core::policy::{parse_duration, FreezeWindow, Policy};

/// The plan of a gradual promotion into one env.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// Flow-key globs per wave, in order; each glob matches at least one flow.
    pub waves: Vec<Vec<String>>,
    pub verify: Option<Verify>,
}

impl Rollout {
    /// The flows of each wave: every flow goes to the first wave with a glob
    /// matching it; flows matched by no wave are not part of the rollout, and
    /// waves left empty are dropped.
    pub fn expand<'a>(&self, flows: impl IntoIterator<Item = &'a FlowKey>) -> Vec<Vec<FlowKey>> {
        let matchers: Vec<Vec<GlobMatcher>> = self
            .waves
            .iter()
            .map(|wave| wave.iter().filter_map(|g| Glob::new(g).ok()).map(|g| g.compile_matcher()).collect())
            .collect();
        let mut out = vec![Vec::new(); self.waves.len()];
        for flow in flows {
            if let Some(i) = matchers.iter().position(|wave| wave.iter().any(|m| m.is_match(flow.as_str()))) {
                out[i].push(flow.clone());
            }
        }
        out.retain(|wave| !wave.is_empty());
        out
    }
}

/// How each wave is verified before the next starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Verify {
    /// Runs per flow that must succeed (default 1).
    pub runs: u32,
    /// How long to wait for them; `None` = until they finish.
    pub timeout: Option<Duration>,
    /// Parameters of the verification runs (Prefect templates kept as is).
    pub parameters: Map<String, serde_json::Value>,
    /// True (default): flowgate triggers the runs. False: it waits for the
    /// deployment's own (scheduled) runs of the new build.
    pub trigger: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_take_each_flow_once_in_the_first_matching_wave() {
        let flows: Vec<FlowKey> = ["etl-daily", "etl-hourly", "report"].iter().map(|f| f.parse().unwrap()).collect();
        let r = Rollout { waves: vec![vec!["etl-daily".into()], vec!["*".into()]], verify: None };
        let waves = r.expand(&flows);
        let names: Vec<Vec<&str>> = waves.iter().map(|w| w.iter().map(FlowKey::as_str).collect()).collect();
        assert_eq!(names, vec![vec!["etl-daily"], vec!["etl-hourly", "report"]]);
        let r = Rollout { waves: vec![vec!["report".into()], vec!["report".into()]], verify: None };
        assert_eq!(r.expand(&flows).len(), 1);
    }
}
