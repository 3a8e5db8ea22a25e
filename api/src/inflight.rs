//! Caps on bodies being received at once, per process and per user: chunk
//! bodies (each holds up to two store pieces in memory) and single-request
//! uploads (each spools to a temp file). A client that opens many and stalls
//! must not make the process hold more than its budget, and a few accounts
//! must not take every slot from everyone else.

use shared::ErrorCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one kind of body, shared by every request of this process.
pub struct BodySlots {
    process: Arc<Semaphore>,
    /// Semaphores of users with chunks in flight (dropped when idle); a
    /// std Mutex because it is held for a map lookup only, never across an await.
    users: Mutex<HashMap<i64, Arc<Semaphore>>>,
    per_user: usize,
    capacity: usize,
    /// The 429's code, and what the slots are for (in its message).
    code: ErrorCode,
    what: &'static str,
}

/// One body's right to be received; frees its slots when dropped.
pub struct BodySlot {
    slots: Arc<BodySlots>,
    user: i64,
    user_permit: Option<OwnedSemaphorePermit>,
    _process: OwnedSemaphorePermit,
}

impl BodySlots {
    /// Chunk bodies: `process` at once in all, `per_user` for any one user;
    /// past them, 429 `TOO_MANY_CHUNKS`.
    pub fn chunks(process: usize, per_user: usize) -> Arc<Self> {
        Self::new(process, per_user, ErrorCode::TooManyChunks, "chunks")
    }

    /// Single-request uploads: `process` at once in all, `per_user` for any
    /// one user; past them, 429 `TOO_MANY_REQUESTS`.
    pub fn single_uploads(process: usize, per_user: usize) -> Arc<Self> {
        Self::new(process, per_user, ErrorCode::TooManyRequests, "single-request uploads")
    }

    fn new(process: usize, per_user: usize, code: ErrorCode, what: &'static str) -> Arc<Self> {
        Arc::new(BodySlots {
            process: Arc::new(Semaphore::new(process.max(1))),
            users: Mutex::new(HashMap::new()),
            per_user: per_user.max(1),
            capacity: process.max(1),
            code,
            what,
        })
    }

    /// Bodies this process is receiving now (for chunks, the `/metrics`
    /// gauge `pan_chunks_in_flight`; a slot is held until the chunk is
    /// recorded).
    pub fn in_flight(&self) -> usize {
        self.capacity - self.process.available_permits()
    }

    /// A slot for one more of `user`'s bodies, or a 429 at once (never a
    /// wait: a stalled client must not queue others behind it).
    pub fn try_take(self: &Arc<Self>, user: i64) -> shared::Result<BodySlot> {
        let too_many = |whose: &str| shared::Error::TooMany {
            code: self.code,
            message: format!("too many {} are being received at once {whose}; retry shortly", self.what),
            retry_after: 1,
        };
        let user_sem = {
            let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
            users.entry(user).or_insert_with(|| Arc::new(Semaphore::new(self.per_user))).clone()
        };
        let user_permit = user_sem.try_acquire_owned().map_err(|_| too_many("for you"))?;
        let process = self.process.clone().try_acquire_owned().map_err(|_| too_many("on this server"))?;
        Ok(BodySlot { slots: self.clone(), user, user_permit: Some(user_permit), _process: process })
    }
}

impl Drop for BodySlot {
    fn drop(&mut self) {
        drop(self.user_permit.take());
        let mut users = self.slots.users.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map holds it (no permit, no request between lookup and
        // acquire): forgetting it cannot split the user across two semaphores.
        if users.get(&self.user).is_some_and(|s| Arc::strong_count(s) == 1) {
            users.remove(&self.user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_each_user_and_the_process_and_come_back_when_dropped() {
        let slots = BodySlots::chunks(3, 2);
        let a1 = slots.try_take(1).unwrap();
        let _a2 = slots.try_take(1).unwrap();
        assert!(slots.try_take(1).is_err(), "user 1 is at 2");
        let _b1 = slots.try_take(2).unwrap();
        assert!(slots.try_take(3).is_err(), "the process is at 3");
        assert_eq!(slots.in_flight(), 3);
        drop(a1);
        assert!(slots.try_take(3).is_ok(), "a dropped slot frees both caps");
        drop(_b1);
        assert!(!slots.users.lock().unwrap().contains_key(&2), "idle users are forgotten");
    }
}
