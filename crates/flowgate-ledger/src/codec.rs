//! Conversions between domain values and the plain columns both backends store,
//! so the two implementations cannot drift apart in how they encode a value.

use chrono::{DateTime, Utc};
use flowgate_core::{Audit, Build, BuildId, GateResult, Images, MoveKind, Pointer, Release, Revision, Verified};

use crate::error::LedgerError;

/// `builds` columns: id, bundle, bundle_size, file_count, images, commit_sha,
/// branch, dirty, author, created_at_ms, settings.
pub(crate) type BuildRow =
    (String, String, i64, i64, String, String, Option<String>, bool, String, i64, Option<String>);

/// [`BuildRow`] without the settings text (`None`), and whether the row has settings.
pub(crate) type BriefBuildRow =
    (String, String, i64, i64, String, String, Option<String>, bool, String, i64, Option<String>, bool);

/// `pointers` columns: flow, env, revision, build_id, updated_at_ms.
pub(crate) type PointerRow = (String, String, i64, String, i64);

/// `pins` columns: build_id, actor, reason, created_at_ms.
pub(crate) type PinRow = (String, String, String, i64, Option<String>);

/// A release reduced to flow, env, revision, build_id.
pub(crate) type ReleaseRefRow = (String, String, i64, String);

/// A `releases` row, by column name (more columns than sqlx decodes, or
/// `Debug` prints, as a tuple).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ReleaseRow {
    flow: String,
    env: String,
    revision: i64,
    build_id: String,
    previous_build_id: Option<String>,
    kind: String,
    kind_detail: Option<String>,
    actor: String,
    reason: Option<String>,
    created_at_ms: i64,
    gates: Option<String>,
    override_reason: Option<String>,
    rollout_id: Option<String>,
    verified: Option<String>,
}

/// The audit columns of a release: gates (JSON, NULL when none ran),
/// override_reason, rollout_id, verified (JSON, NULL in direct mode).
pub(crate) type AuditColumns = (Option<String>, Option<String>, Option<String>, Option<String>);

/// A build encoded for insertion.
pub(crate) struct BuildValues {
    pub id: String,
    pub bundle: String,
    pub bundle_size: i64,
    pub file_count: i64,
    pub images: String,
    pub commit: String,
    pub branch: Option<String>,
    pub dirty: bool,
    pub author: String,
    pub created_at_ms: i64,
    /// JSON; `None` for a build without recorded settings.
    pub settings: Option<String>,
}

impl BuildValues {
    pub fn new(build: &Build) -> Result<Self, LedgerError> {
        let too_big =
            |what: &str, n: u64| LedgerError::corrupt(format!("{what} {n} of build `{}` is too large", build.id));
        Ok(Self {
            id: build.id.to_string(),
            bundle: build.bundle.to_hex(),
            bundle_size: i64::try_from(build.bundle_size).map_err(|_| too_big("bundle size", build.bundle_size))?,
            file_count: i64::try_from(build.file_count).map_err(|_| too_big("file count", build.file_count))?,
            images: serde_json::to_string(&build.images)
                .map_err(|e| LedgerError::corrupt(format!("images of build `{}`: {e}", build.id)))?,
            commit: build.commit.clone(),
            branch: build.branch.clone(),
            dirty: build.dirty,
            author: build.author.clone(),
            created_at_ms: build.created_at.timestamp_millis(),
            settings: build
                .settings
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(|e| LedgerError::corrupt(format!("settings of build `{}`: {e}", build.id)))?,
        })
    }
}

pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| LedgerError::corrupt(format!("timestamp `{ms}` is out of range")))
}

pub(crate) fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, LedgerError>
where
    T::Err: std::fmt::Display,
{
    value.parse().map_err(|e| LedgerError::corrupt(format!("{what} `{value}`: {e}")))
}

pub(crate) fn build(row: BuildRow) -> Result<Build, LedgerError> {
    let (id, bundle, bundle_size, file_count, images, commit, branch, dirty, author, created_at_ms, settings) = row;
    let images: Images =
        serde_json::from_str(&images).map_err(|e| LedgerError::corrupt(format!("images of build `{id}`: {e}")))?;
    let settings = settings
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| LedgerError::corrupt(format!("settings of build `{id}`: {e}")))?;
    let count = |what: &str, n: i64| {
        u64::try_from(n).map_err(|_| LedgerError::corrupt(format!("{what} `{n}` of build `{id}`")))
    };
    Ok(Build {
        bundle: parse("bundle digest", &bundle)?,
        bundle_size: count("bundle size", bundle_size)?,
        file_count: count("file count", file_count)?,
        images,
        commit,
        branch,
        dirty,
        author,
        created_at: time(created_at_ms)?,
        settings,
        id: parse("build id", &id)?,
    })
}

pub(crate) fn pointer(row: PointerRow) -> Result<Pointer, LedgerError> {
    let (flow, env, revision, build, updated_at_ms) = row;
    Ok(Pointer {
        flow: parse("flow", &flow)?,
        env: parse("environment", &env)?,
        revision,
        build: parse("build id", &build)?,
        updated_at: time(updated_at_ms)?,
    })
}

pub(crate) fn pin(row: PinRow) -> Result<crate::Pin, LedgerError> {
    let (build, actor, reason, created_at_ms, verified) = row;
    Ok(crate::Pin {
        verified: verified_of(verified, || format!("pin of build `{build}`"))?,
        build: parse("build id", &build)?,
        actor,
        reason,
        created_at: time(created_at_ms)?,
    })
}

/// The `verified` column: JSON of how a server verified the actor, NULL in direct mode.
pub(crate) fn verified_column(verified: Option<&Verified>) -> Result<Option<String>, LedgerError> {
    verified
        .map(|v| serde_json::to_string(v).map_err(|e| LedgerError::corrupt(format!("verified identity {v:?}: {e}"))))
        .transpose()
}

pub(crate) fn verified_of(column: Option<String>, of: impl Fn() -> String) -> Result<Option<Verified>, LedgerError> {
    column.map(|json| verified(&json, of)).transpose()
}

/// A `verified` JSON value; corrupt, naming `of()`, when it does not decode.
pub(crate) fn verified(json: &str, of: impl Fn() -> String) -> Result<Verified, LedgerError> {
    serde_json::from_str(json).map_err(|e| LedgerError::corrupt(format!("verified identity of the {}: {e}", of())))
}

pub(crate) fn release_ref(row: ReleaseRefRow) -> Result<crate::ReleaseRef, LedgerError> {
    let (flow, env, revision, build) = row;
    Ok(crate::ReleaseRef {
        flow: parse("flow", &flow)?,
        env: parse("environment", &env)?,
        revision,
        build: parse("build id", &build)?,
    })
}

/// The `kind` and `kind_detail` columns of a move kind.
pub(crate) fn kind_columns(kind: &MoveKind) -> (&'static str, Option<String>) {
    let detail = match kind {
        MoveKind::Release => None,
        MoveKind::Promote { from } => Some(from.to_string()),
        MoveKind::Rollback { to_revision } => Some(to_revision.to_string()),
    };
    (kind.label(), detail)
}

fn kind(kind: &str, detail: Option<&str>) -> Result<MoveKind, LedgerError> {
    let bad = || LedgerError::corrupt(format!("release kind `{kind}` with detail `{}`", detail.unwrap_or("")));
    match (kind, detail) {
        ("release", None) => Ok(MoveKind::Release),
        ("promote", Some(from)) => Ok(MoveKind::Promote { from: parse("environment", from)? }),
        ("rollback", Some(rev)) => Ok(MoveKind::Rollback { to_revision: rev.parse::<Revision>().map_err(|_| bad())? }),
        _ => Err(bad()),
    }
}

pub(crate) fn audit_columns(audit: &Audit) -> Result<AuditColumns, LedgerError> {
    let gates = if audit.gates.is_empty() {
        None
    } else {
        let json = serde_json::to_string(&audit.gates)
            .map_err(|e| LedgerError::corrupt(format!("gate results {:?}: {e}", audit.gates)))?;
        Some(json)
    };
    let verified = verified_column(audit.verified.as_ref())?;
    Ok((gates, audit.override_reason.clone(), audit.rollout.clone(), verified))
}

fn audit(columns: AuditColumns) -> Result<Audit, LedgerError> {
    let (gates, override_reason, rollout, verified) = columns;
    let verified = verified_of(verified, || "the verified actor of a release".to_string())?;
    let gates: Vec<GateResult> = match gates {
        None => Vec::new(),
        Some(json) => {
            serde_json::from_str(&json).map_err(|e| LedgerError::corrupt(format!("gate results `{json}`: {e}")))?
        }
    };
    Ok(Audit { gates, override_reason, rollout, verified })
}

pub(crate) fn release(row: ReleaseRow) -> Result<Release, LedgerError> {
    Ok(Release {
        flow: parse("flow", &row.flow)?,
        env: parse("environment", &row.env)?,
        revision: row.revision,
        build: parse("build id", &row.build_id)?,
        previous_build: row.previous_build_id.as_deref().map(|p| parse::<BuildId>("build id", p)).transpose()?,
        kind: kind(&row.kind, row.kind_detail.as_deref())?,
        actor: row.actor,
        reason: row.reason,
        created_at: time(row.created_at_ms)?,
        audit: audit((row.gates, row.override_reason, row.rollout_id, row.verified))?,
    })
}

/// The bounds of a prefix range over lowercase hex keys: `[prefix, prefix + "g")`
/// holds exactly the hex strings starting with `prefix`, and uses the key's index.
/// None when the prefix cannot match (empty or not hex).
pub(crate) fn hex_prefix_range(prefix: &str) -> Option<(String, String)> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let upper = format!("{prefix}g");
    Some((prefix, upper))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_columns() {
        for k in [
            MoveKind::Release,
            MoveKind::Promote { from: "qa".parse().unwrap() },
            MoveKind::Rollback { to_revision: 7 },
        ] {
            let (label, detail) = kind_columns(&k);
            assert_eq!(kind(label, detail.as_deref()).unwrap(), k);
        }
        assert!(kind("promote", None).is_err());
        assert!(kind("rollback", Some("x")).is_err());
        assert!(kind("teleport", None).is_err());
    }

    #[test]
    fn audits_round_trip_through_columns_and_empty_gates_are_null() {
        assert_eq!(audit_columns(&Audit::default()).unwrap(), (None, None, None, None));
        let full = Audit {
            gates: vec![GateResult {
                gate: flowgate_core::Gate::Soak,
                status: flowgate_core::GateStatus::Wait { until: DateTime::from_timestamp_millis(1_234_567) },
                detail: "2h in `qa` required".into(),
            }],
            override_reason: Some("hotfix".into()),
            rollout: Some("prod-1".into()),
            verified: Some(flowgate_core::Verified {
                subject: "ci".into(),
                method: flowgate_core::AuthMethod::Token,
                issuer: None,
                claims: Default::default(),
                request_id: "r1".into(),
            }),
        };
        let columns = audit_columns(&full).unwrap();
        assert!(columns.0.as_deref().is_some_and(|json| json.contains("\"wait\"")), "{columns:?}");
        assert_eq!(audit(columns).unwrap(), full);
        assert!(audit((Some("{not json".into()), None, None, None)).is_err());
        assert!(audit((None, None, None, Some("{not json".into()))).is_err());
    }

    #[test]
    fn prefix_ranges_are_lowercase_hex_only() {
        assert_eq!(hex_prefix_range("AB1"), Some(("ab1".into(), "ab1g".into())));
        assert_eq!(hex_prefix_range(""), None);
        assert_eq!(hex_prefix_range("main"), None);
        let (lo, hi) = hex_prefix_range("ab").unwrap();
        for inside in ["ab", "ab0", "abffff"] {
            assert!(lo.as_str() <= inside && inside < hi.as_str());
        }
        for outside in ["aa", "ac", "b"] {
            assert!(!(lo.as_str() <= outside && outside < hi.as_str()));
        }
    }
}
