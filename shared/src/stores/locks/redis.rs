//! WebDAV locks in Redis: one hash per user, `<prefix>davlocks:<user>`,
//! field = token, value = `expires\ninfinite\nexclusive\npath\nowner`
//! (names hold no control characters, so the path ends at its newline).
//! Taking a lock is one Lua script: expired locks go, the conflict check
//! and the insert are one step for every api process.

use std::sync::LazyLock;

use crate::stores::connection::RedisCon;
use async_trait::async_trait;
use redis::Script;

use super::{Acquired, DavLock, LockStore};
use crate::domain::error::Result;

/// Seconds a user's hash outlives its last change (locks last at most an hour).
const KEY_TTL: i64 = 7200;

/// KEYS: the user's hash. ARGV: now, token, value, path, infinite, exclusive,
/// max, ttl. Returns 0 taken, 1 conflict, 2 too many.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local function below(p, anc)
            if anc == "/" then return p ~= "/" end
            return string.sub(p, 1, #anc + 1) == anc .. "/"
        end
        local function covers(lp, linf, p) return lp == p or (linf and below(p, lp)) end
        local now = tonumber(ARGV[1])
        local npath, ninf, nexc = ARGV[4], ARGV[5] == "1", ARGV[6] == "1"
        local all = redis.call('HGETALL', KEYS[1])
        local n = 0
        for i = 1, #all, 2 do
            local v = all[i + 1]
            local a = string.find(v, "\n", 1, true)
            local b = string.find(v, "\n", a + 1, true)
            local c = string.find(v, "\n", b + 1, true)
            local d = string.find(v, "\n", c + 1, true)
            local exp = tonumber(string.sub(v, 1, a - 1))
            local inf = string.sub(v, a + 1, b - 1) == "1"
            local exc = string.sub(v, b + 1, c - 1) == "1"
            local path = string.sub(v, c + 1, d - 1)
            if exp <= now then
                redis.call('HDEL', KEYS[1], all[i])
            else
                n = n + 1
                if (exc or nexc) and (covers(path, inf, npath) or covers(npath, ninf, path)) then return 1 end
            end
        end
        if n >= tonumber(ARGV[7]) then return 2 end
        redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
        redis.call('EXPIRE', KEYS[1], ARGV[8])
        return 0
        "#,
    )
});

/// KEYS: the user's hash. ARGV: token, new expiry, now, ttl. Returns the new
/// value, or false when there is no live lock of that token.
static REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
        local v = redis.call('HGET', KEYS[1], ARGV[1])
        if not v then return false end
        local a = string.find(v, "\n", 1, true)
        if tonumber(string.sub(v, 1, a - 1)) <= tonumber(ARGV[3]) then
            redis.call('HDEL', KEYS[1], ARGV[1])
            return false
        end
        local nv = ARGV[2] .. string.sub(v, a)
        redis.call('HSET', KEYS[1], ARGV[1], nv)
        redis.call('EXPIRE', KEYS[1], ARGV[4])
        return nv
        "#,
    )
});

/// Locks every process on one Redis shares.
pub struct RedisLocks {
    con: RedisCon,
    prefix: String,
}

impl RedisLocks {
    /// Locks under `prefix` on `con`.
    pub fn new(con: RedisCon, prefix: &str) -> Self {
        RedisLocks { con, prefix: prefix.to_owned() }
    }

    fn key(&self, user_id: i64) -> String {
        format!("{}davlocks:{user_id}", self.prefix)
    }
}

fn encode(l: &DavLock) -> String {
    format!("{}\n{}\n{}\n{}\n{}", l.expires_at, l.infinite as u8, l.exclusive as u8, l.path, l.owner)
}

fn decode(user_id: i64, token: String, v: &str) -> Option<DavLock> {
    let mut parts = v.splitn(5, '\n');
    let expires_at = parts.next()?.parse().ok()?;
    let infinite = parts.next()? == "1";
    let exclusive = parts.next()? == "1";
    let path = parts.next()?.to_owned();
    let owner = parts.next().unwrap_or("").to_owned();
    Some(DavLock { token, user_id, path, infinite, exclusive, owner, expires_at })
}

#[async_trait]
impl LockStore for RedisLocks {
    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<DavLock>> {
        let mut con = self.con.clone();
        let all: Vec<(String, String)> = redis::cmd("HGETALL").arg(self.key(user_id)).query_async(&mut con).await?;
        Ok(all.into_iter().filter_map(|(token, v)| decode(user_id, token, &v)).filter(|l| l.expires_at > now).collect())
    }

    async fn acquire(&self, lock: &DavLock, now: i64, max_per_user: usize) -> Result<Acquired> {
        let mut con = self.con.clone();
        let got: i64 = ACQUIRE
            .key(self.key(lock.user_id))
            .arg(now)
            .arg(&lock.token)
            .arg(encode(lock))
            .arg(&lock.path)
            .arg(lock.infinite as u8)
            .arg(lock.exclusive as u8)
            .arg(max_per_user)
            .arg(KEY_TTL)
            .invoke_async(&mut con)
            .await?;
        Ok(match got {
            0 => Acquired::Taken,
            1 => Acquired::Conflict,
            _ => Acquired::TooMany,
        })
    }

    async fn refresh(&self, user_id: i64, token: &str, expires_at: i64, now: i64) -> Result<Option<DavLock>> {
        let mut con = self.con.clone();
        let got: Option<String> = REFRESH
            .key(self.key(user_id))
            .arg(token)
            .arg(expires_at)
            .arg(now)
            .arg(KEY_TTL)
            .invoke_async(&mut con)
            .await?;
        Ok(got.and_then(|v| decode(user_id, token.to_owned(), &v)))
    }

    async fn release(&self, user_id: i64, token: &str) -> Result<bool> {
        let mut con = self.con.clone();
        let n: i64 = redis::cmd("HDEL").arg(self.key(user_id)).arg(token).query_async(&mut con).await?;
        Ok(n > 0)
    }
}
