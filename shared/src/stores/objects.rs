//! The byte stores: the staging store (chunks waiting for their merge), the
//! file store (finished files) and the optional backup store, each an
//! `Arc<dyn ByteStore>`. Callers never learn which kind they hold; what a
//! kind does differently lives in its implementation:
//! - [`local::LocalStore`]: a directory (`file:///abs/dir`). Files assembled
//!   inside it are moved in by a durable rename, read directly in large
//!   pieces, and handed to the merge in place.
//! - [`s3::S3Store`]: an S3-compatible bucket (`s3://bucket/prefix`: AWS,
//!   Garage, Aliyun OSS). Files are uploaded in parts, downloads can be
//!   presigned, and the merge gets its chunks fetched to local files.
//!
//! Both sit on object_store; its errors become [`Error`] here (a store that
//! is away is 503 `BACKEND_UNAVAILABLE`), and a missing object is `None` or
//! success where the caller expects it, never an error to match on.
//!
//! Keys are made by the server only, from upload ids, chunk indexes, random
//! nonces and content hashes; a client's file name never reaches a key.

pub mod local;
pub mod s3;

use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::domain::error::{Error, ErrorCode, Result, ResultExt};
use crate::domain::{Segment, UploadId};
use crate::stores::uploads::Staged;

pub use local::LocalStore;
pub use s3::S3Store;

/// A byte store as the rest of pan holds it.
pub type Store = Arc<dyn ByteStore>;

/// The bytes of an object (or of a range of it), as they arrive.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// One segment of an upload: whose, and which bytes.
#[derive(Debug, Clone, Copy)]
pub struct SegmentAt<'a> {
    /// The upload.
    pub id: &'a UploadId,
    /// The bytes.
    pub segment: Segment,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: Path,
    /// Its length in bytes.
    pub size: u64,
    /// When it was last written, in seconds since the Unix epoch.
    pub last_modified: i64,
}

/// Where pan keeps bytes. Every method works on keys the server made; none
/// of them tells the caller what kind of store it is talking to.
#[async_trait]
pub trait ByteStore: Send + Sync {
    /// How much of a streamed chunk one write holds in memory (a chunk in
    /// flight holds at most two of these): 1 MiB on a local store, S3's
    /// 5 MiB minimum part otherwise.
    fn part_size(&self) -> usize;

    /// The directory where files bound for this store are assembled (see
    /// [`TempFile::new`]): inside a local store, so that moving a file in
    /// is a rename; the data directory's `tmp` otherwise.
    fn scratch_dir(&self) -> &FsPath;

    /// Moves a complete, synced temporary file to `key`: durably (the
    /// object survives a power cut once this returns). Marks `tmp` kept
    /// when the file itself became the object.
    async fn put_file(&self, tmp: &mut TempFile, key: &Path) -> Result<()>;

    /// The bytes of `key`, all of them or `range` (which must lie within
    /// the object); `None` when there is no such object.
    async fn read(&self, key: &Path, range: Option<Range<u64>>) -> Result<Option<ByteStream>>;

    /// The size and age of `key`; `None` when there is no such object.
    async fn head(&self, key: &Path) -> Result<Option<ObjectInfo>>;

    /// Deletes `key`; an object already gone is success.
    async fn delete(&self, key: &Path) -> Result<()>;

    /// Deletes everything under `prefix` (on a local store also the
    /// temporary files of writes cut off by a crash); returns how many
    /// objects went.
    async fn delete_prefix(&self, prefix: &Path) -> Result<usize>;

    /// Every object under `prefix` (all when `None`), with its size and age.
    /// Temporary files (a local store's `.tmp`) are not objects.
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectInfo>>;

    /// The first-level prefixes ("directories") of the store, such as the
    /// upload ids of a staging store.
    async fn list_prefixes(&self) -> Result<Vec<Path>>;

    /// Bytes that can still be written, when the store can tell (a local
    /// directory: its file system's space available to pan); `None` for an
    /// object store, which does not say.
    async fn free_space(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// A URL anyone can GET `key` with until `expires_in` has passed,
    /// answered with `Content-Disposition: disposition`; `None` when this
    /// store offers no such URLs (pan then serves the bytes itself).
    async fn presign_get(&self, key: &Path, expires_in: Duration, disposition: &str) -> Result<Option<url::Url>>;

    /// Opens where segment `at` is to land: on a local store the upload's
    /// one data file, written in place at the segment's offset; elsewhere,
    /// or when `replacing` an earlier send (whose bytes must stay whole until
    /// this one has fully arrived), a fresh object of its own. The sink
    /// holds at most a few parts in memory; the caller feeds it, then
    /// [`ChunkSink::finish`]es it (durable; the key it is staged under) or
    /// [`ChunkSink::abort`]s it (no new object appears, though an in-place
    /// write may leave bytes where no received segment lies).
    async fn open_segment(&self, at: SegmentAt<'_>, replacing: bool)
    -> std::result::Result<ChunkSink, ChunkWriteError>;

    /// The bytes of `segment` of an upload, staged under `key` by a
    /// [`ChunkSink`]; `None` when gone.
    async fn read_segment(&self, key: &Path, segment: Segment) -> Result<Option<ByteStream>>;

    /// Stages segment `at` of an upload as a copy of `from`, bytes staged
    /// here for another upload (its segment `from_segment`, of the same
    /// length), without them passing through pan: a server-side copy of
    /// the object, or a kernel copy into the upload's data file. Durable
    /// once it returns; the key it is staged under. `Ok(None)` when this
    /// store cannot: the caller sends the bytes through pan.
    async fn copy_segment(&self, _from: &Path, _from_segment: Segment, _at: SegmentAt<'_>) -> Result<Option<Path>> {
        Ok(None)
    }

    /// The whole file of upload `id` (`size` bytes), from its staged
    /// segments (in order, covering it), as a synced temporary file in
    /// `scratch` (the destination store's [`ByteStore::scratch_dir`]): a
    /// local store's data file is moved there whole (no copy, when it lies
    /// on the same filesystem); otherwise the segments are written into a
    /// new file at their offsets, `parallel` at a time.
    async fn staged_file(
        &self,
        id: &UploadId,
        size: u64,
        staged: &[Staged],
        scratch: &FsPath,
        parallel: usize,
    ) -> Result<TempFile> {
        assemble_staged(self, id, size, staged, scratch, parallel).await
    }

    /// Copies `from_key` of `from` to `to_key` here with bounded memory
    /// (8 MiB parts, at most 4 in flight); returns the bytes copied.
    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64>;

    /// Where the staged chunk `key` lies for a store that can copy it on
    /// the server's side ([`ByteStore::compose`]); `None` when its bytes
    /// can only be read through pan.
    fn copy_source(&self, _key: &Path) -> Option<CopySource> {
        None
    }

    /// Makes `key` the concatenation of `sources` (segments of the lengths
    /// `lens`, in order) without their bytes passing through pan, durably,
    /// `parallel` copies at a time. `Ok(false)` when this store cannot (the
    /// sources lie elsewhere, a segment but the last is too small to be a
    /// part, there are too many, or the service does no part copies):
    /// nothing is written then.
    async fn compose(&self, _sources: &[CopySource], _lens: &[u64], _key: &Path, _parallel: usize) -> Result<bool> {
        Ok(false)
    }

    /// Aborts the multipart uploads under this store's keys begun more than
    /// `older_than` ago and never finished (a merge, a chunk or a copy cut
    /// off by a killed process): their parts are bytes the store keeps but
    /// nothing lists. Returns how many went; a store without such uploads
    /// has none.
    async fn abort_stale_uploads(&self, _older_than: Duration) -> Result<usize> {
        Ok(0)
    }
}

/// A staged object as a store of the same service can name it in a
/// server-side copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The service it lies in: only a store of the same one can copy it.
    pub service: String,
    /// Its bucket.
    pub bucket: String,
    /// Its whole key in the bucket (any prefix included).
    pub key: String,
}

/// Stores the staged segments of an upload (in order, covering it) from
/// `staging` in `files` as `key` by a server-side copy, when `files` can
/// make it from where `staging` keeps them; `Ok(false)` when it cannot (the
/// caller then assembles the file and puts it).
pub async fn compose_staged(
    staging: &dyn ByteStore,
    files: &dyn ByteStore,
    staged: &[Staged],
    key: &Path,
    parallel: usize,
) -> Result<bool> {
    let sources: Option<Vec<CopySource>> =
        staged.iter().map(|s| staging.copy_source(&Path::from(s.key.as_str()))).collect();
    let lens: Vec<u64> = staged.iter().map(|s| s.segment.len).collect();
    match sources {
        Some(sources) if !sources.is_empty() => files.compose(&sources, &lens, key, parallel).await,
        _ => Ok(false),
    }
}

/// A temporary file that is deleted when dropped, unless kept.
pub struct TempFile {
    /// Where it is.
    pub path: PathBuf,
    /// Set once the file has been moved into place.
    pub keep: bool,
}

impl TempFile {
    /// A fresh name in `store`'s scratch directory (created if missing):
    /// where a file bound for that store is assembled.
    pub fn new(store: &dyn ByteStore, stem: &str) -> Result<Self> {
        Self::in_dir(store.scratch_dir(), stem)
    }

    /// A fresh name in `dir` (created if missing).
    pub(crate) fn in_dir(dir: &FsPath, stem: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).context("creating the temporary directory")?;
        Ok(TempFile { path: dir.join(format!("{stem}-{}.part", crate::random_hex(6))), keep: false })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Pieces of a streamed write to a local store: a stalled client holds at
/// most this much of its chunk in memory.
pub const LOCAL_PART_SIZE: usize = 1 << 20;
/// S3 (and OSS) refuse parts smaller than 5 MiB, the last one excepted.
pub const S3_PART_SIZE: usize = 5 << 20;

/// Opens the store a URL names; `setting` names the setting for errors.
/// `file:///abs/dir` is a local directory (created if missing);
/// `s3://bucket/prefix` an S3-compatible bucket, configured by the standard
/// `AWS_*` variables (endpoint, region, keys, path or virtual-hosted style),
/// whose files are assembled in `scratch_dir`.
pub fn open(url: &str, setting: &str, scratch_dir: &FsPath) -> Result<Store> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::BadSetting { message: format!("{setting}: {url:?} is not a URL: {e}") })?;
    match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| Error::BadSetting {
                message: format!("{setting}: {url:?} names no bucket (s3://bucket/prefix)"),
            })?;
            // Fail within seconds when the store is down (the job queue
            // retries later) instead of object_store's default of minutes.
            let retry = object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..Default::default()
            };
            use object_store::ClientConfigKey as Client;
            use object_store::aws::AmazonS3ConfigKey as Key;
            let builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry);
            // Stores opened with the same endpoint (or AWS region) are one
            // service: a merge copies between them on the server's side.
            let endpoint =
                builder.get_config_value(&Key::S3Endpoint).or_else(|| builder.get_config_value(&Key::Endpoint));
            let service = match endpoint {
                Some(endpoint) => endpoint,
                None => format!("aws:{}", builder.get_config_value(&Key::Region).unwrap_or_default()),
            };
            // Part copies go out on a client of pan's own: only where it
            // needs nothing object_store's client was configured with (a
            // proxy, other certificates), and nothing the copy would have to
            // repeat per part (SSE-C keys, part checksums).
            let set = |k: Client| builder.get_config_value(&Key::Client(k)).is_some_and(|v| v != "false");
            let client_settings = [
                Client::ProxyUrl,
                Client::ProxyCaCertificate,
                Client::AllowInvalidCertificates,
                Client::NoSystemCertificates,
            ];
            let sse_c = std::env::var("AWS_SSE_CUSTOMER_KEY_BASE64").is_ok()
                || std::env::var("AWS_SERVER_SIDE_ENCRYPTION").is_ok_and(|v| v.eq_ignore_ascii_case("sse-c"));
            let own_requests = !client_settings.into_iter().any(set);
            let copies_parts = own_requests && !sse_c && builder.get_config_value(&Key::Checksum).is_none();
            let s3 = builder.build().map_err(|e| Error::BadSetting { message: format!("{setting}: {e}") })?;
            let location = s3::Location {
                service: copies_parts.then_some(service),
                own_requests,
                bucket: bucket.to_owned(),
                prefix: parsed.path().to_owned(),
            };
            Ok(Arc::new(S3Store::new(s3, location, scratch_dir.to_path_buf())))
        }
        "file" => {
            let dir = parsed
                .to_file_path()
                .map_err(|_| Error::BadSetting { message: format!("{setting}: {url:?} is not an absolute path") })?;
            let store = LocalStore::open(&dir).map_err(|e| Error::BadSetting { message: format!("{setting}: {e}") })?;
            Ok(Arc::new(store))
        }
        other => Err(Error::BadSetting {
            message: format!(
                "{setting}: unsupported store scheme {other:?}; use file:///absolute/path or s3://bucket/prefix"
            ),
        }),
    }
}

/// The codes of a body cut off because its client sent too slowly.
impl Error {
    /// Whether a request body was cut off because its client sent too
    /// slowly: reading the rest of such a body would only stall the server.
    pub fn is_slow_body(&self) -> bool {
        matches!(self, Error::Invalid { code: ErrorCode::BodyTimeout | ErrorCode::ChunkTooSlow, .. })
    }
}

/// Key of one staged copy of a segment (a chunk sent again, or any segment
/// on a store that keeps each in an object of its own). Every send gets its
/// own key (the nonce), so concurrent or repeated sends never write the
/// same object.
pub fn segment_key(id: &UploadId, start: u64) -> Path {
    Path::from(format!("{id}/{start:020}.{}", crate::random_hex(8)))
}

/// Whether `key` is an object holding only the segment at `start` of upload
/// `id` (made by [`segment_key`]), as opposed to a file shared by the
/// upload's segments: only such an object may go when its segment is sent
/// again.
pub fn is_own_segment_object(key: &str, id: &UploadId, start: u64) -> bool {
    key.strip_prefix(id.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .and_then(|name| name.split_once('.'))
        .is_some_and(|(at, _)| at.len() == 20 && at.parse::<u64>().ok() == Some(start))
}

/// Deletes the staged object `key` of the segment at `start` of upload `id`
/// unless it is a file the upload's segments share (whose other bytes are
/// still wanted); a failure is logged.
pub async fn delete_unless_shared(store: &dyn ByteStore, key: &str, id: &UploadId, start: u64) {
    if is_own_segment_object(key, id, start) {
        delete_quietly(store, &Path::from(key)).await;
    }
}

/// Prefix of every staged segment of an upload.
pub fn upload_prefix(id: &UploadId) -> Path {
    Path::from(id.as_str())
}

/// Key of a stored file: a server-made id (the upload's id for a merge, so a
/// retried merge overwrites its own earlier copy; random otherwise), spread
/// over 256 directories: few enough that after the first files every new
/// one lands in a directory that exists (a new directory costs a sync of
/// its parent), many enough to keep each small. (Files stored before keep
/// their `ab/cd/…` keys: a row names its key.) It holds no content hash, so a presigned URL or
/// a listing of the bucket says nothing about what the file is, and deleting
/// one copy of some content never touches another. (Files stored before
/// 0.1's content-identity change keep their `<sha1>-<size>-<generation>` keys.)
pub fn file_key(generation: &str) -> Path {
    Path::from(format!("{}/{generation}", &generation[..2]))
}

/// Why a streamed chunk was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChunkWriteError {
    /// More bytes than the chunk's length (or the most a request may send)
    /// arrived (reading stopped there). `what`: "chunk 3", "bytes 0-99".
    #[error("{what}: {expected} bytes at most; more arrived")]
    TooLong { what: String, expected: u64 },
    /// The body ended early.
    #[error("{what}: exactly {expected} bytes; got {got}")]
    TooShort { what: String, expected: u64, got: u64 },
    /// The declared SHA-1 does not match the bytes.
    #[error("{what}: the bytes do not match their Upload-Checksum (got sha1 {actual})")]
    ChecksumMismatch { what: String, actual: String },
    /// The client sent nothing for this many seconds.
    #[error("no bytes of the chunk arrived for {0} s")]
    Idle(u64),
    /// The body arrived slower than the floor (bytes per second) allows.
    #[error("the chunk arrived at {rate} bytes/s, below the {floor} bytes/s this server requires")]
    TooSlow { rate: u64, floor: u64 },
    /// Reading the request body failed (client went away).
    #[error("reading the chunk body failed: {0}")]
    Body(std::io::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] object_store::Error),
    /// Reading the bytes stored before failed.
    #[error(transparent)]
    Stored(Error),
    /// Writing to the local disk failed.
    #[error("writing the chunk: {0}")]
    Io(std::io::Error),
}

impl From<ChunkWriteError> for Error {
    fn from(e: ChunkWriteError) -> Self {
        match e {
            ChunkWriteError::TooLong { .. } => {
                Error::TooLarge { code: ErrorCode::ChunkTooLarge, message: e.to_string() }
            }
            ChunkWriteError::TooShort { .. } => Error::invalid(ErrorCode::ChunkSizeMismatch, e.to_string()),
            ChunkWriteError::ChecksumMismatch { .. } => Error::invalid(ErrorCode::ChunkChecksumMismatch, e.to_string()),
            ChunkWriteError::Body(_) => Error::invalid(ErrorCode::BodyReadFailed, e.to_string()),
            ChunkWriteError::Idle(_) => Error::invalid(ErrorCode::BodyTimeout, e.to_string()),
            ChunkWriteError::TooSlow { .. } => Error::invalid(ErrorCode::ChunkTooSlow, e.to_string()),
            ChunkWriteError::Store(s) => Error::from(s),
            ChunkWriteError::Stored(e) => e,
            ChunkWriteError::Io(e) => io_error("writing a chunk", e),
        }
    }
}

/// A local disk's error: a full disk is the server's trouble, retryable
/// later ([`Error::DiskFull`]); anything else a bug or a broken disk.
pub(crate) fn io_error(what: &'static str, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) { Error::DiskFull { what, source: e } } else { Error::internal(what, e) }
}

/// What both kinds share: the object_store handle (prefix applied) behind
/// them, and the size of the parts a streamed write hands it.
#[derive(Clone)]
struct Backing {
    /// The store, with its prefix applied.
    store: Arc<dyn ObjectStore>,
    /// See [`ByteStore::part_size`].
    part_size: usize,
}

impl Backing {
    /// A sink into a new object `key`: a multipart upload of `part_size`
    /// parts (one filling while at most one is written, so memory per chunk
    /// stays within two parts however slowly the client sends).
    async fn open_object(&self, key: Path) -> std::result::Result<ChunkSink, ChunkWriteError> {
        let upload = self.store.put_multipart(&key).await?;
        let sink = Sink::Object(WriteMultipart::new_with_chunk_size(upload, self.part_size));
        Ok(ChunkSink { key, written: 0, sink, backing: self.clone() })
    }

    /// The bytes of `key` (or `range` of them) through object_store.
    async fn read(&self, key: &Path, range: Option<Range<u64>>) -> Result<Option<ByteStream>> {
        let opts = GetOptions { range: range.map(GetRange::Bounded), ..Default::default() };
        match self.store.get_opts(key, opts).await {
            Ok(got) => Ok(Some(got.into_stream().map_err(Error::from).boxed())),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn head(&self, key: &Path) -> Result<Option<ObjectInfo>> {
        match self.store.head(key).await {
            Ok(meta) => Ok(Some(info(meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn delete(&self, key: &Path) -> Result<()> {
        match self.store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes every listed object under `prefix`; returns how many went.
    async fn delete_listed(&self, prefix: &Path) -> Result<usize> {
        let keys: Vec<Path> = self.store.list(Some(prefix)).map_ok(|m| m.location).try_collect().await?;
        for key in &keys {
            self.delete(key).await?;
        }
        Ok(keys.len())
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectInfo>> {
        self.store.list(prefix).map_ok(info).map_err(Error::from).boxed()
    }

    async fn list_prefixes(&self) -> Result<Vec<Path>> {
        Ok(self.store.list_with_delimiter(None).await?.common_prefixes)
    }

    /// [`ByteStore::copy_from`] for both kinds: a multipart upload, aborted
    /// when reading the source or writing a part fails.
    async fn copy_from(&self, from: &dyn ByteStore, from_key: &Path, to_key: &Path) -> Result<u64> {
        let mut stream = from
            .read(from_key, None)
            .await?
            .ok_or_else(|| Error::internal("copying an object", format!("{from_key} is not in the source store")))?;
        let upload = self.store.put_multipart(to_key).await?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, 8 << 20);
        let mut n = 0u64;
        while let Some(piece) = stream.next().await {
            let piece = match piece {
                Ok(p) => p,
                Err(e) => {
                    let _ = w.abort().await;
                    return Err(e);
                }
            };
            n += piece.len() as u64;
            if let Err(e) = w.wait_for_capacity(4).await {
                let _ = w.abort().await;
                return Err(e.into());
            }
            w.put(piece);
        }
        self.finish(w, to_key, n).await?;
        Ok(n)
    }

    /// Completes a multipart write of `written` bytes to `key`. An empty one
    /// becomes a plain empty PUT instead: S3 completes no upload without a
    /// part, and Garage refuses the empty part object_store sends for it.
    async fn finish(&self, writer: WriteMultipart, key: &Path, written: u64) -> object_store::Result<()> {
        if written == 0 {
            writer.abort().await?;
            self.store.put(key, object_store::PutPayload::new()).await?;
        } else {
            writer.finish().await?;
        }
        Ok(())
    }
}

/// Where a chunk's bytes go while they arrive.
enum Sink {
    /// The parts of a new object.
    Object(WriteMultipart),
    /// Positional writes into an upload's data file at `at`: the request's
    /// own buffers, gathered (see [`Gathered`]) until they hold
    /// [`LOCAL_PART_SIZE`], then written by one call on the blocking pool.
    InPlace { file: Arc<std::fs::File>, at: u64, pieces: Gathered },
}

/// Pieces smaller than this are copied together rather than kept apart.
const SMALL_PIECE: usize = 64 << 10;

/// A body's pieces, gathered without copying the large ones: a piece under
/// [`SMALL_PIECE`] is copied onto a run of small ones, so however a client
/// cuts its body (a chunked body of 1-byte chunks, say), the pieces held
/// stay few and hold no more memory than their bytes (a small slice would
/// keep its whole receive buffer alive).
#[derive(Default)]
pub struct Gathered {
    pieces: Vec<Bytes>,
    small: bytes::BytesMut,
    len: usize,
}

impl Gathered {
    /// Adds the next piece.
    pub fn push(&mut self, piece: Bytes) {
        self.len += piece.len();
        if piece.len() < SMALL_PIECE {
            self.small.extend_from_slice(&piece);
            if self.small.len() >= SMALL_PIECE {
                self.pieces.push(self.small.split().freeze());
            }
        } else {
            if !self.small.is_empty() {
                self.pieces.push(self.small.split().freeze());
            }
            self.pieces.push(piece);
        }
    }

    /// The bytes gathered.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is gathered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order; the gathering starts over.
    pub fn take(&mut self) -> Vec<Bytes> {
        if !self.small.is_empty() {
            self.pieces.push(self.small.split().freeze());
        }
        self.len = 0;
        std::mem::take(&mut self.pieces)
    }
}

impl Sink {
    async fn put(&mut self, piece: Bytes) -> std::result::Result<(), ChunkWriteError> {
        match self {
            Sink::Object(writer) => {
                writer.wait_for_capacity(1).await?;
                writer.put(piece);
            }
            Sink::InPlace { pieces, .. } => {
                pieces.push(piece);
                if pieces.len() >= LOCAL_PART_SIZE {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    /// Writes what an in-place sink has gathered.
    async fn flush(&mut self) -> std::result::Result<(), ChunkWriteError> {
        if let Sink::InPlace { file, at, pieces } = self
            && !pieces.is_empty()
        {
            let (file, offset) = (file.clone(), *at);
            *at += pieces.len() as u64;
            let pieces = pieces.take();
            tokio::task::spawn_blocking(move || {
                use std::os::unix::fs::FileExt;
                let mut offset = offset;
                for piece in &pieces {
                    file.write_all_at(piece, offset)?;
                    offset += piece.len() as u64;
                }
                Ok::<_, std::io::Error>(())
            })
            .await
            .map_err(|e| ChunkWriteError::Io(std::io::Error::other(e)))?
            .map_err(ChunkWriteError::Io)?;
        }
        Ok(())
    }
}

/// Where one chunk's bytes land while they arrive, opened by
/// [`ByteStore::open_chunk`]. Dropped unfinished, an object sink leaves a
/// multipart upload that the clean-up aborts after a day: call
/// [`ChunkSink::abort`].
pub struct ChunkSink {
    /// Where the chunk is staged once finished.
    key: Path,
    /// Bytes put so far.
    written: u64,
    sink: Sink,
    /// The store an object sink completes in.
    backing: Backing,
}

impl ChunkSink {
    /// A sink writing in place into an upload's data `file` from offset `at`.
    fn in_place(key: Path, file: Arc<std::fs::File>, at: u64, backing: Backing) -> Self {
        ChunkSink { key, written: 0, sink: Sink::InPlace { file, at, pieces: Gathered::default() }, backing }
    }

    /// Takes the next piece of the chunk.
    pub async fn put(&mut self, piece: Bytes) -> std::result::Result<(), ChunkWriteError> {
        self.written += piece.len() as u64;
        self.sink.put(piece).await
    }

    /// Makes what was put durable (the object completed; the data file's
    /// writes synced) and returns the key the chunk is staged under.
    pub async fn finish(mut self) -> std::result::Result<Path, ChunkWriteError> {
        self.sink.flush().await?;
        match self.sink {
            Sink::Object(writer) => self.backing.finish(writer, &self.key, self.written).await?,
            Sink::InPlace { file, .. } => tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(|e| ChunkWriteError::Io(std::io::Error::other(e)))?
                .map_err(ChunkWriteError::Io)?,
        }
        Ok(self.key)
    }

    /// Gives up: an object sink's upload is aborted, so nothing new appears.
    pub async fn abort(self) {
        if let Sink::Object(writer) = self.sink {
            let _ = writer.abort().await;
        }
    }
}

/// Writes `stream` into `file` from offset `at`; returns the bytes written.
pub(crate) async fn copy_into(file: Arc<std::fs::File>, at: u64, mut stream: ByteStream) -> Result<u64> {
    let mut sink = Sink::InPlace { file, at, pieces: Gathered::default() };
    let mut got = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        got += piece.len() as u64;
        sink.put(piece).await.map_err(Error::from)?;
    }
    sink.flush().await.map_err(Error::from)?;
    Ok(got)
}

/// Writes the segment `staged` (staged in `store`) into `file` at its
/// offset; it must hold exactly the segment's length.
pub(crate) async fn copy_segment_into<S: ByteStore + ?Sized>(
    store: &S,
    staged: &Staged,
    file: Arc<std::fs::File>,
) -> Result<()> {
    let Staged { segment, key } = staged;
    let what = || format!("bytes {}-{} ({key})", segment.start, segment.end().saturating_sub(1));
    let stream = store
        .read_segment(&Path::from(key.as_str()), *segment)
        .await?
        .ok_or_else(|| Error::internal("assembling a file", format!("{} are gone", what())))?;
    let got = copy_into(file, segment.start, stream).await?;
    if got != segment.len {
        return Err(Error::internal("assembling a file", format!("{} hold {got} bytes", what())));
    }
    Ok(())
}

/// Checks that `staged` (in order) covers bytes `0..size` exactly.
pub(crate) fn check_covers(staged: &[Staged], size: u64) -> Result<()> {
    let mut at = 0;
    for s in staged {
        if s.segment.start != at {
            return Err(Error::internal("assembling a file", format!("no bytes staged at offset {at}")));
        }
        at = s.segment.end();
    }
    if at != size {
        return Err(Error::internal("assembling a file", format!("{at} bytes staged, {size} expected")));
    }
    Ok(())
}

/// [`ByteStore::staged_file`] by copying: a new sparse file in `scratch`,
/// each segment read from `store` and written at its offset, `parallel`
/// segments at a time, then synced.
pub(crate) async fn assemble_staged<S: ByteStore + ?Sized>(
    store: &S,
    id: &UploadId,
    size: u64,
    staged: &[Staged],
    scratch: &FsPath,
    parallel: usize,
) -> Result<TempFile> {
    check_covers(staged, size)?;
    let tmp = TempFile::in_dir(scratch, id.as_str())?;
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&tmp.path)
        .map_err(|e| io_error("creating the assembled file", e))?;
    file.set_len(size).map_err(|e| io_error("sizing the assembled file", e))?;
    let file = Arc::new(file);
    let jobs = staged.iter().cloned().map(|s| {
        let file = file.clone();
        async move { copy_segment_into(store, &s, file).await }
    });
    futures::stream::iter(jobs).buffer_unordered(parallel.max(1)).try_collect::<()>().await?;
    let synced = file.clone();
    tokio::task::spawn_blocking(move || synced.sync_all())
        .await
        .context("syncing the assembled file")?
        .map_err(|e| io_error("syncing the assembled file", e))?;
    Ok(tmp)
}

fn info(meta: object_store::ObjectMeta) -> ObjectInfo {
    ObjectInfo { key: meta.location, size: meta.size, last_modified: meta.last_modified.timestamp() }
}

/// Deletes `key` from `store`, logging (not returning) a failure: for
/// clean-ups whose leftovers the scrub catches anyway.
pub async fn delete_quietly(store: &dyn ByteStore, key: &Path) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(key = %key, error = %e, "could not delete an object; the scrub will");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body cut into 1-byte pieces is held as a few runs, not a million
    /// handles; large pieces are kept as they are; the bytes and their
    /// order are the body's.
    #[test]
    fn gathered_pieces_copy_small_ones_together_and_keep_large_ones() {
        let mut g = Gathered::default();
        let mut body = Vec::new();
        for i in 0..(200 << 10) {
            let b = [(i % 251) as u8];
            body.extend_from_slice(&b);
            g.push(Bytes::copy_from_slice(&b));
        }
        let large = Bytes::from(vec![7u8; 100 << 10]);
        body.extend_from_slice(&large);
        g.push(large.clone());
        g.push(Bytes::from_static(b"end"));
        body.extend_from_slice(b"end");
        assert_eq!(g.len(), body.len());
        let pieces = g.take();
        assert!(pieces.len() <= 6, "{} pieces", pieces.len());
        assert!(pieces.iter().any(|p| p.as_ptr() == large.as_ptr()), "the large piece is not copied");
        assert_eq!(pieces.concat(), body);
        assert!(g.is_empty() && g.take().is_empty());
    }
}
