//! What every SQL module of the metadata store shares: the repository
//! handle, its transactions, and the columns and decoders of file rows.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use crate::domain::error::Error;
use crate::domain::{BackupState, StoredFile, UserFile};

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
    pub(super) pool: AnyPool,
    /// Connections for writes whose loss in a power cut costs nothing but
    /// a little repeated work (leases, the running hash's progress): on
    /// SQLite they skip the fsync of every commit (`synchronous = NORMAL`).
    pub(super) volatile: AnyPool,
    pub(super) dialect: Dialect,
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A failure inside a transaction: the database's (a conflict may be worth
/// running the transaction again) or the domain's (final).
#[derive(Debug)]
pub(super) enum TxError {
    Sql(sqlx::Error),
    Domain(Error),
}

impl From<sqlx::Error> for TxError {
    fn from(e: sqlx::Error) -> Self {
        TxError::Sql(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Domain(e)
    }
}

impl From<TxError> for Error {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Sql(e) => Error::from(e),
            TxError::Domain(e) => e,
        }
    }
}

/// Columns of an entry and its content, as [`user_file_from`] and
/// [`stored_file_from`] read them (`uf` = user_files, `f` = files).
pub(super) const ENTRY: &str = "uf.entry_id, f.filehash, f.sha256, f.filesize, uf.filename, uf.folder, \
                                uf.created_at, uf.updated_at, uf.mtime, f.id AS file_id, f.storage_key, f.backup_key, \
                                f.backup_state";
/// Columns of a content row, as [`stored_file_from`] reads them.
pub(super) const CONTENT: &str =
    "f.id AS file_id, f.filehash, f.sha256, f.filesize, f.storage_key, f.backup_key, f.backup_state";

pub(super) fn user_file_from(row: &AnyRow) -> sqlx::Result<UserFile> {
    Ok(UserFile {
        id: row.try_get("entry_id")?,
        filehash: row.try_get("filehash")?,
        sha256: row.try_get("sha256")?,
        filesize: row.try_get("filesize")?,
        filename: row.try_get("filename")?,
        folder: row.try_get("folder")?,
        uploaded_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        mtime: row.try_get("mtime")?,
    })
}

pub(super) fn stored_file_from(row: &AnyRow) -> sqlx::Result<StoredFile> {
    Ok(StoredFile {
        id: row.try_get("file_id")?,
        filehash: row.try_get("filehash")?,
        sha256: row.try_get("sha256")?,
        filesize: row.try_get("filesize")?,
        storage_key: row.try_get("storage_key")?,
        backup_key: row.try_get("backup_key")?,
        backup_state: backup_state_from(row)?,
    })
}

/// `files.backup_state`, parsed; an unknown value is a decode error naming
/// the column (an internal error once it leaves the store), not a panic.
fn backup_state_from(row: &AnyRow) -> sqlx::Result<BackupState> {
    let raw: String = row.try_get("backup_state")?;
    BackupState::parse(&raw).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "backup_state".into(),
        source: format!("unknown backup state {raw:?}").into(),
    })
}

impl SqlRepo {
    pub(crate) fn new(pool: AnyPool, volatile: AnyPool, dialect: Dialect) -> Self {
        SqlRepo { pool, volatile, dialect }
    }

    /// The pool for writes that need not survive a power cut (see
    /// `volatile`): leases and saved hash progress, several per chunk.
    pub fn volatile_pool(&self) -> &AnyPool {
        &self.volatile
    }

    /// The pool, for the SQL upload-session store that shares it.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that already holds the write lock on SQLite.
    pub(crate) async fn begin(&self) -> sqlx::Result<Transaction<'static, Any>> {
        Self::begin_on(&self.pool, self.dialect).await
    }

    /// A write transaction whose commit may be lost to a power cut (never
    /// torn): on the `volatile` pool.
    pub(crate) async fn begin_volatile(&self) -> sqlx::Result<Transaction<'static, Any>> {
        Self::begin_on(&self.volatile, self.dialect).await
    }

    async fn begin_on(pool: &AnyPool, dialect: Dialect) -> sqlx::Result<Transaction<'static, Any>> {
        match dialect {
            Dialect::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::MySql => pool.begin().await,
        }
    }
}

/// Takes the user's turn (held to the transaction's end) at changing what
/// they own: their tree, their entries, their quota holds. On MariaDB a row
/// lock; on SQLite the write lock is held already.
pub(super) async fn lock_user(tx: &mut Transaction<'static, Any>, user_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET tree_rev = tree_rev + 1 WHERE id = ?").bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

/// A conflict with a concurrent transaction that running again resolves: a
/// duplicate key inserted first by the other writer, or an InnoDB deadlock
/// (SQLSTATE 40001) between two writers of the same rows.
pub(super) fn is_retryable_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation() || d.code().as_deref() == Some("40001"))
}

/// Runs `attempt` again when it lost a uniqueness race (at most a few times).
macro_rules! retry_on_conflict {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            match $attempt.await {
                Err($crate::stores::meta::rows::TxError::Sql(e))
                    if $crate::stores::meta::rows::is_retryable_conflict(&e) && tries < 5 =>
                {
                    tries += 1
                }
                other => break other.map_err($crate::domain::error::Error::from),
            }
        }
    }};
}
pub(super) use retry_on_conflict;
