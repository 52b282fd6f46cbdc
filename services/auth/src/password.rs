//! Password hashing with argon2id at OWASP's recommended minimum (19 MiB of memory, 2 passes,
//! 1 lane), stored as PHC strings so that the parameters travel with each hash.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::{Error, Result};

/// Shortest password accepted (NIST SP 800-63B asks for at least 8; we ask for 12).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// OWASP Password Storage Cheat Sheet: argon2id, m = 19456 KiB, t = 2, p = 1.
fn hasher() -> Result<Argon2<'static>> {
    let params = Params::new(19_456, 2, 1, None)
        .map_err(|err| Error::Invalid(format!("argon2 parameters: {err}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes `password` with a fresh random salt; refuses passwords that are too short.
pub fn hash_password(password: &str) -> Result<String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Error::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|err| Error::Random(err.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|err| Error::Random(err.to_string()))?;
    hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| Error::Invalid(format!("hashing failed: {err}")))
}

/// A random password of 24 hex digits (96 bits), for accounts whose password is printed once.
pub fn generate_password() -> Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|err| Error::Random(err.to_string()))?;
    Ok(hex::encode(bytes))
}

/// Checks `password` against a stored PHC string (argon2 compares in constant time).
/// A malformed stored hash verifies nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(argon2) = hasher() else {
        return false;
    };
    argon2.verify_password(password.as_bytes(), &parsed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_at_owasp_parameters_and_verify() {
        let hash = hash_password("correct horse battery").unwrap_or_default();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
    }

    #[test]
    fn the_same_password_gets_a_different_salt_each_time() {
        let a = hash_password("correct horse battery").unwrap_or_default();
        let b = hash_password("correct horse battery").unwrap_or_default();
        assert_ne!(a, b);
    }

    #[test]
    fn short_passwords_are_refused() {
        let err = hash_password("short").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("a password needs at least 12 characters")
        );
    }
}
