//! The commented starting `flowgate.toml` that `flowgate init` writes.

use flowgate_core::FlowKey;

use crate::emit::{key, string, ENVS_SECTION};

/// A starting config for `project_name` with one `[flows.F]` per `(key, entrypoint)`;
/// with no flows, a commented example flow. The text parses with [`crate::parse`]
/// as long as each entrypoint has the `path/file.py:function` shape.
pub fn starter_toml(project_name: &str, flows: &[(FlowKey, String)]) -> String {
    let mut out = String::from(
        "# flowgate.toml: how flowgate builds, releases and syncs this project's Prefect flows.\n\
         # Settings (work_pool, work_queue, image, parameters, job_variables, tags, schedules,\n\
         # description, deployment_name, pull, paused, work_pool_type, concurrency_limit,\n\
         # enforce_parameter_schema) can be set on [project], [flows.F], [envs.E] and\n\
         # [envs.E.flows.F]; later layers win, parameters and job_variables merge key by key.\n\n",
    );
    out.push_str("[project]\n");
    out.push_str(&format!("name = {}\n", string(project_name)));
    out.push_str(
        "# ledger = \"sqlite://.flowgate/ledger.db\"        # or postgres://user@host/db\n\
         # artifacts = \"file://.flowgate/artifacts\"       # or s3://bucket/prefix, gs://bucket/prefix\n\
         # image = \"ghcr.io/acme/flows:{commit}\"          # pinned per build; {commit} {short} {branch} {flow}\n\
         # include = [\"flows/**\", \"pyproject.toml\"]       # default: every git-tracked file\n\
         # exclude = [\"**/tests/**\"]\n\
         # work_pool = \"{env}-pool\"\n",
    );
    if flows.is_empty() {
        out.push_str("\n# [flows.my-flow]\n# entrypoint = \"flows/my_flow.py:my_flow\"     # required\n");
    }
    for (flow, entrypoint) in flows {
        out.push_str(&format!("\n[flows.{}]\nentrypoint = {}\n", key(flow.as_str()), string(entrypoint)));
        out.push_str(
            "# parameters = { days = 1 }\n# schedules = [{ cron = \"0 3 * * *\", timezone = \"UTC\" }]\n# tags = []\n",
        );
    }
    out.push_str(ENVS_SECTION);
    out
}
