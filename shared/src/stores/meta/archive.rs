//! A portable copy of the metadata: every table that outlives an upload,
//! read in one consistent snapshot and written as JSON lines, loadable into
//! an empty database of either system (an embedded installation's copy
//! restores into MariaDB and back).
//!
//! The format, one JSON value per line:
//! ```text
//! {"format":"pan-metadata","version":1,"schema":24,"dialect":"sqlite","taken_at":1765000000}
//! {"table":"users","columns":["id","username",…]}
//! [1,"alice",…]                      one row: null, integers, numbers, text, {"b64":…} for bytes
//! {"rows":1}                         the table's end, with its row count
//! …
//! {"end":true,"tables":17,"rows":4242}
//! ```
//! A copy without its end line (cut off) or with a count that differs is
//! refused as a whole: a load is one transaction.
//!
//! Table and column names come from the database's own catalogue when
//! dumping, and a load takes only names the target's catalogue has, so no
//! name from the file reaches SQL unchecked; every value is bound.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use base64::Engine;
use futures::TryStreamExt;
use serde_json::{Value, json};
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::pool::PoolConnection;
use sqlx::{Any, Row, ValueRef as _};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::rows::{Dialect, SqlRepo};
use super::{ArchiveHeader, ArchiveSummary, MetaArchive};
use crate::domain::error::{Error, Result};

/// What the first line says a file is.
const FORMAT: &str = "pan-metadata";
/// This format's version; a newer one is refused.
const VERSION: u64 = 1;

/// Tables whose rows live only as long as an upload or a request: they
/// point at staged bytes that no backup holds, or hold room for them. Not
/// archived; a restored installation starts with no upload in flight.
const TRANSIENT: &[&str] = &[
    "upload_sessions",
    "upload_chunks",
    "upload_segments",
    "upload_leases",
    "upload_challenges",
    "quota_holds",
    "dav_locks",
];

/// The `maintenance` row a restore leaves until its bytes are back.
const RESTORE_PENDING: &str = "restore_pending";

/// Rows per INSERT when loading (and at most this many bound values).
const ROWS_PER_INSERT: usize = 200;
const VALUES_PER_INSERT: usize = 10_000;
/// Bytes of lines gathered before a write.
const WRITE_BUFFER: usize = 256 << 10;

fn sql_err(what: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| Error::internal(what, e)
}

fn bad_archive(message: impl Into<String>) -> Error {
    Error::internal("reading a metadata backup", message.into())
}

impl SqlRepo {
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.dialect {
            Dialect::Sqlite => &super::sqlite::MIGRATIONS,
            Dialect::MySql => &super::mysql::MIGRATIONS,
        }
    }

    /// Every base table of the database, sorted.
    async fn tables(conn: &mut PoolConnection<Any>, dialect: Dialect) -> sqlx::Result<Vec<String>> {
        let sql = match dialect {
            Dialect::Sqlite => {
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            }
            Dialect::MySql => {
                "SELECT table_name AS name FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"
            }
        };
        sqlx::query_scalar(sql).fetch_all(&mut **conn).await
    }

    /// A table's columns in their order.
    async fn columns(conn: &mut PoolConnection<Any>, dialect: Dialect, table: &str) -> sqlx::Result<Vec<String>> {
        let sql = match dialect {
            Dialect::Sqlite => "SELECT name FROM pragma_table_info(?) ORDER BY cid",
            Dialect::MySql => {
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
            }
        };
        sqlx::query_scalar(sql).bind(table).fetch_all(&mut **conn).await
    }

    /// The archived tables and their columns, as the catalogue says.
    async fn catalogue(
        conn: &mut PoolConnection<Any>,
        dialect: Dialect,
    ) -> sqlx::Result<BTreeMap<String, Vec<String>>> {
        let mut out = BTreeMap::new();
        for table in Self::tables(conn, dialect).await? {
            if table.starts_with('_') || TRANSIENT.contains(&table.as_str()) {
                continue;
            }
            let columns = Self::columns(conn, dialect, &table).await?;
            out.insert(table, columns);
        }
        Ok(out)
    }

    /// The newest migration applied, if the database was ever migrated.
    async fn applied_on(conn: &mut PoolConnection<Any>, dialect: Dialect) -> sqlx::Result<Option<i64>> {
        if !Self::tables(conn, dialect).await?.iter().any(|t| t == "_sqlx_migrations") {
            return Ok(None);
        }
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1").fetch_one(&mut **conn).await
    }

    async fn dump_on(
        conn: &mut PoolConnection<Any>,
        dialect: Dialect,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<ArchiveSummary> {
        let schema = Self::applied_on(conn, dialect)
            .await
            .map_err(sql_err("reading the schema version"))?
            .ok_or_else(|| Error::internal("backing up the metadata", "the database was never migrated"))?;
        let catalogue = Self::catalogue(conn, dialect).await.map_err(sql_err("reading the catalogue"))?;
        let mut buf = Vec::with_capacity(WRITE_BUFFER + 4096);
        let header = json!({
            "format": FORMAT, "version": VERSION, "schema": schema,
            "dialect": match dialect { Dialect::Sqlite => "sqlite", Dialect::MySql => "mysql" },
            "taken_at": crate::now(),
        });
        line(&mut buf, &header);
        let mut summary = ArchiveSummary { schema, tables: 0, rows: 0 };
        for (table, columns) in &catalogue {
            line(&mut buf, &json!({ "table": table, "columns": columns }));
            let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT {list} FROM {}", quote(table));
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut **conn);
            let mut count = 0u64;
            while let Some(row) = rows.try_next().await.map_err(sql_err("reading a table to back up"))? {
                let cells = (0..columns.len()).map(|i| cell(&row, i)).collect::<sqlx::Result<Vec<_>>>();
                line(&mut buf, &Value::Array(cells.map_err(sql_err("decoding a row to back up"))?));
                count += 1;
                if buf.len() >= WRITE_BUFFER {
                    out.write_all(&buf).await.map_err(|e| Error::internal("writing the metadata backup", e))?;
                    buf.clear();
                }
            }
            line(&mut buf, &json!({ "rows": count }));
            summary.tables += 1;
            summary.rows += count;
        }
        line(&mut buf, &json!({ "end": true, "tables": summary.tables, "rows": summary.rows }));
        out.write_all(&buf).await.map_err(|e| Error::internal("writing the metadata backup", e))?;
        out.flush().await.map_err(|e| Error::internal("writing the metadata backup", e))?;
        Ok(summary)
    }

    async fn load_on(
        conn: &mut PoolConnection<Any>,
        dialect: Dialect,
        schema: i64,
        input: &mut (dyn AsyncBufRead + Unpin + Send),
    ) -> Result<ArchiveSummary> {
        // Rows of one schema go into tables of that schema only: a process
        // that migrated the database meanwhile stops the load.
        let applied = Self::applied_on(conn, dialect).await.map_err(sql_err("reading the schema version"))?;
        if applied != Some(schema) {
            return Err(Error::internal(
                "restoring",
                format!(
                    "the database is at schema {applied:?}, not the backup's {schema}: was an api started meanwhile?"
                ),
            ));
        }
        let catalogue = Self::catalogue(conn, dialect).await.map_err(sql_err("reading the catalogue"))?;
        let mut summary = ArchiveSummary::default();
        let mut lines = input.lines();
        let mut next = async || -> Result<Value> {
            let text = lines
                .next_line()
                .await
                .map_err(|e| Error::internal("reading the metadata backup", e))?
                .ok_or_else(|| bad_archive("the backup ends before its end line: it was cut off"))?;
            serde_json::from_str(&text).map_err(|e| bad_archive(format!("a line is not JSON: {e}")))
        };
        let mut seen = BTreeSet::new();
        loop {
            let head = next().await?;
            if head.get("end").is_some() {
                let (tables, rows) = (head["tables"].as_u64(), head["rows"].as_u64());
                if tables != Some(summary.tables) || rows != Some(summary.rows) {
                    return Err(bad_archive("its end line counts other tables or rows than it holds"));
                }
                Self::check_references(conn, dialect).await?;
                sqlx::query("DELETE FROM maintenance WHERE task = ?")
                    .bind(RESTORE_PENDING)
                    .execute(&mut **conn)
                    .await
                    .map_err(sql_err("marking the restore unfinished"))?;
                sqlx::query("INSERT INTO maintenance (task, due_at) VALUES (?, 0)")
                    .bind(RESTORE_PENDING)
                    .execute(&mut **conn)
                    .await
                    .map_err(sql_err("marking the restore unfinished"))?;
                return Ok(summary);
            }
            let table = head["table"].as_str().ok_or_else(|| bad_archive("expected a table's first line"))?.to_owned();
            let known = catalogue
                .get(&table)
                .ok_or_else(|| bad_archive(format!("table {table:?} is not one this database archives")))?;
            if !seen.insert(table.clone()) {
                return Err(bad_archive(format!("table {table:?} appears twice")));
            }
            let columns: Vec<String> = head["columns"]
                .as_array()
                .ok_or_else(|| bad_archive("a table's columns are missing"))?
                .iter()
                .map(|c| c.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| bad_archive("a column name is not text"))?;
            if columns.is_empty() || columns.iter().any(|c| !known.contains(c)) {
                return Err(bad_archive(format!("table {table:?}: columns {columns:?} are not this database's")));
            }
            // Rows a migration or a first start put there (a scheduled
            // task's row, fresh signing keys) give way to the backup's.
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", quote(&table))))
                .execute(&mut **conn)
                .await
                .map_err(sql_err("emptying a table before loading it"))?;
            let per_insert = ROWS_PER_INSERT.min(VALUES_PER_INSERT / columns.len()).max(1);
            let mut pending: Vec<Vec<Value>> = Vec::with_capacity(per_insert);
            let mut count = 0u64;
            loop {
                let row = next().await?;
                let Value::Array(cells) = row else {
                    let expected = row["rows"].as_u64();
                    if expected != Some(count) {
                        return Err(bad_archive(format!("table {table:?} says {expected:?} rows; {count} arrived")));
                    }
                    break;
                };
                if cells.len() != columns.len() {
                    return Err(bad_archive(format!("table {table:?}: a row of {} values", cells.len())));
                }
                pending.push(cells);
                count += 1;
                if pending.len() == per_insert {
                    insert(conn, &table, &columns, &pending).await?;
                    pending.clear();
                }
            }
            if !pending.is_empty() {
                insert(conn, &table, &columns, &pending).await?;
            }
            summary.tables += 1;
            summary.rows += count;
        }
    }
}

impl SqlRepo {
    /// Checks every foreign key of the loaded rows (checks were off while
    /// they went in, table by table): a backup whose rows point at nothing
    /// is refused.
    async fn check_references(conn: &mut PoolConnection<Any>, dialect: Dialect) -> Result<()> {
        let dangling: i64 = match dialect {
            Dialect::Sqlite => sqlx::query("PRAGMA foreign_key_check")
                .fetch_all(&mut **conn)
                .await
                .map_err(sql_err("checking the restored references"))?
                .len() as i64,
            Dialect::MySql => {
                let keys: Vec<(String, String, String, String)> = sqlx::query_as(
                    "SELECT table_name, column_name, referenced_table_name, referenced_column_name \
                     FROM information_schema.key_column_usage \
                     WHERE table_schema = DATABASE() AND referenced_table_name IS NOT NULL",
                )
                .fetch_all(&mut **conn)
                .await
                .map_err(sql_err("reading the foreign keys"))?;
                let mut n = 0i64;
                for (table, column, parent, key) in keys {
                    let sql = format!(
                        "SELECT COUNT(*) FROM {t} c LEFT JOIN {p} r ON r.{k} = c.{c} WHERE c.{c} IS NOT NULL AND r.{k} IS NULL",
                        t = quote(&table),
                        p = quote(&parent),
                        k = quote(&key),
                        c = quote(&column)
                    );
                    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                        .fetch_one(&mut **conn)
                        .await
                        .map_err(sql_err("checking the restored references"))?;
                    n += count;
                }
                n
            }
        };
        if dangling > 0 {
            return Err(bad_archive(format!("{dangling} of its rows point at rows it does not hold")));
        }
        Ok(())
    }
}

/// Rows into a table in one statement; every value bound.
async fn insert(conn: &mut PoolConnection<Any>, table: &str, columns: &[String], rows: &[Vec<Value>]) -> Result<()> {
    let list = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let one = format!("({})", vec!["?"; columns.len()].join(", "));
    let sql = format!("INSERT INTO {} ({list}) VALUES {}", quote(table), vec![one; rows.len()].join(", "));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for value in rows.iter().flatten() {
        query = match value {
            Value::Null => query.bind(None::<i64>),
            Value::Bool(b) => query.bind(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => query.bind(i),
                None => query.bind(n.as_f64().ok_or_else(|| bad_archive("a number out of range"))?),
            },
            Value::String(s) => query.bind(s.clone()),
            Value::Object(o) => {
                let b64 =
                    o.get("b64").and_then(Value::as_str).ok_or_else(|| bad_archive("an object that is not bytes"))?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| bad_archive(format!("bytes that are not base64: {e}")))?;
                query.bind(bytes)
            }
            Value::Array(_) => return Err(bad_archive("a value that is a list")),
        };
    }
    query.execute(&mut **conn).await.map_err(sql_err("loading a table of the metadata backup"))?;
    Ok(())
}

/// A name from the catalogue, quoted (both systems read backquotes).
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn line(buf: &mut Vec<u8>, value: &Value) {
    serde_json::to_writer(&mut *buf, value).expect("a JSON value serialises");
    buf.push(b'\n');
}

/// One value of a row, by the kind the driver read.
fn cell(row: &AnyRow, i: usize) -> sqlx::Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().kind();
    Ok(match kind {
        AnyTypeInfoKind::Null => Value::Null,
        AnyTypeInfoKind::Bool => Value::Bool(row.try_get(i)?),
        AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
            Value::from(row.try_get::<i64, _>(i)?)
        }
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Value::from(row.try_get::<f64, _>(i)?),
        AnyTypeInfoKind::Text => Value::String(row.try_get(i)?),
        AnyTypeInfoKind::Blob => {
            let bytes: Vec<u8> = row.try_get(i)?;
            json!({ "b64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        }
    })
}

/// Ends a transaction begun by hand on a pooled connection; a connection
/// that cannot end it is closed rather than handed back mid-transaction.
async fn end(mut conn: PoolConnection<Any>, sql: &'static str) -> sqlx::Result<()> {
    match sqlx::Executor::execute(&mut *conn, sql).await {
        Ok(_) => Ok(()),
        Err(e) => {
            let _ = conn.close().await;
            Err(e)
        }
    }
}

/// Reads the first line of a metadata backup: what it is and which schema
/// its rows fit.
pub(crate) async fn read_header(input: &mut (dyn AsyncBufRead + Unpin + Send)) -> Result<ArchiveHeader> {
    let mut first = String::new();
    input.read_line(&mut first).await.map_err(|e| Error::internal("reading the metadata backup", e))?;
    let head: Value = serde_json::from_str(&first).map_err(|_| bad_archive("it is not a pan metadata backup"))?;
    if head["format"].as_str() != Some(FORMAT) {
        return Err(bad_archive("it is not a pan metadata backup"));
    }
    let version = head["version"].as_u64().unwrap_or(u64::MAX);
    if version > VERSION {
        return Err(bad_archive(format!("format {version}, newer than this pan reads ({VERSION})")));
    }
    Ok(ArchiveHeader {
        schema: head["schema"].as_i64().ok_or_else(|| bad_archive("its schema version is missing"))?,
        dialect: head["dialect"].as_str().unwrap_or("?").to_owned(),
        taken_at: head["taken_at"].as_i64().unwrap_or(0),
    })
}

#[async_trait]
impl MetaArchive for SqlRepo {
    async fn dump(&self, out: &mut (dyn AsyncWrite + Unpin + Send)) -> Result<ArchiveSummary> {
        let mut conn = self.pool.acquire().await.map_err(sql_err("taking a connection for the backup"))?;
        // One snapshot for every table: a read transaction (WAL keeps it
        // while writers go on), a consistent InnoDB snapshot on MariaDB.
        let begin: &[&'static str] = match self.dialect {
            Dialect::Sqlite => &["BEGIN"],
            Dialect::MySql => &[
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
                "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
            ],
        };
        for sql in begin {
            sqlx::Executor::execute(&mut *conn, *sql).await.map_err(sql_err("starting the backup's snapshot"))?;
        }
        let dumped = Self::dump_on(&mut conn, self.dialect, out).await;
        // Read only: ending it by a rollback loses nothing.
        end(conn, "ROLLBACK").await.map_err(sql_err("ending the backup's snapshot"))?;
        dumped
    }

    async fn schema_version(&self) -> Result<Option<i64>> {
        let mut conn = self.pool.acquire().await.map_err(sql_err("taking a connection"))?;
        Self::applied_on(&mut conn, self.dialect).await.map_err(sql_err("reading the schema version"))
    }

    fn newest_schema(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    async fn migrate_to(&self, version: Option<i64>) -> Result<()> {
        // Every process of a fleet migrates at start-up, and a fleet's
        // processes start together. sqlx's own lock on MySQL is a
        // GET_LOCK(…, -1) whose answer it never reads, and MariaDB grants
        // nothing with a negative timeout: three processes on a fresh
        // database left it half-migrated. This lock is waited for, checked,
        // and released with its connection if the process dies.
        let held = match self.dialect {
            Dialect::Sqlite => None,
            Dialect::MySql => {
                let mut conn = self.pool.acquire().await.map_err(sql_err("taking a connection to migrate"))?;
                let got: Option<i64> =
                    sqlx::query_scalar("SELECT GET_LOCK(CONCAT('pan-migrations-', MD5(DATABASE())), 600)")
                        .fetch_one(&mut *conn)
                        .await
                        .map_err(sql_err("waiting for the migration lock"))?;
                if got != Some(1) {
                    return Err(Error::internal(
                        "applying migrations",
                        "another process held the migration lock for 10 minutes",
                    ));
                }
                Some(conn)
            }
        };
        let migrator = self.migrator();
        let migrated = match version {
            None => migrator.run(&self.pool).await,
            Some(v) => migrator.run_to(v, &self.pool).await,
        }
        .map_err(|e| Error::internal("applying migrations", e));
        if let Some(conn) = held {
            end(conn, "DO RELEASE_LOCK(CONCAT('pan-migrations-', MD5(DATABASE())))")
                .await
                .map_err(sql_err("releasing the migration lock"))?;
        }
        migrated
    }

    async fn holds_data(&self) -> Result<bool> {
        if self.schema_version().await?.is_none() {
            return Ok(false);
        }
        let n: i64 = sqlx::query_scalar("SELECT (SELECT COUNT(*) FROM users) + (SELECT COUNT(*) FROM files)")
            .fetch_one(&self.pool)
            .await
            .map_err(sql_err("counting users and files"))?;
        Ok(n > 0)
    }

    async fn load(&self, schema: i64, input: &mut (dyn AsyncBufRead + Unpin + Send)) -> Result<ArchiveSummary> {
        let mut conn = self.pool.acquire().await.map_err(sql_err("taking a connection for the restore"))?;
        // Rows arrive table by table in name order, not in the order their
        // references need: checks are off on this connection, which is
        // closed afterwards rather than handed back.
        let begin: &[&'static str] = match self.dialect {
            Dialect::Sqlite => &["PRAGMA foreign_keys = OFF", "BEGIN IMMEDIATE"],
            Dialect::MySql => &["SET SESSION foreign_key_checks = 0", "BEGIN"],
        };
        for sql in begin {
            if let Err(e) = sqlx::Executor::execute(&mut *conn, *sql).await {
                let _ = conn.close().await;
                return Err(Error::internal("starting the restore's transaction", e));
            }
        }
        let loaded = Self::load_on(&mut conn, self.dialect, schema, input).await;
        let finish = if loaded.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let ended = sqlx::Executor::execute(&mut *conn, finish).await;
        let _ = conn.close().await;
        let summary = loaded?;
        ended.map_err(sql_err("committing the restore"))?;
        Ok(summary)
    }

    async fn restore_pending(&self) -> Result<bool> {
        let mut conn = self.pool.acquire().await.map_err(sql_err("taking a connection"))?;
        if !Self::tables(&mut conn, self.dialect)
            .await
            .map_err(sql_err("listing tables"))?
            .iter()
            .any(|t| t == "maintenance")
        {
            return Ok(false);
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM maintenance WHERE task = ?")
            .bind(RESTORE_PENDING)
            .fetch_one(&mut *conn)
            .await
            .map_err(sql_err("reading whether a restore is unfinished"))?;
        Ok(n > 0)
    }

    async fn finish_restore(&self) -> Result<()> {
        sqlx::query("DELETE FROM maintenance WHERE task = ?")
            .bind(RESTORE_PENDING)
            .execute(&self.pool)
            .await
            .map_err(sql_err("marking the restore finished"))?;
        Ok(())
    }

    async fn claim_task(&self, task: &str, now: i64, until: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE maintenance SET due_at = ? WHERE task = ? AND due_at <= ?")
            .bind(until)
            .bind(task)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(sql_err("claiming a scheduled task"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_task_due(&self, task: &str, due: i64) -> Result<()> {
        sqlx::query("UPDATE maintenance SET due_at = ? WHERE task = ?")
            .bind(due)
            .bind(task)
            .execute(&self.pool)
            .await
            .map_err(sql_err("scheduling a task"))?;
        Ok(())
    }
}
