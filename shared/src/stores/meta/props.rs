//! WebDAV dead properties on SQL: the `dead_props` table, keyed by (user,
//! entry, namespace, name); and the one live property a client may set, a
//! file's modification time.

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

use super::rows::{SqlRepo, lock_user};
use super::{DeadProp, PropOp, PropRepo};
use crate::domain::error::{Error, ErrorCode, Result};

#[async_trait]
impl PropRepo for SqlRepo {
    async fn dead_props(&self, user_id: i64, entry_ids: &[String]) -> Result<Vec<DeadProp>> {
        let mut out = Vec::new();
        for ids in entry_ids.chunks(500) {
            let marks = vec!["?"; ids.len()].join(", ");
            let sql = format!(
                "SELECT entry_id, ns, name, value FROM dead_props WHERE user_id = ? AND entry_id IN ({marks}) \
                 ORDER BY entry_id, ns, name"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(user_id);
            for id in ids {
                query = query.bind(id.as_str());
            }
            for row in query.fetch_all(self.pool()).await? {
                out.push(DeadProp {
                    entry_id: row.try_get("entry_id")?,
                    ns: row.try_get("ns")?,
                    name: row.try_get("name")?,
                    value: row.try_get("value")?,
                });
            }
        }
        Ok(out)
    }

    async fn patch_dead_props(
        &self,
        user_id: i64,
        entry_id: &str,
        ops: &[PropOp],
        (max_count, max_bytes): (usize, usize),
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        for op in ops {
            let (ns, name) = match op {
                PropOp::Set { ns, name, .. } | PropOp::Remove { ns, name } => (ns, name),
            };
            sqlx::query("DELETE FROM dead_props WHERE user_id = ? AND entry_id = ? AND ns = ? AND name = ?")
                .bind(user_id)
                .bind(entry_id)
                .bind(ns.as_str())
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            if let PropOp::Set { value, .. } = op {
                sqlx::query("INSERT INTO dead_props (user_id, entry_id, ns, name, value) VALUES (?, ?, ?, ?, ?)")
                    .bind(user_id)
                    .bind(entry_id)
                    .bind(ns.as_str())
                    .bind(name.as_str())
                    .bind(value.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let rows = sqlx::query("SELECT ns, name, value FROM dead_props WHERE user_id = ? AND entry_id = ?")
            .bind(user_id)
            .bind(entry_id)
            .fetch_all(&mut *tx)
            .await?;
        let mut bytes = 0usize;
        for row in &rows {
            let (ns, name, value): (String, String, String) =
                (row.try_get("ns")?, row.try_get("name")?, row.try_get("value")?);
            bytes += ns.len() + name.len() + value.len();
        }
        if rows.len() > max_count || bytes > max_bytes {
            // Dropped with the transaction: nothing changes.
            return Err(Error::invalid(
                ErrorCode::InvalidRequest,
                format!("an entry holds at most {max_count} properties of {max_bytes} bytes in all"),
            ));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_file_mtime(&self, user_id: i64, entry_id: &str, mtime: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE user_files SET mtime = ? WHERE user_id = ? AND entry_id = ? AND trashed_at IS NULL")
                .bind(mtime)
                .bind(user_id)
                .bind(entry_id)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn drop_orphan_props(&self) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM dead_props WHERE entry_id <> '' \
             AND NOT EXISTS (SELECT 1 FROM user_files uf WHERE uf.entry_id = dead_props.entry_id) \
             AND NOT EXISTS (SELECT 1 FROM folders d WHERE d.folder_id = dead_props.entry_id)",
        )
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }
}
