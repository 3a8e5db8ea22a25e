//! The tree use cases: paths, destinations of new files, deleting into the
//! trash, purging, and emptying the trash after its retention.

pub mod locks;

use std::collections::HashMap;

use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::{
    FileName, Folder, FolderId, NameRule, Placement, Sha256Hex, StoredFile, TrashItem, TreeItem, User, UserFile,
};
use std::sync::Arc;

use object_store::path::Path;

pub use crate::stores::meta::{DeadProp, ListCursor, PageRequest, PropOp};
use crate::stores::meta::{Destination, MetaRepo, TreeBounds};
use crate::stores::objects::Store;

/// The most dead properties (WebDAV) one entry holds.
pub const MAX_DEAD_PROPS: usize = 100;
/// The most bytes of dead properties (namespaces, names and values) one entry holds.
pub const MAX_DEAD_PROP_BYTES: usize = 64 << 10;

/// The most components a path may have.
pub const MAX_PATH_DEPTH: usize = 256;

/// What a path names.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// `/`.
    Root,
    /// A folder or a file.
    Item(TreeItem),
}

/// Splits `/a/b/c.txt` into its names, each checked like any name. Empty
/// components (`//`, a trailing `/`) are skipped; `.` and `..` are refused.
pub fn split_path(path: &str) -> Result<Vec<FileName>> {
    if !path.starts_with('/') {
        return Err(Error::invalid(ErrorCode::InvalidPath, "a path starts with '/', e.g. /photos/2026/a.jpg"));
    }
    let names: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if names.len() > MAX_PATH_DEPTH {
        return Err(Error::invalid(ErrorCode::InvalidPath, format!("a path has at most {MAX_PATH_DEPTH} names")));
    }
    names
        .into_iter()
        .map(|n| FileName::parse(n).map_err(|e| Error::invalid(ErrorCode::InvalidPath, format!("{n:?}: {e}"))))
        .collect()
}

/// Paths of folders, looked up once per folder per request.
#[derive(Default)]
pub struct PathCache {
    known: HashMap<String, String>,
}

impl PathCache {
    /// The path of the caller's folder `folder_id` (`/` for the root), e.g.
    /// `/photos/2026`. A folder that is not live has the path of the trash
    /// item it went with, as far as it can still be walked.
    pub async fn folder_path(&mut self, tree: &Tree, user: &User, folder_id: &str) -> Result<String> {
        if folder_id.is_empty() {
            return Ok("/".into());
        }
        if let Some(p) = self.known.get(folder_id) {
            return Ok(p.clone());
        }
        let mut names = Vec::new();
        let mut current = folder_id.to_owned();
        let mut prefix = String::new();
        while !current.is_empty() && names.len() < 10 * MAX_PATH_DEPTH {
            if let Some(p) = self.known.get(&current) {
                prefix = p.trim_end_matches('/').to_owned();
                break;
            }
            let Some(folder) = tree.repo.folder(user.id, &current).await? else { break };
            names.push(folder.name);
            current = folder.parent;
        }
        names.reverse();
        let path = format!("{prefix}/{}", names.join("/"));
        self.known.insert(folder_id.to_owned(), path.clone());
        Ok(path)
    }

    /// The path of a file entry.
    pub async fn file_path(&mut self, tree: &Tree, user: &User, file: &UserFile) -> Result<String> {
        let folder = self.folder_path(tree, user, &file.folder).await?;
        Ok(format!("{}/{}", folder.trim_end_matches('/'), file.filename))
    }
}

/// The tree use cases of one installation.
#[derive(Clone)]
pub struct Tree {
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// Where contents' bytes and their backup copies are, for purges.
    pub(crate) files: Store,
    pub(crate) backup: Option<Store>,
    /// How long an item waits in the trash (`PAN_TRASH_DAYS`), in seconds.
    pub(crate) trash_retention_secs: i64,
    /// How deep and how large a tree may grow.
    pub(crate) bounds: TreeBounds,
}

impl Tree {
    /// The caller's live folder or file at `path`. [`Error::FileNotFound`]
    /// when nothing is there; [`Error::AmbiguousPath`] when the last name
    /// matches several entries (names that clashed before folders existed).
    pub async fn resolve(&self, user: &User, path: &str) -> Result<Resolved> {
        let names = split_path(path)?;
        let Some((last, folders)) = names.split_last() else { return Ok(Resolved::Root) };
        let mut parent = String::new();
        for name in folders {
            parent = self
                .repo
                .children_named(user.id, &parent, name.as_str())
                .await?
                .into_iter()
                .find_map(|i| match i {
                    TreeItem::Folder(d) => Some(d.id),
                    TreeItem::File(_) => None,
                })
                .ok_or(Error::FileNotFound)?;
        }
        let mut found = self.repo.children_named(user.id, &parent, last.as_str()).await?;
        match found.len() {
            0 => Err(Error::FileNotFound),
            1 => Ok(Resolved::Item(found.remove(0))),
            _ => Err(Error::AmbiguousPath {
                path: path.to_owned(),
                ids: found
                    .into_iter()
                    .map(|i| match i {
                        TreeItem::Folder(d) => d.id,
                        TreeItem::File(f) => f.id,
                    })
                    .collect(),
            }),
        }
    }

    /// The caller's live folder at `path` (`None`: the root).
    pub async fn resolve_folder(&self, user: &User, path: &str) -> Result<Option<Folder>> {
        match self.resolve(user, path).await {
            Ok(Resolved::Root) => Ok(None),
            Ok(Resolved::Item(TreeItem::Folder(d))) => Ok(Some(d)),
            Ok(Resolved::Item(TreeItem::File(_))) | Err(Error::FileNotFound) => Err(Error::FolderNotFound),
            Err(e) => Err(e),
        }
    }

    /// Checks where a new file is to go before any byte moves: the folder must
    /// be the caller's and live, and with [`crate::domain::NameRule::Refuse`]
    /// the name must be free there (an entry of the same name and content,
    /// `same`, counts as free: storing it again adds nothing).
    pub(crate) async fn check_placement(
        &self,
        user: &User,
        name: &FileName,
        place: &Placement,
        same: Option<(&str, i64)>,
    ) -> Result<()> {
        let folder = place.folder.as_ref().map(|f| f.as_str()).unwrap_or("");
        if !folder.is_empty() && self.repo.folder(user.id, folder).await?.is_none() {
            return Err(Error::FolderNotFound);
        }
        if place.rule == crate::domain::NameRule::Refuse {
            let taken =
                self.repo.children_named(user.id, folder, name.as_str()).await?.into_iter().any(|i| match (i, same) {
                    (TreeItem::File(f), Some((sha256, size))) => {
                        !(f.sha256.as_deref() == Some(sha256) && f.filesize == size)
                    }
                    _ => true,
                });
            if taken {
                return Err(Error::NameTaken { name: name.as_str().to_owned() });
            }
        }
        if place.rule == crate::domain::NameRule::Replace {
            // Checked now to fail fast; checked again where the content lands.
            let there = self.repo.children_named(user.id, folder, name.as_str()).await?;
            if there.iter().any(|i| matches!(i, TreeItem::Folder(_))) {
                return Err(Error::NameTaken { name: name.as_str().to_owned() });
            }
            if let Some(want) = &place.if_match {
                let matches = match there.as_slice() {
                    [TreeItem::File(f)] => f.sha256.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(want.as_str())),
                    _ => false,
                };
                if !matches {
                    return Err(Error::ContentChanged);
                }
            }
        }
        Ok(())
    }

    /// Moves the caller's live file or folder `id` to the trash; with
    /// `permanent`, deletes it for good (the bytes of contents nobody else
    /// references go too).
    pub async fn delete(&self, user: &User, id: &str, permanent: bool) -> Result<()> {
        self.repo.trash(user.id, id, crate::now()).await?;
        if permanent {
            self.purge(user, id).await?;
        }
        Ok(())
    }

    /// Deletes a trashed item for good, and the bytes nobody references any more.
    pub async fn purge(&self, user: &User, id: &str) -> Result<()> {
        let orphans = self.repo.purge(user.id, id).await?;
        crate::runtime::crash::point("purge.after_rows");
        self.delete_contents(&orphans).await;
        Ok(())
    }

    /// Purges every trash item deleted more than `retention_secs` ago (at most
    /// `limit` per call); returns how many went.
    pub(crate) async fn empty_expired(&self, limit: i64) -> Result<usize> {
        let before = crate::now() - self.trash_retention_secs;
        let expired = self.repo.trash_expired(before, limit).await?;
        let mut purged = 0;
        for (user_id, id) in expired {
            match self.repo.purge(user_id, &id).await {
                Ok(orphans) => {
                    self.delete_contents(&orphans).await;
                    purged += 1;
                }
                // Restored or purged by its owner since it was listed.
                Err(Error::TrashItemNotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(purged)
    }

    /// How long an item waits in the trash before it is purged, in seconds.
    pub fn trash_retention_secs(&self) -> i64 {
        self.trash_retention_secs
    }

    /// The caller's live folder `id`.
    pub async fn folder(&self, user: &User, id: &str) -> Result<Option<Folder>> {
        self.repo.folder(user.id, id).await
    }

    /// Makes a folder in `parent` (the empty string: the root).
    pub async fn create_folder(&self, user: &User, parent: &str, name: &FileName, rule: NameRule) -> Result<Folder> {
        if rule == NameRule::Replace {
            return Err(replace_is_for_files());
        }
        self.repo.create_folder(user.id, parent, name.as_str(), rule, &self.bounds, crate::now()).await
    }

    /// The caller's folder at `path`, made (with every folder above it)
    /// where missing, like `mkdir -p` and `pan put`; `None` for the root. A
    /// file where a folder should be is [`Error::NameTaken`]; a folder made
    /// meanwhile by another request is taken as it is.
    pub async fn ensure_folder_path(&self, user: &User, path: &str) -> Result<Option<FolderId>> {
        let mut parent = String::new();
        for name in split_path(path)? {
            let existing = |items: Vec<TreeItem>| {
                let mut file = false;
                for item in items {
                    match item {
                        TreeItem::Folder(d) => return Ok(Some(d.id)),
                        TreeItem::File(_) => file = true,
                    }
                }
                if file { Err(Error::NameTaken { name: name.as_str().to_owned() }) } else { Ok(None) }
            };
            let here = self.repo.children_named(user.id, &parent, name.as_str()).await?;
            parent = match existing(here)? {
                Some(id) => id,
                None => match self.create_folder(user, &parent, &name, NameRule::Refuse).await {
                    Ok(d) => d.id,
                    Err(Error::NameTaken { .. }) => {
                        existing(self.repo.children_named(user.id, &parent, name.as_str()).await?)?
                            .ok_or_else(|| Error::NameTaken { name: name.as_str().to_owned() })?
                    }
                    Err(e) => return Err(e),
                },
            };
        }
        if parent.is_empty() { Ok(None) } else { FolderId::parse(&parent).map(Some) }
    }

    /// One page of a folder's children.
    pub async fn list_children(
        &self,
        user: &User,
        parent: &str,
        page: &PageRequest,
    ) -> Result<(Vec<TreeItem>, Option<ListCursor>)> {
        if crate::runtime::crash::fault("tree.list_children") {
            return Err(Error::Unavailable { what: "database", source: "a fault armed by PAN_FAULT_AT".into() });
        }
        self.repo.list_children(user.id, parent, page).await
    }

    /// Moves and/or renames the caller's folder.
    pub async fn move_folder(
        &self,
        user: &User,
        id: &str,
        to: Option<&str>,
        name: Option<&FileName>,
        rule: NameRule,
    ) -> Result<Folder> {
        if rule == NameRule::Replace {
            return Err(replace_is_for_files());
        }
        let dest = Destination { to, name: name.map(|n| n.as_str()), rule, if_match: None, author: &user.author };
        self.repo.move_folder(user.id, id, &dest, self.bounds.max_depth, crate::now()).await
    }

    /// Moves and/or renames the caller's file entry. With
    /// [`NameRule::Replace`] onto another file, that file gets this one's
    /// content (its own kept as a version) and its versions, and this entry
    /// is gone (`if_match`: the content the replaced file must have).
    pub async fn move_file(
        &self,
        user: &User,
        id: &str,
        to: Option<&str>,
        name: Option<&FileName>,
        (rule, if_match): (NameRule, Option<&Sha256Hex>),
    ) -> Result<UserFile> {
        let if_match = if_match.map(|h| h.as_str());
        let dest = Destination { to, name: name.map(|n| n.as_str()), rule, if_match, author: &user.author };
        let placed = self.repo.move_file(user.id, id, &dest, crate::now()).await?;
        self.delete_contents(&placed.orphans).await;
        Ok(placed.entry)
    }

    /// Copies the caller's file entry (a new entry for the same content; no
    /// bytes are copied), by the same rules as a move; the versions stay
    /// with the original.
    pub async fn copy_file(
        &self,
        user: &User,
        id: &str,
        to: Option<&str>,
        name: Option<&FileName>,
        (rule, if_match): (NameRule, Option<&Sha256Hex>),
    ) -> Result<UserFile> {
        let if_match = if_match.map(|h| h.as_str());
        let dest = Destination { to, name: name.map(|n| n.as_str()), rule, if_match, author: &user.author };
        let placed = self.repo.copy_file(user.id, id, &dest, crate::now()).await?;
        self.delete_contents(&placed.orphans).await;
        Ok(placed.entry)
    }

    /// The caller's folders and files whose names match `query`, a page at a time.
    pub async fn search(
        &self,
        user: &User,
        query: &str,
        limit: i64,
        after: Option<&(String, String)>,
    ) -> Result<(Vec<TreeItem>, Option<(String, String)>)> {
        self.repo.search(user.id, query, limit, after).await
    }

    /// One page of the caller's trash, newest first.
    pub async fn list_trash(
        &self,
        user: &User,
        limit: i64,
        after: Option<&(i64, String)>,
    ) -> Result<(Vec<TrashItem>, Option<(i64, String)>)> {
        self.repo.list_trash(user.id, limit, after).await
    }

    /// Brings a trashed item back where it was (or to the root).
    pub async fn restore(&self, user: &User, id: &str, rule: NameRule) -> Result<TreeItem> {
        if rule == NameRule::Replace {
            return Err(replace_is_for_files());
        }
        self.repo.restore(user.id, id, rule, self.bounds.max_depth, crate::now()).await
    }

    /// The WebDAV dead properties of the caller's entries `ids` (`""`: the root).
    pub async fn dead_props(&self, user: &User, ids: &[String]) -> Result<Vec<DeadProp>> {
        self.repo.dead_props(user.id, ids).await
    }

    /// Applies a PROPPATCH's steps to an entry's dead properties, all or
    /// nothing, within [`MAX_DEAD_PROPS`] and [`MAX_DEAD_PROP_BYTES`].
    pub async fn patch_props(&self, user: &User, entry_id: &str, ops: &[PropOp]) -> Result<()> {
        self.repo.patch_dead_props(user.id, entry_id, ops, (MAX_DEAD_PROPS, MAX_DEAD_PROP_BYTES)).await
    }

    /// Sets the modification time of the caller's live file `id`.
    pub async fn set_mtime(&self, user: &User, id: &str, mtime: crate::domain::Mtime) -> Result<()> {
        if self.repo.set_file_mtime(user.id, id, mtime.secs()).await? { Ok(()) } else { Err(Error::FileNotFound) }
    }

    /// Deletes the dead properties of entries purged for good.
    pub(crate) async fn drop_orphan_props(&self) -> Result<u64> {
        self.repo.drop_orphan_props().await
    }

    /// Deletes the bytes (and backup copies) of contents whose rows are gone
    /// (after the rows, so a reader never sees a row without bytes).
    pub(crate) async fn delete_contents(&self, orphans: &[StoredFile]) {
        for orphan in orphans {
            crate::stores::objects::delete_quietly(&*self.files, &Path::from(orphan.storage_key.as_str())).await;
            if let (Some(backup), Some(key)) = (&self.backup, &orphan.backup_key) {
                crate::stores::objects::delete_quietly(&**backup, &Path::from(key.as_str())).await;
            }
            tracing::info!(file_id = orphan.id, "last reference gone: bytes deleted");
        }
    }
}

/// `on_conflict=replace` where only files can be replaced.
fn replace_is_for_files() -> Error {
    Error::invalid(
        ErrorCode::InvalidRequest,
        "on_conflict=replace replaces a file's content: it is for uploads and file moves and copies, not folders or the trash",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_checked_names() {
        let names = |p: &str| split_path(p).map(|v| v.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>());
        assert_eq!(names("/").unwrap(), Vec::<String>::new());
        assert_eq!(names("/a/b c/d.txt").unwrap(), ["a", "b c", "d.txt"]);
        assert_eq!(names("//a//b/").unwrap(), ["a", "b"]);
        for bad in ["a/b", "", "/a/../b", "/./a", "/a\0b"] {
            assert!(split_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
