//! The chunked, resumable upload protocol under `/file/mupload`:
//! init → uppart (any order, in parallel, repeatable) → complete, with status
//! and abort; declare gives the file's hashes while the chunks flow when
//! init named none; bytes sends any byte range (or a body of unknown
//! length), for uploads whose size is known only at the end.
//! Field names follow the design notes (`uploadID`, `chkidx`, …).

use poem::Body;
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use shared::ErrorCode;
use shared::domain::{
    ChunkPlan, FileName, FolderId, Mtime, NameRule, Placement, Segment, Sha1Hex, Sha256Hex, UploadSession, UploadState,
    UserFile, covered_ranges,
};
use shared::upload::{self, DeclareResult, InitOutcome, ProveOutcome};

use super::Tag;
use super::files::FileInfo;
use super::folders::OnConflict;
use crate::auth::BearerAuth;
use crate::error::ApiError;
use crate::limits::{default_octet_stream, json_body_limit};
use crate::state::AppState;
use crate::text::Text;
use shared::accounts::limits::SlotOwner;

/// What the client wants to upload, and where. `on_conflict`, when
/// `filename` is taken in that folder: `rename` (the default: the first free
/// `name (n).ext`) or `refuse` (409 `NAME_TAKEN` now). A name taken while
/// the upload runs is always renamed when it finishes.
#[derive(Debug, Object)]
pub struct InitRequest {
    /// The name to list the file under: 1-255 bytes of UTF-8, no `/`, no
    /// control characters, no bidirectional overrides or isolates, not `.`
    /// or `..`. Metadata only.
    #[oai(validator(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^/\\\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]+$"
    ))]
    pub filename: Text,
    /// SHA-1 of the whole file, 40 hex characters. Absent: start sending
    /// now and declare the hashes at `/file/mupload/declare` once the file
    /// is hashed (before `complete`).
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
    pub filehash: Option<Text>,
    /// Size of the whole file in bytes. May be left out only with
    /// `server_hashed`: the size is then given at `complete`.
    #[oai(nullable, validator(minimum(value = "0")))]
    pub filesize: Option<i64>,
    /// Let the server's running hash be the content's identity: no
    /// `filehash` or `sha256` (400 `INVALID_REQUEST` with them), no resume
    /// by hashes and no instant upload; `complete` needs no declaration.
    /// For a source that cannot hash first (a stream, a pipe): send its
    /// bytes with `PUT /file/mupload/bytes` as they come.
    #[oai(nullable)]
    pub server_hashed: Option<bool>,
    /// SHA-256 of the whole file, 64 hex characters (only with `filehash`).
    /// Optional, but resume and instant upload need it (content is
    /// identified by SHA-256 and size; SHA-1 alone is not collision-safe);
    /// the merge verifies it.
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub sha256: Option<Text>,
    /// For an init without `filehash`: the client's own token for the local
    /// file (e.g. a hash of its path, size and modification time), 1-128
    /// printable ASCII characters. An init with the same fingerprint and
    /// size finds your unfinished upload and answers `resume`. Ignored
    /// when `filehash` is given (such uploads resume by their hashes).
    #[oai(nullable, validator(pattern = r"^[!-~]{1,128}$"))]
    pub fingerprint: Option<Text>,
    /// The folder to put the file in (its id); absent: the root. When the
    /// folder is deleted before the upload finishes, the file goes to the root.
    #[oai(nullable, validator(pattern = r"^([0-9a-f]{32})?$"))]
    pub folder: Option<Text>,
    // When `filename` is taken in that folder: `rename` (the default: the
    // first free `name (n).ext`), `refuse` (409 `NAME_TAKEN` now), or
    // `replace` (the file of that name gets this content when the upload
    // finishes, keeping its own as a version). A name taken while the
    // upload runs is renamed when it finishes, unless it replaces.
    pub on_conflict: MaybeUndefined<OnConflict>,
    /// With `replace`: the SHA-256 of the content you expect to replace: a
    /// file with other content (now, or when the upload finishes) is 412
    /// `CONTENT_CHANGED`, the upload's bytes kept.
    #[oai(nullable, validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub if_match: Option<Text>,
    /// The file's modification time, Unix seconds from 0 to 253402300799
    /// (the end of year 9999; else 400 `INVALID_MTIME`): the finished
    /// entry's `mtime`. Absent: the time the upload finishes. An init that
    /// resumes keeps the time the upload began with.
    #[oai(nullable)]
    pub mtime: Option<i64>,
}

/// A byte range of the file, `first` to `last` inclusive.
#[derive(Debug, Clone, Object)]
pub struct ChallengeRange {
    /// Offset of the first byte.
    pub first: u64,
    /// Offset of the last byte (inclusive).
    pub last: u64,
}

/// A proof-of-possession challenge: the content is already stored, so a
/// client that holds the file can skip sending it. Answer at
/// `/file/mupload/prove` with the SHA-256 (hex) of the nonce's 16 bytes
/// (hex-decoded) followed by the bytes of each range, in order. Ignoring it
/// is fine: the upload goes on as a new one.
#[derive(Debug, Clone, Object)]
pub struct Challenge {
    /// 16 random bytes, 32 hex characters.
    pub nonce: String,
    /// The ranges to hash, in order (none for an empty file).
    pub ranges: Vec<ChallengeRange>,
    /// The answer must arrive before this (Unix seconds).
    pub expires_at: i64,
}

impl From<upload::Challenge> for Challenge {
    fn from(c: upload::Challenge) -> Self {
        Challenge {
            nonce: c.nonce,
            ranges: c.ranges.into_iter().map(|r| ChallengeRange { first: r.start, last: r.end }).collect(),
            expires_at: c.expires_at,
        }
    }
}

/// The whole file's hashes, declared while its chunks are sent.
#[derive(Debug, Object)]
pub struct DeclareRequest {
    /// SHA-1 of the whole file, 40 hex characters.
    #[oai(validator(pattern = r"^[0-9A-Fa-f]{40}$"))]
    pub filehash: Text,
    /// SHA-256 of the whole file, 64 hex characters.
    #[oai(validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub sha256: Text,
}

/// The answer to a challenge.
#[derive(Debug, Object)]
pub struct ProveRequest {
    /// SHA-256 (hex) of the nonce's bytes followed by the challenged ranges.
    #[oai(validator(pattern = r"^[0-9A-Fa-f]{64}$"))]
    pub proof: Text,
}

/// How an init was answered.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum InitStatus {
    /// A new upload: send every chunk.
    New,
    /// An unfinished upload of the same file: send the chunks not in `uploaded`.
    Resume,
    /// The content is already stored: the file is yours now, send nothing.
    Instant,
}

/// The answer to init. `status` is `new`, `resume` or `instant`.
#[derive(Debug, Object)]
pub struct InitResponse {
    // No doc comment on enum-typed fields: poem-openapi would wrap the $ref
    // in an allOf, which some client generators cannot read.
    pub status: InitStatus,
    /// The upload's id (absent for `instant`, which needs no upload).
    #[oai(rename = "uploadID", skip_serializing_if_is_none)]
    pub upload_id: Option<String>,
    /// Number of chunks; chunk `i` covers bytes `[i*chunksize, min((i+1)*chunksize, filesize))`
    /// (0 while the size is not known).
    pub chunkcount: u64,
    /// Size of every chunk but the last, in bytes.
    pub chunksize: u64,
    /// Indexes of the chunks the server already holds, ascending.
    pub uploaded: Vec<u64>,
    /// The stored file (only for `instant`).
    #[oai(skip_serializing_if_is_none)]
    pub file: Option<FileInfo>,
    /// Only for `new`, when the content is stored already: prove you hold
    /// it (see `Challenge`) to finish at once.
    #[oai(skip_serializing_if_is_none)]
    pub challenge: Option<Challenge>,
}

/// Where an upload is.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename = "UploadState", rename_all = "lowercase")]
pub enum UploadStateDto {
    /// Chunks are arriving.
    Uploading,
    /// Every chunk is in; a worker assembles and verifies the file.
    Merging,
    /// The file is stored and listed.
    Done,
    /// The merge failed; `reason` says why.
    Failed,
}

impl From<UploadState> for UploadStateDto {
    fn from(s: UploadState) -> Self {
        match s {
            UploadState::Uploading => UploadStateDto::Uploading,
            UploadState::Merging => UploadStateDto::Merging,
            UploadState::Done => UploadStateDto::Done,
            UploadState::Failed => UploadStateDto::Failed,
        }
    }
}

/// An upload's progress; `state` is `uploading`, `merging`, `done` or `failed`.
#[derive(Debug, Object)]
pub struct UploadStatus {
    /// The upload's id.
    #[oai(rename = "uploadID")]
    pub upload_id: String,
    // (No doc comment: see InitResponse.)
    pub state: UploadStateDto,
    /// The name given at init.
    pub filename: String,
    /// The declared SHA-1 (absent until declared, for an upload begun
    /// without hashes).
    #[oai(skip_serializing_if_is_none)]
    pub filehash: Option<String>,
    /// The declared SHA-256, when one was given.
    #[oai(skip_serializing_if_is_none)]
    pub sha256: Option<String>,
    /// The fingerprint given at init (uploads begun without hashes).
    #[oai(skip_serializing_if_is_none)]
    pub fingerprint: Option<String>,
    /// The declared size (null while it is not known: a server-hashed
    /// upload whose size comes at `complete`).
    pub filesize: Option<u64>,
    /// Number of chunks (0 while the size is not known).
    pub chunkcount: u64,
    /// Size of every chunk but the last.
    pub chunksize: u64,
    /// Indexes of the chunks received, ascending (bytes received in other
    /// bounds than chunks count in `ranges`, not here).
    pub uploaded: Vec<u64>,
    /// How many chunks were received.
    pub uploaded_count: u64,
    /// How many chunks, from chunk 0 on, the server has hashed as they
    /// arrived (the running hash). Those are final: sending one of them
    /// again with other bytes is refused with `CHUNK_CONFLICT`. At
    /// `complete`, only the rest is left to hash.
    pub hashed_count: u64,
    /// Bytes received, in all.
    pub received: u64,
    /// The byte ranges received, ascending, adjacent ones joined: what a
    /// client resuming with `PUT /file/mupload/bytes` need not send again.
    /// An upload that only appends has one, `[0, received)`.
    pub ranges: Vec<ReceivedRange>,
    /// How many bytes, from the first, the running hash has passed (final,
    /// as `hashed_count` says).
    pub hashed_bytes: u64,
    /// Why the upload failed (state `failed` only).
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// The same as a stable code (state `failed` only): `CHUNKS_MISSING`,
    /// `SHA1_MISMATCH`, `SHA256_MISMATCH` (final: start again), or
    /// `ASSEMBLY_FAILED`, `STORE_FAILED` (the chunks are kept: call
    /// `complete` again to retry).
    #[oai(skip_serializing_if_is_none)]
    pub reason_code: Option<String>,
    /// The stored file (state `done` only).
    #[oai(skip_serializing_if_is_none)]
    pub file: Option<FileInfo>,
    /// While `merging`: when the merge started (Unix seconds).
    #[oai(skip_serializing_if_is_none)]
    pub merge_started_at: Option<i64>,
    /// While `merging`: for how many seconds it has been merging. A merge
    /// beats every 5 s (`updated_at`); one silent for `PAN_MERGE_STALL_SECS`
    /// is started again by the clean-up or the next `complete`.
    #[oai(skip_serializing_if_is_none)]
    pub merging_seconds: Option<i64>,
    /// When the upload started (Unix seconds).
    pub created_at: i64,
    /// Last activity (Unix seconds); while merging, the merge's last heartbeat.
    pub updated_at: i64,
}

/// A chunk was received. `state` is the upload's: `uploading` when this
/// chunk was stored; `merging` or `done` when it was not needed because the
/// upload already has every chunk (another send completed it): stop
/// sending, do not call complete, poll status.
#[derive(Debug, Object)]
pub struct ChunkReceipt {
    /// The upload's id.
    #[oai(rename = "uploadID")]
    pub upload_id: String,
    /// The chunk's index.
    pub chkidx: u64,
    /// The chunk's length in bytes.
    pub size: u64,
    // (No doc comment: see InitResponse.)
    pub state: UploadStateDto,
}

/// Bytes `start` to `end - 1` of the file.
#[derive(Debug, Clone, Object)]
pub struct ReceivedRange {
    /// Offset of the first byte.
    pub start: u64,
    /// Offset just past the last byte.
    pub end: u64,
}

/// Bytes were received. `state` is the upload's (`uploading`).
#[derive(Debug, Object)]
pub struct BytesReceipt {
    /// The upload's id.
    #[oai(rename = "uploadID")]
    pub upload_id: String,
    /// Where the request's bytes began.
    pub offset: u64,
    /// How many bytes of the request count (all of them).
    pub size: u64,
    /// Bytes received by the upload, in all.
    pub received: u64,
    // (No doc comment: see InitResponse.)
    pub state: UploadStateDto,
}

/// The state after complete: `merging` right after it; later calls report
/// the current state.
#[derive(Debug, Object)]
pub struct CompleteResult {
    /// The upload's id.
    #[oai(rename = "uploadID")]
    pub upload_id: String,
    // (No doc comment: see InitResponse.)
    pub state: UploadStateDto,
}

/// Complete answers.
#[derive(ApiResponse)]
pub enum CompleteResponse {
    /// The upload is being merged; follow it with status.
    #[oai(status = 202)]
    Accepted(Json<CompleteResult>),
    /// The upload had already finished (`done` or `failed`).
    #[oai(status = 200)]
    Finished(Json<CompleteResult>),
}

/// Abort answers.
#[derive(ApiResponse)]
pub enum AbortResponse {
    /// The upload and its chunks are gone.
    #[oai(status = 204)]
    Aborted,
}

fn file_info(f: UserFile) -> FileInfo {
    FileInfo::from(f)
}

fn upload_answer(
    status: InitStatus,
    s: &UploadSession,
    uploaded: Vec<u64>,
    challenge: Option<upload::Challenge>,
) -> InitResponse {
    InitResponse {
        status,
        upload_id: Some(s.id.to_string()),
        chunkcount: s.plan().map_or(0, |p| p.chunk_count),
        chunksize: s.chunk_size,
        uploaded,
        file: None,
        challenge: challenge.map(Challenge::from),
    }
}

fn instant_answer(f: UserFile, plan: ChunkPlan) -> InitResponse {
    InitResponse {
        status: InitStatus::Instant,
        upload_id: None,
        chunkcount: plan.chunk_count,
        chunksize: plan.chunk_size,
        uploaded: (0..plan.chunk_count).collect(),
        file: Some(file_info(f)),
        challenge: None,
    }
}

fn status_of(session: UploadSession, received: Vec<Segment>, file: Option<UserFile>) -> UploadStatus {
    let merging = session.state == UploadState::Merging;
    let plan = session.plan();
    let uploaded: Vec<u64> = match plan {
        Some(plan) => received.iter().filter_map(|s| plan.index_of(*s)).collect(),
        None => Vec::new(),
    };
    let received_bytes = received.iter().map(|s| s.len).sum();
    let hashed = if session.state == UploadState::Done { received_bytes } else { session.hashed };
    let merge_started_at = session.merge_started_at.filter(|_| merging);
    UploadStatus {
        merge_started_at,
        merging_seconds: merge_started_at.map(|t| (shared::now() - t).max(0)),
        upload_id: session.id.to_string(),
        state: session.state.into(),
        filename: session.filename,
        filehash: session.filehash.map(|h| h.to_string()),
        sha256: session.sha256.map(|h| h.to_string()),
        fingerprint: session.fingerprint,
        filesize: session.size,
        chunkcount: plan.map_or(0, |p| p.chunk_count),
        chunksize: session.chunk_size,
        uploaded_count: uploaded.len() as u64,
        hashed_count: plan.map_or(0, |p| p.chunks_within(hashed)),
        uploaded,
        received: received_bytes,
        ranges: covered_ranges(received).into_iter().map(|r| ReceivedRange { start: r.start, end: r.end }).collect(),
        hashed_bytes: hashed,
        reason: session.reason,
        reason_code: session.reason_code.map(|c| c.as_str().to_owned()),
        file: file.map(file_info),
        created_at: session.created_at,
        updated_at: session.updated_at,
    }
}

crate::operation_errors!(
    /// Errors of init.
    InitErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PreconditionFailed = 412,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
        TooManyRequests = 429,
        InsufficientStorage = 507,
    }
);
crate::operation_errors!(
    /// Errors of uppart.
    UppartErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PayloadTooLarge = 413,
        TooManyRequests = 429,
        InsufficientStorage = 507,
    }
);
crate::operation_errors!(
    /// Errors of status.
    UploadErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404 }
);
crate::operation_errors!(
    /// Errors of declare.
    DeclareErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of prove.
    ProveErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PayloadTooLarge = 413,
        UnsupportedMediaType = 415,
    }
);
crate::operation_errors!(
    /// Errors of complete.
    CompleteErrors {
        BadRequest = 400,
        Unauthorized = 401,
        NotFound = 404,
        Conflict = 409,
        PayloadTooLarge = 413,
        InsufficientStorage = 507,
    }
);
crate::operation_errors!(
    /// Errors of complete and abort.
    UploadStateErrors { BadRequest = 400, Unauthorized = 401, NotFound = 404, Conflict = 409 }
);

/// Most bytes of a refused chunk read and dropped so its client sees the error.
pub(crate) const DRAIN_LIMIT: u64 = 128 << 20;
/// Longest time spent reading a refused chunk's body.
pub(crate) const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(15);

/// The upload protocol.
pub struct UploadApi;

#[OpenApi(prefix_path = "/file/mupload", tag = "Tag::Uploads")]
impl UploadApi {
    /// Start, resume or skip an upload.
    ///
    /// The server picks the chunk size (8 MiB, larger for files that would
    /// need more than 10,000 chunks). `status` is `new`, `resume` (you have an
    /// unfinished upload of this content: `uploaded` lists what the server
    /// holds) or `instant` (you already have this content: you get an entry
    /// for it in `folder`, or keep the one there of the same name). Resume and instant need `sha256`. When someone
    /// else stored the content, `new` carries a `challenge`: answer it at
    /// `/file/mupload/prove` to finish without sending the file.
    ///
    /// Without `filehash` the upload starts at once (`new`, or `resume` by
    /// `fingerprint`): send chunks while you hash the file, then declare the
    /// hashes at `/file/mupload/declare`, which may still make it `instant`.
    #[oai(path = "/init", method = "post", operation_id = "upload_init", transform = "json_body_limit")]
    async fn init(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        body: Json<InitRequest>,
    ) -> Result<Json<InitResponse>, InitErrors> {
        let filename = FileName::parse(&body.filename)?;
        let filehash = body.filehash.as_deref().map(Sha1Hex::parse).transpose()?;
        let sha256 = body.sha256.as_deref().map(Sha256Hex::parse).transpose()?;
        let filesize = body
            .filesize
            .map(u64::try_from)
            .transpose()
            .map_err(|_| ApiError::new(ErrorCode::InvalidFilesize, "filesize must not be negative"))?;
        let place = Placement {
            folder: body.folder.as_deref().filter(|f| !f.is_empty()).map(FolderId::parse).transpose()?,
            rule: super::folders::json_rule(&body.on_conflict, NameRule::Rename)?,
            if_match: body.if_match.as_deref().map(Sha256Hex::parse).transpose()?,
        };
        let fingerprint = body.fingerprint.as_deref().map(str::to_owned);
        let mtime = body.mtime.map(Mtime::parse).transpose()?;
        let source = if body.server_hashed.unwrap_or(false) {
            if filehash.is_some() || sha256.is_some() {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    "a server-hashed upload takes no filehash or sha256 (declare them later to have them checked)",
                )
                .into());
            }
            upload::Source::Server
        } else {
            upload::Source::Client { filehash, sha256, fingerprint }
        };
        let new = upload::NewUpload { filename, filesize, mtime, source, via_link: None };
        let outcome = state.services.uploads.init(&auth.0, new, &place).await?;
        Ok(Json(match outcome {
            InitOutcome::New(s, challenge) => upload_answer(InitStatus::New, &s, Vec::new(), challenge),
            InitOutcome::Resume(s, uploaded) => upload_answer(InitStatus::Resume, &s, uploaded, None),
            InitOutcome::Instant(f, plan) => instant_answer(f, plan),
        }))
    }

    /// Declare the file's hashes while its chunks are sent.
    ///
    /// For an upload begun without `filehash`: send chunks at once, hash the
    /// file meanwhile, and declare SHA-1 and SHA-256 here when ready (before
    /// `complete`, which answers 409 `HASH_NOT_DECLARED` without them). The
    /// merge verifies the file against them. `instant` (with the file) when
    /// you have this content already: the upload is over, stop sending.
    /// Otherwise `new` with the chunks the server holds, and a `challenge`
    /// when someone else stored the content (answer it at
    /// `/file/mupload/prove`, as after init). Declaring the same hashes
    /// again answers the same; other hashes get 409
    /// `HASH_ALREADY_DECLARED`; after `complete`, 409 `UPLOAD_NOT_UPLOADING`.
    #[oai(path = "/declare", method = "post", operation_id = "upload_declare", transform = "json_body_limit")]
    async fn declare(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id, from init.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
        body: Json<DeclareRequest>,
    ) -> Result<Json<InitResponse>, DeclareErrors> {
        let filehash = Sha1Hex::parse(&body.filehash)?;
        let sha256 = Sha256Hex::parse(&body.sha256)?;
        let result = state.services.uploads.declare(&auth.0, &upload_id.0, filehash, sha256).await?;
        Ok(Json(match result {
            DeclareResult::Instant(f, plan) => instant_answer(f, plan),
            DeclareResult::Continue(s, uploaded, challenge) => upload_answer(InitStatus::New, &s, uploaded, challenge),
        }))
    }

    /// Answer an init's challenge: prove you hold the file.
    ///
    /// A right answer finishes the upload at once (`instant`, with the file;
    /// the upload id is spent). Anything else (a wrong, late or repeated
    /// answer, or an upload without a challenge) answers `new` with the
    /// chunks the server holds: send the file as usual. Each challenge takes
    /// one answer.
    #[oai(path = "/prove", method = "post", operation_id = "upload_prove", transform = "json_body_limit")]
    async fn prove(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id, from init.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
        body: Json<ProveRequest>,
    ) -> Result<Json<InitResponse>, ProveErrors> {
        Ok(Json(match state.services.uploads.prove(&auth.0, &upload_id.0, &body.proof).await? {
            ProveOutcome::Instant(f, plan) => instant_answer(f, plan),
            ProveOutcome::Continue(s, uploaded) => upload_answer(InitStatus::New, &s, uploaded, None),
        }))
    }

    /// Send one chunk.
    ///
    /// The body is the chunk's raw bytes, exactly its length: longer is 413,
    /// shorter 400. Chunks may arrive in any order and in parallel, and
    /// count once their bytes are durable. One send of a chunk at a time: a
    /// second while the first is in flight gets 503 `CHUNK_BUSY` (retry
    /// after `Retry-After`). Sending a chunk again replaces it until the
    /// server's running hash has passed it (`hashed_count` in status);
    /// after that only the same bytes are accepted, other bytes get 409
    /// `CHUNK_CONFLICT`. Once the upload has every chunk (`merging` or
    /// `done`, say because an earlier run of the same client completed it),
    /// a chunk is read, dropped and answered 200 with that `state`: nothing
    /// is stored or compared, since the merge verifies the whole file. A
    /// `failed` upload answers 409 `UPLOAD_NOT_UPLOADING`. Optional
    /// `Upload-Checksum: sha1 <base64>` (the tus checksum format) is
    /// verified before a chunk counts.
    #[oai(path = "/uppart", method = "post", operation_id = "upload_part", transform = "default_octet_stream")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn uppart(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id, from init.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
        /// The chunk's index, from 0 to chunkcount-1.
        chkidx: Query<u64>,
        /// `sha1 <base64 of the chunk's SHA-1>`; when present, a chunk that
        /// does not match is refused with `CHUNK_CHECKSUM_MISMATCH`.
        #[oai(name = "Upload-Checksum", validator(pattern = r"^[Ss][Hh][Aa]1 [A-Za-z0-9+/]{26}[AEIMQUYcgkosw048]=$"))]
        upload_checksum: Header<Option<String>>,
        req: &poem::Request,
        body: Binary<Body>,
    ) -> Result<Json<ChunkReceipt>, UppartErrors> {
        let content_length = req.header("content-length").and_then(|v| v.parse().ok());
        let mut stream = body.0.into_bytes_stream();
        let received = async {
            let checksum = upload_checksum.0.as_deref().map(parse_upload_checksum).transpose()?;
            let slot = state.chunk_slots.try_take(SlotOwner::User(auth.0.id)).await?;
            let chunk = upload::ChunkRequest {
                index: chkidx.0,
                content_length,
                checksum,
                min_rate: state.settings.min_chunk_rate,
            };
            let stored = state.services.uploads.put_chunk(&auth.0, &upload_id.0, chunk, &mut stream).await;
            // Freed before the answer: the client's next chunk finds it free.
            slot.release().await;
            stored
        };
        match received.await {
            Ok(upload::ChunkOutcome::Stored(session) | upload::ChunkOutcome::NotNeeded(session)) => {
                Ok(Json(ChunkReceipt {
                    upload_id: upload_id.0,
                    chkidx: chkidx.0,
                    size: session.plan().map_or(0, |p| p.chunk_len(chkidx.0)),
                    state: session.state.into(),
                }))
            }
            Err(e) => {
                // Read what is left of the body, so a client that sends it all
                // before reading the answer gets this error, not a broken pipe.
                // Not for a client cut off for being slow: it would only stall us.
                if !e.is_slow_body() {
                    drain(&mut stream, DRAIN_LIMIT, DRAIN_TIME).await;
                }
                Err(e.into())
            }
        }
    }

    /// Send bytes from any offset.
    ///
    /// For any upload, and the only way for one whose size is not known
    /// yet (`server_hashed` without `filesize`). The body's bytes land from
    /// `offset` on. With a `Content-Length` the range is exact: a range
    /// received before is sent again whole (it replaces the earlier bytes
    /// until the running hash passes them, then only the same bytes are
    /// accepted: 409 `CHUNK_CONFLICT`), and a range that overlaps received
    /// bytes in other bounds gets 409 `RANGE_OVERLAP`. Without one
    /// (`Transfer-Encoding: chunked`) the body runs to its end and must
    /// start past every received byte. Ranges past the size get 409
    /// `SIZE_CONFLICT` (past the largest file, for an upload of unknown
    /// size: 413 `FILE_TOO_LARGE`). A long body counts every 64 MiB as it
    /// becomes durable, so a body cut off keeps what arrived before its
    /// last 64 MiB: status's `ranges` say what is there. With
    /// `Upload-Checksum: sha1 <base64>` over the whole body, none of it
    /// counts unless all of it matches (400 `CHUNK_CHECKSUM_MISMATCH`). An
    /// upload of unknown size reserves quota as its bytes come, in 64 MiB
    /// steps (507 `QUOTA_EXCEEDED` past it). Bytes of one range are sent by
    /// one request at a time (503 `CHUNK_BUSY`).
    #[oai(path = "/bytes", method = "put", operation_id = "upload_bytes", transform = "default_octet_stream")]
    #[allow(clippy::too_many_arguments, reason = "each argument is one extractor of the request")]
    async fn bytes(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id, from init.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
        /// Where in the file the body's first byte goes.
        #[oai(validator(minimum(value = "0"), maximum(value = "9223372036854775807")))]
        offset: Query<u64>,
        /// `sha1 <base64 of the body's SHA-1>`; when present, a body that
        /// does not match is refused with `CHUNK_CHECKSUM_MISMATCH` and
        /// none of it counts.
        #[oai(name = "Upload-Checksum", validator(pattern = r"^[Ss][Hh][Aa]1 [A-Za-z0-9+/]{26}[AEIMQUYcgkosw048]=$"))]
        upload_checksum: Header<Option<String>>,
        req: &poem::Request,
        body: Binary<Body>,
    ) -> Result<Json<BytesReceipt>, UppartErrors> {
        let content_length = req.header("content-length").and_then(|v| v.parse().ok());
        let mut stream = body.0.into_bytes_stream();
        let received = async {
            let checksum = upload_checksum.0.as_deref().map(parse_upload_checksum).transpose()?;
            let slot = state.chunk_slots.try_take(SlotOwner::User(auth.0.id)).await?;
            let request = upload::BytesRequest {
                offset: offset.0,
                content_length,
                checksum: checksum.map(upload::BodyChecksum::Sha1),
                min_rate: state.settings.min_chunk_rate,
            };
            let stored = state.services.uploads.put_bytes(&auth.0, &upload_id.0, request, &mut stream).await;
            slot.release().await;
            stored
        };
        match received.await {
            Ok((session, counted)) => Ok(Json(BytesReceipt {
                upload_id: upload_id.0,
                offset: offset.0,
                size: counted,
                received: session.received,
                state: session.state.into(),
            })),
            Err(e) => {
                if !e.is_slow_body() {
                    drain(&mut stream, DRAIN_LIMIT, DRAIN_TIME).await;
                }
                Err(e.into())
            }
        }
    }

    /// An upload's state and the chunks received.
    #[oai(path = "/status", method = "get", operation_id = "upload_status")]
    async fn status(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
    ) -> Result<Json<UploadStatus>, UploadErrors> {
        let (session, uploaded, file) = state.services.uploads.status(&auth.0, &upload_id.0).await?;
        Ok(Json(status_of(session, uploaded, file)))
    }

    /// Finish sending: hand the upload to the merge workers.
    ///
    /// 202 with `merging` once every chunk is in; 409 `CHUNKS_MISSING` listing
    /// the first 100 missing indexes otherwise, or 409 `HASH_NOT_DECLARED`
    /// for an upload begun without hashes that were never declared. Calling it again reports the
    /// current state and enqueues nothing. An upload begun without a size
    /// gets it here (`filesize`; 409 `SIZE_CONFLICT` when bytes were
    /// received past it, or when another size was given before), and its
    /// quota is then reserved exactly.
    #[oai(path = "/complete", method = "post", operation_id = "upload_complete")]
    async fn complete(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
        /// The file's size, for an upload begun without one (for any other,
        /// it must be the size given at init).
        #[oai(validator(minimum(value = "0"), maximum(value = "9223372036854775807")))]
        filesize: Query<Option<u64>>,
    ) -> Result<CompleteResponse, CompleteErrors> {
        let now = state.services.uploads.complete(&auth.0, &upload_id.0, filesize.0).await?;
        let body = Json(CompleteResult { upload_id: upload_id.0, state: now.into() });
        Ok(match now {
            UploadState::Uploading | UploadState::Merging => CompleteResponse::Accepted(body),
            UploadState::Done | UploadState::Failed => CompleteResponse::Finished(body),
        })
    }

    /// Cancel an upload and delete its chunks.
    ///
    /// Later calls with this id answer 404. An upload being merged cannot be
    /// aborted (409).
    #[oai(path = "/abort", method = "delete", operation_id = "upload_abort")]
    async fn abort(
        &self,
        state: Data<&AppState>,
        auth: BearerAuth,
        /// The upload's id.
        #[oai(name = "uploadID")]
        upload_id: Query<String>,
    ) -> Result<AbortResponse, UploadStateErrors> {
        state.services.uploads.abort(&auth.0, &upload_id.0).await?;
        Ok(AbortResponse::Aborted)
    }
}

/// Reads and drops what is left of a refused request body, at most `limit`
/// bytes and for at most `deadline`, so that a client that sends its whole
/// body before reading the answer (urllib, requests, many generated
/// clients) reads the JSON error instead of a broken pipe. Returns whether
/// the body ended within those bounds.
pub async fn drain<S>(body: &mut S, limit: u64, deadline: std::time::Duration) -> bool
where
    S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin,
{
    let drained = async {
        let mut seen = 0u64;
        while let Some(Ok(piece)) = futures::StreamExt::next(body).await {
            seen += piece.len() as u64;
            if seen > limit {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(deadline, drained).await.unwrap_or(false)
}

/// Parses an `Upload-Checksum: sha1 <base64 digest>` header (the tus
/// checksum extension's format).
pub fn parse_upload_checksum(header: &str) -> shared::Result<[u8; 20]> {
    use base64::Engine;
    let bad = || {
        shared::Error::invalid(
            ErrorCode::InvalidChecksumHeader,
            "Upload-Checksum must be `sha1 <base64 of the 20-byte digest>`",
        )
    };
    let (algo, value) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !algo.eq_ignore_ascii_case("sha1") {
        return Err(shared::Error::invalid(ErrorCode::UnsupportedChecksum, "Upload-Checksum supports only sha1"));
    }
    let bytes = base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}
