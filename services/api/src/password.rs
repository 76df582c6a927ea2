//! Operator passwords: argon2id, stored as PHC strings (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`),
//! so the parameters travel with each hash and can be raised later without a migration.
//!
//! Hashing is CPU-bound by design (tens of milliseconds): callers on the async runtime use
//! [`hash_blocking`] / [`verify_blocking`], which run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;

/// Shortest accepted password.
pub const MIN_PASSWORD_LEN: usize = 12;
/// Longest accepted password (argon2 hashes anything, but a megabyte "password" is abuse).
pub const MAX_PASSWORD_LEN: usize = 1024;

/// Hashes `password` with argon2id (the crate's default parameters, OWASP's minimum: 19 MiB,
/// 2 passes) and a fresh 16-byte salt.
///
/// # Errors
/// Only when argon2 refuses its input (never for passwords within the length bounds).
pub fn hash(password: &str) -> Result<String, String> {
    let mut salt = [0_u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// True when `password` matches the PHC string `hash`. A malformed hash never matches.
#[must_use]
pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// [`hash`] on the blocking pool.
///
/// # Errors
/// When hashing fails or the blocking task panics.
pub async fn hash_blocking(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .map_err(|e| e.to_string())?
}

/// [`verify`] on the blocking pool; `false` if the task fails.
pub async fn verify_blocking(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &hash))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b);
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterz", &a));
        assert!(!verify("correct horse battery", "not a hash"));
        assert!(!verify("", &a));
    }
}
