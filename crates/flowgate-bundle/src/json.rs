//! The manifest as a JSON document (stored beside the bundle, shown by `show`),
//! checked on the way in so a damaged or hand-edited one cannot name unsafe paths.

use flowgate_core::Manifest;

use crate::options::Limits;
use crate::{paths, BundleError};

/// Compact JSON of the manifest; the same manifest always gives the same bytes.
pub fn manifest_to_json(manifest: &Manifest) -> Vec<u8> {
    serde_json::to_vec(manifest).expect("a manifest always serializes")
}

/// Parses a manifest and checks that its paths are valid, sorted and unique.
pub fn manifest_from_json(bytes: &[u8]) -> Result<Manifest, BundleError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::Manifest { reason: e.to_string(), source: Some(e) })?;
    let max_len = Limits::default().max_path_len;
    for (i, f) in manifest.files.iter().enumerate() {
        paths::check(&f.path, max_len)
            .map_err(|reason| BundleError::Manifest { reason: format!("path `{}`: {reason}", f.path), source: None })?;
        if i > 0 && manifest.files[i - 1].path.as_bytes() >= f.path.as_bytes() {
            let reason = format!("path `{}` is out of order or repeated", f.path);
            return Err(BundleError::Manifest { reason, source: None });
        }
    }
    Ok(manifest)
}
