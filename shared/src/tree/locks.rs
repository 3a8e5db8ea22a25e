//! The WebDAV lock use cases: take, refresh and release a lock on a path
//! of the caller's tree, and find the lock that blocks a write. Locks are
//! per user and path and live at most [`MAX_TIMEOUT`] seconds.

use std::sync::Arc;

use crate::domain::User;
use crate::domain::error::Result;
use crate::stores::locks::LockStore;
pub use crate::stores::locks::{Acquired, DavLock, is_below};

/// The longest a lock lives before it is refreshed (Windows asks for Infinite).
pub const MAX_TIMEOUT: i64 = 3600;
/// The most locks one user holds at once.
pub const MAX_LOCKS_PER_USER: usize = 1000;

/// What a new lock is.
#[derive(Debug, Clone)]
pub struct NewLock {
    /// The path, as the tree names it.
    pub path: String,
    /// Depth infinity.
    pub infinite: bool,
    /// Exclusive (else shared).
    pub exclusive: bool,
    /// The client's `owner`, as XML content.
    pub owner: String,
    /// Seconds asked for (capped at [`MAX_TIMEOUT`]).
    pub timeout: i64,
}

/// The lock use cases of one installation.
#[derive(Clone)]
pub struct Locks {
    pub(crate) store: Arc<dyn LockStore>,
}

impl Locks {
    /// Takes a lock: the lock, or what prevented it.
    pub async fn lock(&self, user: &User, new: NewLock) -> Result<std::result::Result<DavLock, Acquired>> {
        let now = crate::now();
        let lock = DavLock {
            token: format!("opaquelocktoken:{}", uuid_like()),
            user_id: user.id,
            path: new.path,
            infinite: new.infinite,
            exclusive: new.exclusive,
            owner: new.owner,
            expires_at: now + new.timeout.clamp(1, MAX_TIMEOUT),
        };
        match self.store.acquire(&lock, now, MAX_LOCKS_PER_USER).await? {
            Acquired::Taken => Ok(Ok(lock)),
            other => Ok(Err(other)),
        }
    }

    /// Gives the caller's lock `token` another `timeout` seconds (capped).
    pub async fn refresh(&self, user: &User, token: &str, timeout: i64) -> Result<Option<DavLock>> {
        let now = crate::now();
        self.store.refresh(user.id, token, now + timeout.clamp(1, MAX_TIMEOUT), now).await
    }

    /// Releases the caller's lock `token`; false when there was none.
    pub async fn unlock(&self, user: &User, token: &str) -> Result<bool> {
        self.store.release(user.id, token).await
    }

    /// The caller's live locks, their paths with each name in NFC (as
    /// WebDAV compares them; a lock stored before that keeps its bytes).
    pub async fn list(&self, user: &User) -> Result<Vec<DavLock>> {
        let mut locks = self.store.list(user.id, crate::now()).await?;
        for l in &mut locks {
            if !l.path.is_ascii() {
                l.path = l.path.split('/').map(crate::domain::name_key).collect::<Vec<_>>().join("/");
            }
        }
        Ok(locks)
    }

    /// Drops the caller's locks on `path` and under it (it was deleted or
    /// moved away).
    pub async fn drop_under(&self, user: &User, path: &str) -> Result<()> {
        for l in self.list(user).await? {
            if l.path == path || is_below(&l.path, path) {
                self.store.release(user.id, &l.token).await?;
            }
        }
        Ok(())
    }
}

/// 128 random bits in the 8-4-4-4-12 form of a UUID.
fn uuid_like() -> String {
    let h = crate::random_hex(16);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
