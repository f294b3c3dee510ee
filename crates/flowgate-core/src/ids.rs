//! Identifiers with their validation, so a malformed id can't travel past the edge
//! where it was read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid identifier; the message names the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("`{value}` is not a BLAKE3 digest (64 lowercase hex characters)")]
    Digest { value: String },
    #[error("`{value}` is not a build id ({len} lowercase hex characters)", len = BuildId::LEN)]
    BuildId { value: String },
    #[error("`{value}` is not a valid {what} name: use letters, digits, `-`, `_` and `.`, starting with a letter or digit, at most 63 characters")]
    Name { what: &'static str, value: String },
}

/// A BLAKE3 digest: the address of a bundle in the artifact store.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct Digest([u8; 32]);

impl Digest {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
    /// Digest of a byte slice; streaming callers use `blake3::Hasher` and `from_bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
    pub fn to_hex(&self) -> String {
        // blake3's encoder is a table lookup; `hex::encode` goes a char at a
        // time through an iterator, ~10× the cost, and a rebuild encodes one
        // digest per bundle file.
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }
    /// The first characters, for humans; never used as a key.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl FromStr for Digest {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IdError::Digest { value: s.to_string() };
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| err())?;
        Ok(Self(out))
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A build's id: derived from its bundle digest and pinned images, so the same
/// inputs always give the same id (see [`crate::Build::derive_id`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuildId(String);

impl BuildId {
    /// 20 hex characters = 80 bits: collision-free for any realistic project,
    /// short enough to read in a table and to type a prefix of.
    pub const LEN: usize = 20;

    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub(crate) fn from_hash(hash: &blake3::Hash) -> Self {
        Self(hash.to_hex()[..Self::LEN].to_string())
    }
}

impl FromStr for BuildId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = s.len() == Self::LEN && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(IdError::BuildId { value: s.to_string() })
        }
    }
}

impl TryFrom<String> for BuildId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<BuildId> for String {
    fn from(id: BuildId) -> Self {
        id.0
    }
}

impl fmt::Display for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildId({})", self.0)
    }
}

fn valid_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if valid_name(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(IdError::Name { what: $what, value: s.to_string() })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

name_type!(
    /// The key of a flow in `flowgate.toml` (`[flows.<key>]`).
    FlowKey,
    "flow"
);
name_type!(
    /// The name of a project (`[project] name`): scopes its ledger rows and
    /// tags its Prefect deployments `flowgate-project:<name>`.
    ProjectName,
    "project"
);
name_type!(
    /// The ledger name of an environment: `qa`, `prod`, or a personal `dev-alice`.
    EnvName,
    "environment"
);

/// The position of a release in the history of one (flow, env) pointer; the
/// first release is revision 1 and revisions never have gaps.
pub type Revision = i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_round_trips_through_hex() {
        let d = Digest::of(b"hello");
        assert_eq!(d.to_hex().parse::<Digest>().unwrap(), d);
        assert!("ABC".parse::<Digest>().is_err());
        assert!(d.to_hex().to_uppercase().parse::<Digest>().is_err());
    }

    #[test]
    fn names_are_validated_and_errors_name_the_value() {
        assert!("etl-daily".parse::<FlowKey>().is_ok());
        assert!("dev-alice.x_1".parse::<EnvName>().is_ok());
        let err = "../x".parse::<FlowKey>().unwrap_err();
        assert!(err.to_string().contains("`../x`"), "{err}");
        assert!("".parse::<EnvName>().is_err());
        assert!("-x".parse::<EnvName>().is_err());
    }

    #[test]
    fn build_ids_are_twenty_lowercase_hex() {
        assert!("0123456789abcdef0123".parse::<BuildId>().is_ok());
        assert!("0123456789ABCDEF0123".parse::<BuildId>().is_err());
        assert!("0123".parse::<BuildId>().is_err());
    }
}
