//! Signing keys in SQL: every api process reads the same set, so a key one
//! process (or `api admin rotate-keys`) makes is seen by all.

use async_trait::async_trait;
use sqlx::Row;

use super::rows::{SqlRepo, is_unique_violation};
use super::{KeyRepo, StoredKey};
use crate::domain::error::Result;

#[async_trait]
impl KeyRepo for SqlRepo {
    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows =
            sqlx::query("SELECT purpose, kid, secret, created_at FROM signing_keys ORDER BY purpose, created_at, kid")
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(StoredKey {
                    purpose: r.try_get("purpose")?,
                    kid: r.try_get("kid")?,
                    secret: r.try_get("secret")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<sqlx::Result<_>>()?)
    }

    async fn add_signing_key(&self, key: &StoredKey) -> Result<bool> {
        let inserted = sqlx::query("INSERT INTO signing_keys (purpose, kid, secret, created_at) VALUES (?, ?, ?, ?)")
            .bind(&key.purpose)
            .bind(&key.kid)
            .bind(&key.secret)
            .bind(key.created_at)
            .execute(self.pool())
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn drop_signing_key(&self, purpose: &str, kid: &str) -> Result<()> {
        sqlx::query("DELETE FROM signing_keys WHERE purpose = ? AND kid = ?")
            .bind(purpose)
            .bind(kid)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
