//! The upload use cases, independent of HTTP: what `init`, `uppart`,
//! `status`, `complete` and `abort` do to the backends. The api's handlers
//! parse input, call one of these, and shape the answer.

pub mod cleanup;
pub mod merge;
pub mod receive;
pub mod running_hash;
pub mod tus;

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;

use crate::accounts::Accounts;
use crate::domain::error::{Error, ErrorCode, Result, ResultExt};
use crate::domain::{
    ChunkPlan, FileName, Mtime, NameRule, Placement, Segment, Sha1Hex, Sha256Hex, StoredFile, TreeItem, UploadId,
    UploadSession, UploadState, User, UserFile,
};
use crate::files::ByteRange;
use crate::files::Files;
use crate::files::links::ChallengeSeed;
use crate::stores::meta::{MetaRepo, NewUserFile};
use crate::stores::objects::{self, Store};
use crate::stores::queue::{MergeJob, Queue};
use crate::stores::uploads::{self, CompleteOutcome, DeclareOutcome, PendingProof, Staged, UploadStore};
use crate::tree::Tree;
use running_hash::RunningHash;

/// How often a running merge refreshes its upload's heartbeat (`updated_at`).
pub const MERGE_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// How many missing indexes a `CHUNKS_MISSING` error lists.
pub const MISSING_LISTED: usize = 100;

/// How long a proof-of-possession challenge can be answered, in seconds.
pub const CHALLENGE_TTL: i64 = 60;
/// How many byte ranges a challenge names (more for bigger files), and the
/// most bytes each covers.
const CHALLENGE_RANGES: (u32, u32) = (3, 8);
const CHALLENGE_RANGE_LEN: u64 = 64 << 10;
/// How many of a content's challenges may fail (wrong or unanswered) within
/// [`CHALLENGE_WINDOW`] before it offers no cross-user instant upload.
pub const CHALLENGE_FAILURES: u64 = 3;
/// The window, in seconds, in which failed challenges count.
pub const CHALLENGE_WINDOW: i64 = 86_400;

/// What `init` decided.
#[derive(Debug)]
pub enum InitOutcome {
    /// A new upload; send every chunk. With a challenge when the content is
    /// stored already (by someone else): answering it proves the caller
    /// holds the bytes and finishes the upload at once.
    New(UploadSession, Option<Challenge>),
    /// The caller's unfinished upload of the same content; send the missing chunks.
    Resume(UploadSession, Vec<u64>),
    /// The caller already has this content: a new entry for it where the
    /// upload was to go (or the same one, when it is there already), no
    /// bytes needed.
    Instant(UserFile, ChunkPlan),
}

/// A proof-of-possession challenge as the client gets it: send the SHA-256 of
/// the nonce's bytes followed by the bytes of each range, in order.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// 16 random bytes, hex.
    pub nonce: String,
    /// The byte ranges of the file to hash, in order.
    pub ranges: Vec<crate::files::ByteRange>,
    /// When the challenge stops being accepted (Unix seconds).
    pub expires_at: i64,
}

/// What a client says about the file it starts to upload.
#[derive(Debug, Clone)]
pub struct NewUpload {
    /// The name to list it under.
    pub filename: FileName,
    /// Its size in bytes; `None` (a server-hashed upload only) when it is
    /// known only once the last byte has arrived.
    pub filesize: Option<u64>,
    /// Its modification time, when the client gave one (the entry's; else
    /// the time the upload finishes).
    pub mtime: Option<Mtime>,
    /// Who vouches for the content's identity.
    pub source: Source,
    /// The upload link it comes through (`None`: the owner's own upload).
    pub via_link: Option<String>,
}

/// Who vouches for an upload's content.
#[derive(Debug, Clone)]
pub enum Source {
    /// The client, by the hashes it declares (pan's own protocol): at init,
    /// or later ([`Uploads::declare`]) while the chunks flow. The merge
    /// checks the file against them; content stored already may be instant.
    Client {
        /// Its SHA-1, when the client hashed it first; `None`: declared later.
        filehash: Option<Sha1Hex>,
        /// Its SHA-256 (only with `filehash`).
        sha256: Option<Sha256Hex>,
        /// The client's own token for the file, by which an init without
        /// hashes finds the upload to resume.
        fingerprint: Option<String>,
    },
    /// Nobody (WebDAV, tus): the server's running hash is the identity.
    /// Instant upload is never offered, and `complete` needs no
    /// declaration.
    Server,
    /// A tus partial upload (concatenation): server-hashed bytes that never
    /// become a file by themselves; a final upload takes them, in order.
    TusPartial,
}

/// Whether content (its hashes and size) is stored already, for whom.
enum Known {
    /// The caller has it: here is their entry for it where the upload was
    /// to go (made now, or the one of that name there already).
    Own(UserFile),
    /// Someone else stored it (and cross-user instant upload is on).
    Elsewhere(StoredFile),
    /// Not stored, or not matched.
    Unknown,
}

/// What declaring an upload's hashes led to.
#[derive(Debug)]
pub enum DeclareResult {
    /// The caller has this content already: the file is theirs where the
    /// upload was to go, the upload is gone (stop sending).
    Instant(UserFile, ChunkPlan),
    /// Go on sending (the received chunks listed); with a challenge when
    /// someone else stored the content, as at init.
    Continue(Box<UploadSession>, Vec<u64>, Option<Challenge>),
}

/// What an answer to a challenge led to.
#[derive(Debug)]
pub enum ProveOutcome {
    /// The proof matched: the caller has the file, the upload is gone.
    Instant(UserFile, ChunkPlan),
    /// No match (wrong, late, repeated, or no challenge): go on uploading.
    Continue(Box<UploadSession>, Vec<u64>),
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request says about the chunk its body carries.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRequest {
    /// The chunk's index.
    pub index: u64,
    /// The body's declared length, when the request has one.
    pub content_length: Option<u64>,
    /// The chunk's SHA-1 from `Upload-Checksum`, when given.
    pub checksum: Option<[u8; 20]>,
    /// Slowest acceptable average rate after the grace period (bytes/s; 0: none).
    pub min_rate: u64,
}

/// What a request says about the bytes its body carries.
#[derive(Debug, Clone, Copy)]
pub struct BytesRequest {
    /// The offset of its first byte in the file.
    pub offset: u64,
    /// The body's declared length, when the request has one; without one
    /// the body runs to its end (past every received byte only).
    pub content_length: Option<u64>,
    /// The digest of the whole body (`Upload-Checksum`), when given: no
    /// byte of the body counts unless all of it matches.
    pub checksum: Option<BodyChecksum>,
    /// Slowest acceptable rate, as for a chunk.
    pub min_rate: u64,
}

/// A whole body's expected digest (`Upload-Checksum`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyChecksum {
    /// `sha1 <base64>`.
    Sha1([u8; 20]),
    /// `sha256 <base64>` (the tus front door takes it too).
    Sha256([u8; 32]),
}

impl BodyChecksum {
    /// The digest's bytes.
    fn bytes(&self) -> &[u8] {
        match self {
            BodyChecksum::Sha1(b) => b,
            BodyChecksum::Sha256(b) => b,
        }
    }

    /// A fresh digest of the same algorithm.
    fn digest(&self) -> receive::BodyDigest {
        match self {
            BodyChecksum::Sha1(_) => receive::BodyDigest::Sha1(<sha1::Sha1 as sha1::Digest>::new()),
            BodyChecksum::Sha256(_) => receive::BodyDigest::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
        }
    }
}

/// The most bytes one segment holds: a long body becomes durable (and
/// counts, so a crash keeps it) at least this often, and an upload of
/// unknown size reserves quota in steps of this.
pub const SEGMENT_MAX: u64 = 64 << 20;

/// What became of a chunk's send.
#[derive(Debug)]
pub enum ChunkOutcome {
    /// The chunk counts: its bytes are stored (or, sent again after the
    /// running hash passed it, equal to the stored ones).
    Stored(UploadSession),
    /// The upload needs no chunks any more (`merging` or `done`, as the
    /// session says): the body was read and dropped.
    NotNeeded(UploadSession),
}

/// What [`Uploads::receive_leased`] did.
enum Received {
    /// The segment counts, with this many bytes (0: an open-ended body had
    /// none left). `fresh`: staged by this send (its mark may wait); else
    /// the same bytes as a segment marked and hashed before, which is left
    /// as it is (this send's failures never touch it).
    Stored { staged: Staged, fresh: bool },
    /// The upload left `uploading` for `merging` or `done` before the bytes
    /// were looked at: here it is now.
    Settled(Box<UploadSession>),
}

/// One segment's send as the engine receives it.
#[derive(Debug, Clone, Copy)]
struct SegmentSend {
    /// Where its bytes go: from `start`, at most `len` of them.
    room: Segment,
    /// How many the body must hold.
    expect: receive::Expect,
    /// Its chunk index, when it is a chunk (errors name it so).
    index: Option<u64>,
    /// Whether its mark waits (for a checksum over several segments).
    defer_mark: bool,
}

impl SegmentSend {
    fn what(&self) -> String {
        receive::describe(self.room, self.index)
    }
}

/// Where a session's file goes, and by which rule: a name taken meanwhile
/// is numbered (the bytes are in by then), unless the upload replaces.
pub(crate) fn placement_of(session: &UploadSession) -> Placement {
    Placement {
        folder: session.folder.clone(),
        rule: if session.replace { NameRule::Replace } else { NameRule::Rename },
        if_match: session.if_match.clone(),
    }
}

/// The chunk view of a session whose size is known.
fn chunk_plan(session: &UploadSession) -> Result<ChunkPlan> {
    session.plan().ok_or_else(|| {
        Error::invalid(
            ErrorCode::InvalidChunkIndex,
            "this upload's size is not known yet: it takes bytes (PUT /file/mupload/bytes), not chunks",
        )
    })
}

/// Reads and drops the body of a chunk `session` does not need (it is
/// `merging` or `done`), held to the length, idle and rate rules; nothing is
/// stored or compared.
async fn not_needed<S>(session: UploadSession, chunk: ChunkRequest, body: &mut S) -> Result<ChunkOutcome>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
{
    let rules = receive::BodyRules { checksum: None, min_rate: chunk.min_rate };
    let len = chunk_plan(&session)?.chunk_len(chunk.index);
    receive::discard_chunk(&format!("chunk {}", chunk.index), len, rules, body).await?;
    tracing::info!(upload = %session.id, index = chunk.index, state = %session.state, "chunk not needed: the upload has all its chunks");
    Ok(ChunkOutcome::NotNeeded(session))
}

/// The upload use cases of one installation.
#[derive(Clone)]
pub struct Uploads {
    pub(crate) repo: Arc<dyn MetaRepo>,
    /// Upload sessions, chunk marks, leases, challenges.
    pub(crate) sessions: Arc<dyn UploadStore>,
    /// Where chunks are staged.
    pub(crate) staging: Store,
    /// Where finished files are stored.
    pub(crate) file_store: Store,
    /// Where merge jobs go.
    pub(crate) merges: Queue<MergeJob>,
    pub(crate) hash: RunningHash,
    pub(crate) accounts: Accounts,
    pub(crate) tree: Tree,
    pub(crate) files: Files,
    /// Seeds the challenge ranges: never rotated, so a content's ranges
    /// never change.
    pub(crate) challenge_seed: ChallengeSeed,
    pub(crate) limits: Arc<UploadLimits>,
}

/// The upload limits in effect, from the settings.
#[derive(Debug, Clone)]
pub struct UploadLimits {
    /// The largest file (`PAN_MAX_FILE_SIZE`).
    pub max_file_size: u64,
    /// The preferred chunk size (`PAN_CHUNK_SIZE`).
    pub chunk_size: u64,
    /// The most chunks one upload has (`PAN_MAX_CHUNKS`).
    pub max_chunks: u64,
    /// Whether content another user stored can be instant, after a proof
    /// (`PAN_INSTANT_ACROSS_USERS`).
    pub instant_across_users: bool,
    /// Seconds without a heartbeat after which a merge counts as stalled
    /// (`PAN_MERGE_STALL_SECS`).
    pub merge_stall_secs: u64,
    /// Threads one merge hashes and copies with (`PAN_MERGE_THREADS`).
    pub merge_threads: u64,
    /// Seconds an idle upload lives (`PAN_UPLOAD_TTL`).
    pub upload_ttl: u64,
    /// Bytes of staging's file system kept free (`PAN_DISK_RESERVE`).
    pub disk_reserve: u64,
}

impl Uploads {
    /// Starts (or resumes) an upload of `new.filesize` bytes. With hashes
    /// (`filehash` and, when the client says so, `sha256`) the content may be
    /// known already; without them the upload starts at once and the client
    /// declares the hashes later ([`declare`]), which can still end it
    /// instantly.
    ///
    /// Content is matched on (SHA-256, size) only, never on SHA-1 alone: without
    /// a declared SHA-256 the answer is always a new upload (the merge still
    /// stores known content once). The caller's own content is instant; someone
    /// else's comes with a challenge (unless `PAN_INSTANT_ACROSS_USERS` is off),
    /// so that knowing hashes and a size is never enough to get a file. An
    /// init with hashes resumes by them; one without, by its fingerprint.
    ///
    /// The file goes where `place` says. With [`NameRule::Refuse`] a taken
    /// name is refused here; a name taken while the upload runs gets the
    /// `name (n).ext` rule when it finishes (the bytes are in by then).
    pub async fn init(&self, user: &User, new: NewUpload, place: &Placement) -> Result<InitOutcome> {
        self.init_as(user, new, place, None).await
    }

    /// The upload id [`Uploads::init_keyed`] gives the caller's upload
    /// named `key`: derived from the user and the key, so every api process
    /// finds the same upload by the client's own name for it (ownership is
    /// still checked: knowing an id grants nothing).
    pub fn keyed_id(user: &User, key: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("pan keyed upload\0{}\0{key}", user.id).as_bytes());
        hex::encode(&digest[..16])
    }

    /// Starts a server-hashed upload of unknown size whose id is the
    /// caller's `key` ([`Uploads::keyed_id`]): WebDAV's chunked uploads,
    /// whose client names its upload directory. [`Error::NameTaken`] when
    /// the caller has an upload of that key already.
    pub async fn init_keyed(&self, user: &User, new: NewUpload, place: &Placement, key: &str) -> Result<UploadSession> {
        if !matches!(new.source, Source::Server) {
            return Err(Error::internal("a keyed upload", "only server-hashed uploads are keyed"));
        }
        let id = UploadId::parse(&Self::keyed_id(user, key))?;
        if self.sessions.get(&id).await?.is_some() {
            return Err(Error::NameTaken { name: key.to_owned() });
        }
        match self.init_as(user, new, place, Some(id)).await? {
            InitOutcome::New(session, _) => Ok(session),
            other => Err(Error::internal("a keyed upload", format!("init answered {other:?}"))),
        }
    }

    /// Names where an uploading upload's file goes, once the client says so
    /// (WebDAV's chunked upload, at its final MOVE): checked like a
    /// placement at init. With `filehash`, the merge checks the content
    /// against it (a mismatch fails the upload, nothing is stored).
    pub async fn retarget(
        &self,
        user: &User,
        id: &str,
        (filename, place): (&FileName, &Placement),
        mtime: Option<Mtime>,
        filehash: Option<&Sha1Hex>,
    ) -> Result<()> {
        let session = self.owned_session(user, id).await?;
        self.tree.check_placement(user, filename, place, None).await?;
        let dest = crate::stores::uploads::Destination {
            filename: filename.as_str(),
            folder: place.folder.as_ref().map(|f| f.as_str()),
            mtime: mtime.map(Mtime::secs),
            replace: place.rule == NameRule::Replace,
            filehash: filehash.map(|h| h.as_str()),
        };
        self.sessions.set_destination(&session.id, &dest, crate::now()).await
    }

    #[tracing::instrument(name = "init upload", skip(self, user, new, place), fields(user = user.id))]
    async fn init_as(
        &self,
        user: &User,
        new: NewUpload,
        place: &Placement,
        id: Option<UploadId>,
    ) -> Result<InitOutcome> {
        let NewUpload { filename, filesize, mtime, source, via_link } = new;
        let mtime = mtime.map(Mtime::secs);
        let server_hashed = matches!(source, Source::Server | Source::TusPartial);
        let (filehash, sha256, fingerprint) = match source {
            Source::Client { filehash, sha256, fingerprint } => (filehash, sha256, fingerprint),
            Source::Server => (None, None, None),
            // Marked by a fingerprint no client can send (it holds a space).
            Source::TusPartial => (None, None, Some(tus::PARTIAL_MARK.to_owned())),
        };
        if filesize.is_none() && !server_hashed {
            return Err(Error::invalid(
                ErrorCode::InvalidFilesize,
                "filesize is needed, unless the upload is server-hashed (its size can come at complete)",
            ));
        }
        if let Some(filesize) = filesize.filter(|&n| n > self.limits.max_file_size) {
            return Err(Error::TooLarge {
                code: ErrorCode::FileTooLarge,
                message: format!("filesize {filesize} is above the limit of {} bytes", self.limits.max_file_size),
            });
        }
        if filehash.is_none() && sha256.is_some() {
            return Err(Error::invalid(
                ErrorCode::FilehashRequired,
                "sha256 needs filehash: give both, or neither and declare them later",
            ));
        }
        let mut known = None;
        let chunk_size = match filesize {
            Some(size) => ChunkPlan::for_file(size, self.limits.chunk_size, self.limits.max_chunks).chunk_size,
            None => self.limits.chunk_size,
        };
        let now = crate::now();
        if let (Some(filehash), Some(sha256), Some(filesize)) = (&filehash, &sha256, filesize) {
            let plan = ChunkPlan::with_chunk_size(filesize, chunk_size);
            self.tree.check_placement(user, &filename, place, Some((sha256.as_str(), filesize as i64))).await?;
            match self.known_content(user, filename.as_str(), place, filehash, sha256, filesize, mtime, None).await? {
                Known::Own(file) => return Ok(InitOutcome::Instant(file, plan)),
                Known::Elsewhere(stored) => known = Some(stored),
                Known::Unknown => {}
            }
            if let Some(session) =
                self.sessions.find_resumable(user.id, filehash.as_str(), sha256.as_str(), filesize).await?
            {
                let uploaded = self.received_chunks(&session).await?;
                return Ok(InitOutcome::Resume(session, uploaded));
            }
        } else {
            self.tree.check_placement(user, &filename, place, None).await?;
        }
        if filehash.is_none()
            && !server_hashed
            && let Some(fingerprint) = &fingerprint
            && let Some(filesize) = filesize
            && let Some(session) = self.sessions.find_by_fingerprint(user.id, fingerprint, filesize).await?
        {
            let uploaded = self.received_chunks(&session).await?;
            return Ok(InitOutcome::Resume(session, uploaded));
        }
        // The upload's declared size is reserved in the quota under its id
        // before the session exists (the clean-up releases a hold whose
        // session never came).
        // (A size not known yet is reserved as the bytes arrive.)
        let id = id.unwrap_or_else(UploadId::generate);
        if place.rule == NameRule::Replace {
            self.files.reserve_replacing(user, id.as_str(), filesize.unwrap_or(0), true).await?;
        } else {
            self.accounts.reserve(user, id.as_str(), filesize.unwrap_or(0), true).await?;
        }
        // The caller's own limits answer first; then whether the disk has room.
        if let Err(e) = self.check_staging_room(filesize.unwrap_or(0)).await {
            self.accounts.release_quietly(id.as_str()).await;
            return Err(e);
        }
        let session = UploadSession {
            id,
            owner: user.id,
            filename: filename.as_str().to_owned(),
            // A hash-first upload resumes by its hashes: the fingerprint is kept
            // only for uploads that need it, so both stores find the same ones.
            fingerprint: fingerprint.filter(|_| filehash.is_none()),
            filehash,
            sha256,
            server_hashed,
            size: filesize,
            chunk_size,
            received: 0,
            state: UploadState::Uploading,
            reason: None,
            reason_code: None,
            entry_id: None,
            folder: place.folder.clone(),
            mtime,
            replace: place.rule == NameRule::Replace,
            if_match: place.if_match.clone(),
            author: user.author.clone(),
            via_link,
            merge_started_at: None,
            hashed: 0,
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = self.sessions.create(&session).await {
            self.accounts.release_quietly(session.id.as_str()).await;
            return Err(e);
        }
        crate::runtime::metrics::UPLOADS_CREATED.inc();
        tracing::info!(upload = %session.id, size = ?session.size, chunk_size, server_hashed, "upload created");
        let challenge = match known {
            Some(stored) => self.challenge(user, &session.id, &stored).await?,
            None => None,
        };
        Ok(InitOutcome::New(session, challenge))
    }

    /// Looks the declared content up for instant upload, as init and declare
    /// do: the caller's own first, in one query whatever is stored elsewhere
    /// (with cross-user instant upload off, nothing here takes longer when
    /// someone else has the content: no timing oracle). Content whose SHA-1
    /// differs from the declared one is a wrong declaration: a normal upload
    /// follows, and its merge fails.
    #[allow(clippy::too_many_arguments)]
    async fn known_content(
        &self,
        user: &User,
        filename: &str,
        place: &Placement,
        filehash: &Sha1Hex,
        sha256: &Sha256Hex,
        filesize: u64,
        mtime: Option<i64>,
        upload: Option<&UploadId>,
    ) -> Result<Known> {
        let own = self.repo.own_entry(user.id, sha256.as_str(), filesize as i64).await?;
        if own.is_some_and(|e| e.filehash == filehash.as_str()) {
            // A new entry takes room in the quota like any other: the
            // upload's own hold, or one made for it here.
            let made = match upload {
                Some(_) => None,
                None => {
                    let hold = crate::random_hex(16);
                    match self.accounts.reserve(user, &hold, filesize, false).await {
                        Ok(()) => Some(hold),
                        // The same content under the same name there adds
                        // nothing: still instant, however full the quota.
                        Err(e @ Error::QuotaExceeded { .. }) => {
                            let folder = place.folder.as_ref().map(|f| f.as_str()).unwrap_or("");
                            let there = self.repo.children_named(user.id, folder, filename).await?;
                            return there
                                .into_iter()
                                .find_map(|i| match i {
                                    TreeItem::File(f)
                                        if f.sha256.as_deref() == Some(sha256.as_str())
                                            && f.filesize == filesize as i64 =>
                                    {
                                        Some(Known::Own(f))
                                    }
                                    _ => None,
                                })
                                .ok_or(e);
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            let hold = upload.map(|id| id.as_str()).or(made.as_deref());
            let entry = NewUserFile {
                user_id: user.id,
                filehash: filehash.as_str(),
                sha256: sha256.as_str(),
                filesize: filesize as i64,
                filename,
                folder: place.folder.as_ref().map(|f| f.as_str()),
                rule: place.rule,
                now: crate::now(),
                mtime,
                hold,
                if_match: place.if_match.as_ref().map(|h| h.as_str()),
                author: &user.author,
            };
            let linked = self.repo.link_existing(&entry).await;
            if let Some(made) = &made
                && !matches!(linked, Ok(Some(_)))
            {
                self.accounts.release_quietly(made).await;
            }
            if let Some(placed) = linked? {
                self.tree.delete_contents(&placed.orphans).await;
                let file = placed.entry;
                tracing::info!(entry = %file.id, "instant upload: the caller has this content");
                crate::runtime::metrics::UPLOADS_INSTANT.inc();
                return Ok(Known::Own(file));
            }
        } else if self.limits.instant_across_users
            && let Some(stored) = self
                .repo
                .stored_file(sha256.as_str(), filesize as i64)
                .await?
                .filter(|s| s.filehash == filehash.as_str())
        {
            return Ok(Known::Elsewhere(stored));
        }
        Ok(Known::Unknown)
    }

    /// Declares the whole file's SHA-1 and SHA-256 of an upload that began
    /// without them, while its chunks flow. Once declared they stay: the same
    /// again is fine (and answers the same), others are
    /// [`Error::HashAlreadyDeclared`]. Content the caller has ends the upload
    /// at once; someone else's gets a challenge, answered at [`prove`]. The
    /// merge verifies the file against what was declared.
    #[tracing::instrument(name = "declare hashes", skip(self, user), fields(user = user.id))]
    pub async fn declare(&self, user: &User, id: &str, filehash: Sha1Hex, sha256: Sha256Hex) -> Result<DeclareResult> {
        let mut session = self.owned_session(user, id).await?;
        if session.state != UploadState::Uploading {
            return Err(Error::NotUploading { state: session.state.to_string() });
        }
        match self.sessions.declare_hashes(&session, filehash.as_str(), sha256.as_str()).await? {
            DeclareOutcome::Declared | DeclareOutcome::Same => {}
            DeclareOutcome::Different => return Err(Error::HashAlreadyDeclared),
        }
        let place = placement_of(&session);
        let size = session.size.unwrap_or_default();
        // A server-hashed upload only gets its declaration checked by the merge.
        let known = if session.server_hashed {
            Known::Unknown
        } else {
            self.known_content(
                user,
                &session.filename,
                &place,
                &filehash,
                &sha256,
                size,
                session.mtime,
                Some(&session.id),
            )
            .await?
        };
        let challenge = match known {
            Known::Own(file) => {
                // Nothing more to receive: chunks sent meanwhile go with the upload.
                if self.sessions.delete_unless_merging(&session.id).await?.is_some() {
                    self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
                }
                return Ok(DeclareResult::Instant(file, chunk_plan(&session)?));
            }
            Known::Elsewhere(stored) => self.challenge(user, &session.id, &stored).await?,
            Known::Unknown => None,
        };
        tracing::info!(upload = %session.id, "hashes declared");
        (session.filehash, session.sha256) = (Some(filehash), Some(sha256));
        let uploaded = self.received_chunks(&session).await?;
        Ok(DeclareResult::Continue(Box::new(session), uploaded, challenge))
    }

    /// [`Error::DiskFull`] unless an upload of `size` bytes, whose hold is
    /// recorded already, fits in staging: its free space, less what the
    /// other open uploads still reserve (all users; bytes they staged
    /// already count twice, which errs on the safe side) and the reserve. A
    /// store that cannot tell (S3) is not checked.
    async fn check_staging_room(&self, size: u64) -> Result<()> {
        let Some(free) = self.staging.free_space().await? else { return Ok(()) };
        let expected = self.repo.upload_bytes_held().await?.saturating_sub(size);
        let room = free.saturating_sub(expected).saturating_sub(self.limits.disk_reserve);
        if size > room {
            tracing::warn!(
                size,
                free,
                expected,
                reserve = self.limits.disk_reserve,
                "init refused: staging is too full"
            );
            return Err(Error::DiskFull {
                what: "starting an upload",
                source: std::io::Error::new(
                    std::io::ErrorKind::StorageFull,
                    format!("{size} bytes do not fit: {free} free, {expected} expected by open uploads"),
                ),
            });
        }
        Ok(())
    }

    /// Makes and records a challenge on `stored` for upload `id`. `None`
    /// when the stored bytes cannot be read now, or when the content's
    /// challenges failed [`CHALLENGE_FAILURES`] times within a day (the
    /// upload simply goes on without). The ranges depend on the content
    /// alone (a keyed hash of its id): the same for every user, every day,
    /// so someone who knows part of a file cannot draw new ranges with new
    /// accounts until they fall in that part. The nonce is fresh for each
    /// challenge, so no answer serves twice.
    async fn challenge(&self, _user: &User, id: &UploadId, stored: &StoredFile) -> Result<Option<Challenge>> {
        use hmac::{Hmac, KeyInit, Mac};
        use rand::{Rng, SeedableRng};
        use sha2::{Digest, Sha256};
        let now = crate::now();
        let failed = self.repo.failed_challenges(stored.id, now - CHALLENGE_WINDOW, now - CHALLENGE_TTL).await?;
        if failed >= CHALLENGE_FAILURES {
            tracing::warn!(upload = %id, failed, "challenges on this content keep failing: no instant upload offered");
            return Ok(None);
        }
        let key = self.challenge_seed.get().await?;
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).expect("HMAC takes keys of any length");
        mac.update(format!("pan-challenge-ranges\n{}", stored.id).as_bytes());
        let mut rng = rand::rngs::StdRng::from_seed(mac.finalize().into_bytes().into());
        let size = stored.filesize as u64;
        let nonce = crate::random_hex(16);
        let mut ranges = Vec::new();
        if size > 0 {
            let len = size.min(CHALLENGE_RANGE_LEN);
            // 3 ranges up to 1 MiB, one more per doubling, at most 8.
            let count = (size.max(1).ilog2().saturating_sub(17)).clamp(CHALLENGE_RANGES.0, CHALLENGE_RANGES.1);
            for _ in 0..count {
                let start = rng.random_range(0..=size - len);
                ranges.push(ByteRange { start, end: start + len - 1 });
            }
        }
        let mut digest = Sha256::new();
        digest.update(hex::decode(&nonce).expect("random_hex is hex"));
        for r in &ranges {
            let read = async {
                let mut stream = self.files.read(stored, Some(*r)).await?;
                while let Some(piece) = stream.next().await {
                    digest.update(piece.context("reading challenged bytes")?);
                }
                Ok::<_, Error>(())
            };
            if let Err(e) = read.await {
                tracing::warn!(error = %e, "cannot read stored bytes for a challenge; none offered");
                return Ok(None);
            }
        }
        let expires_at = now + CHALLENGE_TTL;
        let proof = PendingProof { file_id: stored.id, expected: hex::encode(digest.finalize()), expires_at };
        self.repo.challenge_issued(stored.id, id.as_str(), now).await?;
        self.sessions.put_challenge(id, &proof).await?;
        tracing::info!(upload = %id, "content stored by another user: challenge offered");
        Ok(Some(Challenge { nonce, ranges, expires_at }))
    }

    /// Checks the answer to an upload's challenge (`proof`: SHA-256 hex of the
    /// nonce's bytes and the challenged ranges). Single use: any answer spends
    /// the challenge. A wrong answer looks exactly like no challenge at all.
    #[tracing::instrument(name = "prove possession", skip(self, user, proof), fields(user = user.id))]
    pub async fn prove(&self, user: &User, id: &str, proof: &str) -> Result<ProveOutcome> {
        let session = self.owned_session(user, id).await?;
        if session.state != UploadState::Uploading {
            return Err(Error::NotUploading { state: session.state.to_string() });
        }
        let pending = self.sessions.take_challenge(&session.id, crate::now()).await?;
        let had_challenge = pending.is_some();
        let matched =
            pending.filter(|p| constant_time_eq(p.expected.as_bytes(), proof.to_ascii_lowercase().as_bytes()));
        if had_challenge {
            self.repo.challenge_answered(session.id.as_str(), matched.is_some()).await?;
        }
        if let Some(p) = matched
            && let Some(stored) = self.repo.stored_file_by_id(p.file_id).await?
            && let Some(sha256) = stored.sha256.as_deref()
        {
            let entry = NewUserFile {
                user_id: user.id,
                filehash: &stored.filehash,
                sha256,
                filesize: stored.filesize,
                filename: &session.filename,
                folder: session.folder.as_ref().map(|f| f.as_str()),
                rule: placement_of(&session).rule,
                now: crate::now(),
                mtime: session.mtime,
                hold: Some(session.id.as_str()),
                if_match: session.if_match.as_ref().map(|h| h.as_str()),
                author: &session.author,
            };
            if let Some(placed) = self.repo.link_existing(&entry).await? {
                self.tree.delete_contents(&placed.orphans).await;
                let file = placed.entry;
                // The upload is not needed any more; chunks sent meanwhile go with it.
                if self.sessions.delete_unless_merging(&session.id).await?.is_some() {
                    self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
                }
                tracing::info!(entry = %file.id, "possession proved: instant upload");
                crate::runtime::metrics::UPLOADS_INSTANT.inc();
                return Ok(ProveOutcome::Instant(file, chunk_plan(&session)?));
            }
        }
        let uploaded = self.received_chunks(&session).await?;
        Ok(ProveOutcome::Continue(Box::new(session), uploaded))
    }

    /// The caller's session with this id; anyone else's is [`Error::UploadNotFound`].
    async fn owned_session(&self, user: &User, id: &str) -> Result<UploadSession> {
        let id = UploadId::parse(id)?;
        match self.sessions.get(&id).await? {
            Some(s) if s.owner == user.id => Ok(s),
            _ => Err(Error::UploadNotFound),
        }
    }

    /// Receives a chunk of an upload: checks it, streams it into the staging
    /// store (durably), then records it and lets the running hash advance.
    /// One send of a chunk at a time ([`Error::ChunkBusy`] for another); a
    /// chunk the running hash has passed is only compared with what is stored
    /// ([`Error::ChunkConflict`] when it differs). An upload that has all its
    /// chunks already (`merging` or `done`: another send, maybe of a run the
    /// client thinks dead, completed it) needs none: the body is read and
    /// dropped, nothing stored or compared (the merge verifies the whole
    /// file), and the answer is [`ChunkOutcome::NotNeeded`]. On an error the
    /// body may be partly unread (the caller decides whether to drain it).
    #[tracing::instrument(name = "receive chunk", skip(self, user, body), fields(user = user.id, index = chunk.index))]
    pub async fn put_chunk<S>(&self, user: &User, id: &str, chunk: ChunkRequest, body: &mut S) -> Result<ChunkOutcome>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let ChunkRequest { index, content_length, checksum, min_rate } = chunk;
        let session = self.owned_session(user, id).await?;
        if session.state == UploadState::Failed {
            return Err(Error::NotUploading { state: session.state.to_string() });
        }
        let plan = chunk_plan(&session)?;
        plan.check_index(index)?;
        let expected = plan.chunk_len(index);
        match content_length {
            Some(n) if n > expected => {
                return Err(Error::TooLarge {
                    code: ErrorCode::ChunkTooLarge,
                    message: format!("chunk {index} must be exactly {expected} bytes; Content-Length is {n}"),
                });
            }
            Some(n) if n < expected => {
                return Err(Error::invalid(
                    ErrorCode::ChunkSizeMismatch,
                    format!("chunk {index} must be exactly {expected} bytes; Content-Length is {n}"),
                ));
            }
            _ => {}
        }
        if session.state != UploadState::Uploading {
            return not_needed(session, chunk, body).await;
        }
        let send = SegmentSend {
            room: plan.segment(index),
            expect: receive::Expect::exactly(expected),
            index: Some(index),
            defer_mark: false,
        };
        let lease = self.hash.lease_for_send(&session.id, &uploads::segment_lease(send.room)).await?;
        let lease = lease.ok_or_else(|| Error::ChunkBusy { what: send.what() })?;
        let rules = receive::BodyRules { checksum, min_rate };
        let in_flight = self.hash.send_begins();
        let received = self.receive_leased(&session, send, rules, &lease, body).await;
        drop(in_flight);
        lease.release().await;
        if let Received::Settled(now) = received? {
            return not_needed(*now, chunk, body).await;
        }
        crate::runtime::metrics::CHUNKS_RECEIVED.inc();
        crate::runtime::metrics::CHUNK_BYTES.add(expected);
        self.hash.advance_in_background(session.clone());
        Ok(ChunkOutcome::Stored(session))
    }

    /// Receives bytes of an upload from `request.offset` on: a range of a
    /// known length, or (without one) a body that runs to its end, which
    /// must start past every byte received. A long body is cut into
    /// segments of at most [`SEGMENT_MAX`], each counted once it is durable
    /// (so a body cut off keeps what arrived before its last segment),
    /// unless the request has a checksum of its whole body: then none
    /// counts until all of it matches. A range received before is sent
    /// again whole (replacing it, or, once hashed, compared) and never
    /// overlapped in other bounds ([`Error::RangeOverlap`]). An upload of
    /// unknown size reserves quota as the bytes come, in steps of
    /// [`SEGMENT_MAX`]. Returns the session and how many bytes counted.
    #[tracing::instrument(name = "receive bytes", skip(self, user, body), fields(user = user.id, offset = request.offset))]
    pub async fn put_bytes<S>(
        &self,
        user: &User,
        id: &str,
        request: BytesRequest,
        body: &mut S,
    ) -> Result<(UploadSession, u64)>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let BytesRequest { offset, content_length, checksum, min_rate } = request;
        let session = self.owned_session(user, id).await?;
        if session.state != UploadState::Uploading {
            return Err(Error::NotUploading { state: session.state.to_string() });
        }
        let limit = session.size.unwrap_or(self.limits.max_file_size);
        let past = |end: u64| match session.size {
            Some(size) => Error::SizeConflict {
                message: format!("the bytes would end at {end}, past the upload's size of {size}"),
            },
            None => Error::TooLarge {
                code: ErrorCode::FileTooLarge,
                message: format!("the file would pass the limit of {limit} bytes"),
            },
        };
        let end = match content_length {
            Some(n) => offset.checked_add(n).ok_or_else(|| past(u64::MAX))?,
            None => limit,
        };
        if end > limit || offset > limit {
            return Err(past(end.max(offset)));
        }
        let rules = receive::BodyRules { checksum: None, min_rate };
        let mut whole = checksum.map(|want| (want, want.digest()));
        let defer_mark = whole.is_some();
        let mut body = receive::Watched::new(body, whole.as_mut().map(|(_, h)| h));
        let mut carry: Option<Bytes> = None;
        let mut held: Vec<(running_hash::Lease, Staged)> = Vec::new();
        let (mut at, mut counted, mut reserved) = (offset, 0u64, 0u64);
        let in_flight = self.hash.send_begins();
        let outcome = loop {
            if at == end {
                // A body of unknown length may not go on past the limit.
                if content_length.is_none() && (carry.is_some() || body.next().await.is_some()) {
                    break Err(past(end + 1));
                }
                break Ok(());
            }
            let open_ended = content_length.is_none();
            // Past its first segment, a body of unknown length goes on only
            // if more of it comes (within the idle limit).
            if open_ended && at > offset && carry.is_none() {
                match tokio::time::timeout(receive::BODY_IDLE_TIMEOUT, body.next()).await {
                    Ok(None) => break Ok(()),
                    Ok(Some(Ok(piece))) => carry = Some(piece),
                    Ok(Some(Err(e))) => break Err(objects::ChunkWriteError::Body(e).into()),
                    Err(_) => break Err(objects::ChunkWriteError::Idle(receive::BODY_IDLE_TIMEOUT.as_secs()).into()),
                }
            }
            let mut len = (end - at).min(SEGMENT_MAX);
            if session.size.is_none() {
                // Room in the quota for what this segment may bring, in
                // steps; when a step is more than the quota has left, as
                // much as it has (a body of unknown length then stops there).
                let needed = (at + len).max(session.received);
                if needed > reserved {
                    let step = needed.div_ceil(SEGMENT_MAX) * SEGMENT_MAX;
                    let at_least = if open_ended { at + 1 } else { needed };
                    reserved = match self.accounts.reserve_growth(user, session.id.as_str(), step, at_least).await {
                        Ok(held) => held,
                        Err(e) => break Err(e),
                    };
                }
                len = len.min(reserved.saturating_sub(at));
            }
            let room = Segment { start: at, len };
            let send = SegmentSend {
                room,
                expect: if open_ended { receive::Expect { min: 0, max: len } } else { receive::Expect::exactly(len) },
                index: None,
                defer_mark,
            };
            let Some(lease) = self.hash.lease_for_send(&session.id, &uploads::segment_lease(room)).await? else {
                // Busy, unless the bytes overlap received ones in other
                // bounds: that answer does not change by retrying.
                let overlaps = self.sessions.overlapping(&session.id, room).await?;
                let other_bounds = match overlaps.as_slice() {
                    [] => false,
                    // (A body of unknown length would stop before a later one.)
                    [first, ..] if open_ended => first.segment.start <= room.start,
                    [same] => same.segment != room,
                    _ => true,
                };
                break Err(if other_bounds {
                    Error::RangeOverlap { what: send.what() }
                } else {
                    Error::ChunkBusy { what: send.what() }
                });
            };
            let mut part = receive::Limited::new(&mut body, &mut carry, len);
            match self.receive_leased(&session, send, rules, &lease, &mut part).await {
                Ok(Received::Stored { staged, .. }) if staged.segment.len == 0 => {
                    lease.release().await;
                    break Ok(());
                }
                Ok(Received::Stored { staged, fresh }) => {
                    at = staged.segment.end();
                    counted += staged.segment.len;
                    let ended = staged.segment.len < len;
                    if send.defer_mark && fresh {
                        held.push((lease, staged));
                    } else {
                        lease.release().await;
                        self.hash.advance_in_background(session.clone());
                    }
                    // A body of unknown length that ended before its segment did.
                    if ended {
                        break Ok(());
                    }
                }
                Ok(Received::Settled(now)) => {
                    lease.release().await;
                    break Err(Error::NotUploading { state: now.state.to_string() });
                }
                Err(e) => {
                    lease.release().await;
                    break Err(e);
                }
            }
        };
        let deferred = !held.is_empty();
        let mut marked_count = 0;
        let outcome = match (outcome, whole) {
            (Ok(()), Some((want, digest))) => {
                let actual = digest.finalize();
                if actual == want.bytes() {
                    self.mark_held(&session, &held, &mut marked_count).await
                } else {
                    Err(Error::from(objects::ChunkWriteError::ChecksumMismatch {
                        what: "the body".to_owned(),
                        actual: hex::encode(actual),
                    }))
                }
            }
            (outcome, _) => outcome,
        };
        drop(in_flight);
        // Only what this request staged and did not mark goes: a segment
        // marked before the failure is recorded, and stays.
        let marked = match &outcome {
            Ok(()) => held.len(),
            Err(_) => marked_count,
        };
        for (i, (lease, staged)) in held.into_iter().enumerate() {
            if i >= marked {
                objects::delete_unless_shared(&*self.staging, &staged.key, &session.id, staged.segment.start).await;
            }
            lease.release().await;
        }
        outcome?;
        if deferred {
            self.hash.advance_in_background(session.clone());
        }
        crate::runtime::metrics::CHUNK_BYTES.add(counted);
        let session = self.sessions.get(&session.id).await?.ok_or(Error::UploadNotFound)?;
        Ok((session, counted))
    }

    /// Marks segments staged for one request once its whole body checked
    /// out, in order; `marked` counts those whose mark committed.
    async fn mark_held(
        &self,
        session: &UploadSession,
        held: &[(running_hash::Lease, Staged)],
        marked: &mut usize,
    ) -> Result<()> {
        for (_, staged) in held {
            self.mark_staged(session, staged).await?;
            *marked += 1;
        }
        Ok(())
    }

    /// Records a staged segment; its earlier send's own object goes. On a
    /// refusal (the upload aborted or expired meanwhile) the new object goes.
    async fn mark_staged(&self, session: &UploadSession, staged: &Staged) -> Result<()> {
        let id = &session.id;
        match self.sessions.mark_segment(id, staged.segment, &staged.key, crate::now(), self.limits.max_chunks).await {
            Ok(previous) => {
                crate::runtime::crash::point("uppart.after_mark");
                let start = staged.segment.start;
                let replaced = previous.filter(|p| p != &staged.key && objects::is_own_segment_object(p, id, start));
                if let Some(previous) = replaced {
                    objects::delete_quietly(&*self.staging, &Path::from(previous)).await;
                }
                Ok(())
            }
            Err(e) => {
                objects::delete_unless_shared(&*self.staging, &staged.key, id, staged.segment.start).await;
                Err(e)
            }
        }
    }

    /// Receives one segment's send once its lease is held: see
    /// [`Uploads::put_chunk`] and [`Uploads::put_bytes`].
    async fn receive_leased<S>(
        &self,
        session: &UploadSession,
        send: SegmentSend,
        rules: receive::BodyRules,
        lease: &running_hash::Lease,
        body: &mut S,
    ) -> Result<Received>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let id = &session.id;
        let what = send.what();
        // Again under the lease: a merge that began meanwhile waits for the
        // leases taken before it, and a send that takes one after sees it.
        // The session read now also says how far the running hash has got.
        let hashed = match self.sessions.get(id).await? {
            Some(s) if s.state == UploadState::Uploading => s.hashed,
            Some(s) if s.state == UploadState::Failed => {
                return Err(Error::NotUploading { state: s.state.to_string() });
            }
            Some(s) => return Ok(Received::Settled(Box::new(s))),
            None => return Err(Error::UploadNotFound),
        };
        // What lies in the bytes this send may write (no other send can mark
        // any there while the lease is held): nothing, or for a send of known
        // length the same segment, received before.
        let mut room = send.room;
        let mut expect = send.expect;
        let overlaps = self.sessions.overlapping(id, room).await?;
        let staged = match overlaps.as_slice() {
            [] => None,
            [same] if same.segment == room && expect.min == expect.max => Some(same.clone()),
            // A body of unknown length stops where received bytes begin.
            [first, ..] if expect.min < expect.max && first.segment.start > room.start => {
                room.len = first.segment.start - room.start;
                expect.max = room.len;
                None
            }
            _ => return Err(Error::RangeOverlap { what }),
        };
        if let Some(same) = staged.as_ref().filter(|s| s.segment.end() <= hashed) {
            let stored = self
                .staging
                .read_segment(&Path::from(same.key.as_str()), same.segment)
                .await?
                .ok_or_else(|| Error::internal("receiving bytes", "hashed bytes are not staged"))?;
            if !receive::compare_segment(stored, &what, room.len, rules, body).await? {
                return Err(Error::ChunkConflict { what });
            }
            // The same bytes again: nothing to write; the mark keeps the session alive.
            self.sessions.mark_segment(id, same.segment, &same.key, crate::now(), self.limits.max_chunks).await?;
            return Ok(Received::Stored { staged: same.clone(), fresh: false });
        }
        // A send again of bytes received before replaces them only once it
        // has fully arrived: the earlier bytes stay whole until then.
        let at = objects::SegmentAt { id, segment: room };
        // Bytes the hash will want soon are kept for it (see `running_hash`).
        let keep = (room.start < hashed + running_hash::KEEP_AHEAD).then(|| self.hash.keep_budget());
        let (key, got, pieces) =
            receive::stage_segment(&*self.staging, at, &what, staged.is_some(), expect, rules, keep, body).await?;
        crate::runtime::crash::point("uppart.after_write");
        let staged = Staged { segment: Segment { start: room.start, len: got }, key: key.to_string() };
        if got == 0 {
            objects::delete_unless_shared(&*self.staging, &staged.key, id, room.start).await;
            return Ok(Received::Stored { staged, fresh: true });
        }
        if send.defer_mark {
            return Ok(Received::Stored { staged, fresh: true });
        }
        self.mark_staged(session, &staged).await?;
        // Kept only if no other send could have written the bytes meanwhile
        // (this one's lease was never lost).
        if let Some(pieces) = pieces.filter(|_| !lease.lost()) {
            self.hash.landed(id, room.start, &staged.key, pieces);
        }
        Ok(Received::Stored { staged, fresh: true })
    }

    /// The chunk indexes of the chunk protocol `session` has received (none
    /// while its size is unknown).
    async fn received_chunks(&self, session: &UploadSession) -> Result<Vec<u64>> {
        let Some(plan) = session.plan() else { return Ok(Vec::new()) };
        let segments = self.sessions.segments(&session.id).await?;
        Ok(segments.iter().filter_map(|s| plan.index_of(s.segment)).collect())
    }

    /// An upload's state, its received segments, and the file once done.
    pub async fn status(&self, user: &User, id: &str) -> Result<(UploadSession, Vec<Segment>, Option<UserFile>)> {
        let (session, received) = match self.sessions.get_with_segments(&UploadId::parse(id)?).await? {
            Some((s, received)) if s.owner == user.id => (s, received),
            _ => return Err(Error::UploadNotFound),
        };
        let received = match (session.state, session.size) {
            (UploadState::Uploading | UploadState::Merging, _) => received,
            (UploadState::Done, Some(size)) if size > 0 => vec![Segment { start: 0, len: size }],
            _ => Vec::new(),
        };
        let file = match (&session.state, &session.entry_id) {
            (UploadState::Done, Some(entry)) => self.repo.user_file(user.id, entry).await?.map(|(f, _)| f),
            _ => None,
        };
        Ok((session, received, file))
    }

    /// Gives an upload begun without a size its size, before its last byte
    /// (the tus front door learns it from a later request): its quota is
    /// then held exactly. For an upload whose size is known, `size` must be
    /// it ([`Error::SizeConflict`] otherwise).
    #[tracing::instrument(name = "give upload size", skip(self, user), fields(user = user.id))]
    pub async fn set_size(&self, user: &User, id: &str, size: u64) -> Result<UploadSession> {
        let mut session = self.owned_session(user, id).await?;
        self.give_size(user, &mut session, size).await?;
        Ok(session)
    }

    /// See [`Uploads::set_size`]; nothing changes once the upload left `uploading`.
    async fn give_size(&self, user: &User, session: &mut UploadSession, size: u64) -> Result<()> {
        match session.size {
            Some(known) if known != size => {
                Err(Error::SizeConflict { message: format!("the upload's size is {known} bytes") })
            }
            Some(_) => Ok(()),
            None if session.state == UploadState::Uploading => {
                if size > self.limits.max_file_size {
                    return Err(Error::TooLarge {
                        code: ErrorCode::FileTooLarge,
                        message: format!("filesize {size} is above the limit of {} bytes", self.limits.max_file_size),
                    });
                }
                // Its quota, exactly, before it can start.
                self.accounts.reserve(user, session.id.as_str(), size, true).await?;
                self.sessions.set_size(&session.id, size, crate::now()).await?;
                session.size = Some(size);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Hands a fully received upload to the merge workers (exactly once),
    /// giving it its size first when it had none (`size`; for an upload
    /// whose size is known, `size` must be it). Returns the state the
    /// upload is in afterwards.
    #[tracing::instrument(name = "complete upload", skip(self, user), fields(user = user.id))]
    pub async fn complete(&self, user: &User, id: &str, size: Option<u64>) -> Result<UploadState> {
        let mut session = self.owned_session(user, id).await?;
        if let Some(size) = size {
            self.give_size(user, &mut session, size).await?;
        }
        // Hashes only ever get declared, never withdrawn: checked here, they
        // are there for the merge. Without them there is nothing to verify the
        // file against, so the client must finish its side first.
        if session.state == UploadState::Uploading && session.filehash.is_none() && !session.server_hashed {
            return Err(Error::HashNotDeclared);
        }
        match self.sessions.start_merge(&session.id, crate::now()).await? {
            CompleteOutcome::Started => {
                self.merges.push(MergeJob { upload_id: session.id.clone() }).await?;
                tracing::info!(upload = %session.id, "merge enqueued");
                Ok(UploadState::Merging)
            }
            CompleteOutcome::AlreadyIn(UploadState::Merging)
                if crate::now() - session.updated_at > self.limits.merge_stall_secs as i64 =>
            {
                // No heartbeat for this long means no merge is running: the job
                // was lost (the queue was away when it was pushed, or gave up).
                // Merges are idempotent, so hand it over again (the clean-up
                // does the same for clients that only poll status).
                tracing::warn!(upload = %session.id, "merge looks lost; enqueueing it again");
                self.merges.push(MergeJob { upload_id: session.id.clone() }).await?;
                Ok(UploadState::Merging)
            }
            CompleteOutcome::AlreadyIn(state) => Ok(state),
            CompleteOutcome::Missing => {
                let Some(plan) = session.plan() else {
                    return Err(Error::SizeConflict {
                        message: "the upload's size is not known yet: give it (filesize) to complete".to_owned(),
                    });
                };
                let have = self.sessions.segments(&session.id).await?;
                let mut chunks = have.iter().filter_map(|s| plan.index_of(s.segment)).peekable();
                let mut missing = Vec::new();
                let mut count = 0u64;
                for i in 0..plan.chunk_count {
                    if chunks.next_if_eq(&i).is_none() {
                        count += 1;
                        if missing.len() < MISSING_LISTED {
                            missing.push(i);
                        }
                    }
                }
                // Bytes received in other bounds than chunks may still leave
                // gaps that are no whole chunk: the count says so.
                Err(Error::ChunksMissing { count: count.max(1), missing })
            }
        }
    }

    /// Drops an upload and its staged chunks. An upload being merged cannot be
    /// aborted; a finished one only loses its session record. Returns the
    /// state it was dropped in (`done`: its file stays).
    #[tracing::instrument(name = "abort upload", skip(self, user), fields(user = user.id))]
    pub async fn abort(&self, user: &User, id: &str) -> Result<UploadState> {
        let session = self.owned_session(user, id).await?;
        let Some(dropped) = self.sessions.delete_unless_merging(&session.id).await? else {
            return match self.sessions.get(&session.id).await? {
                Some(s) => Err(Error::NotUploading { state: s.state.to_string() }),
                None => Err(Error::UploadNotFound),
            };
        };
        self.accounts.release(session.id.as_str()).await?;
        self.give_back_to_link(&session, dropped).await;
        self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
        Ok(dropped)
    }

    /// An upload made through an upload link that ended without a file
    /// (`dropped`: the state its session was deleted in) gives its bytes
    /// back to the link's limit; a failure is logged (the link keeps them
    /// counted).
    pub(crate) async fn give_back_to_link(&self, session: &UploadSession, dropped: UploadState) {
        let (Some(link), Some(size)) = (&session.via_link, session.size) else { return };
        if !matches!(dropped, UploadState::Uploading | UploadState::Failed) {
            return;
        }
        let bytes = i64::try_from(size).unwrap_or(i64::MAX);
        if let Err(e) = self.repo.release_upload_link_bytes(link, bytes).await {
            tracing::warn!(error = %e, upload = %session.id, "giving bytes back to an upload link failed");
        }
    }
}
