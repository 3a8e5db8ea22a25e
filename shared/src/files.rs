//! File use cases that touch both the metadata and the bytes: recording a
//! stored file, single-request uploads, reading with a range (falling back
//! to the backup), repairing, deleting.

pub mod audit;
pub mod links;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::domain::error::{Error, Result, ResultExt};
use crate::domain::hashing::ContentHasher;
use crate::domain::{EntryId, FileName, Placement, Sha1Hex, StoredFile, User, UserFile};
use crate::stores::Backends;
use crate::stores::meta::NewUserFile;
use crate::stores::objects::{self, ByteStore, TempFile};
use crate::stores::queue::BackupJob;

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
pub async fn commit(b: &Backends, entry: &NewUserFile<'_>, key: &Path) -> Result<UserFile> {
    let (file, stored) = b.repo.commit_merged(entry, key.as_ref()).await?;
    if stored.storage_key != key.as_ref() {
        let _ = b.files.delete(key).await;
    }
    if b.backup.is_some() && stored.backup_state != "done" {
        b.repo.set_backup(stored.id, "pending", None, crate::now()).await?;
        b.jobs.backups.push(BackupJob { file_id: stored.id }).await?;
    }
    Ok(file)
}

/// A single-request upload: streams `body` to a temporary file while hashing
/// it (SHA-1 and SHA-256), then takes the same dedup path as a merge: the
/// server holds every byte, so linking to stored content needs no proof.
/// At most `limit` bytes.
#[tracing::instrument(name = "single upload", skip(b, user, body), fields(user = user.id))]
pub async fn ingest(
    b: &Backends,
    user: &User,
    filename: &FileName,
    place: &Placement,
    mut body: impl AsyncRead + Unpin,
    limit: u64,
) -> Result<UserFile> {
    // The folder now; a taken name once the content is known (the same
    // file under the same name is no clash).
    let folder_only = Placement { folder: place.folder.clone(), rule: crate::domain::NameRule::Rename };
    crate::tree::check_placement(b, user, filename, &folder_only, None).await?;
    let mut tmp = TempFile::new(&*b.files, "single")?;
    let mut out = tokio::fs::File::create(&tmp.path).await.context("creating a temporary file")?;
    let mut hasher = ContentHasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = body.read(&mut buf).await.map_err(|e| Error::invalid("BODY_READ_FAILED", e.to_string()))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > limit {
            return Err(Error::TooLarge {
                code: "FILE_TOO_LARGE",
                message: format!("single-request uploads are limited to {limit} bytes; use /file/mupload"),
            });
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).await.context("writing a temporary file")?;
    }
    out.sync_all().await.context("syncing a temporary file")?;
    drop(out);
    let digests = hasher.finish();
    crate::tree::check_placement(b, user, filename, place, Some((&digests.sha256, size as i64))).await?;
    let entry = NewUserFile {
        user_id: user.id,
        filehash: &digests.sha1,
        sha256: &digests.sha256,
        filesize: size as i64,
        filename: filename.as_str(),
        folder: place.folder.as_ref().map(|f| f.as_str()),
        rule: place.rule,
        now: crate::now(),
    };
    if let Some(file) = b.repo.link_existing(&entry).await? {
        return Ok(file);
    }
    let key = objects::file_key(&crate::random_hex(16));
    b.files.put_file(&mut tmp, &key).await?;
    crate::runtime::crash::point("upload.after_store");
    match commit(b, &entry, &key).await {
        Err(e @ Error::NameTaken { .. }) => {
            // Refused in a transaction that rolled back: our copy is nobody's.
            delete_quietly(&*b.files, &key).await;
            Err(e)
        }
        other => other,
    }
}

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

/// The bytes of a stored file, whole or a range, as a stream.
pub async fn read(
    b: &Backends,
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
        match b.files.read(&key, Some(range.clone())).await? {
            Some(stream) => stream,
            None => {
                // The primary copy is gone: serve the backup, and restore the
                // primary from it in the background.
                let (Some(backup), Some(backup_key)) = (&b.backup, &stored.backup_key) else {
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
                spawn_repair(b, stored);
                got
            }
        }
    };
    Ok(stream.map_err(std::io::Error::other))
}

/// Deletes `key` from `store`, logging (not returning) a failure: for
/// clean-ups whose leftovers the scrub catches anyway.
pub async fn delete_quietly(store: &dyn ByteStore, key: &Path) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(key = %key, error = %e, "could not delete an object; the scrub will");
    }
}

/// Starts restoring a file's primary copy in the background, unless this
/// process is already restoring it (many downloads of a lost file start one).
fn spawn_repair(b: &Backends, stored: &StoredFile) {
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex};
    static IN_FLIGHT: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);
    let key = stored.storage_key.clone();
    if !IN_FLIGHT.lock().map(|mut set| set.insert(key.clone())).unwrap_or(false) {
        return;
    }
    let (b, stored) = (b.clone(), stored.clone());
    tokio::spawn(async move {
        if let Err(e) = repair(&b, &stored).await {
            tracing::error!(filehash = %stored.filehash, error = %e, "restoring the primary copy failed");
        }
        if let Ok(mut set) = IN_FLIGHT.lock() {
            set.remove(&key);
        }
    });
}

/// Restores a stored file's primary copy from its backup (the repair path).
/// Idempotent: the primary key is content-addressed, so a second repair
/// writes the same bytes.
#[tracing::instrument(name = "repair file", skip(b, stored), fields(filehash = %stored.filehash))]
pub async fn repair(b: &Backends, stored: &StoredFile) -> Result<()> {
    let (Some(backup), Some(backup_key)) = (&b.backup, &stored.backup_key) else {
        return Err(Error::internal("repairing a file", "no backup copy"));
    };
    let key = Path::from(stored.storage_key.as_str());
    let n = b.files.copy_from(&**backup, &Path::from(backup_key.as_str()), &key).await?;
    // A delete may have raced the repair (the download that started it read
    // the row first): bytes no row refers to are not written back.
    if !b.repo.is_referenced(&stored.storage_key).await? {
        delete_quietly(&*b.files, &key).await;
        tracing::info!("file deleted during its repair; the restored copy is removed");
        return Ok(());
    }
    tracing::info!(bytes = n, "primary copy restored from the backup");
    Ok(())
}

/// How a request names one of the caller's files.
#[derive(Debug, Clone)]
pub enum FileRef {
    /// By entry id: always exactly one entry.
    Entry(EntryId),
    /// By the content's SHA-1: accepted while it names exactly one entry.
    Sha1(Sha1Hex),
}

/// The caller's entry a [`FileRef`] names, and its stored content.
/// [`Error::FileNotFound`] when none; [`Error::AmbiguousFilehash`] (with the
/// entry ids) when a SHA-1 names several of the caller's entries.
pub async fn owned(b: &Backends, user: &User, file: &FileRef) -> Result<(UserFile, StoredFile)> {
    match file {
        FileRef::Entry(id) => b.repo.user_file(user.id, id.as_str()).await?.ok_or(Error::FileNotFound),
        FileRef::Sha1(hash) => {
            let mut entries = b.repo.entries_with_sha1(user.id, hash.as_str()).await?;
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
#[tracing::instrument(name = "delete file", skip(b, user), fields(user = user.id))]
pub async fn delete(b: &Backends, user: &User, file: &FileRef, permanent: bool) -> Result<()> {
    let (entry, _) = owned(b, user, file).await?;
    crate::tree::delete(b, user, &entry.id, permanent).await
}

/// Deletes the bytes (and backup copies) of contents whose rows are gone
/// (after the rows, so a reader never sees a row without bytes).
pub async fn delete_contents(b: &Backends, orphans: &[StoredFile]) {
    for orphan in orphans {
        delete_quietly(&*b.files, &Path::from(orphan.storage_key.as_str())).await;
        if let (Some(backup), Some(key)) = (&b.backup, &orphan.backup_key) {
            delete_quietly(&**backup, &Path::from(key.as_str())).await;
        }
        tracing::info!(file_id = orphan.id, "last reference gone: bytes deleted");
    }
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
