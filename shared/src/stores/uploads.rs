//! Upload sessions and their byte state: which segments (byte ranges)
//! arrived and which staged object holds each. Two implementations: [`sql::SqlUploads`] (the
//! embedded deployment, a table beside the metadata) and
//! [`redis::RedisUploads`] (the fleet: hashes with a TTL refreshed on
//! activity, atomic updates in Lua).

pub mod redis;
pub mod sql;

use async_trait::async_trait;

use crate::domain::error::Result;
use crate::domain::{FailureCode, Segment, UploadId, UploadSession, UploadState};

/// What `complete` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// This call moved the upload from `uploading` to `merging`: enqueue the merge.
    Started,
    /// The upload had already left `uploading`; nothing to do.
    AlreadyIn(UploadState),
    /// Some bytes have not arrived, or the size is not known yet.
    Missing,
}

/// What declaring an upload's hashes did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclareOutcome {
    /// The hashes are recorded now (none were before).
    Declared,
    /// The same hashes were declared before; nothing changed.
    Same,
    /// Other hashes were declared before; they stay.
    Different,
}

/// An open proof-of-possession challenge for one upload: the digest a client
/// holding the content would answer with, and the content it would get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingProof {
    /// The stored content the challenge is about.
    pub file_id: i64,
    /// SHA-256 (hex) of the nonce and the challenged bytes.
    pub expected: String,
    /// After this (Unix seconds) the challenge is void.
    pub expires_at: i64,
}

/// How far an upload's running hash has got: every byte below `next` has
/// been hashed, in order, into `state` (a saved
/// [`crate::domain::hashing::ContentHasher`]); `next` is always the end of a
/// received segment. Those bytes never change again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashProgress {
    /// The first byte not hashed yet.
    pub next: u64,
    /// The hasher's saved state after byte `next - 1` (empty when `next` is 0).
    pub state: Vec<u8>,
}

impl HashProgress {
    /// The progress as a store keeps it: `next` and the state in hex.
    pub(crate) fn from_stored(next: u64, state_hex: Option<String>) -> crate::domain::error::Result<Self> {
        let state = state_hex
            .map(|s| hex::decode(s).map_err(|_| crate::Error::internal("reading upload session", "corrupt hash_state")))
            .transpose()?
            .unwrap_or_default();
        Ok(HashProgress { next, state })
    }
}

/// A received segment and the staged object that holds its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The bytes it covers.
    pub segment: Segment,
    /// Where they are staged (with the segment's offset, on a store that
    /// keeps an upload in one data file).
    pub key: String,
}

/// The lease a process holds while it advances an upload's running hash.
pub const HASH_LEASE: &str = "hash";

/// The prefix of every segment lease's name.
pub const SEGMENT_LEASE_PREFIX: &str = "bytes:";

/// The lease a process holds while it writes (or compares, or hashes) the
/// bytes of `segment`. Two segment leases whose bytes overlap are never
/// held at once by two holders: one writer per byte.
/// Fixed width, so no segment's lease name is a prefix of another's.
pub fn segment_lease(segment: Segment) -> String {
    format!("{SEGMENT_LEASE_PREFIX}{:016x}-{:016x}", segment.start, segment.end())
}

/// The segment a lease name from [`segment_lease`] covers.
pub fn leased_segment(name: &str) -> Option<Segment> {
    let (start, end) = name.strip_prefix(SEGMENT_LEASE_PREFIX)?.split_once('-')?;
    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
    (end > start).then_some(Segment { start, len: end - start })
}

/// Everything pan keeps about uploads in progress, in one store (SQL or
/// Redis), seen through four roles: a use case asks for the ones it uses.
pub trait UploadStore: UploadSessions + SegmentMap + HashLeases + Challenges {}

impl<T: UploadSessions + SegmentMap + HashLeases + Challenges> UploadStore for T {}

/// Upload sessions: their life from `create` to `done` or gone.
///
/// Sessions left idle longer than the upload TTL count as gone: `get` no longer
/// returns them, whether or not their storage has been swept yet.
#[async_trait]
pub trait UploadSessions: Send + Sync {
    /// Stores a new session in state `uploading`.
    async fn create(&self, session: &UploadSession) -> Result<()>;

    /// The caller's unfinished (`uploading`) session for this content (its
    /// declared SHA-1, SHA-256 and size), if any.
    async fn find_resumable(
        &self,
        owner: i64,
        filehash: &str,
        sha256: &str,
        filesize: u64,
    ) -> Result<Option<UploadSession>>;

    /// The caller's unfinished (`uploading`) session of `filesize` bytes
    /// started with this client fingerprint, if any (the newest).
    async fn find_by_fingerprint(&self, owner: i64, fingerprint: &str, filesize: u64) -> Result<Option<UploadSession>>;

    /// Records the whole file's hashes of an upload that began without them:
    /// a compare-and-set, only while the session is `uploading`, so of two
    /// different declarations one wins and the other gets
    /// [`DeclareOutcome::Different`]. Errors: [`crate::Error::UploadNotFound`],
    /// [`crate::Error::NotUploading`]. `session` is as the caller read it
    /// (its id, owner and size, which never change).
    async fn declare_hashes(&self, session: &UploadSession, filehash: &str, sha256: &str) -> Result<DeclareOutcome>;

    /// A live session by id, whoever owns it (ownership is the caller's check).
    async fn get(&self, id: &UploadId) -> Result<Option<UploadSession>>;

    /// A live session and its received segments, in order, in one round
    /// trip where the store allows (status is polled hard).
    async fn get_with_segments(&self, id: &UploadId) -> Result<Option<(UploadSession, Vec<Segment>)>>;

    /// Moves the session from `uploading` to `merging` if its size is known
    /// and every byte is in: a compare-and-set, so exactly one caller gets
    /// [`CompleteOutcome::Started`]. A `failed` session whose segments are all
    /// still recorded (its merge hit a full disk, say) starts again the same
    /// way; one whose segments were forgotten stays `failed`.
    async fn start_merge(&self, id: &UploadId, now: i64) -> Result<CompleteOutcome>;

    /// Ends a merge: moves the session from `merging` to `state` (`done` or
    /// `failed`) with the failure's code and message and the entry it
    /// produced, refreshing its TTL.
    /// A compare-and-set: when the session is not `merging` any more (another
    /// worker finished the same job first) nothing changes and `false` comes back.
    async fn finish_merge(
        &self,
        id: &UploadId,
        state: UploadState,
        failure: Option<(FailureCode, &str)>,
        entry_id: Option<&str>,
        now: i64,
    ) -> Result<bool>;

    /// A running merge's heartbeat: sets the session's `updated_at` to `now`
    /// if it is still `merging` (false otherwise: nothing to keep alive).
    async fn touch_merge(&self, id: &UploadId, now: i64) -> Result<bool>;

    /// Uploads `merging` whose heartbeat is older than `before`: their merge
    /// job was lost (a failed push, a crash between the state change and the
    /// push, a queue that forgot it). The sweeper enqueues them again.
    async fn stale_merges(&self, before: i64, limit: u64) -> Result<Vec<UploadId>>;

    /// Forgets a session and its segments unless it is `merging` (a
    /// compare-and-set, so an abort or the sweeper never pulls an upload
    /// from under a merge). Returns the state it had when deleted (`None`:
    /// not deleted, being merged or gone).
    async fn delete_unless_merging(&self, id: &UploadId) -> Result<Option<UploadState>>;

    /// Ids of `uploading`, `failed` or `done` sessions idle since before
    /// `cutoff`, for the sweeper: abandoned uploads and finished records
    /// (Redis expires its own and returns none).
    async fn idle_since(&self, cutoff: i64, limit: u64) -> Result<Vec<UploadId>>;

    /// A cheap round trip, for readiness checks.
    async fn health_check(&self) -> Result<()>;
}

/// Which bytes of an upload arrived, as segments, and where each is staged.
/// An upload's segments never overlap.
#[async_trait]
pub trait SegmentMap: Send + Sync {
    /// Received segments, in order of their offsets.
    async fn segments(&self, id: &UploadId) -> Result<Vec<Staged>>;

    /// The received segment that starts at `start`, when there is one.
    async fn segment_at(&self, id: &UploadId, start: u64) -> Result<Option<Staged>>;

    /// The received segments that share a byte with `segment`, in order.
    async fn overlapping(&self, id: &UploadId, segment: Segment) -> Result<Vec<Staged>>;

    /// Records that `segment` is staged under `object_key`, atomically, only
    /// while the session is `uploading` and, when its size is known, within
    /// it; adds its length to the bytes received and refreshes the session's
    /// TTL. A received segment of the same bounds is replaced (its key comes
    /// back, now unreferenced); one that overlaps otherwise refuses it.
    /// Errors: [`crate::Error::UploadNotFound`], [`crate::Error::NotUploading`],
    /// [`crate::Error::RangeOverlap`], [`crate::Error::SizeConflict`] (past the size),
    /// [`crate::Error::TooManySegments`] (a new segment past `max_segments`).
    async fn mark_segment(
        &self,
        id: &UploadId,
        segment: Segment,
        object_key: &str,
        now: i64,
        max_segments: u64,
    ) -> Result<Option<String>>;

    /// Gives an upload begun without a size its size: only while it is
    /// `uploading` with none, and not below the end of a received segment.
    /// The same size again is success. Errors: [`crate::Error::UploadNotFound`],
    /// [`crate::Error::NotUploading`], [`crate::Error::SizeConflict`].
    async fn set_size(&self, id: &UploadId, size: u64, now: i64) -> Result<()>;

    /// Forgets the segments (after a final failure deleted their bytes).
    async fn forget_segments(&self, id: &UploadId) -> Result<()>;

    /// Sets where an upload's file goes (name, folder, modification time,
    /// whether it replaces a file there) and the SHA-1 it must have, only while it is `uploading`
    /// (WebDAV's chunked upload names its file at the end). Errors:
    /// [`crate::Error::UploadNotFound`], [`crate::Error::NotUploading`].
    async fn set_destination(&self, id: &UploadId, dest: &Destination<'_>, now: i64) -> Result<()>;
}

/// Where an upload's file goes, as [`SegmentMap::set_destination`] sets it.
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The file's name.
    pub filename: &'a str,
    /// Its folder (`None`: the root).
    pub folder: Option<&'a str>,
    /// Its modification time (`None`: when the upload finishes).
    pub mtime: Option<i64>,
    /// Whether it replaces the file of that name there.
    pub replace: bool,
    /// The SHA-1 the client says the content has (checked by the merge).
    pub filehash: Option<&'a str>,
}

/// Leases (one writer per byte, one advancer of the running hash) and the
/// running hash's saved progress.
#[async_trait]
pub trait HashLeases: Send + Sync {
    /// Takes (or renews) the lease `name` of upload `id` for `holder`, for
    /// `ttl_ms` milliseconds from `now_ms`: succeeds when the lease is free,
    /// expired, or `holder`'s already, and (a [`segment_lease`]) when no
    /// other holder's unexpired segment lease overlaps its bytes. Leases
    /// end with the session.
    async fn acquire_lease(&self, id: &UploadId, name: &str, holder: &str, now_ms: i64, ttl_ms: i64) -> Result<bool>;

    /// Gives the lease back, if `holder` still holds it.
    async fn release_lease(&self, id: &UploadId, name: &str, holder: &str) -> Result<()>;

    /// How many unexpired leases on upload `id` have names starting with
    /// `prefix` (the merge waits until no byte is being written).
    async fn leases_held(&self, id: &UploadId, prefix: &str, now_ms: i64) -> Result<u64>;

    /// The running hash's progress (the default, nothing hashed, when none
    /// was saved).
    async fn hash_progress(&self, id: &UploadId) -> Result<HashProgress>;

    /// Saves the running hash's progress, only while `holder` holds the
    /// [`HASH_LEASE`] (unexpired at `now_ms`) and the session is `uploading`
    /// or `merging`; returns whether it was saved.
    async fn save_hash_progress(
        &self,
        id: &UploadId,
        holder: &str,
        progress: &HashProgress,
        now_ms: i64,
    ) -> Result<bool>;
}

/// Proof-of-possession challenges of uploads whose content is stored already.
#[async_trait]
pub trait Challenges: Send + Sync {
    /// Stores the proof-of-possession challenge of an upload (replacing any).
    async fn put_challenge(&self, id: &UploadId, proof: &PendingProof) -> Result<()>;

    /// Takes the upload's challenge: single use (a second take finds none),
    /// and `None` once it has expired.
    async fn take_challenge(&self, id: &UploadId, now: i64) -> Result<Option<PendingProof>>;
}
