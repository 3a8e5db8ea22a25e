//! Share links in SQL.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::ShareRepo;
use super::rows::SqlRepo;
use crate::domain::error::{Error, Result};
use crate::domain::{Share, ShareTarget};

const SHARE: &str = "link_id, user_id, target_kind, target_id, password_hash, expires_at, max_downloads, downloads, \
                     created_at";

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
        downloads: row.try_get("downloads")?,
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
             downloads, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(s.link.as_str())
        .bind(s.owner)
        .bind(kind)
        .bind(id.as_str())
        .bind(s.password_hash.clone())
        .bind(s.expires_at)
        .bind(s.max_downloads)
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

    async fn count_download(&self, link: &str) -> Result<bool> {
        let counted = sqlx::query(
            "UPDATE shares SET downloads = downloads + 1 WHERE link_id = ? AND revoked_at IS NULL \
             AND (max_downloads IS NULL OR downloads < max_downloads)",
        )
        .bind(link)
        .execute(self.pool())
        .await?;
        Ok(counted.rows_affected() == 1)
    }
}
