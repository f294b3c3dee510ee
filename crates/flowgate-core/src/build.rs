//! A build: the immutable record of one commit's code bundle and pinned images.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{BuildId, Digest, FlowKey};
use crate::settings::BuildSettings;

/// The image each flow runs in, resolved and pinned when the build was made.
/// A flow without an image (a process work pool) is absent.
pub type Images = BTreeMap<FlowKey, String>;

/// One immutable build. Two builds with the same bundle and images have the same
/// id; the first commit that produced it is the one recorded here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Build {
    pub id: BuildId,
    pub bundle: Digest,
    /// Size of the compressed bundle object in bytes.
    pub bundle_size: u64,
    /// Number of files in the bundle's manifest.
    pub file_count: u64,
    /// The image pinned for each flow that runs in one.
    #[cfg_attr(feature = "openapi", schema(value_type = BTreeMap<String, String>))]
    pub images: Images,
    /// Full commit sha (40 hex characters for SHA-1 repositories).
    pub commit: String,
    /// The branch checked out when the build was made; `None` on a detached HEAD.
    pub branch: Option<String>,
    /// True when tracked files differed from the commit (`--allow-dirty`).
    pub dirty: bool,
    pub author: String,
    pub created_at: DateTime<Utc>,
    /// Every env's deployment of every flow, resolved from the commit's config
    /// when the build was made. `None` for builds made before flowgate recorded
    /// them: those are deployed with the settings of the working tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<BuildSettings>,
}

impl Build {
    /// The id of a build: BLAKE3 over a versioned, unambiguous encoding of the
    /// bundle digest, the pinned images and the digest of the deployment
    /// settings. Commit, author and time are left out on purpose: the same code
    /// in the same images with the same settings is the same build.
    pub fn derive_id(bundle: &Digest, images: &Images, settings: &BuildSettings) -> BuildId {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"flowgate-build-v2\0");
        hasher.update(bundle.as_bytes());
        hasher.update(settings.digest().as_bytes());
        for (flow, image) in images {
            // Lengths make the encoding prefix-free, so no two maps collide.
            for part in [flow.as_str(), image.as_str()] {
                hasher.update(&(part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        BuildId::from_hash(&hasher.finalize())
    }

    /// The first 12 characters of the commit, as git prints them.
    pub fn short_commit(&self) -> &str {
        &self.commit[..self.commit.len().min(12)]
    }

    /// The image pinned for one flow, if the build has one.
    pub fn image_for(&self, flow: &FlowKey) -> Option<&str> {
        self.images.get(flow).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(pairs: &[(&str, &str)]) -> Images {
        pairs.iter().map(|(f, i)| (f.parse().unwrap(), i.to_string())).collect()
    }

    fn id(bundle: &Digest, images: &Images) -> BuildId {
        Build::derive_id(bundle, images, &BuildSettings::default())
    }

    #[test]
    fn same_inputs_give_the_same_id() {
        let d = Digest::of(b"bundle");
        let a = id(&d, &images(&[("etl", "img:1")]));
        let b = id(&d, &images(&[("etl", "img:1")]));
        assert_eq!(a, b);
    }

    #[test]
    fn any_changed_input_gives_another_id() {
        let d = Digest::of(b"bundle");
        let base = id(&d, &images(&[("etl", "img:1")]));
        assert_ne!(base, id(&Digest::of(b"other"), &images(&[("etl", "img:1")])));
        assert_ne!(base, id(&d, &images(&[("etl", "img:2")])));
        assert_ne!(base, id(&d, &images(&[])));
        // The encoding is prefix-free: moving bytes between key and value changes the id.
        assert_ne!(id(&d, &images(&[("ab", "c")])), id(&d, &images(&[("a", "bc")])));
    }

    #[test]
    fn other_deployment_settings_give_another_id() {
        let d = Digest::of(b"bundle");
        let mut settings = BuildSettings::default();
        let schema = serde_json::json!({"type": "object"});
        let deployment = crate::settings::DeploymentSettings {
            flow_name: "etl".into(),
            deployment_name: "etl".into(),
            entrypoint: "etl.py:etl".into(),
            parameter_schema: schema,
            description: None,
            work_pool: None,
            work_pool_type: None,
            work_queue: None,
            parameters: Default::default(),
            job_variables: Default::default(),
            tags: vec![],
            schedules: vec![],
            pull: vec![],
            paused: None,
            concurrency_limit: None,
            enforce_parameter_schema: None,
            code: None,
        };
        settings.insert("qa", "etl".parse().unwrap(), deployment);
        assert_ne!(id(&d, &images(&[])), Build::derive_id(&d, &images(&[]), &settings));
    }

    /// Settings that leave the fields added later unset (here the concurrency
    /// limit and `enforce_parameter_schema`) give the id they always gave.
    #[test]
    fn settings_recorded_before_new_fields_keep_their_id() {
        let recorded = r#"{"qa":{"etl":{"flow_name":"etl","deployment_name":"etl","entrypoint":"etl.py:etl","parameter_schema":{"type":"object"},"work_pool":"pool","parameters":{"day":1},"job_variables":{},"tags":["t"],"schedules":[{"cron":"0 3 * * *"}],"pull":[],"paused":false}}}"#;
        let settings: BuildSettings = serde_json::from_str(recorded).unwrap();
        assert_eq!(serde_json::to_string(&settings).unwrap(), recorded);
        let id = Build::derive_id(&Digest::of(b"bundle"), &images(&[("etl", "img:1")]), &settings);
        assert_eq!(id.to_string(), "9008fd7ce02ba8465b3e");
    }
}
