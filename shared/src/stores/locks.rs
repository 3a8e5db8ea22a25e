//! WebDAV locks: per (user, path), shared by every api process, so a lock
//! taken through one process blocks a write through another. In the SQL
//! database on the embedded deployment (`dav_locks`, see
//! `stores::meta::locks`), in Redis on the fleet ([`redis`]). Locks are
//! per user: one never blocks, or shows anything to, another user.
//!
//! A store that fails makes the caller fail (the error propagates), never
//! answer "unlocked".

pub mod redis;

use async_trait::async_trait;

use crate::domain::error::Result;

/// One WebDAV lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavLock {
    /// Its token (`opaquelocktoken:…`), unguessable.
    pub token: String,
    /// Whose it is.
    pub user_id: i64,
    /// The path it locks, as the tree names it (`/a/b`; `/` for the root).
    pub path: String,
    /// Depth infinity: everything below the path too.
    pub infinite: bool,
    /// Exclusive (else shared).
    pub exclusive: bool,
    /// The client's `owner` element, as XML content.
    pub owner: String,
    /// When it lapses (Unix seconds).
    pub expires_at: i64,
}

/// Whether `path` lies strictly below `ancestor`.
pub fn is_below(path: &str, ancestor: &str) -> bool {
    if ancestor == "/" {
        return path != "/";
    }
    path.len() > ancestor.len() && path.starts_with(ancestor) && path.as_bytes()[ancestor.len()] == b'/'
}

impl DavLock {
    /// Whether the lock covers `path` (its own, or below it at depth infinity).
    pub fn covers(&self, path: &str) -> bool {
        self.path == path || (self.infinite && is_below(path, &self.path))
    }

    /// Whether this lock and `other` cannot both be held.
    pub fn conflicts(&self, other: &DavLock) -> bool {
        (self.exclusive || other.exclusive) && (self.covers(&other.path) || other.covers(&self.path))
    }
}

/// What taking a lock led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The lock is held.
    Taken,
    /// Another live lock of the user conflicts with it.
    Conflict,
    /// The user holds the most locks allowed.
    TooMany,
}

/// Where locks are kept.
#[async_trait]
pub trait LockStore: Send + Sync {
    /// The user's live locks at `now`.
    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<DavLock>>;
    /// Takes `lock` unless a live lock of its user conflicts, or the user
    /// holds `max_per_user` already: checked and taken in one step.
    async fn acquire(&self, lock: &DavLock, now: i64, max_per_user: usize) -> Result<Acquired>;
    /// Moves a live lock's expiry; `None` when there is no such live lock.
    async fn refresh(&self, user_id: i64, token: &str, expires_at: i64, now: i64) -> Result<Option<DavLock>>;
    /// Drops a lock; false when there was none.
    async fn release(&self, user_id: i64, token: &str) -> Result<bool>;
}

/// The check both implementations make: whether `new` may be taken among
/// the `live` locks of its user.
pub fn admit(new: &DavLock, live: &[DavLock], max_per_user: usize) -> Acquired {
    if live.iter().any(|l| l.conflicts(new)) {
        Acquired::Conflict
    } else if live.len() >= max_per_user {
        Acquired::TooMany
    } else {
        Acquired::Taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(path: &str, infinite: bool, exclusive: bool) -> DavLock {
        DavLock {
            token: "t".into(),
            user_id: 1,
            path: path.into(),
            infinite,
            exclusive,
            owner: String::new(),
            expires_at: 0,
        }
    }

    #[test]
    fn locks_cover_their_path_and_below_at_infinity() {
        assert!(is_below("/a/b", "/a") && is_below("/a", "/") && !is_below("/ab", "/a") && !is_below("/a", "/a"));
        assert!(lock("/a", true, true).covers("/a/b/c") && !lock("/a", false, true).covers("/a/b"));
        assert!(lock("/a", true, true).conflicts(&lock("/a/b", false, false)));
        assert!(!lock("/a", true, false).conflicts(&lock("/a/b", false, false)), "shared with shared");
        assert!(!lock("/a", false, true).conflicts(&lock("/a/b", false, true)), "depth 0");
    }
}
