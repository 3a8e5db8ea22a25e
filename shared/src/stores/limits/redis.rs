//! Rate buckets in Redis: one key per bucket, `<prefix>rate:<key>`, holding
//! its TAT in milliseconds of the Redis server's clock (every api process
//! reads the same clock) and expiring when the bucket is full again. Take
//! and give-back are Lua scripts: a check and its update are one step.

use std::sync::LazyLock;
use std::time::Duration;

use crate::stores::connection::RedisCon;
use async_trait::async_trait;
use redis::Script;

use super::{RateBuckets, WINDOW, interval};
use crate::domain::error::Result;

/// KEYS: the bucket. ARGV: interval (ms), window (ms). Returns 0 when a
/// cell was taken, else the milliseconds until one is back.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local tat = tonumber(redis.call('GET', KEYS[1]) or now)
        if tat < now then tat = now end
        local nxt = tat + tonumber(ARGV[1])
        local limit = now + tonumber(ARGV[2])
        if nxt > limit then return nxt - limit end
        redis.call('SET', KEYS[1], nxt, 'PX', nxt - now)
        return 0
        ",
    )
});

/// KEYS: the bucket. ARGV: interval (ms). Moves its TAT back one cell.
static GIVE_BACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local tat = tonumber(redis.call('GET', KEYS[1]))
        if not tat then return 0 end
        tat = tat - tonumber(ARGV[1])
        if tat > now then
            redis.call('SET', KEYS[1], tat, 'PX', tat - now)
        else
            redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    )
});

/// Rate buckets every process on one Redis shares.
pub struct RedisBuckets {
    con: RedisCon,
    prefix: String,
}

impl RedisBuckets {
    /// Buckets under `prefix` on `con`.
    pub fn new(con: RedisCon, prefix: &str) -> Self {
        RedisBuckets { con, prefix: format!("{prefix}rate:") }
    }
}

#[async_trait]
impl RateBuckets for RedisBuckets {
    async fn take(&self, key: &str, per_minute: u32) -> Result<std::result::Result<(), Duration>> {
        let mut con = self.con.clone();
        let wait_ms: i64 = TAKE
            .key(format!("{}{key}", self.prefix))
            .arg(interval(per_minute).as_millis() as i64)
            .arg(WINDOW.as_millis() as i64)
            .invoke_async(&mut con)
            .await?;
        Ok(if wait_ms > 0 { Err(Duration::from_millis(wait_ms as u64)) } else { Ok(()) })
    }

    async fn give_back(&self, key: &str, per_minute: u32) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = GIVE_BACK
            .key(format!("{}{key}", self.prefix))
            .arg(interval(per_minute).as_millis() as i64)
            .invoke_async(&mut con)
            .await?;
        Ok(())
    }
}

/// KEYS: the slot set (holder → when its slot runs out, ms). ARGV: holder,
/// limit, ttl (ms). Returns 1 when a slot was taken.
static TAKE_SLOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
        redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
        redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
        return 1
        ",
    )
});

/// KEYS: the slot set. ARGV: holder, ttl (ms). Renews the holder's slot if it has one.
static RENEW_SLOT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        if redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1]) == 1 then
            local ttl = redis.call('PTTL', KEYS[1])
            if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2])) end
        end
        return 0
        ",
    )
});

/// Slots every process on one Redis shares: a sorted set per key,
/// `<prefix>slots:<key>`, of holders scored by when their slot runs out (on
/// the Redis server's clock); the set expires with its last slot.
pub struct RedisSlots {
    con: RedisCon,
    prefix: String,
}

impl RedisSlots {
    /// Slots under `prefix` on `con`.
    pub fn new(con: RedisCon, prefix: &str) -> Self {
        RedisSlots { con, prefix: format!("{prefix}slots:") }
    }
}

#[async_trait]
impl super::SlotTable for RedisSlots {
    async fn take_slot(&self, key: &str, holder: &str, limit: u32, ttl: Duration) -> Result<bool> {
        let mut con = self.con.clone();
        let taken: i64 = TAKE_SLOT
            .key(format!("{}{key}", self.prefix))
            .arg(holder)
            .arg(limit)
            .arg(ttl.as_millis() as i64)
            .invoke_async(&mut con)
            .await?;
        Ok(taken == 1)
    }

    async fn renew_slot(&self, key: &str, holder: &str, ttl: Duration) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = RENEW_SLOT
            .key(format!("{}{key}", self.prefix))
            .arg(holder)
            .arg(ttl.as_millis() as i64)
            .invoke_async(&mut con)
            .await?;
        Ok(())
    }

    async fn give_slot_back(&self, key: &str, holder: &str) -> Result<()> {
        use redis::AsyncCommands;
        let mut con = self.con.clone();
        let _: i64 = con.zrem(format!("{}{key}", self.prefix), holder).await?;
        Ok(())
    }
}
