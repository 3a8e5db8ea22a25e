//! Share links in SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ShareRepo;
use super::rows::SqlRepo;
use crate::domain::error::{Error, Result};
use crate::domain::{Share, ShareTarget, UploadLink};

const SHARE: &str = "link_id, user_id, target_kind, target_id, password_hash, expires_at, max_downloads, downloads, \
                     size_bytes, bytes_sent, created_at";

const UPLOAD_LINK: &str = "link_id, user_id, folder_id, password_hash, expires_at, max_bytes, bytes_used, created_at";

fn upload_link_from(row: &AnyRow) -> Result<UploadLink> {
    Ok(UploadLink {
        link: row.try_get("link_id")?,
        owner: row.try_get("user_id")?,
        folder: row.try_get("folder_id")?,
        password_hash: row.try_get("password_hash")?,
        expires_at: row.try_get("expires_at")?,
        max_bytes: row.try_get("max_bytes")?,
        bytes_used: row.try_get("bytes_used")?,
        created_at: row.try_get("created_at")?,
    })
}

fn share_from(row: &AnyRow) -> Result<Share> {
    let kind: String = row.try_get("target_kind")?;
    let id: String = row.try_get("target_id")?;
    let target = match kind.as_str() {
        "file" => ShareTarget::File(id),
        "folder" => ShareTarget::Folder(id),
        other => return Err(Error::internal("reading a share link", format!("unknown target kind {other:?}"))),
    };
    Ok(Share {
        link: row.try_get("link_id")?,
        owner: row.try_get("user_id")?,
        target,
        password_hash: row.try_get("password_hash")?,
        expires_at: row.try_get("expires_at")?,
        max_downloads: row.try_get("max_downloads")?,
        size: row.try_get("size_bytes")?,
        bytes_sent: row.try_get("bytes_sent")?,
        legacy_downloads: row.try_get("downloads")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl ShareRepo for SqlRepo {
    async fn create_share(&self, s: &Share) -> Result<()> {
        let (kind, id) = match &s.target {
            ShareTarget::File(id) => ("file", id),
            ShareTarget::Folder(id) => ("folder", id),
        };
        sqlx::query(
            "INSERT INTO shares (link_id, user_id, target_kind, target_id, password_hash, expires_at, max_downloads, \
             downloads, size_bytes, bytes_sent, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, 0, ?)",
        )
        .bind(s.link.as_str())
        .bind(s.owner)
        .bind(kind)
        .bind(id.as_str())
        .bind(s.password_hash.clone())
        .bind(s.expires_at)
        .bind(s.max_downloads)
        .bind(s.size)
        .bind(s.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn share(&self, link: &str) -> Result<Option<Share>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE} FROM shares WHERE link_id = ? AND revoked_at IS NULL"
        )))
        .bind(link)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(share_from).transpose()
    }

    async fn shares_of(&self, user_id: i64) -> Result<Vec<Share>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {SHARE} FROM shares WHERE user_id = ? AND revoked_at IS NULL ORDER BY created_at DESC, id DESC"
        )))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(share_from).collect()
    }

    async fn revoke_share(&self, user_id: i64, link: &str, now: i64) -> Result<()> {
        let done =
            sqlx::query("UPDATE shares SET revoked_at = ? WHERE user_id = ? AND link_id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(user_id)
                .bind(link)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Err(Error::ShareNotFound);
        }
        Ok(())
    }

    async fn reserve_share_bytes(&self, link: &str, bytes: i64, budget: Option<i64>) -> Result<bool> {
        // One statement: the check and the addition cannot be split by
        // another process's reservation (a row lock on MySQL, the writer
        // lock on SQLite).
        let reserved = match budget {
            Some(budget) => sqlx::query(
                "UPDATE shares SET bytes_sent = bytes_sent + ? WHERE link_id = ? AND revoked_at IS NULL \
                 AND bytes_sent + ? <= ?",
            )
            .bind(bytes)
            .bind(link)
            .bind(bytes)
            .bind(budget),
            None => {
                sqlx::query("UPDATE shares SET bytes_sent = bytes_sent + ? WHERE link_id = ? AND revoked_at IS NULL")
                    .bind(bytes)
                    .bind(link)
            }
        }
        .execute(self.pool())
        .await?;
        Ok(reserved.rows_affected() == 1)
    }

    async fn set_share_size(&self, link: &str, size: i64, bytes_sent: i64) -> Result<()> {
        sqlx::query("UPDATE shares SET size_bytes = ?, bytes_sent = ? WHERE link_id = ? AND size_bytes IS NULL")
            .bind(size)
            .bind(bytes_sent)
            .bind(link)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn create_upload_link(&self, l: &UploadLink) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_links (link_id, user_id, folder_id, password_hash, expires_at, max_bytes, bytes_used, \
             created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(l.link.as_str())
        .bind(l.owner)
        .bind(l.folder.as_str())
        .bind(l.password_hash.clone())
        .bind(l.expires_at)
        .bind(l.max_bytes)
        .bind(l.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn upload_link(&self, link: &str) -> Result<Option<UploadLink>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_LINK} FROM upload_links WHERE link_id = ? AND revoked_at IS NULL"
        )))
        .bind(link)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(upload_link_from).transpose()
    }

    async fn upload_links_of(&self, user_id: i64) -> Result<Vec<UploadLink>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {UPLOAD_LINK} FROM upload_links WHERE user_id = ? AND revoked_at IS NULL \
             ORDER BY created_at DESC, link_id"
        )))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(upload_link_from).collect()
    }

    async fn revoke_upload_link(&self, user_id: i64, link: &str, now: i64) -> Result<()> {
        let done = sqlx::query(
            "UPDATE upload_links SET revoked_at = ? WHERE user_id = ? AND link_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(link)
        .execute(self.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(Error::ShareNotFound);
        }
        Ok(())
    }

    async fn reserve_upload_link_bytes(&self, link: &str, bytes: i64) -> Result<bool> {
        // One statement: the check and the addition cannot be split.
        let reserved = sqlx::query(
            "UPDATE upload_links SET bytes_used = bytes_used + ? WHERE link_id = ? AND revoked_at IS NULL \
             AND (max_bytes IS NULL OR bytes_used + ? <= max_bytes)",
        )
        .bind(bytes)
        .bind(link)
        .bind(bytes)
        .execute(self.pool())
        .await?;
        Ok(reserved.rows_affected() == 1)
    }

    async fn release_upload_link_bytes(&self, link: &str, bytes: i64) -> Result<()> {
        sqlx::query(
            "UPDATE upload_links SET bytes_used = CASE WHEN bytes_used > ? THEN bytes_used - ? ELSE 0 END \
             WHERE link_id = ?",
        )
        .bind(bytes)
        .bind(bytes)
        .bind(link)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
