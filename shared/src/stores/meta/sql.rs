//! The queries, written once in the SQL both SQLite and MySQL speak.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::rows::{
    CONTENT, ENTRY, SqlRepo, TxError, is_unique_violation, lock_user, retry_on_conflict, stored_file_from,
    user_file_from,
};
use super::tree;
use super::versions::{NewContent, replace_content};
use super::{
    Account, AccountRepo, AuditRepo, BackupRepo, FileRepo, MetaRepo, NewUserFile, Placed, SecretRepo, Totals, Usage,
    UserRepo,
};
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::{Author, AuthorKind, BackupState, NameRule, StoredFile, User, UserFile, UserName};

/// Columns of a user, as [`user_from`] reads them (`u` = users).
pub(super) const USER: &str = "u.id, u.username, u.created_at, u.quota_bytes, u.quota_files";

pub(super) fn user_from(row: &AnyRow) -> sqlx::Result<User> {
    let username: String = row.try_get("username")?;
    Ok(User {
        id: row.try_get("id")?,
        author: Author { kind: AuthorKind::Server, name: username.clone() },
        username,
        created_at: row.try_get("created_at")?,
        quota_bytes: row.try_get("quota_bytes")?,
        quota_files: row.try_get("quota_files")?,
    })
}

impl SqlRepo {
    /// Takes one more reference on the live content (SHA-256, size), inside
    /// `tx`, and returns its id. Locking the row first means a concurrent
    /// delete cannot drop it under us. `None` when no live row exists.
    async fn reference_content(tx: &mut Transaction<'static, Any>, f: &NewUserFile<'_>) -> sqlx::Result<Option<i64>> {
        let bumped =
            sqlx::query("UPDATE files SET refcount = refcount + 1 WHERE sha256 = ? AND filesize = ? AND refcount > 0")
                .bind(f.sha256)
                .bind(f.filesize)
                .execute(&mut **tx)
                .await?;
        if bumped.rows_affected() == 0 {
            return Ok(None);
        }
        Self::content_id(tx, f).await.map(Some)
    }

    async fn content_id(tx: &mut Transaction<'static, Any>, f: &NewUserFile<'_>) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT id FROM files WHERE sha256 = ? AND filesize = ?")
            .bind(f.sha256)
            .bind(f.filesize)
            .fetch_one(&mut **tx)
            .await
    }

    /// Gives the user an entry for content just referenced, inside `tx`
    /// (which holds the user's tree turn): in the folder asked for (the root
    /// when it is gone), under a free name by `f.rule`. An entry already
    /// there with the same name and content is the answer, and the extra
    /// reference is undone, so each entry holds exactly one reference. With
    /// [`NameRule::Replace`], the file of that name gets the content (its
    /// own becomes a version).
    async fn settle_entry(
        tx: &mut Transaction<'static, Any>,
        file_id: i64,
        f: &NewUserFile<'_>,
    ) -> std::result::Result<Placed, TxError> {
        if let Some(hold) = f.hold {
            // The room it reserved is used from now on: the entry counts.
            sqlx::query("DELETE FROM quota_holds WHERE hold_id = ?").bind(hold).execute(&mut **tx).await?;
        }
        let folder = tree::parent_or_root(tx, f.user_id, f.folder.unwrap_or("")).await?;
        if f.rule == NameRule::Replace {
            let target = tree::file_to_replace(tx, f.user_id, &folder, f.filename, f.if_match).await?;
            if let Some((current, content)) = target {
                let new = NewContent {
                    file_id,
                    filesize: f.filesize,
                    mtime: f.mtime.unwrap_or(f.now),
                    author: f.author,
                    now: f.now,
                };
                let orphans = replace_content(tx, f.user_id, &current, &content, &new).await?;
                let entry = Self::entry_row(tx, &current.id).await?;
                return Ok(Placed { entry, orphans });
            }
        }
        let same = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.user_id = ? \
             AND uf.folder = ? AND uf.filename_key = ? AND uf.file_id = ? AND uf.trashed_by IS NULL"
        )))
        .bind(f.user_id)
        .bind(folder.as_str())
        .bind(crate::domain::name_key(f.filename))
        .bind(file_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(row) = same {
            sqlx::query("UPDATE files SET refcount = refcount - 1 WHERE id = ?")
                .bind(file_id)
                .execute(&mut **tx)
                .await?;
            let mut entry = user_file_from(&row)?;
            // The same file again, touched since: the entry takes its time.
            if let Some(mtime) = f.mtime.filter(|m| *m != entry.mtime) {
                sqlx::query("UPDATE user_files SET mtime = ? WHERE entry_id = ?")
                    .bind(mtime)
                    .bind(entry.id.as_str())
                    .execute(&mut **tx)
                    .await?;
                entry.mtime = mtime;
            }
            return Ok(Placed { entry, orphans: Vec::new() });
        }
        let name = tree::free_name(tx, f.user_id, &folder, f.filename, f.rule, "").await?;
        let new = tree::NewEntry {
            user_id: f.user_id,
            file_id,
            folder: &folder,
            name: &name,
            filesize: f.filesize,
            mtime: f.mtime.unwrap_or(f.now),
        };
        let entry = tree::insert_entry(tx, &new, f.now).await?;
        Ok(Placed { entry, orphans: Vec::new() })
    }

    /// Entry `entry_id` as it is inside `tx`.
    async fn entry_row(tx: &mut Transaction<'static, Any>, entry_id: &str) -> sqlx::Result<UserFile> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.entry_id = ?"
        )))
        .bind(entry_id)
        .fetch_one(&mut **tx)
        .await?;
        user_file_from(&row)
    }

    /// One attempt at linking; a unique violation means a concurrent writer
    /// won a race and the caller retries.
    async fn try_link(&self, f: &NewUserFile<'_>) -> std::result::Result<Option<Placed>, TxError> {
        let mut tx = self.begin().await?;
        // The tree's turn first, the content row second, in every
        // transaction that takes both: no two can wait on each other.
        lock_user(&mut tx, f.user_id).await?;
        let Some(file_id) = Self::reference_content(&mut tx, f).await? else {
            return Ok(None);
        };
        let entry = Self::settle_entry(&mut tx, file_id, f).await?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    async fn try_commit_merged(
        &self,
        f: &NewUserFile<'_>,
        storage_key: &str,
    ) -> std::result::Result<(Placed, StoredFile), TxError> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, f.user_id).await?;
        let file_id = match Self::reference_content(&mut tx, f).await? {
            Some(id) => id,
            None => {
                // A row left at refcount 0 is content being deleted: replace it.
                sqlx::query("DELETE FROM files WHERE sha256 = ? AND filesize = ? AND refcount = 0")
                    .bind(f.sha256)
                    .bind(f.filesize)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO files (filehash, sha256, filesize, storage_key, refcount, backup_state, backup_attempts, \
                     created_at) VALUES (?, ?, ?, ?, 1, 'none', 0, ?)",
                )
                .bind(f.filehash)
                .bind(f.sha256)
                .bind(f.filesize)
                .bind(storage_key)
                .bind(f.now)
                .execute(&mut *tx)
                .await?;
                Self::content_id(&mut tx, f).await?
            }
        };
        let entry = Self::settle_entry(&mut tx, file_id, f).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CONTENT} FROM files f WHERE f.id = ?")))
            .bind(file_id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = stored_file_from(&row)?;
        tx.commit().await?;
        Ok((entry, stored))
    }
}

#[async_trait]
impl UserRepo for SqlRepo {
    async fn create_user(
        &self,
        name: &UserName,
        password_hash: &str,
        now: i64,
        invite_hash: Option<&str>,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        if let Some(code) = invite_hash {
            // Spend the invite in the same transaction: a code makes one account.
            let spent = sqlx::query("UPDATE invites SET used_at = ? WHERE code_hash = ? AND used_at IS NULL")
                .bind(now)
                .bind(code)
                .execute(&mut *tx)
                .await?;
            if spent.rows_affected() != 1 {
                return Err(Error::Forbidden {
                    code: ErrorCode::InviteInvalid,
                    message: "this invite code is unknown or used".into(),
                });
            }
        }
        let res = sqlx::query("INSERT INTO users (username, password_hash, created_at) VALUES (?, ?, ?)")
            .bind(name.as_str())
            .bind(password_hash)
            .bind(now)
            .execute(&mut *tx)
            .await;
        match res {
            Err(e) if is_unique_violation(&e) => return Err(Error::UsernameTaken),
            other => other?,
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER} FROM users u WHERE u.username = ?")))
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let user = user_from(&row)?;
        if let Some(code) = invite_hash {
            sqlx::query("UPDATE invites SET used_by = ? WHERE code_hash = ?")
                .bind(user.id)
                .bind(code)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    async fn user_with_hash(&self, name: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER}, u.password_hash FROM users u WHERE u.username = ? AND u.disabled = 0"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((user_from(&r)?, r.try_get("password_hash")?))).transpose()?)
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER} FROM users u WHERE u.id = ? AND u.disabled = 0")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.as_ref().map(user_from).transpose()?)
    }

    async fn user_by_token(&self, token_hash: &str, now: i64) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER}, t.device FROM tokens t JOIN users u ON u.id = t.user_id \
                 WHERE t.token_hash = ? AND t.expires_at > ? AND u.disabled = 0"
        )))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut user = user_from(&row)?;
        let device: Option<String> = row.try_get("device")?;
        user.author = Author { kind: AuthorKind::Session, name: device.unwrap_or_else(|| user.username.clone()) };
        Ok(Some(user))
    }

    async fn delete_token(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM tokens WHERE token_hash = ?").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    async fn delete_expired_tokens(&self, now: i64) -> Result<u64> {
        let res = sqlx::query("DELETE FROM tokens WHERE expires_at <= ?").bind(now).execute(&self.pool).await?;
        Ok(res.rows_affected())
    }

    async fn usage(&self, user_id: i64) -> Result<Usage> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(filesize), 0) AS SIGNED) AS bytes, \
             CAST(COALESCE(SUM(CASE WHEN trashed_by IS NULL THEN 0 ELSE 1 END), 0) AS SIGNED) AS trash_n, \
             CAST(COALESCE(SUM(CASE WHEN trashed_by IS NULL THEN 0 ELSE filesize END), 0) AS SIGNED) AS trash_bytes \
             FROM user_files WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await?;
        let (n, bytes): (i64, i64) = (row.try_get("n")?, row.try_get("bytes")?);
        let (trash_n, trash_bytes): (i64, i64) = (row.try_get("trash_n")?, row.try_get("trash_bytes")?);
        Ok(Usage { files: n - trash_n, bytes: bytes - trash_bytes, trash_files: trash_n, trash_bytes })
    }
}

#[async_trait]
impl AccountRepo for SqlRepo {
    async fn set_quota(&self, name: &str, quota_bytes: Option<i64>, quota_files: Option<i64>) -> Result<()> {
        let res = sqlx::query("UPDATE users SET quota_bytes = ?, quota_files = ? WHERE username = ?")
            .bind(quota_bytes)
            .bind(quota_files)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if res.rows_affected() == 0 {
            return Err(Error::UserNotFound);
        }
        Ok(())
    }

    async fn set_disabled(&self, name: &str, disabled: bool) -> Result<()> {
        let mut tx = self.begin().await?;
        let res = sqlx::query("UPDATE users SET disabled = ? WHERE username = ?")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(Error::UserNotFound);
        }
        if disabled {
            for table in ["tokens", "app_passwords"] {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE user_id = (SELECT id FROM users WHERE username = ?)"
                )))
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_invite(&self, code_hash: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO invites (code_hash, created_at) VALUES (?, ?)")
            .bind(code_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {USER}, u.disabled, \
             (SELECT COUNT(*) FROM user_files uf WHERE uf.user_id = u.id) AS files, \
             (SELECT CAST(COALESCE(SUM(f.filesize), 0) AS SIGNED) FROM user_files uf JOIN files f ON f.id = uf.file_id \
              WHERE uf.user_id = u.id) AS bytes \
             FROM users u ORDER BY u.username"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Account {
                    user: user_from(r)?,
                    disabled: r.try_get::<i64, _>("disabled")? != 0,
                    files: r.try_get("files")?,
                    bytes: r.try_get("bytes")?,
                })
            })
            .collect::<sqlx::Result<_>>()
            .map_err(Error::from)
    }
}

#[async_trait]
impl FileRepo for SqlRepo {
    async fn stored_file(&self, sha256: &str, filesize: i64) -> Result<Option<StoredFile>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CONTENT} FROM files f WHERE f.sha256 = ? AND f.filesize = ? AND f.refcount > 0"
        )))
        .bind(sha256)
        .bind(filesize)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(stored_file_from).transpose()?)
    }

    async fn stored_file_by_id(&self, id: i64) -> Result<Option<StoredFile>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CONTENT} FROM files f WHERE f.id = ?")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(stored_file_from).transpose()?)
    }

    async fn own_entry(&self, user_id: i64, sha256: &str, filesize: i64) -> Result<Option<UserFile>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
             WHERE uf.user_id = ? AND f.sha256 = ? AND f.filesize = ? ORDER BY uf.trashed_by IS NULL DESC LIMIT 1"
        )))
        .bind(user_id)
        .bind(sha256)
        .bind(filesize)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user_file_from).transpose()?)
    }

    async fn link_existing(&self, f: &NewUserFile<'_>) -> Result<Option<Placed>> {
        // Most inits are for new content: a plain read answers them without
        // taking the write lock (SQLite) that the linking transaction needs.
        if self.stored_file(f.sha256, f.filesize).await?.is_none() {
            return Ok(None);
        }
        retry_on_conflict!(self.try_link(f))
    }

    async fn commit_merged(&self, f: &NewUserFile<'_>, storage_key: &str) -> Result<(Placed, StoredFile)> {
        retry_on_conflict!(self.try_commit_merged(f, storage_key))
    }

    async fn list_files(&self, user_id: i64, limit: i64, offset: i64) -> Result<(Vec<UserFile>, i64)> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.user_id = ? \
             AND uf.trashed_by IS NULL ORDER BY uf.created_at DESC, uf.id DESC LIMIT ? OFFSET ?"
        )))
        .bind(user_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_files WHERE user_id = ? AND trashed_by IS NULL")
            .bind(user_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((rows.iter().map(user_file_from).collect::<sqlx::Result<_>>()?, total))
    }

    async fn entries_with_sha1(&self, user_id: i64, filehash: &str) -> Result<Vec<(UserFile, StoredFile)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
             WHERE uf.user_id = ? AND f.filehash = ? AND uf.trashed_by IS NULL ORDER BY uf.id"
        )))
        .bind(user_id)
        .bind(filehash)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| Ok((user_file_from(r)?, stored_file_from(r)?))).collect::<sqlx::Result<_>>()?)
    }

    async fn contents_of(&self, user_id: i64, entry_ids: &[String]) -> Result<Vec<(String, StoredFile)>> {
        let mut out = Vec::with_capacity(entry_ids.len());
        for batch in entry_ids.chunks(200) {
            let marks = vec!["?"; batch.len()].join(", ");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
                 WHERE uf.user_id = ? AND uf.trashed_by IS NULL AND uf.entry_id IN ({marks})"
            )))
            .bind(user_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            for row in q.fetch_all(&self.pool).await? {
                out.push((row.try_get("entry_id")?, stored_file_from(&row)?));
            }
        }
        Ok(out)
    }

    async fn user_file(&self, user_id: i64, entry_id: &str) -> Result<Option<(UserFile, StoredFile)>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.user_id = ? AND uf.entry_id = ? \
             AND uf.trashed_by IS NULL"
        )))
        .bind(user_id)
        .bind(entry_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Ok::<_, sqlx::Error>((user_file_from(&r)?, stored_file_from(&r)?))).transpose()?)
    }
}

#[async_trait]
impl BackupRepo for SqlRepo {
    async fn set_backup(&self, file_id: i64, state: BackupState, key: Option<&str>, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE files SET backup_state = ?, backup_key = COALESCE(?, backup_key), backup_at = ?, \
             backup_attempts = backup_attempts + CASE WHEN ? = 'failed' THEN 1 ELSE 0 END WHERE id = ?",
        )
        .bind(state.as_str())
        .bind(key)
        .bind(now)
        .bind(state.as_str())
        .bind(file_id)
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

    async fn is_backup_referenced(&self, backup_key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE backup_key = ?")
            .bind(backup_key)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn backups_due(&self, before: i64, limit: i64) -> Result<Vec<i64>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM files WHERE backup_state IN ('pending', 'failed') AND backup_at < ? \
             AND refcount > 0 ORDER BY backup_at LIMIT ?",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }
}

#[async_trait]
impl AuditRepo for SqlRepo {
    async fn all_files(&self) -> Result<Vec<StoredFile>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CONTENT} FROM files f WHERE f.refcount > 0 ORDER BY f.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(stored_file_from).collect::<sqlx::Result<_>>()?)
    }

    async fn entries_without_content(&self) -> Result<Vec<String>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT uf.entry_id FROM user_files uf LEFT JOIN files f ON f.id = uf.file_id WHERE f.id IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn refcount_mismatches(&self) -> Result<Vec<(i64, i64, i64)>> {
        let rows = sqlx::query(
            "SELECT f.id, f.refcount, (SELECT COUNT(*) FROM user_files uf WHERE uf.file_id = f.id) \
             + (SELECT COUNT(*) FROM file_versions v WHERE v.file_id = f.id) AS entries \
             FROM files f WHERE f.refcount <> (SELECT COUNT(*) FROM user_files uf WHERE uf.file_id = f.id) \
             + (SELECT COUNT(*) FROM file_versions v WHERE v.file_id = f.id)",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("refcount")?, r.try_get("entries")?)))
            .collect::<sqlx::Result<_>>()?)
    }

    async fn entries_outside_tree(&self) -> Result<Vec<String>> {
        let mut ids: Vec<String> = sqlx::query_scalar(
            "SELECT uf.entry_id FROM user_files uf WHERE uf.trashed_by IS NULL AND uf.folder <> '' AND NOT EXISTS \
             (SELECT 1 FROM folders d WHERE d.folder_id = uf.folder AND d.user_id = uf.user_id \
              AND d.trashed_by IS NULL) LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        let folders: Vec<String> = sqlx::query_scalar(
            "SELECT c.folder_id FROM folders c WHERE c.trashed_by IS NULL AND c.parent <> '' AND NOT EXISTS \
             (SELECT 1 FROM folders d WHERE d.folder_id = c.parent AND d.user_id = c.user_id \
              AND d.trashed_by IS NULL) LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.extend(folders);
        Ok(ids)
    }

    async fn stale_name_index(&self) -> Result<Vec<String>> {
        let items: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT g.item FROM name_grams g WHERE NOT EXISTS (SELECT 1 FROM folders d WHERE d.folder_id = g.item) \
             AND NOT EXISTS (SELECT 1 FROM user_files uf WHERE uf.entry_id = g.item) LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(items)
    }

    async fn nfc_twins(&self) -> Result<Vec<String>> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT MIN(n) FROM (SELECT user_id, parent AS p, name_key AS k, name AS n FROM folders \
             WHERE trashed_by IS NULL UNION ALL SELECT user_id, folder, filename_key, filename FROM user_files \
             WHERE trashed_by IS NULL) t GROUP BY user_id, p, k HAVING COUNT(DISTINCT n) > 1 LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(names)
    }

    async fn entry_names(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT folder_id AS id, name FROM folders UNION ALL SELECT entry_id AS id, filename AS name FROM user_files",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok::<_, sqlx::Error>((r.try_get("id")?, r.try_get("name")?)))
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
