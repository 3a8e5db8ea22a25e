//! A byte store in a local directory. Writes are durable before they count:
//! object_store writes with fsync, and files assembled in the store's `.tmp`
//! move in by a rename followed by a sync of the directory. Reads go to the
//! files directly, and the merge reads chunks where they lie.

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
use tokio::io::AsyncReadExt;

use super::{
    Backing, ByteStore, ByteStream, ChunkBody, ChunkWriteError, LOCAL_PART_SIZE, LocalChunks, ObjectInfo, TempFile,
};
use crate::error::{Error, Result, ResultExt};

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
        create_dirs_durably(&self.dir, &parent).context("creating the file's directory")?;
        std::fs::rename(&tmp.path, &dest).context("moving the file into the store")?;
        tmp.keep = true;
        // The rename is durable only once the directory is synced.
        File::open(&parent).and_then(|d| d.sync_all()).context("syncing the store directory")?;
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

    /// A directory offers no URLs: downloads go through pan.
    async fn presign_get(&self, _key: &Path, _expires_in: Duration, _disposition: &str) -> Result<Option<url::Url>> {
        Ok(None)
    }

    async fn write_chunk(
        &self,
        key: &Path,
        index: u64,
        expected: u64,
        checksum: Option<[u8; 20]>,
        min_rate: u64,
        body: &mut ChunkBody<'_>,
    ) -> std::result::Result<(), ChunkWriteError> {
        self.backing.write_chunk(key, index, expected, checksum, min_rate, body).await
    }

    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64> {
        self.backing.copy_from(from, from_key, to_key).await
    }

    /// The chunk files themselves, read in place.
    async fn local_chunks(&self, keys: Vec<String>, _stem: &str) -> Result<LocalChunks> {
        Ok(LocalChunks { paths: keys.iter().map(|k| self.dir.join(k)).collect(), _fetched: Vec::new() })
    }
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

/// The bytes `range` (all when `None`) of a local file, read 256 KiB at a time.
async fn local_range(path: PathBuf, range: Option<Range<u64>>) -> std::io::Result<ByteStream> {
    use tokio::io::AsyncSeekExt;
    let mut f = tokio::fs::File::open(&path).await?;
    let stream = match range {
        Some(range) => {
            f.seek(std::io::SeekFrom::Start(range.start)).await?;
            let reader = f.take(range.end.saturating_sub(range.start));
            tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10).boxed()
        }
        None => tokio_util::io::ReaderStream::with_capacity(f, 256 << 10).boxed(),
    };
    Ok(stream.map_err(|e| Error::internal("reading a file", e)).boxed())
}
