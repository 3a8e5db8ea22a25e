//! The quota ledger on SQL: holds of room in a user's quota, checked and
//! recorded in the transaction that takes the user's turn.

use async_trait::async_trait;
use sqlx::{Any, Row, Transaction};

use super::rows::{SqlRepo, TxError, lock_user, retry_on_conflict};
use super::{Hold, Limits, QuotaRepo, Refusal};
use crate::domain::error::Result;

type Tx = Transaction<'static, Any>;

/// What a user has and holds, besides the hold `except` (which a resize
/// replaces), read under their turn.
struct Standing {
    files: u64,
    bytes: u64,
    holds: u64,
    held: u64,
    open_uploads: u64,
}

async fn standing(tx: &mut Tx, user_id: i64, except: &str) -> sqlx::Result<Standing> {
    let stored = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(filesize), 0) AS SIGNED) AS bytes FROM user_files WHERE user_id = ?",
    )
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?;
    let held = sqlx::query(
        "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(bytes), 0) AS SIGNED) AS bytes, \
         CAST(COALESCE(SUM(is_upload), 0) AS SIGNED) AS uploads \
         FROM quota_holds WHERE user_id = ? AND hold_id <> ?",
    )
    .bind(user_id)
    .bind(except)
    .fetch_one(&mut **tx)
    .await?;
    let n = |row: &sqlx::any::AnyRow, col: &str| row.try_get::<i64, _>(col).map(|v| v.max(0) as u64);
    // Versions count the contents only they hold (no entry of the user's does).
    let (_, version_bytes) = super::versions::version_usage_in(tx, user_id).await?;
    Ok(Standing {
        files: n(&stored, "n")?,
        bytes: n(&stored, "bytes")? + version_bytes,
        holds: n(&held, "n")?,
        held: n(&held, "bytes")?,
        open_uploads: n(&held, "uploads")?,
    })
}

/// A user's folders, live and trashed (their files and holds are in
/// [`Standing`]).
async fn folders_of(tx: &mut Tx, user_id: i64) -> sqlx::Result<u64> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM folders WHERE user_id = ?").bind(user_id).fetch_one(&mut **tx).await?;
    Ok(n.max(0) as u64)
}

/// What the entries limit counts of a user: files and folders, live and
/// trashed, and the files their quota holds are for.
pub(super) async fn entries(tx: &mut Tx, user_id: i64) -> sqlx::Result<u64> {
    let s = standing(tx, user_id, "").await?;
    Ok(s.files + s.holds + folders_of(tx, user_id).await?)
}

impl SqlRepo {
    async fn try_reserve(&self, hold: &Hold<'_>, limits: &Limits) -> std::result::Result<Option<Refusal>, TxError> {
        // An upload's hold outlives the request (the upload resumes after a
        // restart): it is committed durably. Any other lasts one request and
        // goes with it in a crash, so its commit skips the sync (the entry
        // that uses it is committed durably, and that sync carries it too).
        let mut tx = if hold.upload { self.begin().await? } else { self.begin_volatile().await? };
        lock_user(&mut tx, hold.user_id).await?;
        let s = standing(&mut tx, hold.user_id, hold.id).await?;
        let refusal = if hold.upload
            && let Some(cap) = limits.uploads
            && s.open_uploads >= cap
        {
            Some(Refusal::Uploads { open: s.open_uploads })
        } else if let Some(quota) = limits.bytes
            && s.bytes.saturating_add(s.held).saturating_add(hold.bytes) > quota
        {
            Some(Refusal::Bytes { used: s.bytes, held: s.held, quota })
        } else if let Some(quota) = limits.files
            && s.files + s.holds + 1 > quota
        {
            Some(Refusal::Files { files: s.files, held: s.holds, quota })
        } else if let Some(quota) = limits.entries
            && let entries = s.files + s.holds + folders_of(&mut tx, hold.user_id).await?
            && entries + 1 > quota
        {
            Some(Refusal::Entries { entries, quota })
        } else {
            None
        };
        if refusal.is_some() {
            return Ok(refusal);
        }
        sqlx::query("DELETE FROM quota_holds WHERE hold_id = ?").bind(hold.id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO quota_holds (hold_id, user_id, bytes, is_upload, created_at) VALUES (?, ?, ?, ?, ?)")
            .bind(hold.id)
            .bind(hold.user_id)
            .bind(hold.bytes as i64)
            .bind(i64::from(hold.upload))
            .bind(hold.now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(None)
    }
}

#[async_trait]
impl QuotaRepo for SqlRepo {
    async fn reserve(&self, hold: &Hold<'_>, limits: &Limits) -> Result<Option<Refusal>> {
        retry_on_conflict!(self.try_reserve(hold, limits))
    }

    async fn release(&self, hold_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM quota_holds WHERE hold_id = ?").bind(hold_id).execute(self.pool()).await?;
        Ok(())
    }

    async fn upload_bytes_held(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(SUM(bytes), 0) AS SIGNED) FROM quota_holds WHERE is_upload = 1")
                .fetch_one(self.pool())
                .await?;
        Ok(n.max(0) as u64)
    }

    async fn holds(&self, user_id: i64) -> Result<(u64, u64)> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(is_upload), 0) AS SIGNED) AS uploads, \
             CAST(COALESCE(SUM(bytes), 0) AS SIGNED) AS bytes FROM quota_holds WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get::<i64, _>("uploads")?.max(0) as u64, row.try_get::<i64, _>("bytes")?.max(0) as u64))
    }

    async fn holds_before(&self, before: i64, limit: i64) -> Result<Vec<String>> {
        let ids =
            sqlx::query_scalar("SELECT hold_id FROM quota_holds WHERE created_at < ? ORDER BY created_at LIMIT ?")
                .bind(before)
                .bind(limit)
                .fetch_all(self.pool())
                .await?;
        Ok(ids)
    }
}
