//! Upload sessions in SQL (SQLite in the embedded deployment, or MySQL when
//! no Redis is configured). The `state = 'uploading'` conditions make
//! segment marking and `complete` compare-and-set operations. A size not
//! known yet is stored as -1.

use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Challenges, HashLeases, SegmentMap, Staged, UploadSessions};
use super::{CompleteOutcome, DeclareOutcome, HASH_LEASE, HashProgress, PendingProof, leased_segment};
use crate::domain::error::{Error, Result};
use crate::domain::{
    Author, AuthorKind, FailureCode, FolderId, Segment, Sha1Hex, Sha256Hex, UploadId, UploadSession, UploadState,
};
use crate::stores::meta::SqlRepo;

/// Upload sessions in the `upload_sessions` and `upload_segments` tables.
pub struct SqlUploads {
    repo: SqlRepo,
    /// Idle seconds after which an `uploading` session counts as expired.
    ttl: i64,
}

const COLUMNS: &str = "id, owner_id, filename, filehash, sha256, filesize, chunksize, chunkcount, state, reason, reason_code, \
                       entry_id, folder, merge_started_at, hash_next, received, fingerprint, server_hashed, mtime, \
                       on_conflict, if_match, author_kind, author_name, via_link, created_at, updated_at";

fn session_from(row: &AnyRow) -> Result<UploadSession> {
    let state: String = row.try_get("state")?;
    let filesize: i64 = row.try_get("filesize")?;
    let chunksize: i64 = row.try_get("chunksize")?;
    let corrupt = |what: &str| Error::internal("reading upload session", format!("corrupt {what}"));
    Ok(UploadSession {
        id: UploadId::parse(&row.try_get::<String, _>("id")?).map_err(|_| corrupt("id"))?,
        owner: row.try_get("owner_id")?,
        filename: row.try_get("filename")?,
        filehash: row
            .try_get::<Option<String>, _>("filehash")?
            .map(|h| Sha1Hex::parse(&h))
            .transpose()
            .map_err(|_| corrupt("filehash"))?,
        sha256: row
            .try_get::<Option<String>, _>("sha256")?
            .map(|h| Sha256Hex::parse(&h))
            .transpose()
            .map_err(|_| corrupt("sha256"))?,
        size: u64::try_from(filesize).ok(),
        chunk_size: chunksize as u64,
        received: row.try_get::<i64, _>("received")? as u64,
        state: UploadState::parse(&state).ok_or_else(|| corrupt("state"))?,
        reason: row.try_get("reason")?,
        reason_code: row.try_get::<Option<String>, _>("reason_code")?.and_then(|c| FailureCode::parse(&c)),
        entry_id: row.try_get("entry_id")?,
        folder: row
            .try_get::<Option<String>, _>("folder")?
            .map(|f| FolderId::parse(&f))
            .transpose()
            .map_err(|_| corrupt("folder"))?,
        mtime: row.try_get("mtime")?,
        via_link: row.try_get("via_link")?,
        replace: row.try_get::<Option<String>, _>("on_conflict")?.as_deref() == Some("replace"),
        if_match: row
            .try_get::<Option<String>, _>("if_match")?
            .map(|h| Sha256Hex::parse(&h))
            .transpose()
            .map_err(|_| corrupt("if_match"))?,
        author: Author {
            kind: AuthorKind::parse(&row.try_get::<Option<String>, _>("author_kind")?.unwrap_or_default()),
            name: row.try_get::<Option<String>, _>("author_name")?.unwrap_or_default(),
        },
        merge_started_at: row.try_get("merge_started_at")?,
        hashed: row.try_get::<i64, _>("hash_next")? as u64,
        fingerprint: row.try_get("fingerprint")?,
        server_hashed: row.try_get::<i64, _>("server_hashed")? != 0,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl SqlUploads {
    /// Sessions in the repository's database, expiring after `ttl` idle seconds.
    pub fn new(repo: SqlRepo, ttl: u64) -> Self {
        SqlUploads { repo, ttl: ttl as i64 }
    }

    fn pool(&self) -> &AnyPool {
        self.repo.pool()
    }

    /// An `uploading` session is live while it has been touched within the TTL;
    /// the other states live as long as their row.
    fn live_since(&self) -> i64 {
        crate::now() - self.ttl
    }

    async fn state_of(&self, id: &UploadId) -> Result<UploadState> {
        match self.get(id).await? {
            Some(s) => Ok(s.state),
            None => Err(Error::UploadNotFound),
        }
    }
}

#[async_trait]
impl UploadSessions for SqlUploads {
    async fn create(&self, s: &UploadSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_sessions (id, owner_id, filename, filehash, sha256, filesize, chunksize, chunkcount, \
             state, reason, folder, fingerprint, server_hashed, mtime, on_conflict, if_match, author_kind, author_name, \
             via_link, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(s.owner)
        .bind(s.filename.as_str())
        .bind(s.filehash.as_ref().map(|h| h.as_str().to_owned()))
        .bind(s.sha256.as_ref().map(|h| h.as_str().to_owned()))
        .bind(s.size.map_or(-1, |n| n as i64))
        .bind(s.chunk_size as i64)
        .bind(s.plan().map_or(0, |p| p.chunk_count as i64))
        .bind(s.state.as_str())
        .bind(s.folder.as_ref().map(|f| f.as_str().to_owned()))
        .bind(s.fingerprint.clone())
        .bind(i64::from(s.server_hashed))
        .bind(s.mtime)
        .bind(s.replace.then_some("replace"))
        .bind(s.if_match.as_ref().map(|h| h.as_str().to_owned()))
        .bind(s.author.kind.as_str())
        .bind(s.author.name.as_str())
        .bind(s.via_link.clone())
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn find_resumable(
        &self,
        owner: i64,
        filehash: &str,
        sha256: &str,
        filesize: u64,
    ) -> Result<Option<UploadSession>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM upload_sessions WHERE owner_id = ? AND filehash = ? AND sha256 = ? AND filesize = ? \
             AND state = 'uploading' AND updated_at >= ? ORDER BY updated_at DESC LIMIT 1"
        )))
        .bind(owner)
        .bind(filehash)
        .bind(sha256)
        .bind(filesize as i64)
        .bind(self.live_since())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn find_by_fingerprint(&self, owner: i64, fingerprint: &str, filesize: u64) -> Result<Option<UploadSession>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM upload_sessions WHERE owner_id = ? AND fingerprint = ? AND filesize = ? \
             AND state = 'uploading' AND updated_at >= ? ORDER BY updated_at DESC LIMIT 1"
        )))
        .bind(owner)
        .bind(fingerprint)
        .bind(filesize as i64)
        .bind(self.live_since())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn declare_hashes(&self, session: &UploadSession, filehash: &str, sha256: &str) -> Result<DeclareOutcome> {
        let id = &session.id;
        let set = sqlx::query(
            "UPDATE upload_sessions SET filehash = ?, sha256 = ? \
             WHERE id = ? AND state = 'uploading' AND updated_at >= ? AND filehash IS NULL",
        )
        .bind(filehash)
        .bind(sha256)
        .bind(id.as_str())
        .bind(self.live_since())
        .execute(self.pool())
        .await?;
        if set.rows_affected() == 1 {
            return Ok(DeclareOutcome::Declared);
        }
        let Some(s) = self.get(id).await? else { return Err(Error::UploadNotFound) };
        if s.state != UploadState::Uploading {
            return Err(Error::NotUploading { state: s.state.to_string() });
        }
        let same = s.filehash.is_some_and(|h| h.as_str() == filehash) && s.sha256.is_some_and(|h| h.as_str() == sha256);
        Ok(if same { DeclareOutcome::Same } else { DeclareOutcome::Different })
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM upload_sessions WHERE id = ? AND (state <> 'uploading' OR updated_at >= ?)"
        )))
        .bind(id.as_str())
        .bind(self.live_since())
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(session_from).transpose()
    }

    async fn get_with_segments(&self, id: &UploadId) -> Result<Option<(UploadSession, Vec<Segment>)>> {
        // One round trip: status is polled hard.
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, (SELECT GROUP_CONCAT(CONCAT(start_at, ':', len) ORDER BY start_at) \
             FROM upload_segments WHERE upload_segments.upload_id = upload_sessions.id) AS received_segments \
             FROM upload_sessions WHERE id = ? AND (state <> 'uploading' OR updated_at >= ?)"
        )))
        .bind(id.as_str())
        .bind(self.live_since())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let listed: Option<String> = row.try_get("received_segments")?;
        let corrupt = |s: &str| Error::internal("reading upload segments", format!("corrupt segment {s:?}"));
        let segments = listed
            .unwrap_or_default()
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let (start, len) = s.split_once(':').ok_or_else(|| corrupt(s))?;
                Ok(Segment { start: start.parse().map_err(|_| corrupt(s))?, len: len.parse().map_err(|_| corrupt(s))? })
            })
            .collect::<Result<_>>()?;
        Ok(Some((session_from(&row)?, segments)))
    }

    async fn start_merge(&self, id: &UploadId, now: i64) -> Result<CompleteOutcome> {
        let moved = sqlx::query(
            "UPDATE upload_sessions SET state = 'merging', reason = NULL, reason_code = NULL, updated_at = ?, \
             merge_started_at = ? \
             WHERE id = ? AND (state = 'failed' OR (state = 'uploading' AND updated_at >= ?)) \
             AND filesize >= 0 AND received = filesize",
        )
        .bind(now)
        .bind(now)
        .bind(id.as_str())
        .bind(self.live_since())
        .execute(self.pool())
        .await?;
        if moved.rows_affected() == 1 {
            return Ok(CompleteOutcome::Started);
        }
        Ok(match self.state_of(id).await? {
            UploadState::Uploading => CompleteOutcome::Missing,
            state => CompleteOutcome::AlreadyIn(state),
        })
    }

    async fn finish_merge(
        &self,
        id: &UploadId,
        state: UploadState,
        failure: Option<(FailureCode, &str)>,
        entry_id: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE upload_sessions SET state = ?, reason = ?, reason_code = ?, entry_id = ?, updated_at = ? \
             WHERE id = ? AND state = 'merging'",
        )
        .bind(state.as_str())
        .bind(failure.map(|f| f.1))
        .bind(failure.map(|f| f.0.as_str()))
        .bind(entry_id)
        .bind(now)
        .bind(id.as_str())
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn touch_merge(&self, id: &UploadId, now: i64) -> Result<bool> {
        let res = sqlx::query("UPDATE upload_sessions SET updated_at = ? WHERE id = ? AND state = 'merging'")
            .bind(now)
            .bind(id.as_str())
            .execute(self.pool())
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn stale_merges(&self, before: i64, limit: u64) -> Result<Vec<UploadId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM upload_sessions WHERE state = 'merging' AND updated_at < ? ORDER BY updated_at LIMIT ?",
        )
        .bind(before)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.iter().filter_map(|s| UploadId::parse(s).ok()).collect())
    }

    async fn delete_unless_merging(&self, id: &UploadId) -> Result<Option<UploadState>> {
        let mut tx = self.repo.begin().await?;
        // One state at a time: the statement that deletes says which it was.
        let mut deleted = None;
        for state in [UploadState::Uploading, UploadState::Failed, UploadState::Done] {
            let gone = sqlx::query("DELETE FROM upload_sessions WHERE id = ? AND state = ?")
                .bind(id.as_str())
                .bind(state.as_str())
                .execute(&mut *tx)
                .await?;
            if gone.rows_affected() > 0 {
                deleted = Some(state);
                break;
            }
        }
        let Some(deleted) = deleted else { return Ok(None) };
        sqlx::query("DELETE FROM upload_segments WHERE upload_id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM upload_challenges WHERE upload_id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM upload_leases WHERE upload_id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(Some(deleted))
    }

    async fn idle_since(&self, cutoff: i64, limit: u64) -> Result<Vec<UploadId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM upload_sessions WHERE state IN ('uploading', 'failed', 'done') AND updated_at < ? \
             ORDER BY updated_at LIMIT ?",
        )
        .bind(cutoff)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await?;
        Ok(ids.iter().filter_map(|s| UploadId::parse(s).ok()).collect())
    }

    async fn health_check(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(self.pool()).await?;
        Ok(())
    }
}

impl SqlUploads {
    /// A segment lease: taken (or renewed) in one transaction that holds the
    /// session's row lock, so no two holders ever hold leases on the same
    /// bytes, whatever their bounds.
    async fn acquire_segment_lease(
        &self,
        id: &UploadId,
        segment: crate::domain::Segment,
        name: &str,
        holder: &str,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<bool> {
        let mut tx = self.repo.begin_volatile().await?;
        // A no-op write takes the row lock on MariaDB (SQLite's write lock
        // is held from the start).
        sqlx::query("UPDATE upload_sessions SET updated_at = updated_at WHERE id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let others: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM upload_leases WHERE upload_id = ? AND holder <> ? AND expires_at >= ? AND name LIKE 'bytes:%'",
        )
        .bind(id.as_str())
        .bind(holder)
        .bind(now_ms)
        .fetch_all(&mut *tx)
        .await?;
        if others.iter().filter_map(|n| leased_segment(n)).any(|s| s.overlaps(&segment)) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM upload_leases WHERE upload_id = ? AND name = ?")
            .bind(id.as_str())
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO upload_leases (upload_id, name, holder, expires_at) VALUES (?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(name)
            .bind(holder)
            .bind(now_ms + ttl_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }
}

fn staged_from(row: &AnyRow) -> Result<Staged> {
    let (start, len): (i64, i64) = (row.try_get("start_at")?, row.try_get("len")?);
    Ok(Staged { segment: Segment { start: start as u64, len: len as u64 }, key: row.try_get("object_key")? })
}

impl SqlUploads {
    /// Takes the session's row lock (the write lock on SQLite) inside `tx`
    /// by touching it, while it is live and `uploading`: what follows in the
    /// transaction is then one step for every other writer. The session as
    /// it is comes back; an error says why it cannot be written.
    async fn lock_uploading(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &UploadId,
        now: i64,
    ) -> Result<UploadSession> {
        let touched = sqlx::query(
            "UPDATE upload_sessions SET updated_at = ? WHERE id = ? AND state = 'uploading' AND updated_at >= ?",
        )
        .bind(now)
        .bind(id.as_str())
        .bind(self.live_since())
        .execute(&mut **tx)
        .await?;
        if touched.rows_affected() == 0 {
            // Read in the same transaction: nothing waits on a lock it holds.
            let state: Option<String> = sqlx::query_scalar("SELECT state FROM upload_sessions WHERE id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut **tx)
                .await?;
            return Err(match state.as_deref().and_then(UploadState::parse) {
                Some(state) if state != UploadState::Uploading => Error::NotUploading { state: state.to_string() },
                _ => Error::UploadNotFound,
            });
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM upload_sessions WHERE id = ?")))
            .bind(id.as_str())
            .fetch_one(&mut **tx)
            .await?;
        session_from(&row)
    }

    async fn overlapping_in<'c, E>(executor: E, id: &UploadId, segment: Segment) -> Result<Vec<Staged>>
    where
        E: sqlx::Executor<'c, Database = sqlx::Any>,
    {
        let rows = sqlx::query(
            "SELECT start_at, len, object_key FROM upload_segments \
             WHERE upload_id = ? AND start_at < ? AND start_at + len > ? ORDER BY start_at",
        )
        .bind(id.as_str())
        .bind(segment.end() as i64)
        .bind(segment.start as i64)
        .fetch_all(executor)
        .await?;
        rows.iter().map(staged_from).collect()
    }
}

#[async_trait]
impl SegmentMap for SqlUploads {
    async fn segments(&self, id: &UploadId) -> Result<Vec<Staged>> {
        let rows =
            sqlx::query("SELECT start_at, len, object_key FROM upload_segments WHERE upload_id = ? ORDER BY start_at")
                .bind(id.as_str())
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(staged_from).collect()
    }

    async fn segment_at(&self, id: &UploadId, start: u64) -> Result<Option<Staged>> {
        let row =
            sqlx::query("SELECT start_at, len, object_key FROM upload_segments WHERE upload_id = ? AND start_at = ?")
                .bind(id.as_str())
                .bind(start as i64)
                .fetch_optional(self.pool())
                .await?;
        row.as_ref().map(staged_from).transpose()
    }

    async fn overlapping(&self, id: &UploadId, segment: Segment) -> Result<Vec<Staged>> {
        Self::overlapping_in(self.pool(), id, segment).await
    }

    async fn mark_segment(
        &self,
        id: &UploadId,
        segment: Segment,
        object_key: &str,
        now: i64,
        max_segments: u64,
    ) -> Result<Option<String>> {
        let mut tx = self.repo.begin().await?;
        // Under the session's lock, `complete` cannot slip between the checks
        // and the insert.
        let session = self.lock_uploading(&mut tx, id, now).await?;
        if let Some(size) = session.size.filter(|&size| segment.end() > size) {
            return Err(past_the_size(segment, size));
        }
        let overlaps = Self::overlapping_in(&mut *tx, id, segment).await?;
        let previous = match overlaps.as_slice() {
            [] => None,
            [same] if same.segment == segment => Some(same.key.clone()),
            _ => return Err(Error::RangeOverlap { what: describe(segment) }),
        };
        // A chunk of the upload's plan never passes the cap (a plan has at
        // most that many): only other ranges pay for the count.
        let a_chunk = session.plan().is_some_and(|p| p.index_of(segment).is_some());
        if previous.is_none() && !a_chunk {
            let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM upload_segments WHERE upload_id = ?")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if held as u64 >= max_segments {
                return Err(Error::TooManySegments { max: max_segments });
            }
        }
        if previous.is_some() {
            sqlx::query("UPDATE upload_segments SET object_key = ? WHERE upload_id = ? AND start_at = ?")
                .bind(object_key)
                .bind(id.as_str())
                .bind(segment.start as i64)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("INSERT INTO upload_segments (upload_id, start_at, len, object_key) VALUES (?, ?, ?, ?)")
                .bind(id.as_str())
                .bind(segment.start as i64)
                .bind(segment.len as i64)
                .bind(object_key)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE upload_sessions SET received = received + ? WHERE id = ?")
                .bind(segment.len as i64)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(previous)
    }

    async fn set_size(&self, id: &UploadId, size: u64, now: i64) -> Result<()> {
        let mut tx = self.repo.begin().await?;
        let session = self.lock_uploading(&mut tx, id, now).await?;
        match session.size {
            Some(known) if known == size => return Ok(()),
            Some(known) => return Err(size_known(known)),
            None => {}
        }
        let end: Option<i64> =
            sqlx::query_scalar("SELECT MAX(start_at + len) FROM upload_segments WHERE upload_id = ?")
                .bind(id.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if let Some(end) = end.filter(|&end| end as u64 > size) {
            return Err(received_past(end as u64, size));
        }
        sqlx::query("UPDATE upload_sessions SET filesize = ?, chunkcount = ? WHERE id = ?")
            .bind(size as i64)
            .bind(size.div_ceil(session.chunk_size.max(1)) as i64)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn set_destination(&self, id: &UploadId, dest: &super::Destination<'_>, now: i64) -> Result<()> {
        let mut tx = self.repo.begin().await?;
        self.lock_uploading(&mut tx, id, now).await?;
        sqlx::query(
            "UPDATE upload_sessions SET filename = ?, folder = ?, mtime = ?, on_conflict = ?, filehash = ? WHERE id = ?",
        )
        .bind(dest.filename)
        .bind(dest.folder)
        .bind(dest.mtime)
        .bind(dest.replace.then_some("replace"))
        .bind(dest.filehash)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn forget_segments(&self, id: &UploadId) -> Result<()> {
        let mut tx = self.repo.begin().await?;
        sqlx::query("DELETE FROM upload_segments WHERE upload_id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        sqlx::query("UPDATE upload_sessions SET received = 0 WHERE id = ?").bind(id.as_str()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// How an error names a segment's bytes.
pub(super) fn describe(segment: Segment) -> String {
    format!("bytes {}-{}", segment.start, segment.end() - 1)
}

/// A segment that ends past the upload's size.
pub(super) fn past_the_size(segment: Segment, size: u64) -> Error {
    Error::SizeConflict { message: format!("{} lie past the upload's size of {size} bytes", describe(segment)) }
}

/// A size given to an upload whose size is known.
pub(super) fn size_known(known: u64) -> Error {
    Error::SizeConflict { message: format!("the upload's size is {known} bytes already") }
}

/// A size below bytes received already.
pub(super) fn received_past(end: u64, size: u64) -> Error {
    Error::SizeConflict { message: format!("bytes up to {end} were received already; the size cannot be {size}") }
}

#[async_trait]
impl HashLeases for SqlUploads {
    async fn acquire_lease(&self, id: &UploadId, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool> {
        if let Some(segment) = leased_segment(name) {
            return self.acquire_segment_lease(id, segment, name, holder, now_ms, ttl_ms).await;
        }
        let taken = sqlx::query(
            "UPDATE upload_leases SET holder = ?, expires_at = ? \
             WHERE upload_id = ? AND name = ? AND (holder = ? OR expires_at < ?)",
        )
        .bind(holder)
        .bind(now_ms + ttl_ms)
        .bind(id.as_str())
        .bind(name)
        .bind(holder)
        .bind(now_ms)
        .execute(self.repo.volatile_pool())
        .await?;
        if taken.rows_affected() == 1 {
            return Ok(true);
        }
        // No row (or someone else's, unexpired): the insert decides.
        let inserted =
            sqlx::query("INSERT INTO upload_leases (upload_id, name, holder, expires_at) VALUES (?, ?, ?, ?)")
                .bind(id.as_str())
                .bind(name)
                .bind(holder)
                .bind(now_ms + ttl_ms)
                .execute(self.repo.volatile_pool())
                .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if crate::stores::meta::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn release_lease(&self, id: &UploadId, name: &str, holder: &str) -> Result<()> {
        sqlx::query("DELETE FROM upload_leases WHERE upload_id = ? AND name = ? AND holder = ?")
            .bind(id.as_str())
            .bind(name)
            .bind(holder)
            .execute(self.repo.volatile_pool())
            .await?;
        Ok(())
    }

    async fn leases_held(&self, id: &UploadId, prefix: &str, now_ms: i64) -> Result<u64> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM upload_leases WHERE upload_id = ? AND expires_at >= ?")
                .bind(id.as_str())
                .bind(now_ms)
                .fetch_all(self.pool())
                .await?;
        Ok(names.iter().filter(|n| n.starts_with(prefix)).count() as u64)
    }

    async fn hash_progress(&self, id: &UploadId) -> Result<HashProgress> {
        let row = sqlx::query("SELECT hash_next, hash_state FROM upload_sessions WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(HashProgress::default()) };
        HashProgress::from_stored(row.try_get::<i64, _>("hash_next")? as u64, row.try_get("hash_state")?)
    }

    async fn save_hash_progress(
        &self,
        id: &UploadId,
        holder: &str,
        progress: &HashProgress,
        now_ms: i64,
    ) -> Result<bool> {
        let saved = sqlx::query(
            "UPDATE upload_sessions SET hash_next = ?, hash_state = ? \
             WHERE id = ? AND state IN ('uploading', 'merging') AND EXISTS (SELECT 1 FROM upload_leases \
             WHERE upload_id = ? AND name = ? AND holder = ? AND expires_at >= ?)",
        )
        .bind(progress.next as i64)
        .bind(hex::encode(&progress.state))
        .bind(id.as_str())
        .bind(id.as_str())
        .bind(HASH_LEASE)
        .bind(holder)
        .bind(now_ms)
        .execute(self.repo.volatile_pool())
        .await?;
        Ok(saved.rows_affected() == 1)
    }
}

#[async_trait]
impl Challenges for SqlUploads {
    async fn put_challenge(&self, id: &UploadId, proof: &PendingProof) -> Result<()> {
        let mut tx = self.repo.begin().await?;
        sqlx::query("DELETE FROM upload_challenges WHERE upload_id = ? OR expires_at < ?")
            .bind(id.as_str())
            .bind(crate::now())
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO upload_challenges (upload_id, file_id, expected, expires_at) VALUES (?, ?, ?, ?)")
            .bind(id.as_str())
            .bind(proof.file_id)
            .bind(proof.expected.as_str())
            .bind(proof.expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn take_challenge(&self, id: &UploadId, now: i64) -> Result<Option<PendingProof>> {
        let mut tx = self.repo.begin().await?;
        let row = sqlx::query("SELECT file_id, expected, expires_at FROM upload_challenges WHERE upload_id = ?")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        // The delete is the single-use guard: of two concurrent takes, one deletes the row.
        let taken = sqlx::query("DELETE FROM upload_challenges WHERE upload_id = ?")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let proof = PendingProof {
            file_id: row.try_get("file_id")?,
            expected: row.try_get("expected")?,
            expires_at: row.try_get("expires_at")?,
        };
        Ok((taken.rows_affected() == 1 && proof.expires_at >= now).then_some(proof))
    }
}
