//! Upload sessions in Redis (the fleet deployment).
//!
//! Keys, under the configured prefix `p`; every key of one upload carries
//! the upload's id as its hash tag (`{<id>}`), so on a Redis Cluster they
//! share a slot and every script below touches one slot:
//! - `p:upload:{<id>}`: hash of the session's fields;
//! - `p:upload:{<id>}:segments`: sorted set of the received segments, scored
//!   by their offset, each member `<start>:<len>:<staged object key>`
//!   (segments never overlap; the session's `received` is their sum);
//! - `p:resume:<owner>:<sha1>:<sha256>:<size>`: the id of the owner's unfinished upload
//!   of that content (or `p:resume-fp:<owner>:<size>:<fingerprint>` for an
//!   upload begun without hashes: the client's fingerprint of its file; once
//!   it declares its hashes, the first pointer leads to it as well);
//!   Resume pointers are hints, written and refreshed beside the scripts
//!   (they live in other slots): a lookup checks the session they name;
//! - `p:merging`: sorted set of uploads being merged, scored by their last
//!   heartbeat, so the sweeper finds merges whose job was lost. An id is
//!   added before its session turns `merging` and removed after
//!   it stops; a member whose session is not merging is dropped by the
//!   sweep only. A crash between leaves an extra member, never a merge the
//!   sweep cannot find;
//! - `p:upload:{<id>}:leases`: hash lease name → `<holder> <expiry ms>` (a
//!   segment's bytes being written, the running hash being advanced); the
//!   running hash's progress lives in the session hash (`hashed_to`, in
//!   bytes, and `hash_state`);
//! - `p:upload:{<id>}:challenge`: an open proof-of-possession challenge (its own
//!   short TTL; taken with GETDEL, so it is single use).
//!
//! All carry the upload TTL, refreshed on every segment. Segment
//! marking, leases and `complete` are Lua scripts, so their check and update
//! are one atomic step. Numbers pass into the scripts as strings and are
//! written back as the strings they came as: Lua's numbers are doubles,
//! exact to 2^53 in comparisons but printed with 14 digits.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::stores::connection::RedisCon;
use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::sql::{describe, past_the_size, received_past, size_known};
use super::{Challenges, HashLeases, SegmentMap, Staged, UploadSessions};
use super::{CompleteOutcome, DeclareOutcome, HASH_LEASE, HashProgress, PendingProof, leased_segment};
use crate::domain::error::{Error, Result};
use crate::domain::{
    Author, AuthorKind, FailureCode, FolderId, Segment, Sha1Hex, Sha256Hex, UploadId, UploadSession, UploadState,
};

/// Upload sessions as Redis hashes with a TTL.
pub struct RedisUploads {
    con: RedisCon,
    prefix: String,
    ttl: i64,
}

/// KEYS: session. ARGV: now, ttl.
/// A merge's heartbeat: 1 when the session is still merging (and now fresh).
static TOUCH_MERGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'state') ~= 'merging' then return 0 end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"#,
    )
});

/// KEYS: session, segments. ARGV: start, len, object key, now, ttl, end,
/// most segments. Returns {"ok", previous key or "", resume pointers…}
/// (the caller refreshes their TTL: they are in other slots), {"overlap"},
/// {"past", size}, {"many"}, {"state", <state>} or {"gone"}.
static MARK_SEGMENT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'uploading' then return {'state', state} end
local s, e = tonumber(ARGV[1]), tonumber(ARGV[6])
local size = redis.call('HGET', KEYS[1], 'filesize')
if tonumber(size) >= 0 and e > tonumber(size) then return {'past', size} end
-- What overlaps: the last segment starting at or before s, and any starting inside.
if #redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '(' .. ARGV[6], 'LIMIT', 0, 1) > 0 then return {'overlap'} end
local previous = ''
local before = redis.call('ZREVRANGEBYSCORE', KEYS[2], ARGV[1], '-inf', 'LIMIT', 0, 1)[1]
if before then
  local bs, bn, bkey = string.match(before, '^(%d+):(%d+):(.*)$')
  if tonumber(bs) + tonumber(bn) > s then
    if bs ~= ARGV[1] or bn ~= ARGV[2] then return {'overlap'} end
    previous = bkey
    redis.call('ZREM', KEYS[2], before)
  end
end
if previous == '' and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then return {'many'} end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1] .. ':' .. ARGV[2] .. ':' .. ARGV[3])
if previous == '' then redis.call('HINCRBY', KEYS[1], 'received', ARGV[2]) end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
local reply = {'ok', previous}
for _, field in ipairs({'resume_key', 'hash_resume_key'}) do
  local resume = redis.call('HGET', KEYS[1], field)
  if resume then table.insert(reply, resume) end
end
return reply
"#,
    )
});

/// KEYS: session, segments. Forgets the segments and what they counted
/// (an existing session's only: HSET would make one).
static FORGET_SEGMENTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], 'received', '0') end
redis.call('DEL', KEYS[2])
return 1
"#,
    )
});

/// KEYS: session, segments. ARGV: size, chunk count, now, ttl.
/// Gives a session without a size its size: {"ok"}, {"known", size},
/// {"past", start, len} (the last segment ends past it), {"state", <state>}
/// or {"gone"}.
static SET_SIZE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'uploading' then return {'state', state} end
local size = redis.call('HGET', KEYS[1], 'filesize')
if size == ARGV[1] then return {'ok'} end
if tonumber(size) >= 0 then return {'known', size} end
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0)[1]
if last then
  local ls, ln = string.match(last, '^(%d+):(%d+):')
  if tonumber(ls) + tonumber(ln) > tonumber(ARGV[1]) then return {'past', ls, ln} end
end
redis.call('HSET', KEYS[1], 'filesize', ARGV[1], 'chunkcount', ARGV[2], 'updated_at', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return {'ok'}
"#,
    )
});

/// KEYS: session. ARGV: filename, folder, mtime, on_conflict, now, ttl, filehash.
/// Sets where an uploading session's file goes: {"ok"}, {"state", <state>}
/// or {"gone"}.
static SET_DESTINATION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'uploading' then return {'state', state} end
redis.call('HSET', KEYS[1], 'filename', ARGV[1], 'folder', ARGV[2], 'mtime', ARGV[3], 'on_conflict', ARGV[4],
  'updated_at', ARGV[5], 'filehash', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {'ok'}
"#,
    )
});

/// KEYS: session. ARGV: filehash, sha256, the hashes' resume pointer.
/// Records the hashes of an upload begun without them, while it is
/// uploading and none are declared (the caller then points the hashes'
/// resume pointer at it): {"declared"}, {"same"}, {"different"},
/// {"state", <state>} or {"gone"}.
static DECLARE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'uploading' then return {'state', state} end
local h = redis.call('HGET', KEYS[1], 'filehash')
if h and h ~= '' then
  if h == ARGV[1] and redis.call('HGET', KEYS[1], 'sha256') == ARGV[2] then return {'same'} end
  return {'different'}
end
redis.call('HSET', KEYS[1], 'filehash', ARGV[1], 'sha256', ARGV[2], 'hash_resume_key', ARGV[3])
return {'declared'}
"#,
    )
});

/// KEYS: session, segments. ARGV: now, ttl.
/// Returns {"started", resume pointers…} (the caller drops those that
/// still name the upload), {"missing"}, {"gone"} or {the state the session
/// is in}.
/// A `failed` upload whose bytes are all still staged starts again (a merge
/// that failed for want of disk space); one whose segments were dropped stays failed.
static START_MERGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'gone'} end
if state ~= 'uploading' and state ~= 'failed' then return {state} end
local size = tonumber(redis.call('HGET', KEYS[1], 'filesize'))
if size < 0 or tonumber(redis.call('HGET', KEYS[1], 'received') or '0') ~= size then
  if state == 'failed' then return {state} end
  return {'missing'}
end
redis.call('HSET', KEYS[1], 'state', 'merging', 'reason', '', 'reason_code', '', 'updated_at', ARGV[1], 'merge_started_at', ARGV[1])
-- A merge may start long after the last chunk: give it a full TTL.
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local reply = {'started'}
for _, field in ipairs({'resume_key', 'hash_resume_key'}) do
  local resume = redis.call('HGET', KEYS[1], field)
  if resume then table.insert(reply, resume) end
end
return reply
"#,
    )
});

/// KEYS: session, segments. ARGV: state, reason, entry id, now, ttl, reason code.
/// 1 when the session moved from `merging` to `state`, else 0. Checking and
/// writing in one script also never resurrects an expired session.
static FINISH_MERGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', KEYS[1], 'state') ~= 'merging' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'reason', ARGV[2], 'entry_id', ARGV[3], 'updated_at', ARGV[4], 'reason_code', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"#,
    )
});

/// KEYS: leases, session. ARGV: name, holder, now ms, ttl ms, session ttl s,
/// and for a segment lease its bytes' start and end ("" otherwise).
/// 1 when the lease is now the holder's (it was free, expired or theirs, and
/// no other holder's live segment lease overlaps its bytes).
static ACQUIRE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(ARGV[3])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local holder, expiry = string.match(cur, '^(%S+) (%d+)$')
  if holder ~= ARGV[2] and tonumber(expiry) >= now then return 0 end
end
if ARGV[6] ~= '' then
  local s, e = tonumber(ARGV[6]), tonumber(ARGV[7])
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local ls, le = string.match(all[i], '^bytes:(%x+)-(%x+)$')
    if ls and tonumber(ls, 16) < e and s < tonumber(le, 16) then
      local holder, expiry = string.match(all[i + 1], '^(%S+) (%d+)$')
      if holder ~= ARGV[2] and tonumber(expiry) >= now then return 0 end
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. (now + tonumber(ARGV[4])))
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"#,
    )
});

/// KEYS: leases. ARGV: name, holder. Drops the lease if the holder holds it.
static RELEASE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and string.match(cur, '^(%S+) ') == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"#,
    )
});

/// KEYS: leases, session. ARGV: holder, now ms, next, state hex, lease name.
/// Saves the running hash's progress while the holder has the hash lease
/// and the session is uploading or merging: 1 when saved.
static SAVE_HASH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local cur = redis.call('HGET', KEYS[1], ARGV[5])
if not cur then return 0 end
local holder, expiry = string.match(cur, '^(%S+) (%d+)$')
if holder ~= ARGV[1] or tonumber(expiry) < tonumber(ARGV[2]) then return 0 end
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'uploading' and state ~= 'merging' then return 0 end
redis.call('HSET', KEYS[2], 'hashed_to', ARGV[3], 'hash_state', ARGV[4])
return 1
"#,
    )
});

/// KEYS: session, segments, leases, challenge.
/// Deletes the session, its segments, its leases and its challenge unless
/// it is merging: {"deleted", resume pointers…} (the caller drops those
/// that still name the upload), else {} (merging or gone).
static DELETE_UNLESS_MERGING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'merging' then return {} end
local reply = {'deleted', state}
for _, field in ipairs({'resume_key', 'hash_resume_key'}) do
  local resume = redis.call('HGET', KEYS[1], field)
  if resume then table.insert(reply, resume) end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return reply
"#,
    )
});

/// KEYS: an old key, its new name. Renames it if it still exists and the
/// new name is free: 1 when renamed.
static RENAME_IF_THERE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('RENAMENX', KEYS[1], KEYS[2])
"#,
    )
});

/// KEYS: a resume pointer. ARGV: upload id. Deletes it if it names the upload.
static DROP_POINTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#,
    )
});

impl RedisUploads {
    /// Sessions under `prefix`, expiring after `ttl` idle seconds.
    pub fn new(con: RedisCon, prefix: &str, ttl: u64) -> Self {
        RedisUploads { con, prefix: prefix.to_owned(), ttl: ttl as i64 }
    }

    /// Gives the keys of uploads made before keys carried their hash tag
    /// (`p:upload:<id>…`) their tagged names, so uploads in flight across
    /// the upgrade go on; on one server only (a cluster never held them).
    /// How many keys were renamed.
    pub async fn tag_old_keys(&self) -> Result<usize> {
        let mut con = self.con.clone();
        let pattern = format!("{}:upload:*", self.prefix);
        let old: Vec<String> = {
            let mut keys = Vec::new();
            let mut iter: redis::AsyncIter<String> = con.scan_match(&pattern).await?;
            while let Some(key) = futures::StreamExt::next(&mut iter).await {
                keys.push(key?);
            }
            keys
        };
        let mut renamed = 0;
        for key in old.iter().filter(|k| !k.contains('{')) {
            let rest = &key[self.prefix.len() + ":upload:".len()..];
            let (id, suffix) = rest.split_once(':').map_or((rest, ""), |(id, s)| (id, s));
            let Ok(id) = UploadId::parse(id) else { continue };
            let new =
                if suffix.is_empty() { self.session_key(&id) } else { format!("{}:{suffix}", self.session_key(&id)) };
            // A key may run out or be renamed by another process starting
            // beside this one between the scan and here: skipped then.
            let moved: i64 = RENAME_IF_THERE.key(key).key(&new).invoke_async(&mut con).await?;
            renamed += usize::from(moved == 1);
        }
        Ok(renamed)
    }

    fn session_key(&self, id: &UploadId) -> String {
        format!("{}:upload:{{{}}}", self.prefix, id)
    }

    fn segments_key(&self, id: &UploadId) -> String {
        format!("{}:upload:{{{}}}:segments", self.prefix, id)
    }

    fn leases_key(&self, id: &UploadId) -> String {
        format!("{}:upload:{{{}}}:leases", self.prefix, id)
    }

    fn merging_key(&self) -> String {
        format!("{}:merging", self.prefix)
    }

    fn challenge_key(&self, id: &UploadId) -> String {
        format!("{}:upload:{{{}}}:challenge", self.prefix, id)
    }

    /// Drops the resume pointers among `keys` that still name upload `id`
    /// (each is in a slot of its own). Best effort: the change they follow
    /// is made, and a pointer left behind is a hint its lookup checks.
    async fn drop_pointers(&self, id: &UploadId, keys: &[String]) {
        let mut con = self.con.clone();
        for key in keys {
            let dropped: redis::RedisResult<i64> = DROP_POINTER.key(key).arg(id.as_str()).invoke_async(&mut con).await;
            if let Err(e) = dropped {
                tracing::warn!(upload = %id, error = %e, "a resume pointer was left behind");
            }
        }
    }

    /// Puts `id` in the set of merges in flight with the score `now` (its
    /// heartbeat's time).
    async fn note_merging(&self, id: &UploadId, now: i64) -> Result<()> {
        let mut con = self.con.clone();
        let _: () = con.zadd(self.merging_key(), id.as_str(), now).await?;
        Ok(())
    }

    fn resume_key(&self, owner: i64, filehash: &str, sha256: &str, filesize: u64) -> String {
        format!("{}:resume:{}:{}:{}:{}", self.prefix, owner, filehash, sha256, filesize)
    }

    /// The fingerprint last: owner and size hold no `:`, so no two
    /// (owner, size, fingerprint) give the same key.
    fn fingerprint_key(&self, owner: i64, filesize: u64, fingerprint: &str) -> String {
        format!("{}:resume-fp:{}:{}:{}", self.prefix, owner, filesize, fingerprint)
    }

    /// The live `uploading` session of `owner` a resume pointer names.
    async fn resumable_at(&self, owner: i64, key: String) -> Result<Option<UploadSession>> {
        let mut con = self.con.clone();
        let id: Option<String> = con.get(key).await?;
        let Some(id) = id.and_then(|s| UploadId::parse(&s).ok()) else {
            return Ok(None);
        };
        Ok(self.get(&id).await?.filter(|s| s.owner == owner && s.state == UploadState::Uploading))
    }

    fn parse(&self, id: &UploadId, h: &HashMap<String, String>) -> Result<UploadSession> {
        let corrupt = |what: &str| Error::internal("reading upload session", format!("corrupt field {what}"));
        let num = |k: &str| -> Result<i64> { h.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(k)) };
        let filesize = num("filesize")?;
        let chunksize = num("chunksize")? as u64;
        Ok(UploadSession {
            id: id.clone(),
            owner: num("owner")?,
            filename: h.get("filename").cloned().ok_or_else(|| corrupt("filename"))?,
            filehash: h
                .get("filehash")
                .filter(|v| !v.is_empty())
                .map(|v| Sha1Hex::parse(v))
                .transpose()
                .map_err(|_| corrupt("filehash"))?,
            sha256: h
                .get("sha256")
                .filter(|v| !v.is_empty())
                .map(|v| Sha256Hex::parse(v))
                .transpose()
                .map_err(|_| corrupt("sha256"))?,
            size: u64::try_from(filesize).ok(),
            chunk_size: chunksize,
            received: h.get("received").and_then(|v| v.parse().ok()).unwrap_or(0),
            state: h.get("state").and_then(|s| UploadState::parse(s)).ok_or_else(|| corrupt("state"))?,
            reason: h.get("reason").filter(|r| !r.is_empty()).cloned(),
            reason_code: h.get("reason_code").and_then(|c| FailureCode::parse(c)),
            entry_id: h.get("entry_id").filter(|r| !r.is_empty()).cloned(),
            folder: h
                .get("folder")
                .filter(|f| !f.is_empty())
                .map(|f| FolderId::parse(f))
                .transpose()
                .map_err(|_| corrupt("folder"))?,
            mtime: h
                .get("mtime")
                .filter(|v| !v.is_empty())
                .map(|v| v.parse())
                .transpose()
                .map_err(|_| corrupt("mtime"))?,
            replace: h.get("on_conflict").is_some_and(|v| v == "replace"),
            if_match: h
                .get("if_match")
                .filter(|v| !v.is_empty())
                .map(|v| Sha256Hex::parse(v))
                .transpose()
                .map_err(|_| corrupt("if_match"))?,
            author: Author {
                kind: AuthorKind::parse(h.get("author_kind").map(String::as_str).unwrap_or("")),
                name: h.get("author_name").cloned().unwrap_or_default(),
            },
            via_link: h.get("via_link").filter(|v| !v.is_empty()).cloned(),
            merge_started_at: h.get("merge_started_at").and_then(|v| v.parse().ok()),
            hashed: h.get("hashed_to").and_then(|v| v.parse().ok()).unwrap_or(0),
            fingerprint: h.get("fingerprint").filter(|f| !f.is_empty()).cloned(),
            server_hashed: h.get("server_hashed").is_some_and(|v| v == "1"),
            created_at: num("created_at")?,
            updated_at: num("updated_at")?,
        })
    }
}

#[async_trait]
impl UploadSessions for RedisUploads {
    async fn create(&self, s: &UploadSession) -> Result<()> {
        let key = self.session_key(&s.id);
        let sha256 = s.sha256.as_ref().map(|h| h.as_str()).unwrap_or("");
        // One resume pointer: by the hashes when init named them, else by
        // the client's fingerprint, else none.
        let resume = match (&s.filehash, &s.fingerprint) {
            (Some(h), _) => Some(self.resume_key(s.owner, h.as_str(), sha256, s.size.unwrap_or_default())),
            (None, Some(f)) => Some(self.fingerprint_key(s.owner, s.size.unwrap_or_default(), f)),
            (None, None) => None,
        };
        let mut fields: Vec<(&str, String)> = vec![
            ("owner", s.owner.to_string()),
            ("filename", s.filename.clone()),
            ("filehash", s.filehash.as_ref().map(|h| h.to_string()).unwrap_or_default()),
            ("fingerprint", s.fingerprint.clone().unwrap_or_default()),
            ("sha256", s.sha256.as_ref().map(|h| h.to_string()).unwrap_or_default()),
            ("filesize", s.size.map_or_else(|| "-1".to_owned(), |n| n.to_string())),
            ("chunksize", s.chunk_size.to_string()),
            ("chunkcount", s.plan().map_or(0, |p| p.chunk_count).to_string()),
            ("received", "0".to_owned()),
            ("state", s.state.to_string()),
            ("folder", s.folder.as_ref().map(|f| f.to_string()).unwrap_or_default()),
            ("server_hashed", if s.server_hashed { "1" } else { "0" }.to_owned()),
            ("mtime", s.mtime.map(|m| m.to_string()).unwrap_or_default()),
            ("on_conflict", if s.replace { "replace" } else { "" }.to_owned()),
            ("if_match", s.if_match.as_ref().map(|h| h.to_string()).unwrap_or_default()),
            ("author_kind", s.author.kind.as_str().to_owned()),
            ("author_name", s.author.name.clone()),
            ("via_link", s.via_link.clone().unwrap_or_default()),
            ("created_at", s.created_at.to_string()),
            ("updated_at", s.updated_at.to_string()),
        ];
        if let Some(resume) = &resume {
            fields.push(("resume_key", resume.clone()));
        }
        let mut con = self.con.clone();
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .ignore()
            .expire(&key, self.ttl)
            .ignore()
            .query_async::<()>(&mut con)
            .await?;
        // The pointer after the session it names (another slot): a crash
        // between leaves an upload that init by hashes does not find.
        if let Some(resume) = &resume {
            let _: () = con.set_ex(resume, s.id.as_str(), self.ttl as u64).await?;
        }
        Ok(())
    }

    async fn find_resumable(
        &self,
        owner: i64,
        filehash: &str,
        sha256: &str,
        filesize: u64,
    ) -> Result<Option<UploadSession>> {
        self.resumable_at(owner, self.resume_key(owner, filehash, sha256, filesize)).await
    }

    async fn find_by_fingerprint(&self, owner: i64, fingerprint: &str, filesize: u64) -> Result<Option<UploadSession>> {
        self.resumable_at(owner, self.fingerprint_key(owner, filesize, fingerprint)).await
    }

    async fn declare_hashes(&self, session: &UploadSession, filehash: &str, sha256: &str) -> Result<DeclareOutcome> {
        let id = &session.id;
        let resume = self.resume_key(session.owner, filehash, sha256, session.size.unwrap_or_default());
        let mut con = self.con.clone();
        let reply: Vec<String> =
            DECLARE.key(self.session_key(id)).arg(filehash).arg(sha256).arg(&resume).invoke_async(&mut con).await?;
        match reply.first().map(String::as_str) {
            Some("declared") => {
                let _: () = con.set_ex(&resume, id.as_str(), self.ttl as u64).await?;
                Ok(DeclareOutcome::Declared)
            }
            Some("same") => Ok(DeclareOutcome::Same),
            Some("different") => Ok(DeclareOutcome::Different),
            Some("state") => Err(Error::NotUploading { state: reply.get(1).cloned().unwrap_or_default() }),
            _ => Err(Error::UploadNotFound),
        }
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.session_key(id)).await?;
        if h.is_empty() {
            return Ok(None);
        }
        self.parse(id, &h).map(Some)
    }

    async fn get_with_segments(&self, id: &UploadId) -> Result<Option<(UploadSession, Vec<Segment>)>> {
        let mut con = self.con.clone();
        let (h, members): (HashMap<String, String>, Vec<String>) = redis::pipe()
            .hgetall(self.session_key(id))
            .zrange(self.segments_key(id), 0, -1)
            .query_async(&mut con)
            .await?;
        if h.is_empty() {
            return Ok(None);
        }
        let segments = members.iter().map(|m| parse_member(m).map(|s| s.segment)).collect::<Result<_>>()?;
        Ok(Some((self.parse(id, &h)?, segments)))
    }

    async fn start_merge(&self, id: &UploadId, now: i64) -> Result<CompleteOutcome> {
        let mut con = self.con.clone();
        // In the merging set before the session says merging (see the
        // module's notes): the sweep drops the member if it never does.
        self.note_merging(id, now).await?;
        let reply: Vec<String> = START_MERGE
            .key(self.session_key(id))
            .key(self.segments_key(id))
            .arg(now)
            .arg(self.ttl)
            .invoke_async(&mut con)
            .await?;
        // A member whose session did not turn merging stays until the sweep
        // of stale merges drops it: removing it here could remove another
        // caller's, whose merge did start.
        match reply.first().map(String::as_str).unwrap_or("") {
            "started" => {
                self.drop_pointers(id, &reply[1..]).await;
                Ok(CompleteOutcome::Started)
            }
            "missing" => Ok(CompleteOutcome::Missing),
            "gone" => Err(Error::UploadNotFound),
            other => UploadState::parse(other)
                .map(CompleteOutcome::AlreadyIn)
                .ok_or_else(|| Error::internal("completing upload", format!("unexpected state {other:?}"))),
        }
    }

    async fn finish_merge(
        &self,
        id: &UploadId,
        state: UploadState,
        failure: Option<(FailureCode, &str)>,
        entry_id: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let mut con = self.con.clone();
        let moved: i64 = FINISH_MERGE
            .key(self.session_key(id))
            .key(self.segments_key(id))
            .arg(state.as_str())
            .arg(failure.map(|f| f.1).unwrap_or(""))
            .arg(entry_id.unwrap_or(""))
            .arg(now)
            .arg(self.ttl)
            .arg(failure.map(|f| f.0.as_str()).unwrap_or(""))
            .invoke_async(&mut con)
            .await?;
        if moved == 1 {
            // Best effort: a member left behind is dropped by the sweep.
            let removed: redis::RedisResult<()> = con.zrem(self.merging_key(), id.as_str()).await;
            if let Err(e) = removed {
                tracing::warn!(upload = %id, error = %e, "a finished merge stays in the merging set until the sweep");
            }
        }
        Ok(moved == 1)
    }

    async fn touch_merge(&self, id: &UploadId, now: i64) -> Result<bool> {
        let mut con = self.con.clone();
        let touched: i64 = TOUCH_MERGE.key(self.session_key(id)).arg(now).arg(self.ttl).invoke_async(&mut con).await?;
        if touched == 1 {
            self.note_merging(id, now).await?;
        }
        Ok(touched == 1)
    }

    async fn stale_merges(&self, before: i64, limit: u64) -> Result<Vec<UploadId>> {
        let mut con = self.con.clone();
        let ids: Vec<String> =
            con.zrangebyscore_limit(self.merging_key(), "-inf", format!("({before}"), 0, limit as isize).await?;
        let mut stale = Vec::new();
        // Each session is in a slot of its own: read one by one. A member
        // whose session is gone or no longer merging is dropped.
        for raw in ids {
            let Ok(id) = UploadId::parse(&raw) else {
                let _: () = con.zrem(self.merging_key(), &raw).await?;
                continue;
            };
            let state: Option<String> = con.hget(self.session_key(&id), "state").await?;
            if state.as_deref() == Some("merging") {
                stale.push(id);
            } else {
                let _: () = con.zrem(self.merging_key(), &raw).await?;
            }
        }
        Ok(stale)
    }

    async fn delete_unless_merging(&self, id: &UploadId) -> Result<Option<UploadState>> {
        let mut con = self.con.clone();
        let reply: Vec<String> = DELETE_UNLESS_MERGING
            .key(self.session_key(id))
            .key(self.segments_key(id))
            .key(self.leases_key(id))
            .key(self.challenge_key(id))
            .invoke_async(&mut con)
            .await?;
        let [deleted, state, pointers @ ..] = reply.as_slice() else { return Ok(None) };
        if deleted != "deleted" {
            return Ok(None);
        }
        self.drop_pointers(id, pointers).await;
        Ok(UploadState::parse(state))
    }

    async fn idle_since(&self, _cutoff: i64, _limit: u64) -> Result<Vec<UploadId>> {
        // Redis expires idle sessions by itself (the keys' TTL); their staged
        // chunks are found by the sweeper as chunks no session owns.
        Ok(Vec::new())
    }

    async fn health_check(&self) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }
}

/// A member of a segments set: `<start>:<len>:<key>`.
fn parse_member(member: &str) -> Result<Staged> {
    let corrupt = || Error::internal("reading upload segments", format!("corrupt member {member:?}"));
    let mut parts = member.splitn(3, ':');
    let start = parts.next().and_then(|v| v.parse().ok()).ok_or_else(corrupt)?;
    let len = parts.next().and_then(|v| v.parse().ok()).ok_or_else(corrupt)?;
    let key = parts.next().ok_or_else(corrupt)?.to_owned();
    Ok(Staged { segment: Segment { start, len }, key })
}

/// A script's reply that the session is gone or past uploading.
fn not_uploading(reply: &[String]) -> Error {
    match reply.first().map(String::as_str) {
        Some("state") => Error::NotUploading { state: reply.get(1).cloned().unwrap_or_default() },
        _ => Error::UploadNotFound,
    }
}

#[async_trait]
impl SegmentMap for RedisUploads {
    async fn segments(&self, id: &UploadId) -> Result<Vec<Staged>> {
        let mut con = self.con.clone();
        let members: Vec<String> = con.zrange(self.segments_key(id), 0, -1).await?;
        members.iter().map(|m| parse_member(m)).collect()
    }

    async fn segment_at(&self, id: &UploadId, start: u64) -> Result<Option<Staged>> {
        let mut con = self.con.clone();
        let members: Vec<String> = con.zrangebyscore(self.segments_key(id), start, start).await?;
        members.first().map(|m| parse_member(m)).transpose()
    }

    async fn overlapping(&self, id: &UploadId, segment: Segment) -> Result<Vec<Staged>> {
        let mut con = self.con.clone();
        let key = self.segments_key(id);
        let (before, inside): (Vec<String>, Vec<String>) = redis::pipe()
            .zrevrangebyscore_limit(&key, segment.start, "-inf", 0, 1)
            .zrangebyscore(&key, format!("({}", segment.start), format!("({}", segment.end()))
            .query_async(&mut con)
            .await?;
        let mut found = Vec::new();
        for m in before.iter().chain(&inside) {
            let staged = parse_member(m)?;
            if staged.segment.overlaps(&segment) {
                found.push(staged);
            }
        }
        Ok(found)
    }

    async fn mark_segment(
        &self,
        id: &UploadId,
        segment: Segment,
        object_key: &str,
        now: i64,
        max_segments: u64,
    ) -> Result<Option<String>> {
        let mut con = self.con.clone();
        let reply: Vec<String> = MARK_SEGMENT
            .key(self.session_key(id))
            .key(self.segments_key(id))
            .arg(segment.start.to_string())
            .arg(segment.len.to_string())
            .arg(object_key)
            .arg(now)
            .arg(self.ttl)
            .arg(segment.end().to_string())
            .arg(max_segments)
            .invoke_async(&mut con)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => {
                // The upload's resume pointers live as long as it does.
                // Best effort: the segment is marked; a pointer that runs
                // out only costs a client its resume by hashes.
                for pointer in &reply[2..] {
                    let refreshed: redis::RedisResult<()> = con.expire(pointer, self.ttl).await;
                    if let Err(e) = refreshed {
                        tracing::warn!(upload = %id, error = %e, "a resume pointer's lifetime was not refreshed");
                    }
                }
                Ok(reply.get(1).filter(|p| !p.is_empty()).cloned())
            }
            Some("overlap") => Err(Error::RangeOverlap { what: describe(segment) }),
            Some("many") => Err(Error::TooManySegments { max: max_segments }),
            Some("past") => Err(past_the_size(segment, reply.get(1).and_then(|v| v.parse().ok()).unwrap_or(0))),
            _ => Err(not_uploading(&reply)),
        }
    }

    async fn set_size(&self, id: &UploadId, size: u64, now: i64) -> Result<()> {
        let mut con = self.con.clone();
        let session = self.get(id).await?.ok_or(Error::UploadNotFound)?;
        let reply: Vec<String> = SET_SIZE
            .key(self.session_key(id))
            .key(self.segments_key(id))
            .arg(size.to_string())
            .arg(size.div_ceil(session.chunk_size.max(1)).to_string())
            .arg(now)
            .arg(self.ttl)
            .invoke_async(&mut con)
            .await?;
        let num = |i: usize| reply.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            Some("known") => Err(size_known(num(1))),
            Some("past") => Err(received_past(num(1) + num(2), size)),
            _ => Err(not_uploading(&reply)),
        }
    }

    async fn set_destination(&self, id: &UploadId, dest: &super::Destination<'_>, now: i64) -> Result<()> {
        let mut con = self.con.clone();
        let reply: Vec<String> = SET_DESTINATION
            .key(self.session_key(id))
            .arg(dest.filename)
            .arg(dest.folder.unwrap_or(""))
            .arg(dest.mtime.map(|m| m.to_string()).unwrap_or_default())
            .arg(if dest.replace { "replace" } else { "" })
            .arg(now)
            .arg(self.ttl)
            .arg(dest.filehash.unwrap_or(""))
            .invoke_async(&mut con)
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => Ok(()),
            _ => Err(not_uploading(&reply)),
        }
    }

    async fn forget_segments(&self, id: &UploadId) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 =
            FORGET_SEGMENTS.key(self.session_key(id)).key(self.segments_key(id)).invoke_async(&mut con).await?;
        Ok(())
    }
}

#[async_trait]
impl HashLeases for RedisUploads {
    async fn acquire_lease(&self, id: &UploadId, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        let segment = leased_segment(name);
        let mut con = self.con.clone();
        let taken: i64 = ACQUIRE_LEASE
            .key(self.leases_key(id))
            .key(self.session_key(id))
            .arg(name)
            .arg(holder)
            .arg(now_ms)
            .arg(ttl_ms)
            .arg(self.ttl)
            .arg(segment.map(|s| s.start.to_string()).unwrap_or_default())
            .arg(segment.map(|s| s.end().to_string()).unwrap_or_default())
            .invoke_async(&mut con)
            .await?;
        Ok(taken == 1)
    }

    async fn release_lease(&self, id: &UploadId, name: &str, holder: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = RELEASE_LEASE.key(self.leases_key(id)).arg(name).arg(holder).invoke_async(&mut con).await?;
        Ok(())
    }

    async fn leases_held(&self, id: &UploadId, prefix: &str, now_ms: i64) -> Result<u64> {
        let mut con = self.con.clone();
        let all: HashMap<String, String> = con.hgetall(self.leases_key(id)).await?;
        let live =
            |v: &String| v.rsplit_once(' ').and_then(|(_, e)| e.parse::<i64>().ok()).is_some_and(|e| e >= now_ms);
        Ok(all.iter().filter(|(k, v)| k.starts_with(prefix) && live(v)).count() as u64)
    }

    async fn hash_progress(&self, id: &UploadId) -> Result<HashProgress> {
        let mut con = self.con.clone();
        let (next, state): (Option<u64>, Option<String>) = redis::pipe()
            .hget(self.session_key(id), "hashed_to")
            .hget(self.session_key(id), "hash_state")
            .query_async(&mut con)
            .await?;
        HashProgress::from_stored(next.unwrap_or(0), state)
    }

    async fn save_hash_progress(
        &self,
        id: &UploadId,
        holder: &str,
        progress: &HashProgress,
        now_ms: i64,
    ) -> Result<bool> {
        let mut con = self.con.clone();
        let saved: i64 = SAVE_HASH
            .key(self.leases_key(id))
            .key(self.session_key(id))
            .arg(holder)
            .arg(now_ms)
            .arg(progress.next)
            .arg(hex::encode(&progress.state))
            .arg(HASH_LEASE)
            .invoke_async(&mut con)
            .await?;
        Ok(saved == 1)
    }
}

#[async_trait]
impl Challenges for RedisUploads {
    async fn put_challenge(&self, id: &UploadId, proof: &PendingProof) -> Result<()> {
        let mut con = self.con.clone();
        let value = format!("{}:{}:{}", proof.file_id, proof.expected, proof.expires_at);
        let ttl = (proof.expires_at - crate::now()).max(1) as u64;
        let _: () = con.set_ex(self.challenge_key(id), value, ttl).await?;
        Ok(())
    }

    async fn take_challenge(&self, id: &UploadId, now: i64) -> Result<Option<PendingProof>> {
        let mut con = self.con.clone();
        let value: Option<String> = con.get_del(self.challenge_key(id)).await?;
        let Some(value) = value else { return Ok(None) };
        let mut parts = value.splitn(3, ':');
        let corrupt = || Error::internal("reading a challenge", format!("corrupt value {value:?}"));
        let file_id = parts.next().and_then(|v| v.parse().ok()).ok_or_else(corrupt)?;
        let expected = parts.next().ok_or_else(corrupt)?.to_owned();
        let expires_at: i64 = parts.next().and_then(|v| v.parse().ok()).ok_or_else(corrupt)?;
        Ok((expires_at >= now).then_some(PendingProof { file_id, expected, expires_at }))
    }
}
