//! Caps on bodies being received at once, per process and per user: chunk
//! bodies (each holds up to two store pieces in memory) and single-request
//! uploads (each spools to a temp file). A client that opens many and stalls
//! must not make the process hold more than its budget, and a few accounts
//! must not take every slot from everyone else. The process's cap bounds
//! this process's memory, so it is counted here; a user's cap is counted by
//! `shared`'s [`UserSlots`], for every api process together on the fleet.

use std::sync::Arc;

use shared::ErrorCode;
use shared::accounts::limits::{SlotOwner, UserSlot, UserSlots};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The slots of one kind of body, shared by every request of this process.
pub struct BodySlots {
    process: Arc<Semaphore>,
    users: UserSlots,
    capacity: usize,
    /// The 429's code, and what the slots are for (in its message).
    code: ErrorCode,
    what: &'static str,
}

/// One body's right to be received; frees its slots by
/// [`BodySlot::release`] (before the answer), or when dropped.
pub struct BodySlot {
    user: UserSlot,
    _process: OwnedSemaphorePermit,
}

impl BodySlot {
    /// Frees the slots now: call it before answering, so the client's next
    /// request finds them free.
    pub async fn release(self) {
        self.user.release().await;
    }
}

impl BodySlots {
    /// Chunk bodies: `process` at once in this process, `users`' cap for any
    /// one user; past them, 429 `TOO_MANY_CHUNKS`.
    pub fn chunks(process: usize, users: UserSlots) -> Arc<Self> {
        Self::new(process, users, ErrorCode::TooManyChunks, "chunks")
    }

    /// Single-request uploads: `process` at once in this process, `users`'
    /// cap for any one user; past them, 429 `TOO_MANY_REQUESTS`.
    pub fn single_uploads(process: usize, users: UserSlots) -> Arc<Self> {
        Self::new(process, users, ErrorCode::TooManyRequests, "single-request uploads")
    }

    fn new(process: usize, users: UserSlots, code: ErrorCode, what: &'static str) -> Arc<Self> {
        Arc::new(BodySlots {
            process: Arc::new(Semaphore::new(process.max(1))),
            users,
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
    pub async fn try_take(self: &Arc<Self>, owner: SlotOwner<'_>) -> shared::Result<BodySlot> {
        let too_many = |whose: &str| shared::Error::TooMany {
            code: self.code,
            message: format!("too many {} are being received at once {whose}; retry shortly", self.what),
            retry_after: 1,
        };
        let process = self.process.clone().try_acquire_owned().map_err(|_| too_many("on this server"))?;
        let user = self.users.take(owner).await?.ok_or_else(|| too_many("for you"))?;
        Ok(BodySlot { user, _process: process })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Past the process's cap or a user's, a body gets 429 at once; a
    /// dropped slot frees the process's cap at once.
    #[tokio::test]
    async fn slots_cap_each_user_and_the_process() {
        let slots = BodySlots::chunks(3, UserSlots::local("chunks", 2));
        let a1 = slots.try_take(SlotOwner::User(1)).await.unwrap();
        let _a2 = slots.try_take(SlotOwner::User(1)).await.unwrap();
        let Err(shared::Error::TooMany { code, .. }) = slots.try_take(SlotOwner::User(1)).await else {
            panic!("user 1 is at 2")
        };
        assert_eq!(code, ErrorCode::TooManyChunks);
        let _b1 = slots.try_take(SlotOwner::User(2)).await.unwrap();
        assert!(slots.try_take(SlotOwner::User(3)).await.is_err(), "the process is at 3");
        assert_eq!(slots.in_flight(), 3);
        drop(a1);
        assert_eq!(slots.in_flight(), 2);
        assert!(slots.try_take(SlotOwner::User(3)).await.is_ok(), "a dropped slot frees the process's cap");
    }
}
