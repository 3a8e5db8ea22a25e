//! Rate buckets: GCRA limits of N a minute per key, shared by whoever
//! shares the store. In the process for the embedded deployment; in Redis
//! for the fleet, so that every api process draws from the same bucket
//! (a limit of N allows N in all, not N per process).
//!
//! A bucket of `per_minute` lets a key spend N at once, then gives one back
//! every 60/N s. Its state is one instant per key, the theoretical arrival
//! time (TAT): when the bucket is full again. A key whose TAT is past is
//! the same as one never seen, so it is dropped.

pub mod redis;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::domain::error::Result;

/// The window a bucket's burst spans.
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often the in-process buckets drop keys that are full again.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Rate buckets, keyed by strings the caller makes (kind and client).
#[async_trait]
pub trait RateBuckets: Send + Sync {
    /// Takes a cell from `key`'s bucket of `per_minute` a minute (not 0):
    /// `Ok(Ok(()))`, or `Ok(Err(wait))` with the time until one is back.
    async fn take(&self, key: &str, per_minute: u32) -> Result<std::result::Result<(), Duration>>;

    /// Gives back a cell [`RateBuckets::take`] took from `key`'s bucket.
    async fn give_back(&self, key: &str, per_minute: u32) -> Result<()>;
}

/// One cell's interval for a limit of `per_minute`: at least a millisecond
/// (Redis counts in them), so limits past 60,000 a minute are 60,000.
fn interval(per_minute: u32) -> Duration {
    (WINDOW / per_minute.max(1)).max(Duration::from_millis(1))
}

/// The buckets of one process.
pub struct MemoryBuckets {
    /// Per key, its TAT. A `std` mutex: held for a map lookup, never across an await.
    tats: Mutex<(HashMap<String, Instant>, Instant)>,
}

impl Default for MemoryBuckets {
    fn default() -> Self {
        MemoryBuckets { tats: Mutex::new((HashMap::new(), Instant::now())) }
    }
}

impl MemoryBuckets {
    /// How many keys are held (for tests: full buckets are dropped).
    pub fn len(&self) -> usize {
        self.tats.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl RateBuckets for MemoryBuckets {
    async fn take(&self, key: &str, per_minute: u32) -> Result<std::result::Result<(), Duration>> {
        let now = Instant::now();
        let mut guard = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        let (tats, swept) = &mut *guard;
        // The map holds only keys seen within about the last minute or two.
        if swept.elapsed() >= SWEEP_EVERY {
            tats.retain(|_, tat| *tat > now);
            tats.shrink_to_fit();
            *swept = now;
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let next = tat + interval(per_minute);
        let limit = now + WINDOW;
        if next > limit {
            return Ok(Err(next - limit));
        }
        tats.insert(key.to_owned(), next);
        Ok(Ok(()))
    }

    async fn give_back(&self, key: &str, per_minute: u32) -> Result<()> {
        let mut guard = self.tats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = guard.0.get_mut(key) {
            *tat = tat.checked_sub(interval(per_minute)).unwrap_or(*tat);
        }
        Ok(())
    }
}

/// Slots: at most N holders of a key at once (a user's bodies being
/// received), each held for a time unless renewed, so a process that dies
/// holding one frees it when that time runs out.
#[async_trait]
pub trait SlotTable: Send + Sync {
    /// Takes one of `limit` slots of `key` for `holder` for `ttl`: false
    /// when all are held.
    async fn take_slot(&self, key: &str, holder: &str, limit: u32, ttl: Duration) -> Result<bool>;

    /// Holds `holder`'s slot of `key` for `ttl` more (nothing if it is gone).
    async fn renew_slot(&self, key: &str, holder: &str, ttl: Duration) -> Result<()>;

    /// Gives `holder`'s slot of `key` back.
    async fn give_slot_back(&self, key: &str, holder: &str) -> Result<()>;
}

/// The slots of one process.
#[derive(Default)]
pub struct MemorySlots {
    /// Per key, its holders and when each slot runs out. A `std` mutex: held
    /// for a map lookup, never across an await.
    held: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

#[async_trait]
impl SlotTable for MemorySlots {
    async fn take_slot(&self, key: &str, holder: &str, limit: u32, ttl: Duration) -> Result<bool> {
        let now = Instant::now();
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let holders = held.entry(key.to_owned()).or_default();
        holders.retain(|_, until| *until > now);
        if holders.len() >= limit as usize {
            return Ok(false);
        }
        holders.insert(holder.to_owned(), now + ttl);
        Ok(true)
    }

    async fn renew_slot(&self, key: &str, holder: &str, ttl: Duration) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(until) = held.get_mut(key).and_then(|h| h.get_mut(holder)) {
            *until = Instant::now() + ttl;
        }
        Ok(())
    }

    async fn give_slot_back(&self, key: &str, holder: &str) -> Result<()> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(holders) = held.get_mut(key) {
            holders.remove(holder);
            // A key with no holder is forgotten: the map holds busy users only.
            if holders.is_empty() {
                held.remove(key);
            }
        }
        Ok(())
    }
}

impl MemorySlots {
    /// How many keys have holders (for tests).
    pub fn keys(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
