//! Conversions for the issue-4 tables (approvals, rollouts), kept beside
//! `codec` so both backends encode these values the same way.

use flowgate_core::{Approval, FlowKey};

use crate::codec::{parse, time};
use crate::error::LedgerError;
use crate::rollout::{RolloutRecord, RolloutStatus};

/// `approvals` columns: env, build_id, flow ('' = every flow), actor, reason,
/// created_at_ms.
pub(crate) type ApprovalRow = (String, String, String, String, String, i64, Option<String>);

/// `rollouts` columns: id, env, status, version, actor, body, created_at_ms,
/// updated_at_ms.
pub(crate) type RolloutRow = (String, String, String, i64, String, String, i64, i64);

/// The `flow` column of an approval: a flow key never is empty, so '' can stand
/// for "every flow" and stay part of the primary key (NULL could not).
pub(crate) fn approval_flow(flow: Option<&FlowKey>) -> &str {
    flow.map_or("", FlowKey::as_str)
}

pub(crate) fn approval(row: ApprovalRow) -> Result<Approval, LedgerError> {
    let (env, build, flow, actor, reason, created_at_ms, verified) = row;
    Ok(Approval {
        verified: crate::codec::verified_of(verified, || format!("approval of build `{build}` for `{env}`"))?,
        env: parse("environment", &env)?,
        build: parse("build id", &build)?,
        flow: if flow.is_empty() { None } else { Some(parse("flow", &flow)?) },
        actor,
        reason,
        created_at: time(created_at_ms)?,
    })
}

/// A rollout's body as stored: compact JSON text.
pub(crate) fn rollout_body(record: &RolloutRecord) -> Result<String, LedgerError> {
    serde_json::to_string(&record.body)
        .map_err(|e| LedgerError::corrupt(format!("body of rollout `{}`: {e}", record.id)))
}

pub(crate) fn rollout(row: RolloutRow) -> Result<RolloutRecord, LedgerError> {
    let (id, env, status, version, actor, body, created_at_ms, updated_at_ms) = row;
    let status: RolloutStatus =
        status.parse().map_err(|e| LedgerError::corrupt(format!("status of rollout `{id}`: {e}")))?;
    let body = serde_json::from_str(&body).map_err(|e| LedgerError::corrupt(format!("body of rollout `{id}`: {e}")))?;
    Ok(RolloutRecord {
        env: parse("environment", &env)?,
        status,
        version,
        actor,
        body,
        created_at: time(created_at_ms)?,
        updated_at: time(updated_at_ms)?,
        id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_flow_column_means_every_flow() {
        let row = |flow: &str| {
            (
                "prod".to_string(),
                "aaaa0000000000000001".to_string(),
                flow.to_string(),
                "bob".into(),
                "ok".into(),
                5,
                None,
            )
        };
        assert_eq!(approval(row("")).unwrap().flow, None);
        let etl: FlowKey = "etl".parse().unwrap();
        assert_eq!(approval(row("etl")).unwrap().flow, Some(etl.clone()));
        assert_eq!(approval_flow(Some(&etl)), "etl");
        assert_eq!(approval_flow(None), "");
    }

    #[test]
    fn rollout_rows_with_bad_status_or_body_are_corrupt_and_named() {
        let row = |status: &str, body: &str| {
            ("r-1".to_string(), "prod".to_string(), status.to_string(), 1, "alice".to_string(), body.to_string(), 1, 2)
        };
        let good = rollout(row("failed", r#"{"wave":2,"a":[1]}"#)).unwrap();
        assert_eq!((good.status, good.body["wave"].as_i64()), (RolloutStatus::Failed, Some(2)));
        assert_eq!(rollout_body(&good).unwrap(), r#"{"wave":2,"a":[1]}"#);
        let err = rollout(row("paused", "{}")).unwrap_err();
        assert!(err.to_string().contains("paused") && format!("{err:?}").contains("r-1"), "{err:?}");
        let err = rollout(row("running", "{oops")).unwrap_err();
        assert!(format!("{err:?}").contains("body of rollout `r-1`"), "{err:?}");
    }
}
