//! flowgate's side of Prefect: a REST client tuned for the open-source server,
//! the deployment flowgate wants for each (flow, env), and the pure plan and the
//! sync that make a server match it without disturbing anything else.

pub mod api;
pub mod assemble;
pub mod auth;
pub mod client;
pub mod error;
pub mod limit;
pub mod owner;
pub mod plan;
pub mod runs;
pub mod schedule;
pub mod spec;
pub mod sync;
pub mod verify;

pub use api::{
    ConcurrencyOptions, Flow, FlowRun, FlowRunState, GlobalConcurrencyLimit, LogLine, ServerDeployment, WorkPool,
};
pub use assemble::{assemble, schedule_of, work_pool_of, AssembleError, Placement};
pub use auth::PrefectAuth;
pub use client::PrefectClient;
pub use error::{Conflicts, PrefectError, Subject};
pub use limit::{WriteLimit, WriteStats};
pub use owner::{project_tag, Conflict, Owner, PROJECT_TAG_PREFIX};
pub use plan::{diff, plan, update_body, Action, FieldChange, Plan, PlannedDeployment, PruneCandidate, PruneScope};
pub use runs::{PullRecord, RunContext, RunDetail, BUILD_LABEL, BUNDLE_LABEL};
pub use schedule::{schedules_match, Schedule, ScheduleKind};
pub use spec::{DeploymentInput, DesiredDeployment, MANAGED_TAG, PULL_STEP_ID};
pub use sync::{ensure_work_pool, sync, SyncOptions, SyncReport};
pub use verify::{scoped_key, BuildRun, MAX_BUILD_RUNS, VERIFY_TAG};
