//! A byte store in a local directory. Writes are durable before they count:
//! object_store writes with fsync, and files assembled in the store's `.tmp`
//! move in by a rename followed by a sync of the directory. Reads go to the
//! files directly. An upload's chunks are written in place into one data
//! file per upload, which becomes the stored file by renames alone.

use std::fs::File;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::{
    Backing, ByteStore, ByteStream, ChunkSink, ChunkWriteError, LOCAL_PART_SIZE, ObjectInfo, SegmentAt, TempFile,
};
use crate::domain::error::{Error, Result, ResultExt};
use crate::domain::{Segment, UploadId};
use crate::stores::uploads::Staged;

/// The directory inside the store where files are assembled. Listings skip
/// it: nothing in it is an object.
const SCRATCH: &str = ".tmp";

/// A store in a local directory.
pub struct LocalStore {
    /// object_store over the directory (fsync on), for the writes it does well.
    backing: Backing,
    /// The directory, canonical.
    dir: PathBuf,
    /// `dir/.tmp`.
    scratch: PathBuf,
}

impl LocalStore {
    /// Opens the store in `dir`, creating the directory if missing.
    pub fn open(dir: &FsPath) -> std::result::Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| e.to_string())?
            .with_automatic_cleanup(true)
            // A chunk counts as uploaded only once its bytes are durable.
            .with_fsync(true);
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let scratch = dir.join(SCRATCH);
        Ok(LocalStore { backing: Backing { store: Arc::new(store), part_size: LOCAL_PART_SIZE }, dir, scratch })
    }

    fn path_of(&self, key: &Path) -> PathBuf {
        self.dir.join(key.as_ref())
    }
}

/// Bytes the file system holding `dir` has free for pan (statvfs(3):
/// blocks available to unprivileged users).
pub fn free_bytes(dir: &FsPath) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: statvfs(3) fills `st` from a NUL-terminated path; it is read
    // only when the call succeeded.
    if unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail * st.f_frsize)
}

/// Whether `key` lies in the scratch directory (not an object).
fn is_scratch(key: &Path) -> bool {
    key.parts().next().is_some_and(|p| p.as_ref() == SCRATCH)
}

#[async_trait]
impl ByteStore for LocalStore {
    fn part_size(&self) -> usize {
        self.backing.part_size
    }

    fn scratch_dir(&self) -> &FsPath {
        &self.scratch
    }

    /// A rename plus a directory fsync: `tmp` must lie on the store's
    /// filesystem (made by [`TempFile::new`] for this store, it does).
    async fn put_file(&self, tmp: &mut TempFile, key: &Path) -> Result<()> {
        let dest = self.path_of(key);
        let parent = dest.parent().map(FsPath::to_path_buf).unwrap_or_else(|| self.dir.clone());
        let (root, from) = (self.dir.clone(), tmp.path.clone());
        // Directory syncs wait for the disk: on the blocking pool, not on a
        // thread that serves requests.
        tokio::task::spawn_blocking(move || {
            create_dirs_durably(&root, &parent).context("creating the file's directory")?;
            std::fs::rename(&from, &dest).context("moving the file into the store")?;
            // The rename is durable only once the directory is synced.
            File::open(&parent).and_then(|d| d.sync_all()).context("syncing the store directory")
        })
        .await
        .context("storing a file")??;
        tmp.keep = true;
        Ok(())
    }

    /// Read directly with large buffers: object_store's local reads go
    /// 8 KiB at a time.
    async fn read(&self, key: &Path, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        match local_range(self.path_of(key), range).await {
            Ok(stream) => Ok(Some(stream)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::internal("reading a file", e)),
        }
    }

    async fn head(&self, key: &Path) -> Result<Option<ObjectInfo>> {
        self.backing.head(key).await
    }

    async fn delete(&self, key: &Path) -> Result<()> {
        self.backing.delete(key).await
    }

    /// The whole directory goes, including the `…#N` temporary files of
    /// writes cut off by a crash (object_store's listing does not show them).
    async fn delete_prefix(&self, prefix: &Path) -> Result<usize> {
        let dir = self.path_of(prefix);
        let n = match std::fs::read_dir(&dir) {
            Ok(entries) => entries.count(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::internal("listing a staging directory", e)),
        };
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::internal("removing a staging directory", e)),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectInfo>> {
        self.backing.list(prefix).try_filter(|o| futures::future::ready(!is_scratch(&o.key))).boxed()
    }

    async fn list_prefixes(&self) -> Result<Vec<Path>> {
        Ok(self.backing.list_prefixes().await?.into_iter().filter(|p| !is_scratch(p)).collect())
    }

    async fn free_space(&self) -> Result<Option<u64>> {
        let dir = self.dir.clone();
        let free = tokio::task::spawn_blocking(move || free_bytes(&dir))
            .await
            .map_err(|e| Error::internal("asking the file system for free space", e))?
            .map_err(|e| Error::internal("asking the file system for free space", e))?;
        Ok(Some(free))
    }

    /// A directory offers no URLs: downloads go through pan.
    async fn presign_get(&self, _key: &Path, _expires_in: Duration, _disposition: &str) -> Result<Option<url::Url>> {
        Ok(None)
    }

    /// In place: a segment's first send goes into the upload's one data
    /// file (sparse: writes at an offset past its end grow it) at the
    /// segment's offset, and is synced before this returns. A send
    /// replacing an earlier one becomes an object of its own (the merge
    /// copies it in).
    async fn open_segment(
        &self,
        at: SegmentAt<'_>,
        replacing: bool,
    ) -> std::result::Result<ChunkSink, ChunkWriteError> {
        if replacing {
            return self.backing.open_object(super::segment_key(at.id, at.segment.start)).await;
        }
        let key = data_key(at.id);
        // Never sized here: writes past its end grow it, and a size set
        // from one segment's end could cut off another's bytes, written
        // meanwhile by a concurrent send further on.
        let (root, path) = (self.dir.clone(), self.path_of(&key));
        let file = tokio::task::spawn_blocking(move || open_data_file(&root, &path, 0))
            .await
            .map_err(|e| ChunkWriteError::Io(std::io::Error::other(e)))?
            .map_err(ChunkWriteError::Io)?;
        // The segment counts only once its bytes are durable: finishing syncs them.
        Ok(ChunkSink::in_place(key, Arc::new(file), at.segment.start, self.backing.clone()))
    }

    /// A range of the data file; a segment object of its own whole.
    async fn read_segment(&self, key: &Path, segment: Segment) -> Result<Option<ByteStream>> {
        let range = is_data_file(key).then(|| segment.start..segment.end());
        self.read(key, range).await
    }

    /// Into the upload's data file at the segment's offset, from the other
    /// upload's data file (or a segment object of its own) by
    /// `copy_file_range`: the kernel copies (or shares the blocks, on a
    /// file system that can), nothing passes through pan; then synced.
    async fn copy_segment(&self, from: &Path, from_segment: Segment, at: SegmentAt<'_>) -> Result<Option<Path>> {
        let key = data_key(at.id);
        let (root, to_path, from_path) = (self.dir.clone(), self.path_of(&key), self.path_of(from));
        let from_start = if is_data_file(from) { from_segment.start } else { 0 };
        let (to_start, len) = (at.segment.start, at.segment.len.min(from_segment.len));
        tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            use std::io::{Read, Seek, SeekFrom};
            let mut source = File::open(&from_path)?;
            source.seek(SeekFrom::Start(from_start))?;
            let mut dest = open_data_file(&root, &to_path, 0)?;
            dest.seek(SeekFrom::Start(to_start))?;
            // std copies file to file with copy_file_range(2).
            let copied = std::io::copy(&mut source.take(len), &mut dest)?;
            dest.sync_data()?;
            Ok(copied)
        })
        .await
        .context("copying staged bytes")?
        .and_then(|copied| match copied == len {
            true => Ok(()),
            false => Err(std::io::Error::other(format!("{copied} of {len} staged bytes were there to copy"))),
        })
        .context("copying staged bytes")?;
        Ok(Some(key))
    }

    /// The data file itself (it was synced segment by segment), linked
    /// into `scratch` under a second name: no copy, and the staged file
    /// stays for a retried merge until the upload is done. Segments staged
    /// as objects of their own (sent again) are first copied into it. A
    /// copy of everything only when `scratch` is on another filesystem.
    async fn staged_file(
        &self,
        id: &UploadId,
        size: u64,
        staged: &[Staged],
        scratch: &FsPath,
        parallel: usize,
    ) -> Result<TempFile> {
        let data = data_key(id);
        let own = super::upload_prefix(id);
        if size > 0 && staged.iter().all(|s| Path::from(s.key.as_str()).prefix_matches(&own)) {
            super::check_covers(staged, size)?;
            let (root, path) = (self.dir.clone(), self.path_of(&data));
            // A body of unknown length may have grown the file past the
            // size (sparse, never written): cut to the size, and synced below.
            let (file, mut copied) = tokio::task::spawn_blocking(move || {
                let file = open_data_file(&root, &path, size)?;
                let longer = file.metadata()?.len() > size;
                if longer {
                    file.set_len(size)?;
                }
                Ok::<_, std::io::Error>((file, longer))
            })
            .await
            .context("opening the staged data file")?
            .map_err(|e| super::io_error("opening the staged data file", e))?;
            let file = Arc::new(file);
            for s in staged.iter().filter(|s| s.key.as_str() != data.as_ref()) {
                super::copy_segment_into(self, s, file.clone()).await?;
                copied = true;
            }
            if copied {
                tokio::task::spawn_blocking(move || file.sync_data())
                    .await
                    .context("syncing the staged data file")?
                    .map_err(|e| super::io_error("syncing the staged data file", e))?;
            }
            let mut tmp = TempFile::in_dir(scratch, id.as_str())?;
            match std::fs::hard_link(self.path_of(&data), &tmp.path) {
                Ok(()) => return Ok(tmp),
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => tmp.keep = true, // nothing there to delete
                Err(e) => return Err(Error::internal("linking the staged data file", e)),
            }
        }
        super::assemble_staged(self, id, size, staged, scratch, parallel).await
    }

    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64> {
        self.backing.copy_from(from, from_key, to_key).await
    }
}

/// The name of an upload's data file in its staging directory.
const DATA_FILE: &str = "data";

/// Key of upload `id`'s data file.
fn data_key(id: &UploadId) -> Path {
    Path::from(format!("{id}/{DATA_FILE}"))
}

/// Whether `key` is an upload's data file (not a chunk object of its own).
fn is_data_file(key: &Path) -> bool {
    key.filename() == Some(DATA_FILE)
}

/// Opens (creating it, durably, when missing) the data file at `path` and
/// makes it at least `size` bytes long (0: as it is): sparse, so nothing is
/// reserved on disk for bytes that never arrive.
fn open_data_file(root: &FsPath, path: &FsPath, size: u64) -> std::io::Result<File> {
    let parent = path.parent().unwrap_or(root);
    create_dirs_durably(root, parent)?;
    let existed = path.exists();
    let file = File::options().read(true).write(true).create(true).truncate(false).open(path)?;
    if !existed {
        // The new file's entry survives a power cut before any segment counts
        // (each segment's fdatasync then carries the size its bytes need).
        file.sync_all()?;
        File::open(parent)?.sync_all()?;
    }
    if file.metadata()?.len() < size {
        // Only where nothing writes meanwhile (the merge): growing it to a
        // size never cuts bytes off.
        file.set_len(size)?;
        file.sync_all()?;
    }
    Ok(file)
}

/// Creates `dir` and the directories below `root` leading to it, syncing
/// each parent that got a new entry: a new directory survives a power cut
/// only once its parent is synced, and a file renamed into it only then.
fn create_dirs_durably(root: &FsPath, dir: &FsPath) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && dir != root
    {
        create_dirs_durably(root, parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

/// Bytes read from a local file per call on the blocking pool. With the
/// next piece read ahead while one is sent, a download holds two.
const READ_PIECE: u64 = 512 << 10;

/// One read of a local file on the blocking pool: the file back, and the
/// next `want` bytes from where it is (fewer at its end).
type PieceRead = tokio::task::JoinHandle<std::io::Result<(File, Vec<u8>)>>;

fn read_piece(file: File, want: u64) -> PieceRead {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut piece = Vec::with_capacity(want as usize);
        (&file).take(want).read_to_end(&mut piece)?;
        Ok((file, piece))
    })
}

/// The bytes `range` (all when `None`) of a local file, [`READ_PIECE`] at a
/// time: each piece read on the blocking pool straight into the buffer that
/// is handed on (one copy, from the page cache; tokio's `File` would add a
/// second through its own buffer), the next one read while this one is
/// used.
async fn local_range(path: PathBuf, range: Option<Range<u64>>) -> std::io::Result<ByteStream> {
    use std::io::Seek;
    let start = range.as_ref().map_or(0, |r| r.start);
    let (file, len) = tokio::task::spawn_blocking(move || {
        let mut file = File::open(&path)?;
        let len = file.metadata()?.len();
        file.seek(std::io::SeekFrom::Start(start))?;
        Ok::<_, std::io::Error>((file, len))
    })
    .await
    .map_err(std::io::Error::other)??;
    let end = range.map_or(len, |r| r.end).max(start);
    let first = (end > start).then(|| read_piece(file, (end - start).min(READ_PIECE)));
    let pieces = futures::stream::try_unfold((first, start), move |(reading, at)| async move {
        let Some(reading) = reading else { return Ok::<_, std::io::Error>(None) };
        let (file, piece) = reading.await.map_err(std::io::Error::other)??;
        let at = at + piece.len() as u64;
        // A file shorter than the range ends the stream; callers check lengths.
        if piece.is_empty() {
            return Ok(None);
        }
        let next = (at < end).then(|| read_piece(file, (end - at).min(READ_PIECE)));
        Ok(Some((bytes::Bytes::from(piece), (next, at))))
    });
    Ok(pieces.map_err(|e| Error::internal("reading a file", e)).boxed())
}
