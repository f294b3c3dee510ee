//! Image references as Docker reads them, `[host[:port]/]path[:tag][@digest]`,
//! with Docker Hub's defaults (`alpine` is `docker.io/library/alpine`), and
//! the form a build records once an image is pinned.

use std::fmt;

/// The registry of names that give none.
pub const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The tag of a reference that names none.
const DEFAULT_TAG: &str = "latest";
/// The longest repository name (host included) Docker accepts.
const NAME_MAX: usize = 255;

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name as written, without tag or digest: the pinned form keeps it.
    name: String,
    /// The registry host, with its port if one was given; `docker.io` for
    /// names without a host.
    pub registry: String,
    /// The repository path in that registry (`library/alpine`, `acme/flows`).
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`, when the reference is already pinned.
    pub digest: Option<String>,
}

/// Why a text is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{reference}` is not a valid image reference: {why}")]
pub struct ReferenceError {
    pub reference: String,
    pub why: String,
}

impl ImageRef {
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let fail = |why: String| ReferenceError { reference: text.to_string(), why };
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(fail("it is empty or holds whitespace".into()));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(check_digest(digest).map_err(fail)?)),
            None => (text, None),
        };
        // A `:` after the last `/` starts the tag; one before it is a port.
        let (name, tag) = match rest.rfind(':') {
            Some(at) if !rest[at..].contains('/') => (&rest[..at], Some(&rest[at + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(fail)?;
        }
        if name.len() > NAME_MAX {
            return Err(fail(format!("the name is longer than {NAME_MAX} characters")));
        }
        let (host, path) = split_host(name);
        if let Some(host) = host {
            check_host(host).map_err(fail)?;
        }
        if path.is_empty() {
            return Err(fail("it names no repository".into()));
        }
        for component in path.split('/') {
            check_component(component).map_err(fail)?;
        }
        let registry = match host {
            None | Some("index.docker.io") => DOCKER_HUB.to_string(),
            Some(host) => host.to_string(),
        };
        let repository =
            if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
        Ok(Self {
            name: name.to_string(),
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The host the registry's API answers at: Docker Hub's differs from its name.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// The tag to resolve: `latest` when none was given, as Docker does.
    pub fn tag_or_default(&self) -> &str {
        self.tag.as_deref().unwrap_or(DEFAULT_TAG)
    }

    /// The reference pinned to `digest`: the name as written (host and path
    /// kept, the tag dropped) then `@digest`, e.g. `ghcr.io/acme/flows@sha256:…`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.name)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Docker's rule: the first component is a host when it holds a `.` or a `:`,
/// is `localhost`, or has an upper-case letter; otherwise the name is Docker Hub's.
fn split_host(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        // An IPv6 literal: `[::1]` or `[::1]:5000`.
        let (inside, after) = rest.split_once(']').ok_or_else(|| format!("the host `{host}` has no closing `]`"))?;
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') {
            return Err(format!("the host `{host}` is not an IPv6 address"));
        }
        (None, after.strip_prefix(':'))
    } else {
        match host.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(host), None),
        }
    };
    if let Some(name) = name {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !name.split('.').all(label_ok) {
            return Err(format!("the host `{host}` is not a host name"));
        }
    }
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.chars().all(|c| c.is_ascii_digit()) {
            return Err(format!("the port of `{host}` is not a number"));
        }
    }
    Ok(())
}

/// A path component: lower-case letters and digits, separated by one `.`, one
/// or two `_`, or any number of `-`.
fn check_component(component: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "the path component `{component}` must be lower-case letters and digits, separated by `.`, `_`, `__` or dashes"
        )
    };
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let separator = &component[start..i];
        let ok = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn check_tag(tag: &str) -> Result<(), String> {
    let mut chars = tag.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || tag.len() > 128 {
        return Err(format!(
            "the tag `{tag}` must be up to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
        ));
    }
    Ok(())
}

/// `sha256:` + 64 lower-case hex (or `sha512:` + 128); returns the digest.
pub fn check_digest(digest: &str) -> Result<&str, String> {
    let lower_hex =
        |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let ok = match digest.split_once(':') {
        Some(("sha256", hex)) => lower_hex(hex, 64),
        Some(("sha512", hex)) => lower_hex(hex, 128),
        _ => false,
    };
    if ok {
        Ok(digest)
    } else {
        Err(format!("the digest `{digest}` is not `sha256:` followed by 64 lower-case hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parts(text: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageRef::parse(text).unwrap_or_else(|e| panic!("{e}"));
        (r.registry, r.repository, r.tag, r.digest)
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    #[test]
    fn docker_hub_defaults() {
        assert_eq!(parts("alpine"), ("docker.io".into(), "library/alpine".into(), None, None));
        assert_eq!(parts("alpine:3.19"), ("docker.io".into(), "library/alpine".into(), some("3.19"), None));
        assert_eq!(parts("prefecthq/prefect:3-latest").1, "prefecthq/prefect");
        assert_eq!(parts("docker.io/x/y:1"), ("docker.io".into(), "x/y".into(), some("1"), None));
        assert_eq!(parts("docker.io/alpine").1, "library/alpine");
        assert_eq!(parts("index.docker.io/library/alpine").0, "docker.io");
        let hub = ImageRef::parse("alpine").unwrap();
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert_eq!(hub.tag_or_default(), "latest");
    }

    #[test]
    fn hosts_with_ports_and_nested_paths() {
        assert_eq!(
            parts("127.0.0.1:5000/acme/flows:abc123"),
            ("127.0.0.1:5000".into(), "acme/flows".into(), some("abc123"), None)
        );
        // A port without a tag: the `:` is before the last `/`.
        assert_eq!(parts("localhost:5000/flows"), ("localhost:5000".into(), "flows".into(), None, None));
        assert_eq!(parts("localhost/flows").0, "localhost");
        assert_eq!(
            parts("europe-docker.pkg.dev/proj/repo/team/flows:v1"),
            ("europe-docker.pkg.dev".into(), "proj/repo/team/flows".into(), some("v1"), None)
        );
        assert_eq!(parts("[::1]:5000/x:y").0, "[::1]:5000");
        assert_eq!(ImageRef::parse("ghcr.io/acme/flows").unwrap().api_host(), "ghcr.io");
        // A first component without `.`/`:` is a Docker Hub namespace, not a host.
        assert_eq!(parts("acme/flows").0, "docker.io");
    }

    #[test]
    fn digests_are_kept_and_pinned_forms_drop_the_tag() {
        let pinned = format!("ghcr.io/acme/flows@sha256:{HEX}");
        assert_eq!(parts(&pinned), ("ghcr.io".into(), "acme/flows".into(), None, Some(format!("sha256:{HEX}"))));
        let both = format!("ghcr.io/acme/flows:v1@sha256:{HEX}");
        assert_eq!(parts(&both).2, some("v1"));
        assert_eq!(ImageRef::parse(&both).unwrap().to_string(), both);
        let r = ImageRef::parse("127.0.0.1:5000/acme/flows:abc").unwrap();
        assert_eq!(r.pinned(&format!("sha256:{HEX}")), format!("127.0.0.1:5000/acme/flows@sha256:{HEX}"));
        assert_eq!(ImageRef::parse("alpine:3").unwrap().pinned("sha256:x"), "alpine@sha256:x");
    }

    #[test]
    fn bad_references_say_why() {
        let cases = [
            ("", "empty"),
            ("a b", "whitespace"),
            ("acme/Flows", "`Flows`"),
            ("ex_ample.com/flows", "is not a host name"),
            ("ghcr.io/Acme/flows", "`Acme`"),
            ("ghcr.io/acme//flows", "path component ``"),
            ("ghcr.io/acme/flows:", "the tag ``"),
            ("ghcr.io/acme/flows:-x", "the tag `-x`"),
            ("ghcr.io/acme/flows@sha256:abc", "the digest `sha256:abc`"),
            ("ghcr.io/acme/flows@md5:abc", "the digest"),
            ("host:port/x", "the port of `host:port`"),
            ("ghcr.io/", "names no repository"),
            ("ghcr.io/a---b/c..d", "`c..d`"),
        ];
        for (text, fragment) in cases {
            match ImageRef::parse(text) {
                Ok(r) => panic!("{text:?} parsed as {r:?}"),
                Err(e) => assert!(e.to_string().contains(fragment), "{text:?}: {e}"),
            }
        }
        assert!(ImageRef::parse("ghcr.io/a---b/c__d.e-f").is_ok());
        assert!(ImageRef::parse(&format!("{}:x", "a".repeat(256))).is_err());
    }
}
