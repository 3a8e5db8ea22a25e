//! The users' trees in SQL: folders, names in a folder, moves and the trash.
//!
//! A folder or a file names its parent by the folder's public id (`''`: the
//! root). A trashed item has `trashed_at`; it and everything that was below
//! it have `trashed_by` = its id, so "live" is `trashed_by IS NULL` and a
//! restore or a purge touches rows by `trashed_by` alone.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::rows::{CONTENT, ENTRY, SqlRepo, TxError, lock_user, stored_file_from, user_file_from};
use super::search;
use super::versions::{NewContent, drop_versions_of, entry_with_content, replace_content};
use super::{Destination, ListCursor, PageRequest, ParentId, Placed, TreeBounds, TreeRepo};
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::name_key;
use crate::domain::{FileName, Folder, FolderId, NameRule, SortKey, StoredFile, TrashItem, TreeItem, UserFile};

type Tx = Transaction<'static, Any>;

/// Columns of a folder, as [`folder_from`] reads them (`d` = folders).
const FOLDER: &str = "d.id AS row_id, d.folder_id, d.name, d.parent, d.created_at, d.updated_at, d.trashed_at";

/// How many alternatives `name (n).ext` there are: the first free one is
/// taken (a gap left by a deleted copy is filled), found from one query.
const MAX_NUMBERED: u32 = 1000;
/// How deep a tree may be walked (a guard against a cycle in bad data).
const MAX_DEPTH: usize = 10_000;
/// Ids per `IN (…)` list.
const IN_BATCH: usize = 200;

fn folder_from(row: &AnyRow) -> sqlx::Result<Folder> {
    Ok(Folder {
        id: row.try_get("folder_id")?,
        name: row.try_get("name")?,
        parent: row.try_get("parent")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn live_folder(tx: &mut Tx, user_id: i64, folder_id: &str) -> sqlx::Result<Option<Folder>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.folder_id = ? AND d.trashed_by IS NULL"
    )))
    .bind(user_id)
    .bind(folder_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(folder_from).transpose()
}

/// `parent` when it is the root or a live folder of the user; otherwise
/// [`Error::FolderNotFound`].
async fn existing_parent(tx: &mut Tx, user_id: i64, parent: &str) -> Result<String, TxError> {
    if parent.is_empty() || live_folder(tx, user_id, parent).await?.is_some() {
        Ok(parent.to_owned())
    } else {
        Err(Error::FolderNotFound.into())
    }
}

/// `parent` when it is the root or a live folder of the user; the root otherwise.
pub(super) async fn parent_or_root(tx: &mut Tx, user_id: i64, parent: &str) -> sqlx::Result<String> {
    if parent.is_empty() || live_folder(tx, user_id, parent).await?.is_some() {
        Ok(parent.to_owned())
    } else {
        Ok(String::new())
    }
}

/// How many folders lead from the root to `folder`, itself included (the
/// root: 0). One recursive query; the cap stops a cycle in bad data.
async fn depth_of(tx: &mut Tx, user_id: i64, folder: &str) -> sqlx::Result<u32> {
    let n: Option<i64> = sqlx::query_scalar(
        "WITH RECURSIVE up (id, n) AS (SELECT CAST(? AS CHAR(64)), 0 UNION ALL \
         SELECT d.parent, up.n + 1 FROM folders d JOIN up ON d.folder_id = up.id \
         WHERE d.user_id = ? AND up.n < ?) SELECT MAX(n) FROM up",
    )
    .bind(folder)
    .bind(user_id)
    .bind(MAX_DEPTH as i64)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
}

/// Which folders below a folder count for its height.
#[derive(Clone, Copy)]
enum Below<'a> {
    /// The live ones (a move).
    Live,
    /// Those trashed with it (a restore).
    TrashedBy(&'a str),
}

/// How many levels of folders lie below `folder` (none: 0).
async fn height_below(tx: &mut Tx, user_id: i64, folder: &str, below: Below<'_>) -> sqlx::Result<u32> {
    let filter = match below {
        Below::Live => "d.trashed_by IS NULL",
        Below::TrashedBy(_) => "d.trashed_by = ?",
    };
    let mut query = sqlx::query_scalar(AssertSqlSafe(format!(
        "WITH RECURSIVE down (id, n) AS (SELECT CAST(? AS CHAR(64)), 0 UNION ALL \
         SELECT d.folder_id, down.n + 1 FROM folders d JOIN down ON d.parent = down.id \
         WHERE d.user_id = ? AND {filter} AND down.n < ?) SELECT MAX(n) FROM down"
    )))
    .bind(folder)
    .bind(user_id);
    if let Below::TrashedBy(id) = below {
        query = query.bind(id);
    }
    let n: Option<i64> = query.bind(MAX_DEPTH as i64).fetch_one(&mut **tx).await?;
    Ok(n.unwrap_or(0).clamp(0, u32::MAX as i64) as u32)
}

/// [`Error::FolderTooDeep`] unless `levels` more folders below `parent`
/// stay within `max_depth`.
async fn check_depth(tx: &mut Tx, user_id: i64, parent: &str, levels: u32, max_depth: u32) -> Result<(), TxError> {
    if depth_of(tx, user_id, parent).await?.saturating_add(levels) > max_depth {
        return Err(Error::FolderTooDeep { max: max_depth }.into());
    }
    Ok(())
}

/// Whether a live folder or file other than `except` is called `name` in
/// `parent` (compared in NFC: see [`name_key`]).
async fn name_taken(tx: &mut Tx, user_id: i64, parent: &str, name: &str, except: &str) -> sqlx::Result<bool> {
    let (folders, files) = holders(tx, user_id, parent, name, except).await?;
    Ok(!folders.is_empty() || !files.is_empty())
}

/// The ids of the live folders and files called `name` in `parent` but
/// `except`: what holds the name.
async fn holders(
    tx: &mut Tx,
    user_id: i64,
    parent: &str,
    name: &str,
    except: &str,
) -> sqlx::Result<(Vec<String>, Vec<String>)> {
    let key = name_key(name);
    let folders: Vec<String> = sqlx::query_scalar(
        "SELECT folder_id FROM folders WHERE user_id = ? AND parent = ? AND name_key = ? AND trashed_by IS NULL \
         AND folder_id <> ?",
    )
    .bind(user_id)
    .bind(parent)
    .bind(key.as_str())
    .bind(except)
    .fetch_all(&mut **tx)
    .await?;
    let files: Vec<String> = sqlx::query_scalar(
        "SELECT entry_id FROM user_files WHERE user_id = ? AND folder = ? AND filename_key = ? \
         AND trashed_by IS NULL AND entry_id <> ?",
    )
    .bind(user_id)
    .bind(parent)
    .bind(key.as_str())
    .bind(except)
    .fetch_all(&mut **tx)
    .await?;
    Ok((folders, files))
}

/// Moves a live file or folder (and everything below it) to the trash in
/// the caller's transaction (the user's row locked).
async fn trash_in(tx: &mut Tx, user_id: i64, id: &str, now: i64) -> Result<(), TxError> {
    if live_folder(tx, user_id, id).await?.is_some() {
        let ids = subtree(tx, user_id, id).await?;
        hide_below(tx, user_id, &ids, id).await?;
        sqlx::query("UPDATE folders SET trashed_at = ? WHERE user_id = ? AND folder_id = ?")
            .bind(now)
            .bind(user_id)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    let hidden = sqlx::query(
        "UPDATE user_files SET trashed_at = ?, trashed_by = entry_id \
         WHERE user_id = ? AND entry_id = ? AND trashed_by IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if hidden.rows_affected() == 0 {
        return Err(Error::FileNotFound.into());
    }
    Ok(())
}

/// With [`NameRule::Supersede`]: puts the live folders and files called
/// `name` in `parent` (but `except`) into the trash, in the caller's
/// transaction, so the name is free for what takes it in the same one.
async fn supersede(tx: &mut Tx, user_id: i64, parent: &str, name: &str, except: &str, now: i64) -> Result<(), TxError> {
    let (folders, files) = holders(tx, user_id, parent, name, except).await?;
    for id in folders.iter().chain(&files) {
        trash_in(tx, user_id, id, now).await?;
    }
    if crate::runtime::crash::fault("tree.supersede") {
        return Err(Error::Unavailable { what: "database", source: "a fault armed by PAN_FAULT_AT".into() }.into());
    }
    Ok(())
}

/// The name an entry gets in `parent`: `name` when free, else refused or
/// the first free `name (n).ext`, as `rule` says. `except` is the entry
/// itself (a rename to its own name is no clash).
pub(super) async fn free_name(
    tx: &mut Tx,
    user_id: i64,
    parent: &str,
    name: &str,
    rule: NameRule,
    except: &str,
) -> Result<String, TxError> {
    if !name_taken(tx, user_id, parent, name, except).await? {
        return Ok(name.to_owned());
    }
    // (Replace comes here only when a folder holds the name: never replaced.)
    if rule != NameRule::Rename {
        return Err(Error::NameTaken { name: name.to_owned() }.into());
    }
    let base = FileName::parse(name)?;
    // The first free number, from one query: the numbered forms of the name
    // that are taken (`stem… (…)ext`), then a walk in memory.
    let taken = numbered_taken(tx, user_id, parent, &base, except).await?;
    for n in 1..=MAX_NUMBERED {
        let candidate = base.numbered(n);
        if !taken.contains(&name_key(candidate.as_str())) {
            return Ok(candidate.as_str().to_owned());
        }
    }
    Err(Error::NameTaken { name: name.to_owned() }.into())
}

/// The live file called `name` in `parent` that a replacement gives new
/// content, with its content; `None` when no file (and no folder) has the
/// name. A folder of that name is [`Error::NameTaken`] (never replaced); a
/// file whose content is not `if_match` is [`Error::ContentChanged`], as
/// is no file at all when `if_match` expected one; several files of that
/// name (made before names were unique) are [`Error::AmbiguousPath`].
pub(super) async fn file_to_replace(
    tx: &mut Tx,
    user_id: i64,
    parent: &str,
    name: &str,
    if_match: Option<&str>,
) -> Result<Option<(UserFile, StoredFile)>, TxError> {
    let key = name_key(name);
    let folders: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM folders WHERE user_id = ? AND parent = ? AND name_key = ? AND trashed_by IS NULL",
    )
    .bind(user_id)
    .bind(parent)
    .bind(key.as_str())
    .fetch_one(&mut **tx)
    .await?;
    if folders > 0 {
        return Err(Error::NameTaken { name: name.to_owned() }.into());
    }
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
         WHERE uf.user_id = ? AND uf.folder = ? AND uf.filename_key = ? AND uf.trashed_by IS NULL"
    )))
    .bind(user_id)
    .bind(parent)
    .bind(key.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let found = match rows.as_slice() {
        [] => None,
        [row] => Some((user_file_from(row)?, stored_file_from(row)?)),
        rows => {
            let ids = rows.iter().map(|r| r.try_get("entry_id")).collect::<sqlx::Result<_>>()?;
            return Err(Error::AmbiguousPath { path: name.to_owned(), ids }.into());
        }
    };
    if let Some(want) = if_match {
        let have = found.as_ref().and_then(|(f, _)| f.sha256.as_deref());
        if !have.is_some_and(|h| h.eq_ignore_ascii_case(want)) {
            return Err(Error::ContentChanged.into());
        }
    }
    Ok(found)
}

/// The live names in `parent` (but `except`'s) that look like numbered
/// forms of `base`: `<stem> (<n>)<ext>`, the stem as short as the
/// 1000th form cuts it. One query per table, whatever the folder holds.
async fn numbered_taken(
    tx: &mut Tx,
    user_id: i64,
    parent: &str,
    base: &FileName,
    except: &str,
) -> sqlx::Result<std::collections::HashSet<String>> {
    let (stem, ext) = base.numbered_parts(MAX_NUMBERED);
    let escape = |s: &str| s.replace('!', "!!").replace('%', "!%").replace('_', "!_");
    let pattern = format!("{}% (%){}", escape(&name_key(stem)), escape(&name_key(ext)));
    let mut taken = std::collections::HashSet::new();
    for items in [FOLDERS, FILES] {
        let Items { table, id, parent: parent_col, key, .. } = items;
        let names: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {key} FROM {table} WHERE user_id = ? AND {parent_col} = ? AND {key} LIKE ? ESCAPE '!' \
             AND trashed_by IS NULL AND {id} <> ?"
        )))
        .bind(user_id)
        .bind(parent)
        .bind(pattern.as_str())
        .bind(except)
        .fetch_all(&mut **tx)
        .await?;
        taken.extend(names);
    }
    Ok(taken)
}

/// Renames live names that one folder holds twice in different Unicode
/// forms (made before names compared in NFC): the older keeps its name, the
/// newer gets the first free number. Run at start-up, after the keys are
/// filled; how many were renamed.
pub(super) async fn rename_nfc_twins(repo: &SqlRepo) -> Result<usize> {
    let mut renamed = 0;
    for items in [FOLDERS, FILES] {
        let Items { table, id, parent, name, key } = items;
        // A file is also the twin of a folder's name.
        let folder_twin = if table == FILES.table {
            " OR EXISTS (SELECT 1 FROM folders d WHERE d.user_id = t.user_id AND d.parent = t.folder \
             AND d.name_key = t.filename_key AND d.trashed_by IS NULL AND d.name <> t.filename)"
        } else {
            ""
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT t.user_id, t.{parent} AS p, t.{id} AS item, t.{name} AS n FROM {table} t \
             WHERE t.trashed_by IS NULL AND (EXISTS (SELECT 1 FROM {table} o WHERE o.user_id = t.user_id \
             AND o.{parent} = t.{parent} AND o.{key} = t.{key} AND o.trashed_by IS NULL AND o.id < t.id \
             AND o.{name} <> t.{name}){folder_twin}) ORDER BY t.id LIMIT 1000"
        )))
        .fetch_all(repo.pool())
        .await?;
        for r in &rows {
            let (user_id, parent_id, item, old): (i64, String, String, String) =
                (r.try_get("user_id")?, r.try_get("p")?, r.try_get("item")?, r.try_get("n")?);
            let mut tx = repo.begin().await?;
            lock_user(&mut tx, user_id).await?;
            let new = match free_name(&mut tx, user_id, &parent_id, &old, NameRule::Rename, &item).await {
                Ok(new) => new,
                Err(TxError::Sql(e)) => return Err(e.into()),
                Err(TxError::Domain(e)) => {
                    tracing::warn!(item, error = %e, "an NFC twin could not be renamed; the audit lists it");
                    continue;
                }
            };
            sqlx::query(AssertSqlSafe(format!("UPDATE {table} SET {name} = ?, {key} = ? WHERE {id} = ?")))
                .bind(new.as_str())
                .bind(name_key(&new))
                .bind(item.as_str())
                .execute(&mut *tx)
                .await?;
            search::index_name(&mut tx, user_id, &item, &new).await?;
            tx.commit().await?;
            tracing::info!(item, old, new, "renamed a name that was another's twin in NFC");
            renamed += 1;
        }
    }
    Ok(renamed)
}

/// `root` and every live folder below it, from one recursive query.
async fn subtree(tx: &mut Tx, user_id: i64, root: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "WITH RECURSIVE sub (id, n) AS (SELECT CAST(? AS CHAR(64)), 0 UNION ALL \
         SELECT d.folder_id, sub.n + 1 FROM folders d JOIN sub ON d.parent = sub.id \
         WHERE d.user_id = ? AND d.trashed_by IS NULL AND sub.n < ?) SELECT id FROM sub",
    )
    .bind(root)
    .bind(user_id)
    .bind(MAX_DEPTH as i64)
    .fetch_all(&mut **tx)
    .await
}

/// Sets `trashed_by = by` on the live folders `ids` and the live files in them.
async fn hide_below(tx: &mut Tx, user_id: i64, ids: &[String], by: &str) -> sqlx::Result<()> {
    for batch in ids.chunks(IN_BATCH) {
        let marks = vec!["?"; batch.len()].join(", ");
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE folders SET trashed_by = ? WHERE user_id = ? AND trashed_by IS NULL AND folder_id IN ({marks})"
        )))
        .bind(by)
        .bind(user_id);
        for id in batch {
            q = q.bind(id.as_str());
        }
        q.execute(&mut **tx).await?;
        let mut q = sqlx::query(AssertSqlSafe(format!(
            "UPDATE user_files SET trashed_by = ? WHERE user_id = ? AND trashed_by IS NULL AND folder IN ({marks})"
        )))
        .bind(by)
        .bind(user_id);
        for id in batch {
            q = q.bind(id.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Whether `folder` is `ancestor` or below it (walking up from `folder`).
async fn is_within(tx: &mut Tx, user_id: i64, folder: &str, ancestor: &str) -> sqlx::Result<bool> {
    let mut current = folder.to_owned();
    for _ in 0..MAX_DEPTH {
        if current == ancestor {
            return Ok(true);
        }
        if current.is_empty() {
            return Ok(false);
        }
        let parent: Option<String> =
            sqlx::query_scalar("SELECT parent FROM folders WHERE user_id = ? AND folder_id = ?")
                .bind(user_id)
                .bind(current.as_str())
                .fetch_optional(&mut **tx)
                .await?;
        match parent {
            Some(p) => current = p,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// A table of tree items: its name, id, parent and name columns.
#[derive(Clone, Copy)]
struct Items {
    table: &'static str,
    id: &'static str,
    parent: &'static str,
    name: &'static str,
    /// The name's NFC form, which names compare by.
    key: &'static str,
}

const FOLDERS: Items = Items { table: "folders", id: "folder_id", parent: "parent", name: "name", key: "name_key" };
const FILES: Items =
    Items { table: "user_files", id: "entry_id", parent: "folder", name: "filename", key: "filename_key" };

/// Where a move or rename puts an item: `to` a folder (`None`: where it is),
/// as `name` (`None`: its name), with `rule` for a taken name.
struct Relocation<'a> {
    to: Option<ParentId<'a>>,
    name: Option<&'a str>,
    rule: NameRule,
    now: i64,
    /// The deepest a folder may be (`PAN_MAX_DEPTH`).
    max_depth: u32,
}

/// Moves and/or renames item `id` of `items`, now at (parent, name), inside
/// `tx` (which holds the user's tree turn): the destination must be live,
/// a folder never goes into itself, the name follows the rule, and the
/// search index follows the name.
async fn relocate(
    tx: &mut Tx,
    user_id: i64,
    items: Items,
    id: &str,
    (parent, name): (&str, &str),
    place: &Relocation<'_>,
) -> Result<(), TxError> {
    let to = match place.to {
        Some(to) => existing_parent(tx, user_id, to).await?,
        None => parent.to_owned(),
    };
    if items.table == FOLDERS.table && to != parent {
        if is_within(tx, user_id, &to, id).await? {
            return Err(Error::MoveIntoItself.into());
        }
        let levels = 1 + height_below(tx, user_id, id, Below::Live).await?;
        check_depth(tx, user_id, &to, levels, place.max_depth).await?;
    }
    let wanted = place.name.unwrap_or(name);
    if to == parent && wanted == name {
        return Ok(());
    }
    if place.rule == NameRule::Supersede {
        supersede(tx, user_id, &to, wanted, id, place.now).await?;
    }
    let new_name = free_name(tx, user_id, &to, wanted, place.rule, id).await?;
    let Items { table, id: id_col, parent: parent_col, name: name_col, key: key_col } = items;
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {table} SET {parent_col} = ?, {name_col} = ?, {key_col} = ?, updated_at = ? \
         WHERE user_id = ? AND {id_col} = ?"
    )))
    .bind(to.as_str())
    .bind(new_name.as_str())
    .bind(name_key(&new_name))
    .bind(place.now)
    .bind(user_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    if new_name != name {
        search::index_name(tx, user_id, id, &new_name).await?;
    }
    Ok(())
}

/// Whether a move or a copy made the replacing content.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replacing {
    /// The source entry goes; its reference and versions go to the target.
    Moved,
    /// The source stays; the target takes a reference of its own.
    Copied,
}

/// A move or copy of `entry` with [`NameRule::Replace`] onto another file:
/// that file gets `entry`'s content (keeping its own as a version), inside
/// `tx`. `None` when the rule is not Replace or no other file has the
/// name there (the move or copy then goes on as any other).
async fn replace_with(
    tx: &mut Tx,
    user_id: i64,
    (entry, file_id): (&UserFile, i64),
    dest: &Destination<'_>,
    now: i64,
    how: Replacing,
) -> Result<Option<Placed>, TxError> {
    if dest.rule != NameRule::Replace {
        return Ok(None);
    }
    let to = match dest.to {
        Some(to) => existing_parent(tx, user_id, to).await?,
        None => entry.folder.clone(),
    };
    let wanted = dest.name.unwrap_or(&entry.filename);
    let target = file_to_replace(tx, user_id, &to, wanted, dest.if_match).await?;
    let Some((target, target_content)) = target.filter(|(t, _)| t.id != entry.id) else { return Ok(None) };
    match how {
        // The source's reference becomes the target's; its versions follow.
        Replacing::Moved => {
            sqlx::query("UPDATE file_versions SET entry_id = ? WHERE user_id = ? AND entry_id = ?")
                .bind(target.id.as_str())
                .bind(user_id)
                .bind(entry.id.as_str())
                .execute(&mut **tx)
                .await?;
            search::unindex(tx, &entry.id).await?;
            sqlx::query("DELETE FROM user_files WHERE user_id = ? AND entry_id = ?")
                .bind(user_id)
                .bind(entry.id.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Replacing::Copied => {
            sqlx::query("UPDATE files SET refcount = refcount + 1 WHERE id = ?")
                .bind(file_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    let new = NewContent { file_id, filesize: entry.filesize, mtime: entry.mtime, author: dest.author, now };
    let orphans = replace_content(tx, user_id, &target, &target_content, &new).await?;
    let placed = entry_by_id(tx, user_id, &target.id).await?.ok_or(Error::FileNotFound)?;
    Ok(Some(Placed { entry: placed, orphans }))
}

/// A trashed item at the top of the trash (`trashed_at` set), by id.
async fn trash_top(tx: &mut Tx, user_id: i64, id: &str) -> Result<TreeItem, TxError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.folder_id = ? AND d.trashed_at IS NOT NULL"
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = row {
        return Ok(TreeItem::Folder(folder_from(&row)?));
    }
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
         WHERE uf.user_id = ? AND uf.entry_id = ? AND uf.trashed_at IS NOT NULL"
    )))
    .bind(user_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    match row {
        Some(row) => Ok(TreeItem::File(user_file_from(&row)?)),
        None => Err(Error::TrashItemNotFound.into()),
    }
}

/// A new entry, as [`insert_entry`] records it.
pub(super) struct NewEntry<'a> {
    pub user_id: i64,
    /// The content it holds a reference on (taken by the caller).
    pub file_id: i64,
    pub folder: &'a str,
    /// A free name there.
    pub name: &'a str,
    pub filesize: i64,
    pub mtime: i64,
}

/// Records a new entry, named in the search index, inside `tx`; the entry
/// as recorded.
pub(super) async fn insert_entry(tx: &mut Tx, e: &NewEntry<'_>, now: i64) -> sqlx::Result<UserFile> {
    let entry_id = crate::domain::EntryId::generate();
    sqlx::query(
        "INSERT INTO user_files (entry_id, user_id, file_id, folder, filename, filename_key, filesize, created_at, \
         updated_at, mtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(entry_id.as_str())
    .bind(e.user_id)
    .bind(e.file_id)
    .bind(e.folder)
    .bind(e.name)
    .bind(name_key(e.name))
    .bind(e.filesize)
    .bind(now)
    .bind(now)
    .bind(e.mtime)
    .execute(&mut **tx)
    .await?;
    search::index_name(tx, e.user_id, entry_id.as_str(), e.name).await?;
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.entry_id = ?"
    )))
    .bind(entry_id.as_str())
    .fetch_one(&mut **tx)
    .await?;
    user_file_from(&row)
}

async fn entry_by_id(tx: &mut Tx, user_id: i64, entry_id: &str) -> sqlx::Result<Option<UserFile>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
         WHERE uf.user_id = ? AND uf.entry_id = ? AND uf.trashed_by IS NULL"
    )))
    .bind(user_id)
    .bind(entry_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(user_file_from).transpose()
}

/// A cursor key as the listing binds it: a number for sizes and times.
enum KeyValue {
    Text(String),
    Number(i64),
}

fn key_value(numeric: bool, key: &str) -> Result<KeyValue> {
    if !numeric {
        return Ok(KeyValue::Text(key.to_owned()));
    }
    key.parse()
        .map(KeyValue::Number)
        .map_err(|_| Error::invalid(ErrorCode::InvalidCursor, "the cursor is not one this listing returned"))
}

/// One table of a listing: its `SELECT … WHERE user_id = ? AND parent = ?`,
/// the column it is sorted by (numeric or text), and the row id column.
struct Listed<'a> {
    select: String,
    key_col: &'a str,
    numeric: bool,
    row_col: &'a str,
}

/// One page of one table of a listing, after the cursor.
async fn page_of(
    pool: &sqlx::AnyPool,
    table: &Listed<'_>,
    binds: (i64, &str),
    desc: bool,
    after: Option<&ListCursor>,
    limit: i64,
) -> Result<Vec<AnyRow>> {
    let Listed { select, key_col, numeric, row_col } = table;
    let numeric = *numeric;
    let (dir, cmp) = if desc { ("DESC", "<") } else { ("ASC", ">") };
    let mut sql = select.to_owned();
    if after.is_some() {
        sql.push_str(&format!(" AND ({key_col} {cmp} ? OR ({key_col} = ? AND {row_col} {cmp} ?))"));
    }
    sql.push_str(&format!(" ORDER BY {key_col} {dir}, {row_col} {dir} LIMIT ?"));
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(binds.0).bind(binds.1.to_owned());
    if let Some(c) = after {
        q = match key_value(numeric, &c.key)? {
            KeyValue::Text(t) => q.bind(t.clone()).bind(t),
            KeyValue::Number(n) => q.bind(n).bind(n),
        };
        q = q.bind(c.row);
    }
    Ok(q.bind(limit).fetch_all(pool).await?)
}

#[async_trait]
impl TreeRepo for SqlRepo {
    async fn folder(&self, user_id: i64, folder_id: &str) -> Result<Option<Folder>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.folder_id = ? AND d.trashed_by IS NULL"
        )))
        .bind(user_id)
        .bind(folder_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(folder_from).transpose()?)
    }

    async fn children_named(&self, user_id: i64, parent: ParentId<'_>, name: &str) -> Result<Vec<TreeItem>> {
        let folders = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.parent = ? AND d.name_key = ? \
             AND d.trashed_by IS NULL ORDER BY d.id"
        )))
        .bind(user_id)
        .bind(parent)
        .bind(name_key(name))
        .fetch_all(self.pool())
        .await?;
        let files = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id WHERE uf.user_id = ? \
             AND uf.folder = ? AND uf.filename_key = ? AND uf.trashed_by IS NULL ORDER BY uf.id"
        )))
        .bind(user_id)
        .bind(parent)
        .bind(name_key(name))
        .fetch_all(self.pool())
        .await?;
        let mut items = Vec::with_capacity(folders.len() + files.len());
        for r in &folders {
            items.push(TreeItem::Folder(folder_from(r)?));
        }
        for r in &files {
            items.push(TreeItem::File(user_file_from(r)?));
        }
        Ok(items)
    }

    async fn list_children(
        &self,
        user_id: i64,
        parent: ParentId<'_>,
        page: &PageRequest,
    ) -> Result<(Vec<TreeItem>, Option<ListCursor>)> {
        let mut items = Vec::new();
        let in_files = page.after.as_ref().is_some_and(|c| c.in_files);
        let mut last_folder = None;
        if !in_files {
            let (key_col, numeric) = match page.sort {
                SortKey::Time => ("d.created_at", true),
                SortKey::Name | SortKey::Size => ("d.name", false),
            };
            let table = Listed {
                select: format!(
                    "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.parent = ? AND d.trashed_by IS NULL"
                ),
                key_col,
                numeric,
                row_col: "d.id",
            };
            let rows =
                page_of(self.pool(), &table, (user_id, parent), page.desc, page.after.as_ref(), page.limit + 1).await?;
            for row in rows.iter().take(page.limit as usize) {
                let folder = folder_from(row)?;
                let key = match page.sort {
                    SortKey::Time => folder.created_at.to_string(),
                    _ => folder.name.clone(),
                };
                last_folder = Some(ListCursor { in_files: false, key, row: row.try_get("row_id")? });
                items.push(TreeItem::Folder(folder));
            }
            if rows.len() as i64 > page.limit {
                return Ok((items, last_folder));
            }
        }
        let room = page.limit - items.len() as i64;
        let (key_col, numeric) = match page.sort {
            SortKey::Name => ("uf.filename", false),
            SortKey::Size => ("uf.filesize", true),
            // A file's own modification time (its upload time when none was declared).
            SortKey::Time => ("uf.mtime", true),
        };
        let table = Listed {
            select: format!(
                "SELECT uf.id AS row_id, {ENTRY} FROM user_files uf JOIN files f ON f.id = uf.file_id \
                 WHERE uf.user_id = ? AND uf.folder = ? AND uf.trashed_by IS NULL"
            ),
            key_col,
            numeric,
            row_col: "uf.id",
        };
        let after = page.after.as_ref().filter(|c| c.in_files);
        let rows = page_of(self.pool(), &table, (user_id, parent), page.desc, after, room + 1).await?;
        let mut last = None;
        for row in rows.iter().take(room as usize) {
            let file = user_file_from(row)?;
            let key = match page.sort {
                SortKey::Name => file.filename.clone(),
                SortKey::Size => file.filesize.to_string(),
                SortKey::Time => file.mtime.to_string(),
            };
            last = Some(ListCursor { in_files: true, key, row: row.try_get("row_id")? });
            items.push(TreeItem::File(file));
        }
        if rows.len() as i64 > room {
            // More files follow; when this page had no room for any, the next
            // one starts at the first file (after the last folder).
            return Ok((items, last.or(last_folder)));
        }
        Ok((items, None))
    }

    async fn create_folder(
        &self,
        user_id: i64,
        parent: ParentId<'_>,
        name: &str,
        rule: NameRule,
        bounds: &TreeBounds,
        now: i64,
    ) -> Result<Folder> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let parent = existing_parent(&mut tx, user_id, parent).await?;
        check_depth(&mut tx, user_id, &parent, 1, bounds.max_depth).await?;
        if let Some(quota) = bounds.max_entries {
            let entries = super::quota::entries(&mut tx, user_id).await?;
            if entries + 1 > quota {
                return Err(Error::QuotaExceeded {
                    message: format!(
                        "one more folder would exceed your limit of {quota} files and folders (live and in the \
                         trash): you have {entries}"
                    ),
                });
            }
        }
        let name = free_name(&mut tx, user_id, &parent, name, rule, "").await?;
        let id = FolderId::generate();
        sqlx::query(
            "INSERT INTO folders (folder_id, user_id, parent, name, name_key, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(user_id)
        .bind(parent.as_str())
        .bind(name.as_str())
        .bind(name_key(&name))
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        search::index_name(&mut tx, user_id, id.as_str(), &name).await?;
        let folder = live_folder(&mut tx, user_id, id.as_str()).await?.ok_or(Error::FolderNotFound)?;
        tx.commit().await?;
        Ok(folder)
    }

    async fn move_folder(
        &self,
        user_id: i64,
        folder_id: &str,
        dest: &Destination<'_>,
        max_depth: u32,
        now: i64,
    ) -> Result<Folder> {
        let Destination { to, name, rule, .. } = *dest;
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let folder = live_folder(&mut tx, user_id, folder_id).await?.ok_or(Error::FolderNotFound)?;
        let place = Relocation { to, name, rule, now, max_depth };
        relocate(&mut tx, user_id, FOLDERS, folder_id, (&folder.parent, &folder.name), &place).await?;
        let folder = live_folder(&mut tx, user_id, folder_id).await?.ok_or(Error::FolderNotFound)?;
        tx.commit().await?;
        Ok(folder)
    }

    async fn move_file(&self, user_id: i64, entry_id: &str, dest: &Destination<'_>, now: i64) -> Result<Placed> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let (entry, content) =
            entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        if let Some(placed) = replace_with(&mut tx, user_id, (&entry, content.id), dest, now, Replacing::Moved).await? {
            tx.commit().await?;
            return Ok(placed);
        }
        // A file adds no level: the depth bound is for folders.
        let place = Relocation { to: dest.to, name: dest.name, rule: dest.rule, now, max_depth: u32::MAX };
        relocate(&mut tx, user_id, FILES, entry_id, (&entry.folder, &entry.filename), &place).await?;
        let entry = entry_by_id(&mut tx, user_id, entry_id).await?.ok_or(Error::FileNotFound)?;
        tx.commit().await?;
        Ok(Placed { entry, orphans: Vec::new() })
    }

    async fn copy_file(&self, user_id: i64, entry_id: &str, dest: &Destination<'_>, now: i64) -> Result<Placed> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let (entry, content) =
            entry_with_content(&mut tx, user_id, entry_id, false).await?.ok_or(Error::FileNotFound)?;
        let file_id = content.id;
        if let Some(placed) = replace_with(&mut tx, user_id, (&entry, file_id), dest, now, Replacing::Copied).await? {
            tx.commit().await?;
            return Ok(placed);
        }
        let to = match dest.to {
            Some(to) => existing_parent(&mut tx, user_id, to).await?,
            None => entry.folder.clone(),
        };
        let wanted = dest.name.unwrap_or(&entry.filename);
        if dest.rule == NameRule::Supersede {
            supersede(&mut tx, user_id, &to, wanted, "", now).await?;
        }
        let name = free_name(&mut tx, user_id, &to, wanted, dest.rule, "").await?;
        // The copy's own reference on the content, as every entry holds one.
        sqlx::query("UPDATE files SET refcount = refcount + 1 WHERE id = ?").bind(file_id).execute(&mut *tx).await?;
        let placed =
            NewEntry { user_id, file_id, folder: &to, name: &name, filesize: entry.filesize, mtime: entry.mtime };
        let entry = insert_entry(&mut tx, &placed, now).await?;
        tx.commit().await?;
        Ok(Placed { entry, orphans: Vec::new() })
    }

    async fn trash(&self, user_id: i64, id: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        trash_in(&mut tx, user_id, id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_trash(
        &self,
        user_id: i64,
        limit: i64,
        after: Option<&(i64, String)>,
    ) -> Result<(Vec<TrashItem>, Option<(i64, String)>)> {
        let cond = |id_col: &str, at_col: &str| match after {
            Some(_) => format!(" AND ({at_col} < ? OR ({at_col} = ? AND {id_col} < ?))"),
            None => String::new(),
        };
        let folders_sql = format!(
            "SELECT {FOLDER} FROM folders d WHERE d.user_id = ? AND d.trashed_at IS NOT NULL{} \
             ORDER BY d.trashed_at DESC, d.folder_id DESC LIMIT ?",
            cond("d.folder_id", "d.trashed_at")
        );
        let files_sql = format!(
            "SELECT {ENTRY}, uf.trashed_at FROM user_files uf JOIN files f ON f.id = uf.file_id \
             WHERE uf.user_id = ? AND uf.trashed_at IS NOT NULL{} ORDER BY uf.trashed_at DESC, uf.entry_id DESC LIMIT ?",
            cond("uf.entry_id", "uf.trashed_at")
        );
        let mut all: Vec<(i64, String, TrashItem)> = Vec::new();
        for (sql, is_folder) in [(folders_sql, true), (files_sql, false)] {
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(user_id);
            if let Some((at, id)) = after {
                q = q.bind(*at).bind(*at).bind(id.clone());
            }
            for row in q.bind(limit + 1).fetch_all(self.pool()).await? {
                let at: i64 = row.try_get("trashed_at")?;
                let item = if is_folder {
                    TreeItem::Folder(folder_from(&row)?)
                } else {
                    TreeItem::File(user_file_from(&row)?)
                };
                let id = match &item {
                    TreeItem::Folder(d) => d.id.clone(),
                    TreeItem::File(f) => f.id.clone(),
                };
                all.push((at, id, TrashItem { item, trashed_at: at }));
            }
        }
        all.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
        let more = all.len() as i64 > limit;
        all.truncate(limit as usize);
        let next = if more { all.last().map(|(at, id, _)| (*at, id.clone())) } else { None };
        Ok((all.into_iter().map(|(_, _, t)| t).collect(), next))
    }

    async fn restore(&self, user_id: i64, id: &str, rule: NameRule, max_depth: u32, now: i64) -> Result<TreeItem> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        let (old_parent, old_name, levels) = match trash_top(&mut tx, user_id, id).await? {
            TreeItem::Folder(d) => {
                (d.parent, d.name, 1 + height_below(&mut tx, user_id, id, Below::TrashedBy(id)).await?)
            }
            TreeItem::File(f) => (f.folder, f.filename, 0),
        };
        let parent = parent_or_root(&mut tx, user_id, &old_parent).await?;
        check_depth(&mut tx, user_id, &parent, levels, max_depth).await?;
        let name = free_name(&mut tx, user_id, &parent, &old_name, rule, id).await?;
        if name != old_name {
            search::index_name(&mut tx, user_id, id, &name).await?;
        }
        for table in ["folders", "user_files"] {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET trashed_by = NULL WHERE user_id = ? AND trashed_by = ?"
            )))
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        // The item is a folder or a file: one of these finds it.
        for Items { table, id: id_col, parent: parent_col, name: name_col, key } in [FOLDERS, FILES] {
            sqlx::query(AssertSqlSafe(format!(
                "UPDATE {table} SET trashed_at = NULL, {parent_col} = ?, {name_col} = ?, {key} = ?, updated_at = ? \
                 WHERE user_id = ? AND {id_col} = ?"
            )))
            .bind(parent.as_str())
            .bind(name.as_str())
            .bind(name_key(&name))
            .bind(now)
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let item = match live_folder(&mut tx, user_id, id).await? {
            Some(d) => TreeItem::Folder(d),
            None => TreeItem::File(entry_by_id(&mut tx, user_id, id).await?.ok_or(Error::FileNotFound)?),
        };
        tx.commit().await?;
        Ok(item)
    }

    async fn purge(&self, user_id: i64, id: &str) -> Result<Vec<StoredFile>> {
        let mut tx = self.begin().await?;
        lock_user(&mut tx, user_id).await?;
        trash_top(&mut tx, user_id, id).await?;
        let counts = sqlx::query(
            "SELECT file_id, COUNT(*) AS n FROM user_files WHERE user_id = ? AND trashed_by = ? GROUP BY file_id",
        )
        .bind(user_id)
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        search::unindex_trashed(&mut tx, user_id, id).await?;
        // The purged files' versions go with them.
        let purged: Vec<String> =
            sqlx::query_scalar("SELECT entry_id FROM user_files WHERE user_id = ? AND trashed_by = ?")
                .bind(user_id)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let mut orphans = drop_versions_of(&mut tx, user_id, &purged).await?;
        let mut touched = Vec::with_capacity(counts.len());
        for row in &counts {
            let (file_id, n): (i64, i64) = (row.try_get("file_id")?, row.try_get("n")?);
            sqlx::query("UPDATE files SET refcount = refcount - ? WHERE id = ?")
                .bind(n)
                .bind(file_id)
                .execute(&mut *tx)
                .await?;
            touched.push(file_id);
        }
        for table in ["user_files", "folders"] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = ? AND trashed_by = ?")))
                .bind(user_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for file_id in touched {
            let row =
                sqlx::query(AssertSqlSafe(format!("SELECT {CONTENT} FROM files f WHERE f.id = ? AND f.refcount <= 0")))
                    .bind(file_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(row) = row {
                orphans.push(stored_file_from(&row)?);
                sqlx::query("DELETE FROM files WHERE id = ? AND refcount <= 0").bind(file_id).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(orphans)
    }

    async fn search(
        &self,
        user_id: i64,
        query: &str,
        limit: i64,
        after: Option<&(String, String)>,
    ) -> Result<(Vec<TreeItem>, Option<(String, String)>)> {
        self.search_names(user_id, query, limit, after).await
    }

    async fn folder_bytes(&self, user_id: i64, folder_id: &str) -> Result<i64> {
        // One transaction: a consistent view of the tree while it is walked.
        let mut tx = self.begin().await?;
        if live_folder(&mut tx, user_id, folder_id).await?.is_none() {
            return Err(Error::FolderNotFound);
        }
        let ids = subtree(&mut tx, user_id, folder_id).await?;
        let mut total: i64 = 0;
        for batch in ids.chunks(IN_BATCH) {
            let marks = vec!["?"; batch.len()].join(", ");
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
                "SELECT CAST(COALESCE(SUM(filesize), 0) AS SIGNED) FROM user_files \
                 WHERE user_id = ? AND trashed_by IS NULL AND folder IN ({marks})"
            )))
            .bind(user_id);
            for id in batch {
                q = q.bind(id.as_str());
            }
            total = total.saturating_add(q.fetch_one(&mut *tx).await?);
        }
        tx.commit().await?;
        Ok(total)
    }

    async fn trash_expired(&self, before: i64, limit: i64) -> Result<Vec<(i64, String)>> {
        let mut out = Vec::new();
        for sql in [
            "SELECT user_id, folder_id AS id FROM folders WHERE trashed_at < ? ORDER BY trashed_at LIMIT ?",
            "SELECT user_id, entry_id AS id FROM user_files WHERE trashed_at < ? ORDER BY trashed_at LIMIT ?",
        ] {
            for row in sqlx::query(sql).bind(before).bind(limit).fetch_all(self.pool()).await? {
                out.push((row.try_get("user_id")?, row.try_get("id")?));
            }
        }
        Ok(out)
    }
}
