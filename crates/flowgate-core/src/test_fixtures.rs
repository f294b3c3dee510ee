//! Fixtures of the core's inventory and retention unit tests (inventory checks, retention
//! plans): builds, releases and pointers named by small numbers and days.

use crate::{Build, BuildId, Digest, Pointer, Revision};
use chrono::{DateTime, Utc};

use crate::inventory::ReleaseRef;

/// Build id `n`, as 20 hex digits.
pub fn id(n: u64) -> BuildId {
    format!("{n:020x}").parse().unwrap()
}

/// Midnight UTC of `day` days after the epoch.
pub fn at(day: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(day * 86_400, 0).unwrap()
}

/// Build `n` (its own bundle), made on `day`.
pub fn build(n: u64, day: i64) -> Build {
    Build {
        id: id(n),
        bundle: Digest::of(&n.to_le_bytes()),
        bundle_size: 1,
        file_count: 1,
        images: Default::default(),
        commit: "c".repeat(40),
        branch: None,
        dirty: false,
        author: "a".into(),
        created_at: at(day),
        settings: None,
    }
}

/// Revision `revision` of `flow` in `env`, releasing build `b`.
pub fn release(flow: &str, env: &str, revision: Revision, b: u64) -> ReleaseRef {
    ReleaseRef { flow: flow.parse().unwrap(), env: env.parse().unwrap(), revision, build: id(b) }
}

/// The pointer of `flow` in `env` at `revision` (build `b`), updated at the epoch.
pub fn pointer(flow: &str, env: &str, revision: Revision, b: u64) -> Pointer {
    Pointer { flow: flow.parse().unwrap(), env: env.parse().unwrap(), revision, build: id(b), updated_at: at(0) }
}
