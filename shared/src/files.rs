//! File use cases that touch both the metadata and the bytes: recording a
//! stored file, single-request uploads, reading with a range (falling back
//! to the backup), repairing, deleting.

pub mod audit;
pub mod backup;
pub mod links;
pub mod metadata;
pub mod restore;
pub mod versions;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::accounts::Accounts;
use crate::domain::error::{Error, ErrorCode, Result, ResultExt};
use crate::domain::hashing::ContentHasher;
use crate::domain::{
    BackupState, EntryId, FileName, Mtime, NameRule, Placement, Sha1Hex, Sha256Hex, StoredFile, User, UserFile,
};
use crate::runtime::background::Background;
use crate::stores::meta::MetaRepo;
use crate::stores::meta::NewUserFile;
use crate::stores::objects::{self, Store, TempFile, delete_quietly};
use crate::stores::queue::{BackupJob, Queue};
use crate::tree::Tree;
use links::{Keys, Purpose};

/// An inclusive byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

/// Parses a `Range` header for a file of `size` bytes.
/// `Ok(None)`: serve the whole file (no header, another unit, several ranges,
/// or syntax the RFC says to ignore). `Err`: a single range outside the file.
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<ByteRange>> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return Ok(None) };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, z)) = spec.trim().split_once('-') else { return Ok(None) };
    let (a, z) = (a.trim(), z.trim());
    let unsatisfiable = Err(Error::RangeNotSatisfiable { size });
    let range = if a.is_empty() {
        let Ok(n) = z.parse::<u64>() else { return Ok(None) };
        if n == 0 || size == 0 {
            return unsatisfiable;
        }
        ByteRange { start: size.saturating_sub(n), end: size - 1 }
    } else {
        let Ok(start) = a.parse::<u64>() else { return Ok(None) };
        let end = if z.is_empty() {
            size.saturating_sub(1)
        } else {
            match z.parse::<u64>() {
                Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return unsatisfiable;
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

/// How a request names one of the caller's files.
#[derive(Debug, Clone)]
pub enum FileRef {
    /// By entry id: always exactly one entry.
    Entry(EntryId),
    /// By the content's SHA-1: accepted while it names exactly one entry.
    Sha1(Sha1Hex),
    /// By entry id and the content's SHA-1 together: the entry, when its
    /// content has that SHA-1 (else nothing is named).
    Both(EntryId, Sha1Hex),
    /// Neither was given: nothing is named.
    Nothing,
}

/// The file use cases of one installation.
#[derive(Clone)]
pub struct Files {
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// Finished files, and their backup copies when configured.
    pub(crate) files: Store,
    pub(crate) backup: Option<Store>,
    /// Where backup jobs go.
    pub(crate) backups: Queue<BackupJob>,
    pub(crate) tree: Tree,
    pub(crate) accounts: Accounts,
    /// Signs links the api serves itself.
    pub(crate) keys: Keys,
    /// Keys of primary copies this process is restoring from the backup
    /// (many downloads of a lost file start one repair).
    pub(crate) repairing: Arc<Mutex<HashSet<String>>>,
    /// Where repairs (and the zips shares stream) run in the background.
    pub(crate) background: Background,
    /// The largest single-request upload (`PAN_MAX_SINGLE_UPLOAD`).
    pub(crate) max_single_upload: u64,
    /// Default lifetime of a download URL (`PAN_URL_TTL`), in seconds.
    pub(crate) url_ttl: u64,
    /// Seconds an unpinned version is kept at most (`PAN_VERSION_MAX_AGE`,
    /// in days; 0: no age limit).
    pub(crate) version_max_age: i64,
    /// The metadata's own backups.
    pub(crate) metadata: metadata::MetadataBackups,
}

/// Where a download URL points.
#[derive(Debug, Clone)]
pub enum DownloadLink {
    /// A URL the file store presigned: it serves the bytes itself.
    Presigned(String),
    /// No store URL: the api's own `/file/signed`, with this signature.
    Signed {
        /// The id of the key that signed it.
        kid: String,
        /// HMAC-SHA256 over (entry and content, user, expiry), hex.
        sig: String,
        /// The content the link is bound to (its row id): the entry's
        /// content when the link was made.
        content: i64,
    },
}

impl Files {
    /// Records stored content for a user and drops our copy if another writer
    /// stored the same content first.
    ///
    /// When recording fails, the copy stays: the failure may have come after the
    /// commit (a lost connection), and deleting bytes a row points at would lose
    /// the file. An unreferenced copy costs only space.
    ///
    /// With a backup store configured, content not yet backed up is queued for
    /// a [`BackupJob`] (marked `pending` first, so the clean-up job retries it
    /// even if the push is lost).
    pub(crate) async fn commit(&self, entry: &NewUserFile<'_>, key: &Path) -> Result<UserFile> {
        let (placed, stored) = self.repo.commit_merged(entry, key.as_ref()).await?;
        if stored.storage_key != key.as_ref() {
            let _ = self.files.delete(key).await;
        }
        self.tree.delete_contents(&placed.orphans).await;
        let file = placed.entry;
        if self.backup.is_some() && stored.backup_state != BackupState::Done {
            self.repo.set_backup(stored.id, BackupState::Pending, None, crate::now()).await?;
            self.backups.push(BackupJob { file_id: stored.id }).await?;
        }
        Ok(file)
    }

    /// A single-request upload: streams `body` to a temporary file while hashing
    /// it (SHA-1 and SHA-256), then takes the same dedup path as a merge: the
    /// server holds every byte, so linking to stored content needs no proof.
    /// At most `limit` bytes; with `expect_sha1`, only bytes of that SHA-1
    /// (else `CHUNK_CHECKSUM_MISMATCH` and nothing changes).
    #[allow(clippy::too_many_arguments)]
    #[tracing::instrument(name = "single upload", skip(self, user, body), fields(user = user.id))]
    async fn ingest(
        &self,
        user: &User,
        filename: &FileName,
        place: &Placement,
        mtime: Option<Mtime>,
        mut body: impl AsyncRead + Unpin,
        (limit, expect_sha1): (u64, Option<&Sha1Hex>),
        hold: &str,
    ) -> Result<UserFile> {
        // The folder now; a taken name once the content is known (the same
        // file under the same name is no clash).
        let folder_only =
            Placement { folder: place.folder.clone(), rule: crate::domain::NameRule::Rename, if_match: None };
        self.tree.check_placement(user, filename, &folder_only, None).await?;
        let mut tmp = TempFile::new(&*self.files, "single")?;
        let mut out = tokio::fs::File::create(&tmp.path).await.context("creating a temporary file")?;
        let mut hasher = ContentHasher::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = body.read(&mut buf).await.map_err(|e| Error::invalid(ErrorCode::BodyReadFailed, e.to_string()))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > limit {
                return Err(Error::TooLarge {
                    code: ErrorCode::FileTooLarge,
                    message: format!("single-request uploads are limited to {limit} bytes; use /file/mupload"),
                });
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).await.context("writing a temporary file")?;
        }
        out.sync_data().await.context("syncing a temporary file")?;
        drop(out);
        let digests = hasher.finish();
        if expect_sha1.is_some_and(|want| !want.as_str().eq_ignore_ascii_case(&digests.sha1)) {
            return Err(Error::invalid(ErrorCode::ChunkChecksumMismatch, "the body's SHA-1 is not the one given"));
        }
        self.tree.check_placement(user, filename, place, Some((&digests.sha256, size as i64))).await?;
        let entry = NewUserFile {
            user_id: user.id,
            filehash: &digests.sha1,
            sha256: &digests.sha256,
            filesize: size as i64,
            filename: filename.as_str(),
            folder: place.folder.as_ref().map(|f| f.as_str()),
            rule: place.rule,
            now: crate::now(),
            mtime: mtime.map(Mtime::secs),
            hold: Some(hold),
            if_match: place.if_match.as_ref().map(|h| h.as_str()),
            author: &user.author,
        };
        if let Some(placed) = self.repo.link_existing(&entry).await? {
            self.tree.delete_contents(&placed.orphans).await;
            return Ok(placed.entry);
        }
        let key = objects::file_key(&crate::random_hex(16));
        self.files.put_file(&mut tmp, &key).await?;
        crate::runtime::crash::point("upload.after_store");
        match self.commit(&entry, &key).await {
            Err(e @ (Error::NameTaken { .. } | Error::ContentChanged | Error::AmbiguousPath { .. })) => {
                // Refused in a transaction that rolled back: our copy is nobody's.
                delete_quietly(&*self.files, &key).await;
                Err(e)
            }
            other => other,
        }
    }

    /// The bytes of a stored file, whole or a range, as a stream.
    pub async fn read(
        &self,
        stored: &StoredFile,
        range: Option<ByteRange>,
    ) -> Result<impl Stream<Item = std::io::Result<Bytes>> + Send + 'static> {
        let size = stored.filesize as u64;
        let key = Path::from(stored.storage_key.as_str());
        let stream = if size == 0 {
            futures::stream::empty().boxed()
        } else {
            let range = range.unwrap_or(ByteRange { start: 0, end: size - 1 });
            let range = range.start..range.end + 1;
            match self.files.read(&key, Some(range.clone())).await? {
                Some(stream) => stream,
                None => {
                    // The primary copy is gone: serve the backup, and restore the
                    // primary from it in the background.
                    let (Some(backup), Some(backup_key)) = (&self.backup, &stored.backup_key) else {
                        return Err(Error::internal(
                            "reading a file",
                            format!("bytes of {} are missing from the store and there is no backup", stored.filehash),
                        ));
                    };
                    tracing::warn!(filehash = %stored.filehash, "primary copy missing: serving the backup");
                    let got = backup.read(&Path::from(backup_key.as_str()), Some(range)).await?.ok_or_else(|| {
                        Error::internal(
                            "reading a file",
                            format!("bytes of {} are missing from the store and from the backup", stored.filehash),
                        )
                    })?;
                    self.spawn_repair(stored);
                    got
                }
            }
        };
        Ok(stream.map_err(std::io::Error::other))
    }

    /// Starts restoring a file's primary copy in the background, unless this
    /// process is already restoring it (many downloads of a lost file start one).
    fn spawn_repair(&self, stored: &StoredFile) {
        let key = stored.storage_key.clone();
        if !self.repairing.lock().map(|mut set| set.insert(key.clone())).unwrap_or(false) {
            return;
        }
        let (files, stored) = (self.clone(), stored.clone());
        self.background.spawn(async move {
            if let Err(e) = files.repair(&stored).await {
                tracing::error!(filehash = %stored.filehash, error = %e, "restoring the primary copy failed");
            }
            if let Ok(mut set) = files.repairing.lock() {
                set.remove(&key);
            }
        });
    }

    /// Restores a stored file's primary copy from its backup (the repair path).
    /// Idempotent: the primary key is content-addressed, so a second repair
    /// writes the same bytes.
    #[tracing::instrument(name = "repair file", skip(self, stored), fields(filehash = %stored.filehash))]
    pub async fn repair(&self, stored: &StoredFile) -> Result<()> {
        let (Some(backup), Some(backup_key)) = (&self.backup, &stored.backup_key) else {
            return Err(Error::internal("repairing a file", "no backup copy"));
        };
        let key = Path::from(stored.storage_key.as_str());
        let n = self.files.copy_from(&**backup, &Path::from(backup_key.as_str()), &key).await?;
        // A delete may have raced the repair (the download that started it read
        // the row first): bytes no row refers to are not written back.
        if !self.repo.is_referenced(&stored.storage_key).await? {
            delete_quietly(&*self.files, &key).await;
            tracing::info!("file deleted during its repair; the restored copy is removed");
            return Ok(());
        }
        tracing::info!(bytes = n, "primary copy restored from the backup");
        Ok(())
    }

    /// The caller's entry a [`FileRef`] names, and its stored content.
    /// [`Error::FileNotFound`] when none; [`Error::AmbiguousFilehash`] (with the
    /// entry ids) when a SHA-1 names several of the caller's entries.
    pub async fn owned(&self, user: &User, file: &FileRef) -> Result<(UserFile, StoredFile)> {
        match file {
            FileRef::Entry(id) => self.repo.user_file(user.id, id.as_str()).await?.ok_or(Error::FileNotFound),
            FileRef::Both(id, hash) => self
                .repo
                .user_file(user.id, id.as_str())
                .await?
                .filter(|(entry, _)| entry.filehash.eq_ignore_ascii_case(hash.as_str()))
                .ok_or(Error::FileNotFound),
            FileRef::Nothing => Err(Error::FileNotFound),
            FileRef::Sha1(hash) => {
                let mut entries = self.repo.entries_with_sha1(user.id, hash.as_str()).await?;
                match entries.len() {
                    0 => Err(Error::FileNotFound),
                    1 => Ok(entries.remove(0)),
                    _ => Err(Error::AmbiguousFilehash { ids: entries.into_iter().map(|(e, _)| e.id).collect() }),
                }
            }
        }
    }

    /// Moves the user's entry to their trash; with `permanent`, deletes it for
    /// good at once (the bytes too, once nobody references them).
    #[tracing::instrument(name = "delete file", skip(self, user), fields(user = user.id))]
    pub async fn delete(&self, user: &User, file: &FileRef, permanent: bool) -> Result<()> {
        let (entry, _) = self.owned(user, file).await?;
        self.tree.delete(user, &entry.id, permanent).await
    }

    /// A single-request upload of at most `PAN_MAX_SINGLE_UPLOAD` bytes,
    /// within the caller's quota: `declared_size` (the spooled part's size)
    /// is reserved before any byte moves, and the reservation becomes the
    /// entry (or is released on failure); the body is counted as it arrives.
    /// The entry's modification time is `mtime`, else the upload time; with
    /// `expect_sha1`, the body must have that SHA-1 (else nothing changes).
    pub async fn upload_single(
        &self,
        user: &User,
        filename: &FileName,
        place: &Placement,
        mtime: Option<Mtime>,
        (declared_size, expect_sha1): (u64, Option<&Sha1Hex>),
        body: impl AsyncRead + Unpin,
    ) -> Result<UserFile> {
        let hold = crate::random_hex(16);
        if place.rule == NameRule::Replace {
            self.reserve_replacing(user, &hold, declared_size, false).await?;
        } else {
            self.accounts.reserve(user, &hold, declared_size, false).await?;
        }
        let limit = (self.max_single_upload, expect_sha1);
        let stored = self.ingest(user, filename, place, mtime, body, limit, &hold).await;
        if stored.is_err() {
            self.accounts.release_quietly(&hold).await;
        }
        stored
    }

    /// The largest single-request upload, in bytes.
    pub fn max_single_upload(&self) -> u64 {
        self.max_single_upload
    }

    /// One page of the caller's files, newest first, and how many there are.
    pub async fn list(&self, user: &User, limit: i64, offset: i64) -> Result<(Vec<UserFile>, i64)> {
        self.repo.list_files(user.id, limit, offset).await
    }

    /// Renames the caller's file in place.
    pub async fn rename(
        &self,
        user: &User,
        file: &FileRef,
        name: &FileName,
        how: (NameRule, Option<&Sha256Hex>),
    ) -> Result<UserFile> {
        let (entry, _) = self.owned(user, file).await?;
        self.tree.move_file(user, &entry.id, None, Some(name), how).await
    }

    /// Copies the caller's file (see [`Tree::copy_file`]): room for one
    /// more file of its size is held while the copy is made.
    pub async fn copy(
        &self,
        user: &User,
        id: &str,
        to: Option<&str>,
        name: Option<&FileName>,
        how: (NameRule, Option<&Sha256Hex>),
    ) -> Result<UserFile> {
        let (entry, _) = self.repo.user_file(user.id, id).await?.ok_or(Error::FileNotFound)?;
        let hold = crate::random_hex(16);
        let size = entry.filesize.max(0) as u64;
        if how.0 == NameRule::Replace {
            self.reserve_replacing(user, &hold, size, false).await?;
        } else {
            self.accounts.reserve(user, &hold, size, false).await?;
        }
        let copied = self.tree.copy_file(user, id, to, name, how).await;
        self.accounts.release_quietly(&hold).await;
        copied
    }

    /// Copies the caller's folder `id` into folder `to` (`""`: the root)
    /// as `name`: a new folder, and (unless `shallow`) a copy of everything
    /// in it, each file as [`Files::copy`] makes one (no bytes copied, room
    /// held in the quota). A folder never goes into itself or one of its
    /// subfolders ([`Error::MoveIntoItself`]); a name taken at the top is
    /// [`Error::NameTaken`], unless `rule` is [`NameRule::Supersede`]: then
    /// the copy is built under a hidden temporary name beside it and takes
    /// the name in one transaction that puts what held it into the trash,
    /// so the destination is never missing nor half-copied. The copying is
    /// not one transaction: a failure part-way deletes what was copied so
    /// far (a crash leaves it, under its temporary name).
    pub async fn copy_folder(
        &self,
        user: &User,
        id: &str,
        to: &str,
        name: &FileName,
        (shallow, rule): (bool, NameRule),
    ) -> Result<crate::domain::Folder> {
        if self.tree.folder(user, id).await?.is_none() {
            return Err(Error::FolderNotFound);
        }
        // Up from the destination: the source must not be on the way.
        let mut up = to.to_owned();
        while !up.is_empty() {
            if up == id {
                return Err(Error::MoveIntoItself);
            }
            up = self.tree.folder(user, &up).await?.ok_or(Error::FolderNotFound)?.parent;
        }
        if rule != NameRule::Supersede {
            let top = self.tree.create_folder(user, to, name, NameRule::Refuse).await?;
            self.copy_children(user, id, &top.id, shallow).await?;
            return Ok(top);
        }
        let building = FileName::parse(&format!(".pan-copy-{}", crate::domain::FolderId::generate().as_str()))?;
        let top = self.tree.create_folder(user, to, &building, NameRule::Refuse).await?;
        let copied = match self.copy_children(user, id, &top.id, shallow).await {
            Ok(()) => self.tree.move_folder(user, &top.id, None, Some(name), NameRule::Supersede).await,
            Err(e) => Err(e),
        };
        if copied.is_err() {
            // The half-built copy goes for good (in the trash it would hold quota).
            let _ = self.tree.delete(user, &top.id, true).await;
        }
        copied
    }

    /// Copies what folder `id` holds into folder `into` (nothing when
    /// `shallow`), for [`Files::copy_folder`].
    async fn copy_children(&self, user: &User, id: &str, into: &str, shallow: bool) -> Result<()> {
        use crate::domain::{SortKey, TreeItem};
        use crate::tree::PageRequest;
        let mut pending = if shallow { Vec::new() } else { vec![(id.to_owned(), into.to_owned())] };
        while let Some((from, into)) = pending.pop() {
            let mut page = PageRequest { sort: SortKey::Name, desc: false, limit: 500, after: None };
            loop {
                let (items, next) = self.tree.list_children(user, &from, &page).await?;
                for item in items {
                    match item {
                        TreeItem::Folder(d) => {
                            let child = FileName::parse(&d.name)?;
                            let made = self.tree.create_folder(user, &into, &child, NameRule::Refuse).await?;
                            pending.push((d.id, made.id));
                        }
                        TreeItem::File(f) => {
                            self.copy(user, &f.id, Some(&into), None, (NameRule::Refuse, None)).await?;
                        }
                    }
                }
                match next {
                    Some(cursor) => page.after = Some(cursor),
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// A URL that downloads `entry` without a token for `ttl` seconds
    /// (`None`: `PAN_URL_TTL`), and when it stops working: presigned by the
    /// file store when it can (and `inline` is not asked for: previews stay
    /// on the api), else signed for the api's own route.
    pub async fn download_link(
        &self,
        user: &User,
        entry: &UserFile,
        stored: &StoredFile,
        ttl: Option<u64>,
        disposition: &str,
        inline: bool,
    ) -> Result<(DownloadLink, i64)> {
        let ttl = ttl.unwrap_or(self.url_ttl);
        let expires_at = crate::now() + ttl as i64;
        let key = Path::from(stored.storage_key.as_str());
        if !inline
            && let Some(url) = self.files.presign_get(&key, std::time::Duration::from_secs(ttl), disposition).await?
        {
            return Ok((DownloadLink::Presigned(url.to_string()), expires_at));
        }
        let key = self.keys.signing(Purpose::Url).await?;
        // The link names the entry and the content's row id, not its hash:
        // it says nothing about what the file is, stops working when the
        // entry is deleted, and serves the content it was made for (a
        // version, once the file's content is replaced) or nothing.
        let sig = links::sign(&key.secret, &bound_subject(&entry.id, stored.id), user.id, expires_at);
        Ok((DownloadLink::Signed { kid: key.kid, sig, content: stored.id }, expires_at))
    }

    /// The entry and content a signed link names, once its signature and
    /// expiry check out (`subject` is what was signed: the entry id and the
    /// `content` it is bound to; the entry id alone or the SHA-1 in links
    /// made before links were bound; `kid` names the key, none: the key of
    /// links made before keys had ids). A bound link serves its content:
    /// the entry's, or one of its versions once it was replaced; else the
    /// file is not found.
    pub async fn open_signed(
        &self,
        file: &FileRef,
        user_id: i64,
        expires: i64,
        (kid, content): (Option<&str>, Option<i64>),
        sig: &str,
    ) -> Result<std::result::Result<(UserFile, StoredFile), links::LinkError>> {
        let subject = match (file, content) {
            (FileRef::Entry(id), Some(c)) => bound_subject(id.as_str(), c),
            (FileRef::Entry(id), None) => id.as_str().to_owned(),
            (FileRef::Sha1(hash), None) => hash.as_str().to_owned(),
            // Links are signed for one of them, never both or neither.
            _ => return Ok(Err(links::LinkError::Invalid)),
        };
        let Some(key) = self.keys.verifying(Purpose::Url, kid.unwrap_or(links::LEGACY_KID)).await? else {
            return Ok(Err(links::LinkError::Invalid));
        };
        if let Err(e) = links::verify(&key, &subject, user_id, expires, sig, crate::now()) {
            return Ok(Err(e));
        }
        let owner = self.repo.user_by_id(user_id).await?.ok_or(Error::FileNotFound)?;
        let (entry, stored) = self.owned(&owner, file).await?;
        match content {
            Some(c) if c != stored.id => {
                let versions = self.repo.versions(owner.id, &entry.id).await?;
                let v = versions.into_iter().find(|v| v.content.id == c).ok_or(Error::FileNotFound)?;
                Ok(Ok((UserFile { filesize: v.filesize, mtime: v.mtime, ..entry }, v.content)))
            }
            _ => Ok(Ok((entry, stored))),
        }
    }
}

/// What a bound link signs: the entry and the content's row id.
fn bound_subject(entry: &str, content: i64) -> String {
    format!("{entry}#{content}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(h: &str, size: u64) -> Result<Option<ByteRange>> {
        parse_range(Some(h), size)
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(r("bytes=0-0", 10).unwrap(), Some(ByteRange { start: 0, end: 0 }));
        assert_eq!(r("bytes=9-", 10).unwrap(), Some(ByteRange { start: 9, end: 9 }));
        assert_eq!(r("bytes=-3", 10).unwrap(), Some(ByteRange { start: 7, end: 9 }));
        assert_eq!(r("bytes=-100", 10).unwrap(), Some(ByteRange { start: 0, end: 9 }));
        assert_eq!(r("bytes=2-100", 10).unwrap(), Some(ByteRange { start: 2, end: 9 }));
        assert!(r("bytes=10-", 10).is_err());
        assert!(r("bytes=0-0", 0).is_err());
        assert_eq!(r("bytes=0-1,3-4", 10).unwrap(), None);
        assert_eq!(r("items=0-1", 10).unwrap(), None);
        assert_eq!(r("bytes=5-2", 10).unwrap(), None);
        assert_eq!(parse_range(None, 10).unwrap(), None);
    }
}
