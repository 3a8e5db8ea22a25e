//! The byte stores, all behind object_store: the staging store (chunks waiting
//! for their merge) and the file store (finished, content-addressed files).
//!
//! Keys are made by the server only, from upload ids, chunk indexes, random
//! nonces and content hashes; a client's file name never reaches a key.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha1::{Digest, Sha1};

use crate::domain::UploadId;
use crate::error::{Error, Result};

/// A store handle as the rest of pan holds it.
pub type Store = Arc<dyn ObjectStore>;

/// An opened store and what else its kind offers.
#[derive(Clone)]
pub struct OpenedStore {
    /// The store, with its prefix applied.
    pub store: Store,
    /// The local directory behind it, for `file://` stores (renames, mmap).
    pub dir: Option<PathBuf>,
    /// A URL signer, for S3-compatible stores (presigned downloads).
    pub signer: Option<Presigner>,
    /// The size of the pieces a streamed write hands the store: what one
    /// write holds in memory (1 MiB on a local store; S3's 5 MiB minimum part).
    pub part_size: usize,
}

/// Pieces of a streamed write to a local store: a stalled client holds at
/// most this much of its chunk in memory.
pub const LOCAL_PART_SIZE: usize = 1 << 20;
/// S3 (and OSS) refuse parts smaller than 5 MiB, the last one excepted.
pub const S3_PART_SIZE: usize = 5 << 20;

/// Makes presigned GET URLs for keys of an S3-compatible store.
#[derive(Clone)]
pub struct Presigner {
    s3: Arc<AmazonS3>,
    prefix: Option<Path>,
}

impl Presigner {
    /// A URL anyone can GET `key` with until `expires_in` has passed; the
    /// store answers it with `Content-Disposition: disposition`
    /// (`response-content-disposition`, signed with the URL).
    pub async fn presign_get(
        &self,
        key: &Path,
        expires_in: std::time::Duration,
        disposition: &str,
    ) -> Result<url::Url> {
        use object_store::signer::{Method, SignedUrlOptions, Signer};
        let full = match &self.prefix {
            Some(p) => p.parts().chain(key.parts()).collect(),
            None => key.clone(),
        };
        let options = SignedUrlOptions::default().with_query([("response-content-disposition", disposition)]);
        Ok(self.s3.signed_url_opts(Method::GET, &full, expires_in, &options).await?)
    }
}

/// Opens the store a URL names; `setting` names the setting for errors.
/// `file:///abs/dir` is a local directory (created if missing);
/// `s3://bucket/prefix` an S3-compatible bucket, configured by the standard
/// `AWS_*` variables (endpoint, region, keys, path or virtual-hosted style).
pub fn open(url: &str, setting: &str) -> Result<OpenedStore> {
    let parsed = url::Url::parse(url)
        .map_err(|e| Error::invalid("INVALID_SETTING", format!("{setting}: {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "s3" => {
            let bucket = parsed.host_str().filter(|b| !b.is_empty()).ok_or_else(|| {
                Error::invalid("INVALID_SETTING", format!("{setting}: {url:?} names no bucket (s3://bucket/prefix)"))
            })?;
            // Fail within seconds when the store is down (the job queue
            // retries later) instead of object_store's default of minutes.
            let retry = object_store::RetryConfig {
                max_retries: 3,
                retry_timeout: std::time::Duration::from_secs(20),
                ..Default::default()
            };
            let s3 = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_retry(retry)
                .build()
                .map_err(|e| Error::invalid("INVALID_SETTING", format!("{setting}: {e}")))?;
            let s3 = Arc::new(s3);
            let prefix = parsed.path().trim_matches('/');
            let (store, prefix): (Store, _) = if prefix.is_empty() {
                (s3.clone(), None)
            } else {
                (Arc::new(PrefixStore::new(s3.clone(), prefix)), Some(Path::from(prefix)))
            };
            Ok(OpenedStore { store, dir: None, signer: Some(Presigner { s3, prefix }), part_size: S3_PART_SIZE })
        }
        "file" => {
            let dir = parsed.to_file_path().map_err(|_| {
                Error::invalid("INVALID_SETTING", format!("{setting}: {url:?} is not an absolute path"))
            })?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                Error::invalid("INVALID_SETTING", format!("{setting}: cannot create {}: {e}", dir.display()))
            })?;
            let store = LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| Error::invalid("INVALID_SETTING", format!("{setting}: {e}")))?
                .with_automatic_cleanup(true)
                // A chunk counts as uploaded only once its bytes are durable.
                .with_fsync(true);
            let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
            Ok(OpenedStore { store: Arc::new(store), dir: Some(dir), signer: None, part_size: LOCAL_PART_SIZE })
        }
        other => Err(Error::invalid(
            "INVALID_SETTING",
            format!("{setting}: unsupported store scheme {other:?}; use file:///absolute/path or s3://bucket/prefix"),
        )),
    }
}

/// The codes of a body cut off because its client sent too slowly.
const SLOW_BODY_CODES: [&str; 2] = ["BODY_TIMEOUT", "CHUNK_TOO_SLOW"];

impl Error {
    /// Whether a request body was cut off because its client sent too
    /// slowly: reading the rest of such a body would only stall the server.
    pub fn is_slow_body(&self) -> bool {
        matches!(self, Error::Invalid { code, .. } if SLOW_BODY_CODES.contains(code))
    }
}

/// How long a chunk upload may go without receiving a byte.
pub const BODY_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Key of one staged copy of a chunk. Every send of a chunk gets its own key
/// (the nonce), so concurrent or repeated sends never write the same object.
pub fn chunk_key(id: &UploadId, index: u64) -> Path {
    Path::from(format!("{id}/{index:05}.{}", crate::random_hex(8)))
}

/// Prefix of every staged chunk of an upload.
pub fn upload_prefix(id: &UploadId) -> Path {
    Path::from(id.as_str())
}

/// Key of a stored file: a server-made id (the upload's id for a merge, so a
/// retried merge overwrites its own earlier copy; random otherwise), spread
/// over two directory levels. It holds no content hash, so a presigned URL or
/// a listing of the bucket says nothing about what the file is, and deleting
/// one copy of some content never touches another. (Files stored before
/// 0.1's content-identity change keep their `<sha1>-<size>-<generation>` keys.)
pub fn file_key(generation: &str) -> Path {
    Path::from(format!("{}/{}/{generation}", &generation[..2], &generation[2..4]))
}

/// Why a streamed chunk was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChunkWriteError {
    /// More bytes than the chunk's length arrived (reading stopped there).
    #[error("chunk {index} must be exactly {expected} bytes; more arrived")]
    TooLong { index: u64, expected: u64 },
    /// The body ended early.
    #[error("chunk {index} must be exactly {expected} bytes; got {got}")]
    TooShort { index: u64, expected: u64, got: u64 },
    /// The declared per-chunk SHA-1 does not match the bytes.
    #[error("chunk {index} does not match its Upload-Checksum (got sha1 {actual})")]
    ChecksumMismatch { index: u64, actual: String },
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
}

impl From<ChunkWriteError> for Error {
    fn from(e: ChunkWriteError) -> Self {
        match e {
            ChunkWriteError::TooLong { .. } => Error::TooLarge { code: "CHUNK_TOO_LARGE", message: e.to_string() },
            ChunkWriteError::TooShort { .. } => Error::invalid("CHUNK_SIZE_MISMATCH", e.to_string()),
            ChunkWriteError::ChecksumMismatch { .. } => Error::invalid("CHUNK_CHECKSUM_MISMATCH", e.to_string()),
            ChunkWriteError::Body(_) => Error::invalid("BODY_READ_FAILED", e.to_string()),
            ChunkWriteError::Idle(_) => Error::invalid(SLOW_BODY_CODES[0], e.to_string()),
            ChunkWriteError::TooSlow { .. } => Error::invalid(SLOW_BODY_CODES[1], e.to_string()),
            ChunkWriteError::Store(s) => Error::from(s),
        }
    }
}

/// Streams one chunk into `store` at `key`, holding at most a few parts in
/// memory. The object appears only when exactly `expected` bytes arrived and
/// (when given) their SHA-1 equals `checksum`; otherwise the partial upload is
/// aborted and nothing is visible. Dropping the future part-way leaves no
/// object either (local stores clean their temp file; S3 parts expire).
pub async fn write_chunk<S>(
    store: &OpenedStore,
    key: &Path,
    index: u64,
    expected: u64,
    checksum: Option<[u8; 20]>,
    min_rate: u64,
    body: &mut S,
) -> std::result::Result<(), ChunkWriteError>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let upload = store.store.put_multipart(key).await?;
    // One part filling while at most one is written: memory per chunk stays
    // within two parts however slowly the client sends.
    let mut writer = WriteMultipart::new_with_chunk_size(upload, store.part_size);
    let mut hasher = checksum.map(|_| Sha1::new());
    let mut got = 0u64;
    let started = tokio::time::Instant::now();
    let mut last_byte = started;
    let outcome = loop {
        // Wake at least when the rate floor is first judged, so a client that
        // trickles (or stalls) is cut off on time, not at its next byte.
        let floor_check = started + RATE_GRACE;
        let idle = last_byte + BODY_IDLE_TIMEOUT;
        let wake = if min_rate > 0 && floor_check > tokio::time::Instant::now() { idle.min(floor_check) } else { idle };
        let next = tokio::time::timeout_at(wake, body.next()).await;
        if let Some(rate) = too_slow(started, got, min_rate) {
            break Err(ChunkWriteError::TooSlow { rate, floor: min_rate });
        }
        let next = match next {
            Ok(next) => next,
            Err(_) if tokio::time::Instant::now() >= idle => {
                break Err(ChunkWriteError::Idle(BODY_IDLE_TIMEOUT.as_secs()));
            }
            Err(_) => continue,
        };
        match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(ChunkWriteError::Body(e)),
            Some(Ok(piece)) => {
                last_byte = tokio::time::Instant::now();
                got += piece.len() as u64;
                if got > expected {
                    break Err(ChunkWriteError::TooLong { index, expected });
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&piece);
                }
                if let Err(e) = writer.wait_for_capacity(1).await {
                    break Err(e.into());
                }
                writer.put(piece);
            }
        }
    };
    let outcome = outcome.and_then(|()| {
        if got < expected {
            return Err(ChunkWriteError::TooShort { index, expected, got });
        }
        match (checksum, hasher) {
            (Some(want), Some(h)) => {
                let actual: [u8; 20] = h.finalize().into();
                if actual == want {
                    Ok(())
                } else {
                    Err(ChunkWriteError::ChecksumMismatch { index, actual: hex::encode(actual) })
                }
            }
            _ => Ok(()),
        }
    });
    match outcome {
        Ok(()) => {
            writer.finish().await?;
            Ok(())
        }
        Err(e) => {
            let _ = writer.abort().await;
            Err(e)
        }
    }
}

/// How long a chunk body may take before its average rate is held against
/// the floor (`PAN_MIN_CHUNK_RATE`): slow starts are forgiven this long.
pub const RATE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The average rate so far, when it is below `floor` after the grace period.
fn too_slow(started: tokio::time::Instant, got: u64, floor: u64) -> Option<u64> {
    let elapsed = started.elapsed();
    if floor == 0 || elapsed < RATE_GRACE {
        return None;
    }
    let rate = (got as f64 / elapsed.as_secs_f64()) as u64;
    (rate < floor).then_some(rate)
}

/// Reads and drops what is left of a refused request body, at most `limit`
/// bytes and for at most `deadline`, so that a client that sends its whole
/// body before reading the answer (urllib, requests, many generated
/// clients) reads the JSON error instead of a broken pipe. Returns whether
/// the body ended within those bounds.
pub async fn drain<S>(body: &mut S, limit: u64, deadline: std::time::Duration) -> bool
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let drained = async {
        let mut seen = 0u64;
        while let Some(Ok(piece)) = body.next().await {
            seen += piece.len() as u64;
            if seen > limit {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(deadline, drained).await.unwrap_or(false)
}

impl OpenedStore {
    /// Deletes everything under `prefix`. On a local store the whole
    /// directory goes, including the `…#N` temporary files of writes cut off
    /// by a crash (object_store's listing does not show them).
    pub async fn delete_prefix(&self, prefix: &Path) -> Result<usize> {
        let Some(dir) = &self.dir else { return delete_prefix(&self.store, prefix).await };
        let dir = dir.join(prefix.as_ref());
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
}

/// Deletes every object under `prefix`; returns how many went.
pub async fn delete_prefix(store: &Store, prefix: &Path) -> Result<usize> {
    let keys: Vec<Path> = store
        .list(Some(prefix))
        .map(|m| m.map(|m| m.location))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<std::result::Result<_, _>>()?;
    let mut n = 0;
    for key in keys {
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(n)
}
