//! The status matrix: flows × envs, each cell the pointer there (if any).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ids::{EnvName, FlowKey};
use crate::release::Pointer;

#[derive(Debug, Clone, Serialize)]
pub struct StatusMatrix {
    pub envs: Vec<EnvName>,
    pub rows: Vec<StatusRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StatusRow {
    pub flow: FlowKey,
    /// One cell per env, in the order of `StatusMatrix::envs`.
    pub cells: Vec<Option<Pointer>>,
}

impl StatusMatrix {
    /// Lays out `pointers` for the configured flows and envs. Pointers of flows
    /// that left the config still show, after the configured ones, so nothing
    /// the ledger holds is hidden.
    pub fn new(flows: &[FlowKey], envs: &[EnvName], pointers: &[Pointer]) -> Self {
        let mut by_cell: BTreeMap<(&FlowKey, &EnvName), &Pointer> = BTreeMap::new();
        for p in pointers {
            by_cell.insert((&p.flow, &p.env), p);
        }
        let mut order: Vec<FlowKey> = flows.to_vec();
        for p in pointers {
            if envs.contains(&p.env) && !order.contains(&p.flow) {
                order.push(p.flow.clone());
            }
        }
        let rows = order
            .into_iter()
            .map(|flow| {
                let cells = envs.iter().map(|env| by_cell.get(&(&flow, env)).map(|p| (*p).clone())).collect();
                StatusRow { flow, cells }
            })
            .collect();
        Self { envs: envs.to_vec(), rows }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn matrix_places_pointers_and_keeps_unconfigured_flows() {
        let p = |f: &str, e: &str| Pointer {
            flow: f.parse().unwrap(),
            env: e.parse().unwrap(),
            revision: 1,
            build: "0123456789abcdef0123".parse().unwrap(),
            updated_at: Utc::now(),
        };
        let flows = vec!["a".parse().unwrap(), "b".parse().unwrap()];
        let envs = vec!["qa".parse().unwrap(), "prod".parse().unwrap()];
        let m = StatusMatrix::new(&flows, &envs, &[p("a", "prod"), p("gone", "qa")]);
        assert_eq!(m.rows.len(), 3);
        assert!(m.rows[0].cells[0].is_none() && m.rows[0].cells[1].is_some());
        assert_eq!(m.rows[2].flow.as_str(), "gone");
    }
}
