//! Versions on SQL: the `file_versions` table. A version row holds one
//! reference on its content (counted in `files.refcount`, as an entry's),
//! so replacing a file moves the entry's reference to the new version row
//! and takes one on the new content, in the transaction that holds the
//! user's turn.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::rows::{CONTENT, ENTRY, SqlRepo, TxError, lock_user, retry_on_conflict, stored_file_from, user_file_from};
use super::{Placed, VersionRepo};
use crate::domain::error::{Error, Result};
use crate::domain::versions::{Aged, Version};
use crate::domain::{Author, AuthorKind, StoredFile, UserFile};

type Tx = Transaction<'static, Any>;

/// Columns of a version and its content (`v` = file_versions, `f` = files).
const VERSION: &str = "v.version_id, v.entry_id, v.filesize AS version_size, v.mtime AS version_mtime, \
                       v.replaced_at, v.author_kind, v.author_name, v.label, v.pinned, \
                       f.id AS file_id, f.filehash, f.sha256, f.filesize, f.storage_key, f.backup_key, f.backup_state";

fn version_from(row: &AnyRow) -> sqlx::Result<Version> {
    Ok(Version {
        id: row.try_get("version_id")?,
        entry_id: row.try_get("entry_id")?,
        filesize: row.try_get("version_size")?,
        mtime: row.try_get("version_mtime")?,
        replaced_at: row.try_get("replaced_at")?,
        author: Author {
            kind: AuthorKind::parse(&row.try_get::<String, _>("author_kind")?),
            name: row.try_get("author_name")?,
        },
        label: row.try_get("label")?,
        pinned: row.try_get::<i64, _>("pinned")? != 0,
        content: stored_file_from(row)?,
    })
}

/// A new version's id: 32 hex characters, the first 16 the time in
/// microseconds, so that ids sort in the order versions were made (two in
/// one second are told apart), the rest random.
fn version_id() -> String {
    let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
    format!("{micros:016x}{}", crate::random_hex(8))
}

/// Drops one reference on content `file_id`; when none is left, its row
/// goes and it comes back (its bytes are the caller's to delete).
pub(super) async fn unreference(tx: &mut Tx, file_id: i64) -> sqlx::Result<Option<StoredFile>> {
    sqlx::query("UPDATE files SET refcount = refcount - 1 WHERE id = ?").bind(file_id).execute(&mut **tx).await?;
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {CONTENT} FROM files f WHERE f.id = ? AND f.refcount <= 0")))
        .bind(file_id)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(None) };
    sqlx::query("DELETE FROM files WHERE id = ? AND refcount <= 0").bind(file_id).execute(&mut **tx).await?;
    Ok(Some(stored_file_from(&row)?))
}

/// What replaces an entry's content.
pub(super) struct NewContent<'a> {
    /// The content's row, on which the caller holds one reference for the entry.
    pub file_id: i64,
    /// Its size.
    pub filesize: i64,
    /// The entry's modification time from now on.
    pub mtime: i64,
    /// Who replaces it.
    pub author: &'a Author,
    /// When.
    pub now: i64,
}

/// Gives entry `current` (of `user_id`, holding `current_content`) new
/// content, inside `tx` (which holds the user's turn): its content so far
/// becomes a version (the entry's reference moves to it), unless it is the
/// same content (the caller's extra reference is given back; only the time
/// changes) or empty (its reference is dropped). Returns the contents left
/// without a reference.
pub(super) async fn replace_content(
    tx: &mut Tx,
    user_id: i64,
    current: &UserFile,
    current_content: &StoredFile,
    new: &NewContent<'_>,
) -> std::result::Result<Vec<StoredFile>, TxError> {
    // The entry names its new content first: no row may name content
    // whose last reference goes below.
    sqlx::query("UPDATE user_files SET file_id = ?, filesize = ?, mtime = ?, updated_at = ? WHERE entry_id = ?")
        .bind(new.file_id)
        .bind(new.filesize)
        .bind(new.mtime)
        .bind(new.now)
        .bind(current.id.as_str())
        .execute(&mut **tx)
        .await?;
    let mut orphans = Vec::new();
    if current_content.id == new.file_id {
        orphans.extend(unreference(tx, new.file_id).await?);
    } else if current.filesize == 0 {
        orphans.extend(unreference(tx, current_content.id).await?);
    } else {
        sqlx::query(
            "INSERT INTO file_versions (version_id, entry_id, user_id, file_id, filesize, mtime, replaced_at, \
             author_kind, author_name, label, pinned) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 0)",
        )
        .bind(version_id())
        .bind(current.id.as_str())
        .bind(user_id)
        .bind(current_content.id)
        .bind(current.filesize)
        .bind(current.mtime)
        .bind(new.now)
        .bind(new.author.kind.as_str())
        .bind(new.author.name.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(orphans)
}

/// The user's entry `entry_id` (live, or in the trash with `trashed`) and
/// its content.
pub(super) async fn entry_with_content(
    tx: &mut Tx,
    user_id: i64,
    entry_id: &str,
    trashed: bool,
) -> sqlx::Result<Option<(UserFile, StoredFile)>> {
    let live = if trashed { "" } else { " AND uf.trashed_by IS NULL" };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
         WHERE uf.user_id = ? AND uf.entry_id = ?{live}"
    )))
    .bind(user_id)
    .bind(entry_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((user_file_from(&r)?, stored_file_from(&r)?))).transpose()
}

/// Deletes every version of the entries `entry_ids` (of `user_id`), inside
/// `tx`; returns the contents left without a reference.
pub(super) async fn drop_versions_of(tx: &mut Tx, user_id: i64, entry_ids: &[String]) -> sqlx::Result<Vec<StoredFile>> {
    let mut orphans = Vec::new();
    for batch in entry_ids.chunks(200) {
        let marks = vec!["?"; batch.len()].join(", ");
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "SELECT file_id FROM file_versions WHERE user_id = ? AND entry_id IN ({marks})"
        )))
        .bind(user_id);
        for id in batch {
            q = q.bind(id.as_str());
        }
        let files = q.fetch_all(&mut **tx).await?;
        let mut d = sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM file_versions WHERE user_id = ? AND entry_id IN ({marks})"
        )))
        .bind(user_id);
        for id in batch {
            d = d.bind(id.as_str());
        }
        d.execute(&mut **tx).await?;
        for file_id in files {
            orphans.extend(unreference(tx, file_id).await?);
        }
    }
    Ok(orphans)
}

impl SqlRepo {
    async fn version_in(tx: &mut Tx, user_id: i64, entry_id: &str, version_id: &str) -> sqlx::Result<Option<Version>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION} FROM file_versions v JOIN files f ON f.id = v.file_id \
             WHERE v.user_id = ? AND v.entry_id = ? AND v.version_id = ?"
        )))
        .bind(user_id)
        .bind(entry_id)
        .bind(version_id)
        .fetch_optional(&mut **tx)
        .await?;
        row.as_ref().map(version_from).transpose()
    }

    async fn try_restore_version(
        &self,
        user_id: i64,
        entry_id: &str,
        version_id: &str,
        author: &Author,
        now: i64,
    ) -> std::result::Result<Placed, TxError> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let (current, content) =
            entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        let version = Self::version_in(&mut tx, user_id, entry_id, version_id).await?.ok_or(Error::VersionNotFound)?;
        // The version's reference becomes the entry's.
        sqlx::query("DELETE FROM file_versions WHERE version_id = ?").bind(version_id).execute(&mut *tx).await?;
        let new =
            NewContent { file_id: version.content.id, filesize: version.filesize, mtime: version.mtime, author, now };
        let orphans = replace_content(&mut tx, user_id, &current, &content, &new).await?;
        let (entry, _) = entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        tx.commit().await?;
        Ok(Placed { entry, orphans })
    }
}

#[async_trait]
impl VersionRepo for SqlRepo {
    async fn versions(&self, user_id: i64, entry_id: &str) -> Result<Vec<Version>> {
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_files WHERE user_id = ? AND entry_id = ?")
            .bind(user_id)
            .bind(entry_id)
            .fetch_one(&self.pool)
            .await?;
        if exists == 0 {
            return Err(Error::FileNotFound);
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION} FROM file_versions v JOIN files f ON f.id = v.file_id \
             WHERE v.user_id = ? AND v.entry_id = ? ORDER BY v.replaced_at DESC, v.version_id DESC"
        )))
        .bind(user_id)
        .bind(entry_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(version_from).collect::<sqlx::Result<_>>()?)
    }

    async fn version(&self, user_id: i64, entry_id: &str, version_id: &str) -> Result<Option<Version>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {VERSION} FROM file_versions v JOIN files f ON f.id = v.file_id \
             JOIN user_files uf ON uf.entry_id = v.entry_id AND uf.trashed_by IS NULL \
             WHERE v.user_id = ? AND v.entry_id = ? AND v.version_id = ?"
        )))
        .bind(user_id)
        .bind(entry_id)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(version_from).transpose()?)
    }

    async fn restore_version(
        &self,
        user_id: i64,
        entry_id: &str,
        version_id: &str,
        author: &Author,
        now: i64,
    ) -> Result<Placed> {
        retry_on_conflict!(self.try_restore_version(user_id, entry_id, version_id, author, now))
    }

    async fn delete_version(&self, user_id: i64, entry_id: &str, version_id: &str) -> Result<Vec<StoredFile>> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        let version = Self::version_in(&mut tx, user_id, entry_id, version_id).await?.ok_or(Error::VersionNotFound)?;
        sqlx::query("DELETE FROM file_versions WHERE version_id = ?").bind(version_id).execute(&mut *tx).await?;
        let orphans = unreference(&mut tx, version.content.id).await?.into_iter().collect();
        tx.commit().await?;
        Ok(orphans)
    }

    async fn pin_version(
        &self,
        user_id: i64,
        entry_id: &str,
        version_id: &str,
        pinned: bool,
        label: Option<&str>,
    ) -> Result<Version> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        let set = sqlx::query(
            "UPDATE file_versions SET pinned = ?, label = ? WHERE user_id = ? AND entry_id = ? AND version_id = ?",
        )
        .bind(i64::from(pinned))
        .bind(label)
        .bind(user_id)
        .bind(entry_id)
        .bind(version_id)
        .execute(&mut *tx)
        .await?;
        if set.rows_affected() == 0 {
            return Err(Error::VersionNotFound);
        }
        let version = Self::version_in(&mut tx, user_id, entry_id, version_id).await?.ok_or(Error::VersionNotFound)?;
        tx.commit().await?;
        Ok(version)
    }

    async fn entries_with_versions(&self, after: &str, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT entry_id FROM file_versions WHERE entry_id > ? ORDER BY entry_id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn aged_versions(&self, entry_id: &str) -> Result<Vec<Aged>> {
        let rows = sqlx::query("SELECT version_id, replaced_at, pinned FROM file_versions WHERE entry_id = ?")
            .bind(entry_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                Ok::<_, sqlx::Error>(Aged {
                    id: r.try_get("version_id")?,
                    replaced_at: r.try_get("replaced_at")?,
                    pinned: r.try_get::<i64, _>("pinned")? != 0,
                })
            })
            .collect::<sqlx::Result<_>>()?)
    }

    async fn expire_versions(&self, version_ids: &[String]) -> Result<Vec<StoredFile>> {
        let mut orphans = Vec::new();
        for id in version_ids {
            let mut tx = self.begin().await?;
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT user_id, file_id FROM file_versions WHERE version_id = ?")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some((user_id, file_id)) = row else { continue };
            // The user's turn, as every change to what they hold takes it.
            lock_user(&mut tx, user_id).await?;
            let gone = sqlx::query("DELETE FROM file_versions WHERE version_id = ?")
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            if gone.rows_affected() == 1 {
                orphans.extend(unreference(&mut tx, file_id).await?);
            }
            tx.commit().await?;
        }
        Ok(orphans)
    }

    async fn oldest_unpinned_versions(&self, user_id: i64, limit: i64) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT version_id, file_id, filesize FROM file_versions WHERE user_id = ? AND pinned = 0 \
             AND file_id NOT IN (SELECT file_id FROM user_files WHERE user_id = ?) \
             AND file_id NOT IN (SELECT file_id FROM file_versions WHERE user_id = ? AND pinned <> 0) \
             ORDER BY replaced_at, version_id LIMIT ?",
        )
        .bind(user_id)
        .bind(user_id)
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn version_usage(&self, user_id: i64) -> Result<(u64, u64)> {
        // A read: a plain connection, no write lock.
        let mut con = self.pool.acquire().await?;
        Ok(version_usage_on(&mut con, user_id).await?)
    }
}

/// How many versions the user has, and the bytes of the distinct contents
/// their versions hold that none of their entries (live or trashed) holds:
/// what versions add to the user's usage.
pub(super) async fn version_usage_in(tx: &mut Tx, user_id: i64) -> sqlx::Result<(u64, u64)> {
    version_usage_on(tx, user_id).await
}

async fn version_usage_on(con: &mut sqlx::AnyConnection, user_id: i64) -> sqlx::Result<(u64, u64)> {
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM file_versions WHERE user_id = ?")
        .bind(user_id)
        .fetch_one(&mut *con)
        .await?;
    let bytes: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(f.filesize), 0) AS SIGNED) FROM files f WHERE f.id IN \
         (SELECT v.file_id FROM file_versions v WHERE v.user_id = ?) \
         AND f.id NOT IN (SELECT uf.file_id FROM user_files uf WHERE uf.user_id = ?)",
    )
    .bind(user_id)
    .bind(user_id)
    .fetch_one(&mut *con)
    .await?;
    Ok((count.max(0) as u64, bytes.max(0) as u64))
}
