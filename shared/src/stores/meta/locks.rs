//! WebDAV locks on SQL (the embedded deployment): the `dav_locks` table.
//! Taking a lock holds the user's turn, so the conflict check and the
//! insert are one step.

use async_trait::async_trait;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::rows::{SqlRepo, lock_user};
use crate::domain::error::Result;
use crate::stores::locks::{Acquired, DavLock, LockStore, admit};

fn lock_from(row: &AnyRow) -> sqlx::Result<DavLock> {
    Ok(DavLock {
        token: row.try_get("token")?,
        user_id: row.try_get("user_id")?,
        path: row.try_get("path")?,
        infinite: row.try_get::<i64, _>("infinite")? != 0,
        exclusive: row.try_get::<i64, _>("exclusive")? != 0,
        owner: row.try_get("owner")?,
        expires_at: row.try_get("expires_at")?,
    })
}

#[async_trait]
impl LockStore for SqlRepo {
    async fn list(&self, user_id: i64, now: i64) -> Result<Vec<DavLock>> {
        let sql = "SELECT token, user_id, path, infinite, exclusive, owner, expires_at FROM dav_locks \
                   WHERE user_id = ? AND expires_at > ?";
        let rows = sqlx::query(sql).bind(user_id).bind(now).fetch_all(self.pool()).await?;
        Ok(rows.iter().map(lock_from).collect::<sqlx::Result<_>>()?)
    }

    async fn acquire(&self, lock: &DavLock, now: i64, max_per_user: usize) -> Result<Acquired> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, lock.user_id).await?;
        sqlx::query("DELETE FROM dav_locks WHERE user_id = ? AND expires_at <= ?")
            .bind(lock.user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let sql =
            "SELECT token, user_id, path, infinite, exclusive, owner, expires_at FROM dav_locks WHERE user_id = ?";
        let rows = sqlx::query(sql).bind(lock.user_id).fetch_all(&mut *tx).await?;
        let live = rows.iter().map(lock_from).collect::<sqlx::Result<Vec<_>>>()?;
        let verdict = admit(lock, &live, max_per_user);
        if verdict == Acquired::Taken {
            sqlx::query(
                "INSERT INTO dav_locks (token, user_id, path, infinite, exclusive, owner, expires_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(lock.token.as_str())
            .bind(lock.user_id)
            .bind(lock.path.as_str())
            .bind(lock.infinite as i64)
            .bind(lock.exclusive as i64)
            .bind(lock.owner.as_str())
            .bind(lock.expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(verdict)
    }

    async fn refresh(&self, user_id: i64, token: &str, expires_at: i64, now: i64) -> Result<Option<DavLock>> {
        let done =
            sqlx::query("UPDATE dav_locks SET expires_at = ? WHERE user_id = ? AND token = ? AND expires_at > ?")
                .bind(expires_at)
                .bind(user_id)
                .bind(token)
                .bind(now)
                .execute(self.pool())
                .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = "SELECT token, user_id, path, infinite, exclusive, owner, expires_at FROM dav_locks \
                   WHERE user_id = ? AND token = ?";
        let row = sqlx::query(sql).bind(user_id).bind(token).fetch_optional(self.pool()).await?;
        Ok(row.as_ref().map(lock_from).transpose()?)
    }

    async fn release(&self, user_id: i64, token: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM dav_locks WHERE user_id = ? AND token = ?")
            .bind(user_id)
            .bind(token)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
