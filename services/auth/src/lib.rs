//! Who is calling: Vellum's users, their passwords (argon2id), login sessions and API keys,
//! kept in `auth.sqlite` in the data folder, plus login throttling.
//!
//! Secrets are never stored: passwords as argon2id PHC strings at OWASP's parameters, session
//! tokens and API keys (random 256-bit secrets) as SHA-256 digests, compared in constant time.
//! A token reads `vs_<id>_<secret>` and a key `vk_<id>_<secret>`: the public id finds the row
//! (and identifies a key in listings and logs) without revealing the secret. Keys expire
//! ([`DEFAULT_KEY_DAYS`], at most [`MAX_KEY_DAYS`]); a password change ends the user's sessions
//! and revokes their keys.
//!
//! Main types: [`AuthStore`] (the database), [`Principal`] (an authenticated caller),
//! [`Throttle`] (failed-login limits per account and per address).

mod error;
mod password;
mod store;
mod throttle;
mod token;

pub use error::{Error, Result};
pub use password::{generate_password, hash_password, verify_password, MIN_PASSWORD_CHARS};
pub use store::{
    ApiKeyInfo, AuthStore, CreatedKey, LoginSession, NewUser, Principal, UserInfo,
    DEFAULT_KEY_DAYS, DEFAULT_SESSION_SECONDS, MAX_KEY_DAYS,
};
pub use throttle::{Throttle, ThrottleConfig};
pub use token::{Credential, CredentialKind};
