//! Name search from an index pan keeps: the grams of every name (at each
//! position of the lowercased name, the next three characters or fewer at
//! the end). Every substring of three or more characters contains a gram
//! of the query; every shorter one starts some gram. Candidates from the
//! index are checked against the real names, so the index only has to
//! find a superset.

use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::rows::{ENTRY, SqlRepo, user_file_from};
use crate::domain::error::Result;
use crate::domain::{Folder, TreeItem};

type Tx = Transaction<'static, Any>;

/// Most candidates one search checks; a query matching more is answered
/// from the first ones (by the index's order) only.
const MAX_CANDIDATES: usize = 20_000;
/// Most grams of a query used to find candidates (the check does the rest).
const MAX_QUERY_GRAMS: usize = 12;
const IN_BATCH: usize = 200;

/// The grams of a name, deduplicated.
pub(super) fn grams(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.to_lowercase().chars().collect();
    let mut out: Vec<String> = (0..chars.len()).map(|i| chars[i..(i + 3).min(chars.len())].iter().collect()).collect();
    out.sort();
    out.dedup();
    out
}

/// Indexes `item`'s `name` (replacing what was indexed for it).
pub(super) async fn index_name(tx: &mut Tx, user_id: i64, item: &str, name: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM name_grams WHERE item = ?").bind(item).execute(&mut **tx).await?;
    for batch in grams(name).chunks(100) {
        let values = vec!["(?, ?, ?)"; batch.len()].join(", ");
        let mut q = sqlx::query(AssertSqlSafe(format!("INSERT INTO name_grams (user_id, gram, item) VALUES {values}")));
        for g in batch {
            q = q.bind(user_id).bind(g.as_str()).bind(item);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Drops `item`'s index rows (an entry that is gone).
pub(super) async fn unindex(tx: &mut Tx, item: &str) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM name_grams WHERE item = ?").bind(item).execute(&mut **tx).await?;
    Ok(())
}

/// Drops the index rows of everything trash item `by` holds (before a purge).
pub(super) async fn unindex_trashed(tx: &mut Tx, user_id: i64, by: &str) -> sqlx::Result<()> {
    for (table, id) in [("folders", "folder_id"), ("user_files", "entry_id")] {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM name_grams WHERE user_id = ? AND item IN \
             (SELECT {id} FROM {table} WHERE user_id = ? AND trashed_by = ?)"
        )))
        .bind(user_id)
        .bind(user_id)
        .bind(by)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn like_prefix(q: &str) -> String {
    let mut s = String::with_capacity(q.len() + 1);
    for c in q.chars() {
        if matches!(c, '!' | '%' | '_') {
            s.push('!');
        }
        s.push(c);
    }
    s.push('%');
    s
}

impl SqlRepo {
    /// Fills the NFC key of names that lack it (rows from before keys, or
    /// renamed by a migration's SQL); how many.
    pub async fn key_existing_names(&self) -> Result<usize> {
        let mut done = 0;
        for (table, id, name, key) in
            [("folders", "folder_id", "name", "name_key"), ("user_files", "entry_id", "filename", "filename_key")]
        {
            loop {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {id} AS item, {name} AS name FROM {table} WHERE {key} IS NULL LIMIT 500"
                )))
                .fetch_all(self.pool())
                .await?;
                if rows.is_empty() {
                    break;
                }
                let mut tx = self.begin().await?;
                for r in &rows {
                    let (item, n): (String, String) = (r.try_get("item")?, r.try_get("name")?);
                    sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET {key} = ? WHERE {id} = ?")))
                        .bind(crate::domain::name_key(&n))
                        .bind(item)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                done += rows.len();
            }
        }
        if done > 0 {
            tracing::info!(names = done, "keyed names for comparison in NFC");
        }
        Ok(done)
    }

    /// Indexes the names of entries and folders made before the search index
    /// existed (or left unindexed by a crash between migrations and this):
    /// runs at start-up, in batches, until every name has its grams.
    pub async fn index_existing_names(&self) -> Result<usize> {
        let mut done = 0;
        for (table, id, name) in [("folders", "folder_id", "name"), ("user_files", "entry_id", "filename")] {
            loop {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT t.user_id, t.{id} AS item, t.{name} AS name FROM {table} t \
                     WHERE NOT EXISTS (SELECT 1 FROM name_grams g WHERE g.item = t.{id}) LIMIT 500"
                )))
                .fetch_all(self.pool())
                .await?;
                if rows.is_empty() {
                    break;
                }
                let mut tx = self.begin().await?;
                for r in &rows {
                    let (user, item, n): (i64, String, String) =
                        (r.try_get("user_id")?, r.try_get("item")?, r.try_get("name")?);
                    index_name(&mut tx, user, &item, &n).await?;
                }
                tx.commit().await?;
                done += rows.len();
            }
        }
        if done > 0 {
            tracing::info!(names = done, "indexed names for search");
        }
        Ok(done)
    }

    /// The user's live folders and files whose name contains `query`
    /// (case-insensitive), sorted by lowercased name then id, after `after`.
    pub(super) async fn search_names(
        &self,
        user_id: i64,
        query: &str,
        limit: i64,
        after: Option<&(String, String)>,
    ) -> Result<(Vec<TreeItem>, Option<(String, String)>)> {
        let q = query.to_lowercase();
        let qchars: Vec<char> = q.chars().collect();
        let candidates: Vec<String> = if qchars.len() >= 3 {
            let mut want: Vec<String> = (0..=qchars.len() - 3).map(|i| qchars[i..i + 3].iter().collect()).collect();
            want.sort();
            want.dedup();
            want.truncate(MAX_QUERY_GRAMS);
            let marks = vec!["?"; want.len()].join(", ");
            let mut sql = sqlx::query_scalar(AssertSqlSafe(format!(
                "SELECT item FROM name_grams WHERE user_id = ? AND gram IN ({marks}) GROUP BY item \
                 HAVING COUNT(*) = ? LIMIT ?"
            )))
            .bind(user_id);
            for g in &want {
                sql = sql.bind(g.as_str());
            }
            sql.bind(want.len() as i64).bind(MAX_CANDIDATES as i64).fetch_all(self.pool()).await?
        } else {
            sqlx::query_scalar(
                "SELECT DISTINCT item FROM name_grams WHERE user_id = ? AND gram LIKE ? ESCAPE '!' LIMIT ?",
            )
            .bind(user_id)
            .bind(like_prefix(&q))
            .bind(MAX_CANDIDATES as i64)
            .fetch_all(self.pool())
            .await?
        };
        let mut found: Vec<(String, String, TreeItem)> = Vec::new();
        for batch in candidates.chunks(IN_BATCH) {
            let marks = vec!["?"; batch.len()].join(", ");
            let mut folders = sqlx::query(AssertSqlSafe(format!(
                "SELECT d.folder_id, d.name, d.parent, d.created_at, d.updated_at FROM folders d \
                 WHERE d.user_id = ? AND d.trashed_by IS NULL AND d.folder_id IN ({marks})"
            )))
            .bind(user_id);
            let mut files = sqlx::query(AssertSqlSafe(format!(
                "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
                 WHERE uf.user_id = ? AND uf.trashed_by IS NULL AND uf.entry_id IN ({marks})"
            )))
            .bind(user_id);
            for id in batch {
                folders = folders.bind(id.as_str());
                files = files.bind(id.as_str());
            }
            for r in folders.fetch_all(self.pool()).await? {
                let d = Folder {
                    id: r.try_get("folder_id")?,
                    name: r.try_get("name")?,
                    parent: r.try_get("parent")?,
                    created_at: r.try_get("created_at")?,
                    updated_at: r.try_get("updated_at")?,
                };
                found.push((d.name.to_lowercase(), d.id.clone(), TreeItem::Folder(d)));
            }
            for r in files.fetch_all(self.pool()).await? {
                let f = user_file_from(&r)?;
                found.push((f.filename.to_lowercase(), f.id.clone(), TreeItem::File(f)));
            }
        }
        found.retain(|(name, id, _)| {
            name.contains(&q)
                && after.is_none_or(|(an, aid)| (name.as_str(), id.as_str()) > (an.as_str(), aid.as_str()))
        });
        found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let more = found.len() as i64 > limit;
        found.truncate(limit as usize);
        let next = if more { found.last().map(|(n, id, _)| (n.clone(), id.clone())) } else { None };
        Ok((found.into_iter().map(|(_, _, i)| i).collect(), next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_substring_is_found_through_some_gram() {
        let name = "Ñandú Report.PDF";
        let g = grams(name);
        let lower: Vec<char> = name.to_lowercase().chars().collect();
        for start in 0..lower.len() {
            for end in start + 1..=lower.len() {
                let sub: String = lower[start..end].iter().collect();
                let n = sub.chars().count();
                let hit = if n >= 3 {
                    let subc: Vec<char> = sub.chars().collect();
                    (0..=n - 3).all(|i| g.contains(&subc[i..i + 3].iter().collect::<String>()))
                } else {
                    g.iter().any(|x| x.starts_with(&sub))
                };
                assert!(hit, "{sub:?} is not reachable from the grams");
            }
        }
        assert_eq!(grams("ab"), ["ab", "b"]);
        assert_eq!(like_prefix("a_%!"), "a!_!%!!%");
    }
}
