//! Sessions (signin tokens), app passwords and the challenge log in SQL:
//! who may act for a user, and who proved they hold a content.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::rows::SqlRepo;
use super::sql::{USER, user_from};
use super::{AppPassword, ChallengeLog, Session, SessionRepo};
use crate::domain::User;
use crate::domain::error::{Error, Result};

fn app_from(row: &AnyRow) -> sqlx::Result<AppPassword> {
    Ok(AppPassword {
        id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// Revokes every token of `user_id` but `except` (a token's hash); how many.
async fn drop_tokens(tx: &mut Transaction<'static, Any>, user_id: i64, except: Option<&str>) -> sqlx::Result<u64> {
    let gone = sqlx::query("DELETE FROM tokens WHERE user_id = ? AND token_hash <> ?")
        .bind(user_id)
        .bind(except.unwrap_or(""))
        .execute(&mut **tx)
        .await?;
    Ok(gone.rows_affected())
}

#[async_trait]
impl SessionRepo for SqlRepo {
    async fn insert_session(
        &self,
        token_hash: &str,
        user_id: i64,
        device: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO tokens (token_hash, user_id, device, created_at, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(device)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    async fn sessions(&self, user_id: i64, now: i64) -> Result<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT token_hash, device, created_at, expires_at FROM tokens WHERE user_id = ? AND expires_at > ? \
             ORDER BY created_at DESC, token_hash LIMIT 1000",
        )
        .bind(user_id)
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let hash: String = r.try_get("token_hash")?;
                Ok::<_, sqlx::Error>(Session {
                    id: hash.chars().take(16).collect(),
                    device: r.try_get("device")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()?)
    }

    async fn revoke_sessions(&self, user_id: i64, except: Option<&str>, app_passwords: bool) -> Result<u64> {
        let mut tx = self.begin().await?;
        let revoked = drop_tokens(&mut tx, user_id, except).await?;
        if app_passwords {
            sqlx::query("DELETE FROM app_passwords WHERE user_id = ?").bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(revoked)
    }

    async fn set_password(&self, user_id: i64, password_hash: &str, except: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        let changed = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(password_hash)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if changed.rows_affected() == 0 {
            return Err(Error::UserNotFound);
        }
        drop_tokens(&mut tx, user_id, except).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn user_id_by_name(&self, name: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE username = ?").bind(name).fetch_optional(self.pool()).await?)
    }

    async fn add_app_password(&self, user_id: i64, app: &AppPassword, secret_hash: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_passwords (app_id, user_id, name, secret_hash, created_at, last_used_at) \
             VALUES (?, ?, ?, ?, ?, NULL)",
        )
        .bind(app.id.as_str())
        .bind(user_id)
        .bind(app.name.as_str())
        .bind(secret_hash)
        .bind(app.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn app_passwords(&self, user_id: i64) -> Result<Vec<AppPassword>> {
        let rows = sqlx::query(
            "SELECT app_id, name, created_at, last_used_at FROM app_passwords WHERE user_id = ? \
             ORDER BY created_at, app_id LIMIT 1000",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(app_from).collect::<sqlx::Result<_>>()?)
    }

    async fn revoke_app_password(&self, user_id: i64, id: &str) -> Result<bool> {
        let gone = sqlx::query("DELETE FROM app_passwords WHERE user_id = ? AND app_id = ?")
            .bind(user_id)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(gone.rows_affected() > 0)
    }

    async fn user_by_app_password(&self, name: &str, secret_hash: &str) -> Result<Option<(User, String, Option<i64>)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER}, a.app_id, a.name AS app_name, a.last_used_at FROM app_passwords a \
             JOIN users u ON u.id = a.user_id WHERE a.secret_hash = ? AND u.username = ? AND u.disabled = 0"
        )))
        .bind(secret_hash)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut user = user_from(&row)?;
        // What it changes is by this app password, by its name.
        user.author =
            crate::domain::Author { kind: crate::domain::AuthorKind::AppPassword, name: row.try_get("app_name")? };
        Ok(Some((user, row.try_get("app_id")?, row.try_get("last_used_at")?)))
    }

    async fn touch_app_password(&self, id: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE app_passwords SET last_used_at = ? WHERE app_id = ?")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ChallengeLog for SqlRepo {
    async fn challenge_issued(&self, file_id: i64, upload_id: &str, now: i64) -> Result<()> {
        // A re-declared upload gets a new challenge: it replaces the old one.
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM challenge_log WHERE upload_id = ?").bind(upload_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO challenge_log (upload_id, file_id, issued_at, failed) VALUES (?, ?, ?, 0)")
            .bind(upload_id)
            .bind(file_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn challenge_answered(&self, upload_id: &str, right: bool) -> Result<()> {
        let sql = if right {
            "DELETE FROM challenge_log WHERE upload_id = ?"
        } else {
            "UPDATE challenge_log SET failed = 1 WHERE upload_id = ?"
        };
        sqlx::query(sql).bind(upload_id).execute(self.pool()).await?;
        Ok(())
    }

    async fn failed_challenges(&self, file_id: i64, since: i64, unanswered_before: i64) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM challenge_log WHERE file_id = ? AND issued_at >= ? \
             AND (failed = 1 OR issued_at < ?)",
        )
        .bind(file_id)
        .bind(since)
        .bind(unanswered_before)
        .fetch_one(self.pool())
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn forget_challenges(&self, before: i64) -> Result<u64> {
        let gone =
            sqlx::query("DELETE FROM challenge_log WHERE issued_at < ?").bind(before).execute(self.pool()).await?;
        Ok(gone.rows_affected())
    }
}
