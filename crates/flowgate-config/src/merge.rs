//! The layered merge (project → flow → env → env.flow) and the rendering of the
//! template fields: what a deployment of one flow in one env looks like.

use flowgate_core::{ConcurrencyLimit, FlowKey};
use serde_json::Value as Json;

use crate::error::ConfigError;
use crate::schema::{Config, JsonMap, Settings};
use crate::select::SelectedEnv;
use crate::template::{Template, TemplateVars};

/// Everything flowgate configures on one Prefect deployment, merged and rendered.
/// The image is not here: it is the one pinned in the build being released.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedDeployment {
    pub flow: FlowKey,
    pub entrypoint: String,
    /// The Prefect flow name when configured (`flow_name`); else read from the entrypoint.
    pub flow_name: Option<String>,
    /// `{name_prefix}` + (`deployment_name` or the flow key).
    pub deployment_name: String,
    pub work_pool: Option<String>,
    pub work_queue: Option<String>,
    pub description: Option<String>,
    pub parameters: JsonMap,
    pub job_variables: JsonMap,
    pub tags: Vec<String>,
    pub schedules: Vec<JsonMap>,
    /// User pull steps, to run after flowgate's own.
    pub pull: Vec<JsonMap>,
    /// `None` when no layer says: leave the deployment's paused state alone.
    pub paused: Option<bool>,
    /// The type a missing work pool is created with; `None`: the caller's default.
    pub work_pool_type: Option<String>,
    /// The configured `parameter_schema` of the flow; `None`: derive it from the entrypoint.
    pub parameter_schema: Option<JsonMap>,
    /// `None`: no limit.
    pub concurrency_limit: Option<ConcurrencyLimit>,
    /// `None`: Prefect's default (`true`).
    pub enforce_parameter_schema: Option<bool>,
}

/// Merges `over` onto `base`: maps key by key (recursively), tags as an ordered
/// union, everything else replaced when `over` sets it.
pub fn merge_settings(base: &Settings, over: &Settings) -> Settings {
    fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
        over.clone().or_else(|| base.clone())
    }
    fn maps(base: &Option<JsonMap>, over: &Option<JsonMap>) -> Option<JsonMap> {
        match (base, over) {
            (Some(b), Some(o)) => {
                let mut out = b.clone();
                merge_map(&mut out, o);
                Some(out)
            }
            _ => pick(base, over),
        }
    }
    let tags = match (&base.tags, &over.tags) {
        (Some(b), Some(o)) => {
            let mut out: Vec<String> = Vec::new();
            for t in b.iter().chain(o) {
                if !out.contains(t) {
                    out.push(t.clone());
                }
            }
            Some(out)
        }
        (b, o) => pick(b, o),
    };
    Settings {
        work_pool: pick(&base.work_pool, &over.work_pool),
        work_queue: pick(&base.work_queue, &over.work_queue),
        image: pick(&base.image, &over.image),
        parameters: maps(&base.parameters, &over.parameters),
        job_variables: maps(&base.job_variables, &over.job_variables),
        tags,
        schedules: pick(&base.schedules, &over.schedules),
        description: pick(&base.description, &over.description),
        deployment_name: pick(&base.deployment_name, &over.deployment_name),
        pull: pick(&base.pull, &over.pull),
        paused: pick(&base.paused, &over.paused),
        work_pool_type: pick(&base.work_pool_type, &over.work_pool_type),
        concurrency_limit: pick(&base.concurrency_limit, &over.concurrency_limit),
        enforce_parameter_schema: pick(&base.enforce_parameter_schema, &over.enforce_parameter_schema),
    }
}

fn merge_map(base: &mut JsonMap, over: &JsonMap) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(Json::Object(b)), Json::Object(o)) => merge_map(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

impl Config {
    /// The settings of `flow` in `env` before rendering: project → flow → env → env.flow.
    pub fn merged_settings(&self, flow: &FlowKey, env: &SelectedEnv) -> Result<Settings, ConfigError> {
        let flow_config = self.flow(flow).ok_or_else(|| self.unknown_flow(flow))?;
        let mut settings = merge_settings(&self.project.settings, &flow_config.settings);
        settings = merge_settings(&settings, &env.config.settings);
        if let Some(per_flow) = env.config.flow(flow) {
            settings = merge_settings(&settings, per_flow);
        }
        Ok(settings)
    }

    /// The deployment of `flow` in `env`. `vars.flow` and `vars.env` are set here
    /// (to the flow key and the configured env name); the caller fills commit,
    /// short, branch (from the build) and user.
    pub fn deployment(
        &self,
        flow: &FlowKey,
        env: &SelectedEnv,
        vars: &TemplateVars,
    ) -> Result<ResolvedDeployment, ConfigError> {
        let flow_config = self.flow(flow).ok_or_else(|| self.unknown_flow(flow))?;
        let s = self.merged_settings(flow, env)?;
        let vars = TemplateVars { flow: Some(flow.to_string()), env: Some(env.config_name.clone()), ..vars.clone() };
        let render = |field: &'static str, t: &Option<Template>| -> Result<Option<String>, ConfigError> {
            t.as_ref().map(|t| t.render(&vars)).transpose().map_err(|source| ConfigError::Render {
                field,
                context: format!("flow `{flow}`"),
                source,
            })
        };
        let name = render("deployment_name", &s.deployment_name)?.unwrap_or_else(|| flow.to_string());
        Ok(ResolvedDeployment {
            flow: flow.clone(),
            entrypoint: flow_config.entrypoint.clone(),
            flow_name: flow_config.flow_name.clone(),
            deployment_name: format!("{}{name}", env.name_prefix),
            work_pool: render("work_pool", &s.work_pool)?,
            work_queue: render("work_queue", &s.work_queue)?,
            description: render("description", &s.description)?,
            parameters: s.parameters.unwrap_or_default(),
            job_variables: s.job_variables.unwrap_or_default(),
            tags: s.tags.unwrap_or_default(),
            schedules: s.schedules.unwrap_or_default(),
            pull: s.pull.unwrap_or_default(),
            paused: s.paused,
            work_pool_type: s.work_pool_type,
            parameter_schema: flow_config.parameter_schema.clone(),
            concurrency_limit: s.concurrency_limit,
            enforce_parameter_schema: s.enforce_parameter_schema,
        })
    }

    /// The image to pin for `flow` when a build is made (flow `image`, else the
    /// project's), rendered with commit/short/branch/flow; `None` if neither sets one.
    pub fn build_image(&self, flow: &FlowKey, vars: &TemplateVars) -> Result<Option<String>, ConfigError> {
        let flow_config = self.flow(flow).ok_or_else(|| self.unknown_flow(flow))?;
        let Some(template) = flow_config.settings.image.as_ref().or(self.project.settings.image.as_ref()) else {
            return Ok(None);
        };
        let vars = TemplateVars { flow: Some(flow.to_string()), env: None, user: None, ..vars.clone() };
        template.render(&vars).map(Some).map_err(|source| ConfigError::Render {
            field: "image",
            context: format!("flow `{flow}`"),
            source,
        })
    }

    fn unknown_flow(&self, flow: &FlowKey) -> ConfigError {
        ConfigError::UnknownFlow { name: flow.to_string(), known: self.flows().map(|(k, _)| k.to_string()).collect() }
    }
}
