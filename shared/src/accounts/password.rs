//! Password hashing: Argon2id PHC strings, computed off the async runtime
//! on a bounded pool, so a burst of signins queues instead of eating memory.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::domain::error::{Error, Result, ResultExt};

/// Most password hashes waiting for a slot; past this, [`Error::Busy`].
const HASH_QUEUE: usize = 64;

/// Argon2id with the crate's defaults (19 MiB, 2 passes): memory-hard.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

/// A hash of a random password nobody knows, verified when the user does not
/// exist so that "unknown user" costs as much time as "wrong password".
pub(crate) static DECOY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password(&crate::random_hex(16)).unwrap_or_default());

/// Argon2id PHC string of `password` with a fresh 128-bit salt.
pub(crate) fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| Error::internal("making a password salt", e.to_string()))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal("hashing a password", e.to_string()))
}

/// Whether `password` matches an Argon2id PHC string.
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon2().verify_password(password.as_bytes(), &h).is_ok())
}

/// The slots password hashes run in: at most two per core at once (each
/// takes 19 MiB), and at most [`HASH_QUEUE`] waiting, so a flood gets
/// [`Error::Busy`] at once instead of piling up requests without end.
/// One per process, owned by the use cases that hash.
#[derive(Clone)]
pub struct HashingPool {
    slots: Arc<tokio::sync::Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Default for HashingPool {
    fn default() -> Self {
        let slots = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        HashingPool { slots: Arc::new(tokio::sync::Semaphore::new(slots)), waiting: Default::default() }
    }
}

impl HashingPool {
    /// Hashes `password` in a slot.
    pub(crate) async fn hash(&self, password: String) -> Result<String> {
        self.run(move || hash_password(&password)).await?
    }

    /// Verifies `password` against `hash` in a slot.
    pub(crate) async fn verify(&self, password: String, hash: String) -> Result<bool> {
        self.run(move || verify_password(&password, &hash)).await
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        /// Counts a waiter for as long as it lives (also when its request is dropped).
        struct Waiting(Arc<AtomicUsize>);
        impl Drop for Waiting {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= HASH_QUEUE {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(Error::Busy { message: "too many signins at once; retry shortly".into(), retry_after: 1 });
        }
        let waiting = Waiting(self.waiting.clone());
        let _permit = self.slots.acquire().await.context("password hashing slots")?;
        drop(waiting);
        tokio::task::spawn_blocking(f).await.context("password hashing task")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a phc string"));
    }
}
