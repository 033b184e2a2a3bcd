//! SCRAM-SHA-256 secrets as Postgres stores them in `pg_authid.rolpassword`
//! (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802 /
//! 7677).
//!
//! datatier sets role passwords by sending a secret it computed itself, so
//! the plain password never appears in a statement (and so never in a server
//! log), and it checks a role's password by recomputing the secret with the
//! stored salt. PgBouncer's auth file gets the very same secret: with
//! identical secrets PgBouncer can log in to Postgres on the client's behalf
//! (SCRAM pass-through) without ever knowing the password.
//!
//! Passwords are used as UTF-8 bytes. Postgres runs SASLprep first, which
//! leaves ASCII unchanged; generated passwords are ASCII.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// What Postgres uses by default (`scram_iterations` in 16+).
pub const ITERATIONS: u32 = 4096;

/// A parsed secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramSecret {
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("SCRAM-SHA-256$")?;
        let (iter_salt, keys) = rest.split_once('$')?;
        let (iter, salt) = iter_salt.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramSecret {
            iterations: iter.parse().ok().filter(|i| *i > 0)?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?,
            server_key: B64.decode(server).ok()?,
        })
    }

    /// The secret for `password` with a given salt and iteration count.
    pub fn compute(password: &str, salt: &[u8], iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(client_key).to_vec();
        let server_key = hmac(&salted, b"Server Key");
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key,
            server_key,
        }
    }

    /// A new secret for `password` with a random 16-byte salt.
    pub fn generate(password: &str) -> Self {
        let salt: [u8; 16] = rand::random();
        Self::compute(password, &salt, ITERATIONS)
    }

    /// Does `password` produce this secret?
    pub fn verifies(&self, password: &str) -> bool {
        let other = Self::compute(password, &self.salt, self.iterations);
        // Not secret-dependent timing that matters here (both sides are
        // ours), but compare in full anyway.
        other
            .stored_key
            .iter()
            .zip(&self.stored_key)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
            && other.stored_key.len() == self.stored_key.len()
            && other.server_key == self.server_key
    }
}

impl std::fmt::Display for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(&self.stored_key),
            B64.encode(&self.server_key)
        )
    }
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().to_vec()
}

/// Does the stored `rolpassword` value verify `password`? `false` for
/// md5 or plain values (datatier then sets a SCRAM secret).
pub fn verifies(rolpassword: &str, password: &str) -> bool {
    ScramSecret::parse(rolpassword).is_some_and(|s| s.verifies(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made by PostgreSQL 15 for `CREATE ROLE app PASSWORD 'apppw'`.
    const FROM_POSTGRES: &str = "SCRAM-SHA-256$4096:4P6o8a3sI08LYAECkH+SKg==$L0KmpFKEcrwESBOuMDp/TtPagtls81NRb2aOu2mJQ1E=:Gmgvsi44COjy/4uqL+efjAA6HypDWgiko5g1MAbPhU4=";

    #[test]
    fn verifies_a_secret_made_by_postgres() {
        assert!(verifies(FROM_POSTGRES, "apppw"));
        assert!(!verifies(FROM_POSTGRES, "apppw2"));
        assert!(!verifies("md5abcdef", "apppw"));
        let s = ScramSecret::parse(FROM_POSTGRES).unwrap();
        assert_eq!(s.to_string(), FROM_POSTGRES, "round trip");
        assert_eq!(
            ScramSecret::compute("apppw", &s.salt, 4096).to_string(),
            FROM_POSTGRES
        );
    }

    #[test]
    fn generated_secrets_are_salted() {
        let a = ScramSecret::generate("pw");
        let b = ScramSecret::generate("pw");
        assert_ne!(a, b);
        assert!(a.verifies("pw") && b.verifies("pw"));
        assert!(!a.to_string().contains("pw$"));
    }
}
