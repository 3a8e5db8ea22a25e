//! The queries, written once in the SQL both SQLite and MySQL speak.

use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{BackupRepo, FileRepo, MetaRepo, NewUserFile, SecretRepo, Totals, UserRepo};
use crate::domain::{StoredFile, User, UserFile, UserName};
use crate::error::{Error, Result};

/// Which SQL system a pool talks to; only transaction start differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (embedded).
    Sqlite,
    /// MySQL or MariaDB (fleet).
    MySql,
}

/// The metadata repository over a pool of either SQL system.
#[derive(Clone)]
pub struct SqlRepo {
    pool: AnyPool,
    dialect: Dialect,
}

/// A conflict with a concurrent transaction that running again resolves: a
/// duplicate key inserted first by the other writer, or an InnoDB deadlock
/// (SQLSTATE 40001) between two writers of the same rows.
fn is_retryable_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation() || d.code().as_deref() == Some("40001"))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

fn user_from(row: &AnyRow) -> sqlx::Result<User> {
    Ok(User { id: row.try_get("id")?, username: row.try_get("username")?, created_at: row.try_get("created_at")? })
}

fn user_file_from(row: &AnyRow) -> sqlx::Result<UserFile> {
    Ok(UserFile {
        filehash: row.try_get("filehash")?,
        filesize: row.try_get("filesize")?,
        filename: row.try_get("filename")?,
        uploaded_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn stored_file_from(row: &AnyRow) -> sqlx::Result<StoredFile> {
    Ok(StoredFile {
        filehash: row.try_get("filehash")?,
        filesize: row.try_get("filesize")?,
        storage_key: row.try_get("storage_key")?,
        backup_key: row.try_get("backup_key")?,
        backup_state: row.try_get("backup_state")?,
    })
}

impl SqlRepo {
    pub(crate) fn new(pool: AnyPool, dialect: Dialect) -> Self {
        SqlRepo { pool, dialect }
    }

    /// The pool, for the SQL upload-session store that shares it.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that already holds the write lock on SQLite.
    pub(crate) async fn begin(&self) -> sqlx::Result<Transaction<'static, Any>> {
        match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::MySql => self.pool.begin().await,
        }
    }

    /// Adds the user's entry (or renames the existing one) inside `tx`.
    /// Returns whether a new entry was created.
    async fn upsert_entry(tx: &mut Transaction<'static, Any>, f: &NewUserFile<'_>) -> sqlx::Result<bool> {
        let updated = sqlx::query(
            "UPDATE user_files SET filename = ?, updated_at = ? WHERE user_id = ? AND filehash = ? AND filesize = ?",
        )
        .bind(f.filename)
        .bind(f.now)
        .bind(f.user_id)
        .bind(f.filehash)
        .bind(f.filesize)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() > 0 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO user_files (user_id, filehash, filesize, filename, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(f.user_id)
        .bind(f.filehash)
        .bind(f.filesize)
        .bind(f.filename)
        .bind(f.now)
        .bind(f.now)
        .execute(&mut **tx)
        .await?;
        Ok(true)
    }

    async fn entry_in(tx: &mut Transaction<'static, Any>, user_id: i64, filehash: &str) -> sqlx::Result<UserFile> {
        let row = sqlx::query(
            "SELECT filehash, filesize, filename, created_at, updated_at FROM user_files WHERE user_id = ? AND filehash = ?",
        )
        .bind(user_id)
        .bind(filehash)
        .fetch_one(&mut **tx)
        .await?;
        user_file_from(&row)
    }

    /// Takes one more reference on stored content, inside `tx`. Locking the
    /// row first means a concurrent delete cannot drop it under us. `false`
    /// when no live row exists.
    async fn reference_content(tx: &mut Transaction<'static, Any>, f: &NewUserFile<'_>) -> sqlx::Result<bool> {
        let bumped = sqlx::query(
            "UPDATE files SET refcount = refcount + 1 WHERE filehash = ? AND filesize = ? AND refcount > 0",
        )
        .bind(f.filehash)
        .bind(f.filesize)
        .execute(&mut **tx)
        .await?;
        Ok(bumped.rows_affected() > 0)
    }

    /// Gives the user their entry for content just referenced, inside `tx`;
    /// when they already had one, it is renamed and the extra reference
    /// undone, so each entry holds exactly one reference.
    async fn settle_entry(tx: &mut Transaction<'static, Any>, f: &NewUserFile<'_>) -> sqlx::Result<UserFile> {
        if !Self::upsert_entry(tx, f).await? {
            sqlx::query("UPDATE files SET refcount = refcount - 1 WHERE filehash = ? AND filesize = ?")
                .bind(f.filehash)
                .bind(f.filesize)
                .execute(&mut **tx)
                .await?;
        }
        Self::entry_in(tx, f.user_id, f.filehash).await
    }

    /// One attempt at linking; a unique violation means a concurrent writer
    /// won a race and the caller retries.
    async fn try_link(&self, f: &NewUserFile<'_>) -> sqlx::Result<Option<UserFile>> {
        let mut tx = self.begin().await?;
        if !Self::reference_content(&mut tx, f).await? {
            return Ok(None);
        }
        let entry = Self::settle_entry(&mut tx, f).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    async fn try_commit_merged(&self, f: &NewUserFile<'_>, storage_key: &str) -> sqlx::Result<(UserFile, StoredFile)> {
        let mut tx = self.begin().await?;
        if !Self::reference_content(&mut tx, f).await? {
            // A row left at refcount 0 is content being deleted: replace it.
            sqlx::query("DELETE FROM files WHERE filehash = ? AND filesize = ? AND refcount = 0")
                .bind(f.filehash)
                .bind(f.filesize)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO files (filehash, filesize, storage_key, refcount, backup_state, backup_attempts, created_at) \
                 VALUES (?, ?, ?, 1, 'none', 0, ?)",
            )
            .bind(f.filehash)
            .bind(f.filesize)
            .bind(storage_key)
            .bind(f.now)
            .execute(&mut *tx)
            .await?;
        }
        let entry = Self::settle_entry(&mut tx, f).await?;
        let row = sqlx::query(
            "SELECT filehash, filesize, storage_key, backup_key, backup_state FROM files WHERE filehash = ? AND filesize = ?",
        )
        .bind(f.filehash)
        .bind(f.filesize)
        .fetch_one(&mut *tx)
        .await?;
        let stored = stored_file_from(&row)?;
        tx.commit().await?;
        Ok((entry, stored))
    }
}

/// Runs `attempt` again when it lost a uniqueness race (at most a few times).
macro_rules! retry_on_conflict {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            match $attempt.await {
                Err(e) if is_retryable_conflict(&e) && tries < 5 => tries += 1,
                other => break other.map_err(Error::from),
            }
        }
    }};
}

#[async_trait]
impl UserRepo for SqlRepo {
    async fn create_user(&self, name: &UserName, password_hash: &str, now: i64) -> Result<User> {
        let res = sqlx::query("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)")
            .bind(name.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&self.pool)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(Error::UsernameTaken),
            other => other?,
        };
        let row = sqlx::query("SELECT id, username, created_at FROM users WHERE username = ?")
            .bind(name.as_str())
            .fetch_one(&self.pool)
            .await?;
        Ok(user_from(&row)?)
    }

    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query("SELECT id, username, created_at, password_hash FROM users WHERE username = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((user_from(&r)?, r.try_get("password_hash")?))).transpose()?)
    }

    async fn insert_token(&self, token_hash: &str, user_id: i64, now: i64, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn user_by_token(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT u.id, u.username, u.created_at FROM tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = ? AND t.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn delete_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE token_hash = ?").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    async fn delete_expired_tokens(&self, now: i64) -> Result<u64> {
        let res = sqlx::query("DELETE FROM tokens WHERE expires_at <= ?").bind(now).execute(&self.pool).await?;
        Ok(res.rows_affected())
    }

    async fn usage(&self, user_id: i64) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(filesize), 0) AS SIGNED) AS bytes FROM user_files WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("n")?, row.try_get("bytes")?))
    }
}

#[async_trait]
impl FileRepo for SqlRepo {
    async fn stored_file(&self, filehash: &str, filesize: i64) -> Result<Option<StoredFile>> {
        let row = sqlx::query(
            "SELECT filehash, filesize, storage_key, backup_key, backup_state FROM files WHERE filehash = ? AND filesize = ? AND refcount > 0",
        )
        .bind(filehash)
        .bind(filesize)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(stored_file_from).transpose()?)
    }

    async fn link_existing(&self, f: &NewUserFile<'_>) -> Result<Option<UserFile>> {
        // Most inits are for new content: a plain read answers them without
        // taking the write lock (SQLite) that the linking transaction needs.
        if self.stored_file(f.filehash, f.filesize).await?.is_none() {
            return Ok(None);
        }
        retry_on_conflict!(self.try_link(f))
    }

    async fn commit_merged(&self, f: &NewUserFile<'_>, storage_key: &str) -> Result<(UserFile, StoredFile)> {
        retry_on_conflict!(self.try_commit_merged(f, storage_key))
    }

    async fn list_files(&self, user_id: i64, limit: i64, offset: i64) -> Result<(Vec<UserFile>, i64)> {
        let rows = sqlx::query(
            "SELECT filehash, filesize, filename, created_at, updated_at FROM user_files WHERE user_id = ? \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        )
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_files WHERE user_id = ?")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(user_file_from).collect::<sqlx::Result<_>>()?, total))
    }

    async fn user_file(&self, user_id: i64, filehash: &str) -> Result<Option<(UserFile, StoredFile)>> {
        let row = sqlx::query(
            "SELECT uf.filehash, uf.filesize, uf.filename, uf.created_at, uf.updated_at, f.storage_key, f.backup_key, f.backup_state \
             FROM user_files uf JOIN files f ON f.filehash = uf.filehash AND f.filesize = uf.filesize \
             WHERE uf.user_id = ? AND uf.filehash = ?",
        )
        .bind(user_id)
        .bind(filehash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((user_file_from(&r)?, stored_file_from(&r)?))).transpose()?)
    }

    async fn rename_file(&self, user_id: i64, filehash: &str, filename: &str, now: i64) -> Result<UserFile> {
        let res = sqlx::query("UPDATE user_files SET filename = ?, updated_at = ? WHERE user_id = ? AND filehash = ?")
            .bind(filename)
            .bind(now)
            .bind(user_id)
            .bind(filehash)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(Error::FileNotFound);
        }
        let row = sqlx::query(
            "SELECT filehash, filesize, filename, created_at, updated_at FROM user_files WHERE user_id = ? AND filehash = ?",
        )
        .bind(user_id)
        .bind(filehash)
        .fetch_one(&self.pool)
        .await?;
        Ok(user_file_from(&row)?)
    }

    async fn delete_file(&self, user_id: i64, filehash: &str) -> Result<Option<StoredFile>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT filesize FROM user_files WHERE user_id = ? AND filehash = ?")
            .bind(user_id)
            .bind(filehash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(Error::FileNotFound);
        };
        let filesize: i64 = row.try_get("filesize")?;
        let removed = sqlx::query("DELETE FROM user_files WHERE user_id = ? AND filehash = ? AND filesize = ?")
            .bind(user_id)
            .bind(filehash)
            .bind(filesize)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Err(Error::FileNotFound);
        }
        sqlx::query("UPDATE files SET refcount = refcount - 1 WHERE filehash = ? AND filesize = ?")
            .bind(filehash)
            .bind(filesize)
            .execute(&mut *tx)
            .await?;
        let orphan = sqlx::query(
            "SELECT filehash, filesize, storage_key, backup_key, backup_state FROM files WHERE filehash = ? AND filesize = ? AND refcount <= 0",
        )
        .bind(filehash)
        .bind(filesize)
        .fetch_optional(&mut *tx)
        .await?;
        let orphan = orphan.as_ref().map(stored_file_from).transpose()?;
        if orphan.is_some() {
            sqlx::query("DELETE FROM files WHERE filehash = ? AND filesize = ? AND refcount <= 0")
                .bind(filehash)
                .bind(filesize)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(orphan)
    }
}

#[async_trait]
impl BackupRepo for SqlRepo {
    async fn set_backup(&self, filehash: &str, filesize: i64, state: &str, key: Option<&str>, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE files SET backup_state = ?, backup_key = COALESCE(?, backup_key), backup_at = ?, \
             backup_attempts = backup_attempts + CASE WHEN ? = 'failed' THEN 1 ELSE 0 END \
             WHERE filehash = ? AND filesize = ?",
        )
        .bind(state)
        .bind(key)
        .bind(now)
        .bind(state)
        .bind(filehash)
        .bind(filesize)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn is_referenced(&self, storage_key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE storage_key = ?")
            .bind(storage_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn backups_due(&self, before: i64, limit: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT filehash, filesize FROM files WHERE backup_state IN ('pending', 'failed') AND backup_at < ? \
             AND refcount > 0 ORDER BY backup_at LIMIT ?",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("filehash")?, r.try_get("filesize")?)))
            .collect::<sqlx::Result<_>>()?)
    }
}

#[async_trait]
impl SecretRepo for SqlRepo {
    async fn secret(&self, name: &str, fresh: &str) -> Result<String> {
        let inserted = sqlx::query("INSERT INTO secrets (name, value) VALUES (?, ?)")
            .bind(name)
            .bind(fresh)
            .execute(&self.pool)
            .await;
        match inserted {
            Err(e) if !is_unique_violation(&e) => return Err(e.into()),
            _ => {}
        }
        let value: String =
            sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?").bind(name).fetch_one(&self.pool).await?;
        Ok(value)
    }
}

#[async_trait]
impl MetaRepo for SqlRepo {
    async fn health_check(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn totals(&self) -> Result<Totals> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM files) AS files, \
             (SELECT CAST(COALESCE(SUM(filesize), 0) AS SIGNED) FROM files) AS stored_bytes, \
             (SELECT COUNT(*) FROM user_files) AS user_files",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Totals {
            users: row.try_get("users")?,
            files: row.try_get("files")?,
            stored_bytes: row.try_get("stored_bytes")?,
            user_files: row.try_get("user_files")?,
        })
    }
}
