//! The upload use cases, independent of HTTP: what `init`, `uppart`,
//! `status`, `complete` and `abort` do to the backends. The api's handlers
//! parse input, call one of these, and shape the answer.

use bytes::Bytes;
use futures::Stream;
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::backends::Backends;
use crate::config::Settings;
use crate::db::NewUserFile;
use crate::domain::{ChunkPlan, FileName, Sha1Hex, UploadId, UploadSession, UploadState, User, UserFile};
use crate::error::{Error, Result};
use crate::jobs::MergeJob;
use crate::objects;
use crate::uploads::CompleteOutcome;

/// After this long in `merging`, a repeated `complete` enqueues the merge
/// again (the first job must have been lost).
pub const STUCK_MERGE_SECS: i64 = 30 * 60;

/// How many missing indexes a `CHUNKS_MISSING` error lists.
pub const MISSING_LISTED: usize = 100;

/// What `init` decided.
#[derive(Debug)]
pub enum InitOutcome {
    /// A new upload; send every chunk.
    New(UploadSession),
    /// The caller's unfinished upload of the same content; send the missing chunks.
    Resume(UploadSession, Vec<u64>),
    /// The content is already stored: the caller has the file now, no bytes needed.
    ///
    /// This is where a proof-of-possession step would go (the server asks for
    /// the hash of a random range before linking), so knowing a hash alone
    /// would not be enough to get a file; see the README.
    Instant(UserFile, ChunkPlan),
}

/// Starts (or resumes) an upload of `filesize` bytes hashing to `filehash`.
#[tracing::instrument(name = "init upload", skip(b, settings, user), fields(user = user.id))]
pub async fn init(
    b: &Backends,
    settings: &Settings,
    user: &User,
    filename: FileName,
    filehash: Sha1Hex,
    filesize: u64,
) -> Result<InitOutcome> {
    if filesize > settings.max_file_size {
        return Err(Error::TooLarge {
            code: "FILE_TOO_LARGE",
            message: format!("filesize {filesize} is above the limit of {} bytes", settings.max_file_size),
        });
    }
    let plan = ChunkPlan::for_file(filesize, settings.chunk_size, settings.max_chunks);
    let now = crate::now();
    let entry = NewUserFile {
        user_id: user.id,
        filehash: filehash.as_str(),
        filesize: filesize as i64,
        filename: filename.as_str(),
        now,
    };
    if let Some(file) = b.repo.link_existing(&entry).await? {
        tracing::info!(filehash = %filehash, "instant upload: content already stored");
        crate::metrics::UPLOADS_INSTANT.inc();
        return Ok(InitOutcome::Instant(file, plan));
    }
    if let Some(session) = b.uploads.find_resumable(user.id, filehash.as_str(), filesize).await? {
        let uploaded = b.uploads.chunks(&session.id).await?.into_keys().collect();
        return Ok(InitOutcome::Resume(session, uploaded));
    }
    let session = UploadSession {
        id: UploadId::generate(),
        owner: user.id,
        filename: filename.as_str().to_owned(),
        filehash,
        plan,
        state: UploadState::Uploading,
        reason: None,
        created_at: now,
        updated_at: now,
    };
    b.uploads.create(&session).await?;
    crate::metrics::UPLOADS_CREATED.inc();
    tracing::info!(upload = %session.id, chunks = plan.chunk_count, chunk_size = plan.chunk_size, "upload created");
    Ok(InitOutcome::New(session))
}

/// The caller's session with this id; anyone else's is [`Error::UploadNotFound`].
pub async fn owned_session(b: &Backends, user: &User, id: &str) -> Result<UploadSession> {
    let id = UploadId::parse(id)?;
    match b.uploads.get(&id).await? {
        Some(s) if s.owner == user.id => Ok(s),
        _ => Err(Error::UploadNotFound),
    }
}

/// Parses an `Upload-Checksum: sha1 <base64 digest>` header (the tus
/// checksum extension's format).
pub fn parse_upload_checksum(header: &str) -> Result<[u8; 20]> {
    use base64::Engine;
    let bad =
        || Error::invalid("INVALID_CHECKSUM_HEADER", "Upload-Checksum must be `sha1 <base64 of the 20-byte digest>`");
    let (algo, value) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !algo.eq_ignore_ascii_case("sha1") {
        return Err(Error::invalid("UNSUPPORTED_CHECKSUM", "Upload-Checksum supports only sha1"));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Receives chunk `index` of an upload: checks it, streams it to a fresh
/// staging object, then records it. Returns how many chunks are in.
#[tracing::instrument(name = "receive chunk", skip(b, user, checksum, body), fields(user = user.id))]
pub async fn put_chunk<S>(
    b: &Backends,
    user: &User,
    id: &str,
    index: u64,
    content_length: Option<u64>,
    checksum: Option<[u8; 20]>,
    body: S,
) -> Result<UploadSession>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    let session = owned_session(b, user, id).await?;
    if session.state != UploadState::Uploading {
        return Err(Error::NotUploading { state: session.state.to_string() });
    }
    session.plan.check_index(index)?;
    let expected = session.plan.chunk_len(index);
    match content_length {
        Some(n) if n > expected => {
            return Err(Error::TooLarge {
                code: "CHUNK_TOO_LARGE",
                message: format!("chunk {index} must be exactly {expected} bytes; Content-Length is {n}"),
            });
        }
        Some(n) if n < expected => {
            return Err(Error::invalid(
                "CHUNK_SIZE_MISMATCH",
                format!("chunk {index} must be exactly {expected} bytes; Content-Length is {n}"),
            ));
        }
        _ => {}
    }
    let key = objects::chunk_key(&session.id, index);
    objects::write_chunk(&b.staging.store, &key, index, expected, checksum, body).await?;
    match b.uploads.mark_chunk(&session.id, index, key.as_ref(), crate::now()).await {
        Ok(previous) => {
            crate::metrics::CHUNKS_RECEIVED.inc();
            crate::metrics::CHUNK_BYTES.add(expected);
            if let Some(previous) = previous.filter(|p| p != key.as_ref()) {
                delete_quietly(b, &Path::from(previous)).await;
            }
            Ok(session)
        }
        Err(e) => {
            // Aborted, expired or completed while the bytes were in flight.
            delete_quietly(b, &key).await;
            Err(e)
        }
    }
}

async fn delete_quietly(b: &Backends, key: &Path) {
    if let Err(e) = b.staging.store.delete(key).await
        && !matches!(e, object_store::Error::NotFound { .. })
    {
        tracing::warn!(key = %key, error = %e, "could not delete a superseded staged chunk");
    }
}

/// An upload's state, received chunk indexes, and the file once done.
pub async fn status(b: &Backends, user: &User, id: &str) -> Result<(UploadSession, Vec<u64>, Option<UserFile>)> {
    let session = owned_session(b, user, id).await?;
    let uploaded: Vec<u64> = match session.state {
        UploadState::Uploading | UploadState::Merging => b.uploads.chunks(&session.id).await?.into_keys().collect(),
        UploadState::Done => (0..session.plan.chunk_count).collect(),
        UploadState::Failed => Vec::new(),
    };
    let file = if session.state == UploadState::Done {
        b.repo.user_file(user.id, session.filehash.as_str()).await?.map(|(f, _)| f)
    } else {
        None
    };
    Ok((session, uploaded, file))
}

/// Hands a fully received upload to the merge workers (exactly once).
/// Returns the state the upload is in afterwards.
#[tracing::instrument(name = "complete upload", skip(b, user), fields(user = user.id))]
pub async fn complete(b: &Backends, user: &User, id: &str) -> Result<UploadState> {
    let session = owned_session(b, user, id).await?;
    match b.uploads.start_merge(&session.id, crate::now()).await? {
        CompleteOutcome::Started => {
            b.jobs.merges.push(MergeJob { upload_id: session.id.to_string() }).await?;
            tracing::info!(upload = %session.id, "merge enqueued");
            Ok(UploadState::Merging)
        }
        CompleteOutcome::AlreadyIn(UploadState::Merging) if crate::now() - session.updated_at > STUCK_MERGE_SECS => {
            // Merging for this long means the job was lost (the queue was
            // away when it was pushed, or gave up); merges are idempotent,
            // so hand it over again.
            tracing::warn!(upload = %session.id, "merge looks lost; enqueueing it again");
            b.jobs.merges.push(MergeJob { upload_id: session.id.to_string() }).await?;
            Ok(UploadState::Merging)
        }
        CompleteOutcome::AlreadyIn(state) => Ok(state),
        CompleteOutcome::Missing => {
            let have = b.uploads.chunks(&session.id).await?;
            let missing: Vec<u64> = (0..session.plan.chunk_count).filter(|i| !have.contains_key(i)).collect();
            Err(Error::ChunksMissing {
                count: missing.len() as u64,
                missing: missing.into_iter().take(MISSING_LISTED).collect(),
            })
        }
    }
}

/// Drops an upload and its staged chunks. An upload being merged cannot be
/// aborted; a finished one only loses its session record.
#[tracing::instrument(name = "abort upload", skip(b, user), fields(user = user.id))]
pub async fn abort(b: &Backends, user: &User, id: &str) -> Result<()> {
    let session = owned_session(b, user, id).await?;
    if !b.uploads.delete_unless_merging(&session.id).await? {
        return match b.uploads.get(&session.id).await? {
            Some(s) => Err(Error::NotUploading { state: s.state.to_string() }),
            None => Err(Error::UploadNotFound),
        };
    }
    b.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
    Ok(())
}
