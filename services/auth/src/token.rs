//! Bearer credentials: `vs_<id>_<secret>` (login session) and `vk_<id>_<secret>` (API key).
//! The id is 12 hex digits (48 random bits) that find the row; the secret 64 hex digits (256
//! random bits), stored only as its SHA-256 digest. A high-entropy secret needs no slow hash:
//! nobody can guess it, and the digest is useless to whoever steals the database.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Which kind of credential a bearer string is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A login session (`vs_`).
    Session,
    /// An API key (`vk_`).
    ApiKey,
}

impl CredentialKind {
    fn prefix(self) -> &'static str {
        match self {
            CredentialKind::Session => "vs",
            CredentialKind::ApiKey => "vk",
        }
    }
}

/// A parsed bearer credential. Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// Session or API key.
    pub kind: CredentialKind,
    /// The public id (12 lowercase hex digits).
    pub id: String,
    secret: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

const ID_HEX: usize = 12;
const SECRET_HEX: usize = 64;

impl Credential {
    /// Makes a fresh random credential.
    pub(crate) fn generate(kind: CredentialKind) -> Result<Credential> {
        let mut id = [0u8; ID_HEX / 2];
        let mut secret = [0u8; SECRET_HEX / 2];
        getrandom::fill(&mut id).map_err(|err| Error::Random(err.to_string()))?;
        getrandom::fill(&mut secret).map_err(|err| Error::Random(err.to_string()))?;
        Ok(Credential {
            kind,
            id: hex::encode(id),
            secret: hex::encode(secret),
        })
    }

    /// Parses a bearer string; anything malformed is [`Error::Unauthenticated`].
    pub fn parse(text: &str) -> Result<Credential> {
        let text = text.trim();
        let (prefix, rest) = text.split_once('_').ok_or(Error::Unauthenticated)?;
        let kind = match prefix {
            "vs" => CredentialKind::Session,
            "vk" => CredentialKind::ApiKey,
            _ => return Err(Error::Unauthenticated),
        };
        let (id, secret) = rest.split_once('_').ok_or(Error::Unauthenticated)?;
        let is_hex = |s: &str, len: usize| {
            s.len() == len
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !is_hex(id, ID_HEX) || !is_hex(secret, SECRET_HEX) {
            return Err(Error::Unauthenticated);
        }
        Ok(Credential {
            kind,
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The full bearer string, to hand to the caller once.
    pub fn expose(&self) -> String {
        format!("{}_{}_{}", self.kind.prefix(), self.id, self.secret)
    }

    /// SHA-256 of the secret, as stored.
    pub(crate) fn secret_digest(&self) -> Vec<u8> {
        Sha256::digest(self.secret.as_bytes()).to_vec()
    }

    /// Whether the secret's digest equals `stored`, in constant time.
    pub(crate) fn matches(&self, stored: &[u8]) -> bool {
        bool::from(self.secret_digest().as_slice().ct_eq(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_credentials_round_trip_and_hide_their_secret() {
        let key = Credential::generate(CredentialKind::ApiKey).unwrap_or_else(|e| panic!("{e}"));
        let text = key.expose();
        assert!(text.starts_with(&format!("vk_{}_", key.id)), "{text}");
        assert_eq!(text.len(), 3 + ID_HEX + 1 + SECRET_HEX);
        let parsed = Credential::parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed, key);
        assert!(parsed.matches(&key.secret_digest()));
        assert!(!format!("{parsed:?}").contains(&key.secret));
    }

    #[test]
    fn malformed_bearer_strings_are_unauthenticated() {
        let good = Credential::generate(CredentialKind::Session)
            .unwrap_or_else(|e| panic!("{e}"))
            .expose();
        for bad in [
            "",
            "vs",
            "vx_0123456789ab_00",
            &good[..good.len() - 1],
            &good.replace("vs_", "vk__"),
            &good.to_uppercase(),
        ] {
            assert!(
                matches!(Credential::parse(bad), Err(Error::Unauthenticated)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_different_secret_does_not_match() {
        let a = Credential::generate(CredentialKind::ApiKey).unwrap_or_else(|e| panic!("{e}"));
        let b = Credential::generate(CredentialKind::ApiKey).unwrap_or_else(|e| panic!("{e}"));
        assert!(!a.matches(&b.secret_digest()));
    }
}
