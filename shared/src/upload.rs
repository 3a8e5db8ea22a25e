//! The upload use cases, independent of HTTP: what `init`, `uppart`,
//! `status`, `complete` and `abort` do to the backends. The api's handlers
//! parse input, call one of these, and shape the answer.

pub mod cleanup;
pub mod merge;
pub mod receive;
pub mod running_hash;

use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use object_store::path::Path;

use crate::accounts::Accounts;
use crate::domain::error::{Error, ErrorCode, Result, ResultExt};
use crate::domain::{
    ChunkPlan, FileName, Mtime, NameRule, Placement, Sha1Hex, Sha256Hex, StoredFile, TreeItem, UploadId, UploadSession,
    UploadState, User, UserFile,
};
use crate::files::ByteRange;
use crate::files::Files;
use crate::files::links::ChallengeSeed;
use crate::stores::meta::{MetaRepo, NewUserFile};
use crate::stores::objects::{self, Store};
use crate::stores::queue::{MergeJob, Queue};
use crate::stores::uploads::{self, CompleteOutcome, DeclareOutcome, PendingProof, UploadStore};
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
    /// Its size in bytes.
    pub filesize: u64,
    /// Its modification time, when the client gave one (the entry's; else
    /// the time the upload finishes).
    pub mtime: Option<Mtime>,
    /// Who vouches for the content's identity.
    pub source: Source,
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
    Continue(UploadSession, Vec<u64>, Option<Challenge>),
}

/// What an answer to a challenge led to.
#[derive(Debug)]
pub enum ProveOutcome {
    /// The proof matched: the caller has the file, the upload is gone.
    Instant(UserFile, ChunkPlan),
    /// No match (wrong, late, repeated, or no challenge): go on uploading.
    Continue(UploadSession, Vec<u64>),
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
    /// The chunk counts.
    Stored,
    /// The upload left `uploading` for `merging` or `done` before the bytes
    /// were looked at: here it is now.
    Settled(Box<UploadSession>),
}

/// Reads and drops the body of a chunk `session` does not need (it is
/// `merging` or `done`), held to the length, idle and rate rules; nothing is
/// stored or compared.
async fn not_needed<S>(session: UploadSession, chunk: ChunkRequest, body: &mut S) -> Result<ChunkOutcome>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
{
    let rules = receive::BodyRules { checksum: None, min_rate: chunk.min_rate };
    receive::discard_chunk(chunk.index, session.plan.chunk_len(chunk.index), rules, body).await?;
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
    #[tracing::instrument(name = "init upload", skip(self, user, new, place), fields(user = user.id))]
    pub async fn init(&self, user: &User, new: NewUpload, place: &Placement) -> Result<InitOutcome> {
        let NewUpload { filename, filesize, mtime, source } = new;
        let mtime = mtime.map(Mtime::secs);
        let server_hashed = matches!(source, Source::Server);
        let (filehash, sha256, fingerprint) = match source {
            Source::Client { filehash, sha256, fingerprint } => (filehash, sha256, fingerprint),
            Source::Server => (None, None, None),
        };
        if filesize > self.limits.max_file_size {
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
        let plan = ChunkPlan::for_file(filesize, self.limits.chunk_size, self.limits.max_chunks);
        let now = crate::now();
        let same = sha256.as_ref().map(|h| (h.as_str(), filesize as i64));
        self.tree.check_placement(user, &filename, place, same).await?;
        let mut known = None;
        if let (Some(filehash), Some(sha256)) = (&filehash, &sha256) {
            match self.known_content(user, filename.as_str(), place, filehash, sha256, filesize, mtime, None).await? {
                Known::Own(file) => return Ok(InitOutcome::Instant(file, plan)),
                Known::Elsewhere(stored) => known = Some(stored),
                Known::Unknown => {}
            }
            if let Some(session) =
                self.sessions.find_resumable(user.id, filehash.as_str(), sha256.as_str(), filesize).await?
            {
                let uploaded = self.sessions.chunks(&session.id).await?.into_keys().collect();
                return Ok(InitOutcome::Resume(session, uploaded));
            }
        }
        if filehash.is_none()
            && let Some(fingerprint) = &fingerprint
            && let Some(session) = self.sessions.find_by_fingerprint(user.id, fingerprint, filesize).await?
        {
            let uploaded = self.sessions.chunks(&session.id).await?.into_keys().collect();
            return Ok(InitOutcome::Resume(session, uploaded));
        }
        // The upload's declared size is reserved in the quota under its id
        // before the session exists (the clean-up releases a hold whose
        // session never came).
        let id = UploadId::generate();
        self.accounts.reserve(user, id.as_str(), filesize, true).await?;
        // The caller's own limits answer first; then whether the disk has room.
        if let Err(e) = self.check_staging_room(filesize).await {
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
            plan,
            state: UploadState::Uploading,
            reason: None,
            reason_code: None,
            entry_id: None,
            folder: place.folder.clone(),
            mtime,
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
        tracing::info!(upload = %session.id, chunks = plan.chunk_count, chunk_size = plan.chunk_size, "upload created");
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
            };
            let linked = self.repo.link_existing(&entry).await;
            if let Some(made) = &made
                && !matches!(linked, Ok(Some(_)))
            {
                self.accounts.release_quietly(made).await;
            }
            if let Some(file) = linked? {
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
        let place = Placement { folder: session.folder.clone(), rule: NameRule::Rename };
        let size = session.plan.file_size;
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
                if self.sessions.delete_unless_merging(&session.id).await? {
                    self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
                }
                return Ok(DeclareResult::Instant(file, session.plan));
            }
            Known::Elsewhere(stored) => self.challenge(user, &session.id, &stored).await?,
            Known::Unknown => None,
        };
        tracing::info!(upload = %session.id, "hashes declared");
        (session.filehash, session.sha256) = (Some(filehash), Some(sha256));
        let uploaded = self.sessions.chunks(&session.id).await?.into_keys().collect();
        Ok(DeclareResult::Continue(session, uploaded, challenge))
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
                rule: NameRule::Rename,
                now: crate::now(),
                mtime: session.mtime,
                hold: Some(session.id.as_str()),
            };
            if let Some(file) = self.repo.link_existing(&entry).await? {
                // The upload is not needed any more; chunks sent meanwhile go with it.
                if self.sessions.delete_unless_merging(&session.id).await? {
                    self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
                }
                tracing::info!(entry = %file.id, "possession proved: instant upload");
                crate::runtime::metrics::UPLOADS_INSTANT.inc();
                return Ok(ProveOutcome::Instant(file, session.plan));
            }
        }
        let uploaded = self.sessions.chunks(&session.id).await?.into_keys().collect();
        Ok(ProveOutcome::Continue(session, uploaded))
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
        let ChunkRequest { index, content_length, .. } = chunk;
        let session = self.owned_session(user, id).await?;
        if session.state == UploadState::Failed {
            return Err(Error::NotUploading { state: session.state.to_string() });
        }
        session.plan.check_index(index)?;
        let expected = session.plan.chunk_len(index);
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
        let lease = self.hash.lease(&session.id, &uploads::chunk_lease(index)).await?;
        let lease = lease.ok_or(Error::ChunkBusy { index })?;
        let in_flight = self.hash.send_begins();
        let received = self.receive_leased(&session, chunk, &lease, body).await;
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

    /// [`put_chunk`] once the chunk's lease is held.
    async fn receive_leased<S>(
        &self,
        session: &UploadSession,
        chunk: ChunkRequest,
        lease: &running_hash::Lease,
        body: &mut S,
    ) -> Result<Received>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let ChunkRequest { index, checksum, min_rate, .. } = chunk;
        let rules = receive::BodyRules { checksum, min_rate };
        let (id, plan) = (&session.id, &session.plan);
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
        let staged = self.sessions.chunk(id, index).await?;
        if index < hashed {
            let key = staged.ok_or_else(|| Error::internal("receiving a chunk", "a hashed chunk is not recorded"))?;
            let stored = self
                .staging
                .read_chunk(&Path::from(key.as_str()), plan, index)
                .await?
                .ok_or_else(|| Error::internal("receiving a chunk", "a hashed chunk is not staged"))?;
            if !receive::compare_chunk(stored, index, plan.chunk_len(index), rules, body).await? {
                return Err(Error::ChunkConflict { index });
            }
            // The same bytes again: nothing to write; the mark keeps the session alive.
            self.sessions.mark_chunk(id, index, &key, crate::now()).await?;
            return Ok(Received::Stored);
        }
        // A send again of a chunk received before replaces it only once it has
        // fully arrived: the earlier bytes stay whole until then.
        let at = objects::ChunkAt { id, plan, index };
        // Bytes the hash will want soon are kept for it (see `running_hash`).
        let keep = (index < hashed + running_hash::KEEP_AHEAD).then(|| self.hash.keep_budget());
        let (key, pieces) = receive::stage_chunk(&*self.staging, at, staged.is_some(), rules, keep, body).await?;
        crate::runtime::crash::point("uppart.after_write");
        match self.sessions.mark_chunk(id, index, key.as_ref(), crate::now()).await {
            Ok(previous) => {
                crate::runtime::crash::point("uppart.after_mark");
                // Kept only if no other send could have written the chunk
                // meanwhile (this one's lease was never lost).
                if let Some(pieces) = pieces.filter(|_| !lease.lost()) {
                    self.hash.landed(id, index, key.as_ref(), pieces);
                }
                // The earlier send's own object goes; a file the chunks share stays.
                let replaced = previous.filter(|p| p != key.as_ref() && objects::is_own_chunk_object(p, id, index));
                if let Some(previous) = replaced {
                    crate::stores::objects::delete_quietly(&*self.staging, &Path::from(previous)).await;
                }
                Ok(Received::Stored)
            }
            Err(e) => {
                // Aborted or expired while the bytes were in flight.
                crate::stores::objects::delete_quietly(&*self.staging, &key).await;
                Err(e)
            }
        }
    }

    /// An upload's state, received chunk indexes, and the file once done.
    pub async fn status(&self, user: &User, id: &str) -> Result<(UploadSession, Vec<u64>, Option<UserFile>)> {
        let (session, received) = match self.sessions.get_with_chunks(&UploadId::parse(id)?).await? {
            Some((s, received)) if s.owner == user.id => (s, received),
            _ => return Err(Error::UploadNotFound),
        };
        let uploaded: Vec<u64> = match session.state {
            UploadState::Uploading | UploadState::Merging => received,
            UploadState::Done => (0..session.plan.chunk_count).collect(),
            UploadState::Failed => Vec::new(),
        };
        let file = match (&session.state, &session.entry_id) {
            (UploadState::Done, Some(entry)) => self.repo.user_file(user.id, entry).await?.map(|(f, _)| f),
            _ => None,
        };
        Ok((session, uploaded, file))
    }

    /// Hands a fully received upload to the merge workers (exactly once).
    /// Returns the state the upload is in afterwards.
    #[tracing::instrument(name = "complete upload", skip(self, user), fields(user = user.id))]
    pub async fn complete(&self, user: &User, id: &str) -> Result<UploadState> {
        let session = self.owned_session(user, id).await?;
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
                let have = self.sessions.chunks(&session.id).await?;
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
    #[tracing::instrument(name = "abort upload", skip(self, user), fields(user = user.id))]
    pub async fn abort(&self, user: &User, id: &str) -> Result<()> {
        let session = self.owned_session(user, id).await?;
        if !self.sessions.delete_unless_merging(&session.id).await? {
            return match self.sessions.get(&session.id).await? {
                Some(s) => Err(Error::NotUploading { state: s.state.to_string() }),
                None => Err(Error::UploadNotFound),
            };
        }
        self.accounts.release(session.id.as_str()).await?;
        self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
        Ok(())
    }
}
