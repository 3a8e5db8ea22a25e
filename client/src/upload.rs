//! The upload engine: one file into one folder, resumable, verified.
//!
//! 1. Take the hashes (SHA-1 and SHA-256) from this file's state file when
//!    its size and modification time have not changed since they were
//!    computed.
//! 2. `init` into the folder with the `on_conflict` rule: by those hashes
//!    (answer a `challenge` from the file's own bytes; stop at `instant`),
//!    or without them, by the file's fingerprint, so that sending starts at
//!    once.
//! 3. Write the state file (below), then send every chunk the server does
//!    not hold, at most [`Uploader::new`]'s `jobs` at once over all files,
//!    each read from its region of the file into one buffer (memory: `jobs`
//!    chunk buffers, whatever the file sizes), with `Upload-Checksum`.
//!    Without known hashes, the file is hashed in one streaming pass while
//!    the chunks go, and they are declared as soon as they are ready; an
//!    `instant` answer (content already stored) stops the sending.
//! 4. Check the file did not change meanwhile (size and modification time),
//!    `complete`, poll `status` until `done`, and check the server's SHA-1
//!    and SHA-256 against the local ones.
//!
//! **Resume.** The server keys an open upload by its content, or, before
//! its hashes are declared, by the fingerprint: `init` with the same hashes
//! (or fingerprint) answers `resume` with the chunks it already holds, and
//! those are never sent again. The state file (`<state dir>/<key>.json`, one
//! per server, local file and destination) keeps the hashes once declared
//! and lets `pan status` list unfinished uploads; it is removed once the
//! file is stored. Losing it never costs a chunk: the next run inits by
//! the fingerprint again and resumes.
//!
//! If the future is dropped part-way (Ctrl-C), chunks in flight are lost and
//! sent again by the next run; every chunk the server acknowledged stays.
//!
//! **Another sender.** A run thought dead (its wrapper was killed, not
//! `pan`) may still be sending the same upload, and complete it first. A
//! chunk it holds answers `CHUNK_BUSY`, which is waited out like any
//! retry; a chunk, a declaration or a proof sent once the upload has all its
//! chunks answers `merging` or `done` (or, for a declaration or a proof,
//! `UPLOAD_NOT_UPLOADING`): this run then sends nothing more, and once all
//! its sends have ended it does not call `complete` but waits for the merge
//! and verifies the stored file like any other. `complete` is only ever
//! called once every send of this run has ended.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha1::Digest;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::http::{ApiError, Session, typed};
use crate::types;

/// What happens to an upload while it runs, for progress bars.
#[derive(Debug, Clone, Copy)]
pub enum Event {
    /// Sending began: the server holds `held` of the file's `size` bytes.
    Sending {
        /// The file's size.
        size: u64,
        /// Bytes in chunks the server already holds.
        held: u64,
    },
    /// One more chunk of this many bytes was stored.
    Sent(u64),
    /// All chunks are in; the server is merging.
    Merging,
}

/// Receives [`Event`]s (shared by the tasks sending chunks).
pub type Observer = Arc<dyn Fn(Event) + Send + Sync>;

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The server refused, or could not be reached after every retry.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// Reading the local file or writing the state file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file's size or modification time changed while it was read.
    #[error("{0} changed while it was being uploaded; nothing was stored: run pan put again once it is stable")]
    Changed(PathBuf),
    /// The server's merge failed.
    #[error("the server could not store {path}: {reason}")]
    Failed {
        /// The file.
        path: PathBuf,
        /// The server's reason.
        reason: String,
    },
    /// The stored file's digests are not the local ones.
    #[error("the server stored {path} with {what} {theirs}, not {ours}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// `SHA-1` or `SHA-256`.
        what: &'static str,
        /// The server's digest.
        theirs: String,
        /// The local digest.
        ours: String,
    },
}

impl UploadError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> UploadError + '_ {
        move |source| UploadError::Io { path: path.to_owned(), source }
    }
}

/// What an upload ended with.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The local file.
    pub local: PathBuf,
    /// The stored entry.
    pub file: types::FileInfo,
    /// `uploaded` (chunks sent), `resumed` (some were already there) or
    /// `instant` (the server had the content).
    pub how: &'static str,
    /// Chunks sent by this run.
    pub chunks_sent: u64,
    /// Chunks the server already held.
    pub chunks_held: u64,
}

/// The state file of an unfinished upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The server.
    pub server: String,
    /// The local file (absolute).
    pub path: PathBuf,
    /// Its size when hashed.
    pub size: u64,
    /// Its modification time when hashed, in nanoseconds since the epoch.
    pub mtime_ns: u128,
    /// Its SHA-1, hex, once hashed.
    pub sha1: Option<String>,
    /// Its SHA-256, hex, once hashed.
    pub sha256: Option<String>,
    /// The destination folder id (`None`: the root).
    pub folder: Option<String>,
    /// The name it is stored under.
    pub filename: String,
    /// The server's upload id, once init answered.
    pub upload_id: Option<String>,
    /// When this upload started, in seconds since the epoch.
    pub started_at: u64,
}

impl State {
    /// Every state file in `dir` (unreadable ones are skipped).
    pub fn list(dir: &Path) -> Vec<(PathBuf, State)> {
        let mut out: Vec<(PathBuf, State)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let s = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
                Some((e.path(), s))
            })
            .collect();
        out.sort_by_key(|(_, s)| s.started_at);
        out
    }
}

/// The size and modification time that tell whether a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
}

impl Stamp {
    /// The modification time as the server takes it: whole Unix seconds
    /// within 0 ..= 9999-12-31 (a time outside is not sent).
    fn mtime_secs(&self) -> Option<i64> {
        i64::try_from(self.mtime_ns / 1_000_000_000).ok().filter(|s| *s <= 253_402_300_799)
    }
}

fn stamp(path: &Path) -> Result<Stamp, UploadError> {
    let meta = std::fs::metadata(path).map_err(UploadError::io(path))?;
    let mtime = meta.modified().map_err(UploadError::io(path))?;
    let mtime_ns = mtime.duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    Ok(Stamp { size: meta.len(), mtime_ns })
}

/// One chunk of a file: its index and its region.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    index: u64,
    offset: u64,
    len: u64,
}

/// The token an upload begun before its hashes are known is resumed by:
/// the same local file, destination and server (its state file's name says
/// which), size and modification time. It names none of them readably.
fn fingerprint(state_file: &Path, stamp: &Stamp) -> String {
    let key = state_file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let digest = sha2::Sha256::new()
        .chain_update(key.as_bytes())
        .chain_update(stamp.size.to_le_bytes())
        .chain_update(stamp.mtime_ns.to_le_bytes())
        .finalize();
    format!("cli1-{}", &hex::encode(digest)[..40])
}

/// Uploads files over one session, sharing one limit of chunks in flight.
#[derive(Clone)]
pub struct Uploader {
    session: Arc<Session>,
    slots: Arc<Semaphore>,
    state_dir: PathBuf,
    /// Test hook: a pause before each chunk (`PAN_TEST_CHUNK_DELAY_MS`), so
    /// that a test can act while an upload is half-way.
    chunk_delay: Option<Duration>,
}

impl Uploader {
    /// An uploader sending at most `jobs` chunks at once, keeping state
    /// files in `state_dir`.
    pub fn new(session: Arc<Session>, jobs: usize, state_dir: PathBuf) -> Uploader {
        let chunk_delay = std::env::var("PAN_TEST_CHUNK_DELAY_MS").ok().and_then(|v| v.parse().ok());
        Uploader {
            session,
            slots: Arc::new(Semaphore::new(jobs.max(1))),
            state_dir,
            chunk_delay: chunk_delay.map(Duration::from_millis),
        }
    }

    fn state_path(&self, path: &Path, folder: Option<&str>, filename: &str) -> PathBuf {
        let key = sha2::Sha256::new()
            .chain_update(self.session.base.as_bytes())
            .chain_update([0])
            .chain_update(path.as_os_str().as_encoded_bytes())
            .chain_update([0])
            .chain_update(folder.unwrap_or("").as_bytes())
            .chain_update([0])
            .chain_update(filename.as_bytes())
            .finalize();
        self.state_dir.join(format!("{}.json", &hex::encode(key)[..32]))
    }

    fn save(&self, file: &Path, state: &State) -> Result<(), UploadError> {
        std::fs::create_dir_all(&self.state_dir).map_err(UploadError::io(&self.state_dir))?;
        let tmp = file.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(state).expect("a state serialises");
        std::fs::write(&tmp, bytes).map_err(UploadError::io(&tmp))?;
        std::fs::rename(&tmp, file).map_err(UploadError::io(file))
    }

    /// Uploads `path` as `filename` into folder `folder` (`None`: the root).
    pub async fn upload(
        &self,
        path: &Path,
        filename: &str,
        folder: Option<&str>,
        on_conflict: Option<types::OnConflict>,
        observe: Observer,
    ) -> Result<Outcome, UploadError> {
        let path = std::path::absolute(path).map_err(UploadError::io(path))?;
        let state_file = self.state_path(&path, folder, filename);
        let before = stamp(&path)?;

        // 1. Hashes from the state file if the file is as it was; otherwise
        //    they are computed while the chunks go (step 3).
        let saved = std::fs::read(&state_file).ok().and_then(|b| serde_json::from_slice::<State>(&b).ok());
        let known = match saved {
            Some(s) if s.size == before.size && s.mtime_ns == before.mtime_ns => s.sha1.zip(s.sha256),
            other => {
                // The file changed since an earlier run: its open upload is of other bytes.
                if let Some(old) = other.and_then(|s| s.upload_id) {
                    let _ = self.session.send(|| self.session.api().upload_abort().upload_id(&old).send()).await;
                }
                None
            }
        };
        let mut state = State {
            server: self.session.base.clone(),
            path: path.clone(),
            size: before.size,
            mtime_ns: before.mtime_ns,
            sha1: known.as_ref().map(|k| k.0.clone()),
            sha256: known.as_ref().map(|k| k.1.clone()),
            folder: folder.map(str::to_owned),
            filename: filename.to_owned(),
            upload_id: None,
            started_at: SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        };

        // 2. init: by the hashes when known (may be instant at once), else by
        //    the file's fingerprint (resumes an upload this file began).
        let body = types::InitRequest {
            filename: typed(&format!("file name {filename:?}"), filename)?,
            filesize: Some(typed(&format!("size of {}", path.display()), before.size)?),
            server_hashed: None,
            filehash: known.as_ref().map(|k| typed("SHA-1", k.0.as_str())).transpose()?,
            sha256: known.as_ref().map(|k| typed("SHA-256", k.1.as_str())).transpose()?,
            fingerprint: match known {
                Some(_) => None,
                None => Some(typed("fingerprint", fingerprint(&state_file, &before))?),
            },
            folder: folder.map(|f| typed(&format!("folder id {f:?}"), f)).transpose()?,
            on_conflict,
            if_match: None,
            // The entry keeps the local file's modification time.
            mtime: before.mtime_secs(),
        };
        let init = self.session.call(|| self.session.api().upload_init().body(body.clone()).send()).await?;
        let init = self.prove_if_asked(&path, init).await?;
        let was_resumed = matches!(init.status, types::InitStatus::Resume);
        if let (types::InitStatus::Instant, Some((sha1, sha256))) = (init.status, &known) {
            let _ = std::fs::remove_file(&state_file);
            let file = init.file.ok_or_else(|| ApiError::Protocol("instant without a file".into()))?;
            return self.verified(path, file, "instant", 0, init.chunkcount, sha1, sha256);
        }
        let id = init.upload_id.clone().ok_or_else(|| ApiError::Protocol("init without an uploadID".into()))?;
        state.upload_id = Some(id.clone());
        self.save(&state_file, &state)?;

        // 3. Every chunk the server does not hold; meanwhile, without known
        //    hashes, the file is hashed and they are declared, which may
        //    still make the upload instant (then sending stops).
        let (count, size) = (init.chunkcount, init.chunksize.max(1));
        let chunk_len = |i: u64| size.min(before.size.saturating_sub(i * size));
        let held: std::collections::HashSet<u64> = init.uploaded.iter().copied().collect();
        let held_bytes: u64 = held.iter().map(|&i| chunk_len(i)).sum();
        observe(Event::Sending { size: before.size, held: held_bytes });
        let file = Arc::new(std::fs::File::open(&path).map_err(UploadError::io(&path))?);
        let missing: Vec<u64> = (0..count).filter(|i| !held.contains(i)).collect();
        let sent = Arc::new(AtomicU64::new(0));
        // Set once an answer says the upload has all its chunks (another
        // sender completed it): nothing more is sent, and complete is not called.
        let settled = Arc::new(AtomicBool::new(false));
        let mut tasks = JoinSet::new();
        for &i in &missing {
            let chunk = Chunk { index: i, offset: i * size, len: chunk_len(i) };
            let (this, file, path, id) = (self.clone(), file.clone(), path.clone(), id.clone());
            let (observe, sent, settled) = (observe.clone(), sent.clone(), settled.clone());
            tasks.spawn(async move {
                if this.send_chunk(&file, &path, before, &id, chunk, &settled).await? {
                    sent.fetch_add(1, Ordering::Relaxed);
                    observe(Event::Sent(chunk.len));
                }
                Ok::<(), UploadError>(())
            });
        }
        let (sha1, sha256) = match known {
            Some(k) => k,
            None => {
                let p = path.clone();
                let mut hashing = tokio::task::spawn_blocking(move || hash_file(&p));
                // A chunk that fails stops the upload at once, hashing or not.
                let hashed = loop {
                    tokio::select! {
                        hashed = &mut hashing => break hashed.expect("hashing panicked"),
                        Some(done) = tasks.join_next() => done.expect("a chunk task panicked")?,
                    }
                };
                let (sha1, sha256) = hashed.map_err(UploadError::io(&path))?;
                if stamp(&path)? != before {
                    return Err(UploadError::Changed(path));
                }
                let hashes = types::DeclareRequest {
                    filehash: typed("SHA-1", sha1.as_str())?,
                    sha256: typed("SHA-256", sha256.as_str())?,
                };
                let declared = not_uploading(
                    self.session
                        .call(|| self.session.api().upload_declare().upload_id(&id).body(hashes.clone()).send())
                        .await,
                    &settled,
                )?;
                // Kept only once the server knows them: a later run inits by
                // them, and finds this upload only if they were declared
                // (or, when it was completed without this run, by the one
                // that did: then the merge checks them).
                (state.sha1, state.sha256) = (Some(sha1.clone()), Some(sha256.clone()));
                self.save(&state_file, &state)?;
                let declared = match declared {
                    Some(d) => not_uploading(self.prove_if_asked(&path, d).await, &settled)?,
                    None => None,
                };
                if let Some(declared) = declared
                    && matches!(declared.status, types::InitStatus::Instant)
                {
                    tasks.abort_all();
                    let _ = std::fs::remove_file(&state_file);
                    let file = declared.file.ok_or_else(|| ApiError::Protocol("instant without a file".into()))?;
                    let sent = sent.load(Ordering::Relaxed);
                    return self.verified(path, file, "instant", sent, count, &sha1, &sha256);
                }
                (sha1, sha256)
            }
        };
        while let Some(done) = tasks.join_next().await {
            done.expect("a chunk task panicked")?;
        }

        // 4. Unchanged? complete, wait, verify. An upload another sender
        //    completed is past aborting: its merge verifies what it got
        //    against the declared hashes, and this run the stored file
        //    against its own.
        let settled = settled.load(Ordering::Relaxed);
        if !settled && stamp(&path)? != before {
            let _ = self.session.send(|| self.session.api().upload_abort().upload_id(&id).send()).await;
            let _ = std::fs::remove_file(&state_file);
            return Err(UploadError::Changed(path));
        }
        observe(Event::Merging);
        // Every send of this run has ended here (all tasks joined).
        let mut completed = settled;
        if !completed {
            self.session.send(|| self.session.api().upload_complete().upload_id(&id).send()).await?;
            completed = true;
        }
        let mut wait = Duration::from_millis(50);
        let file = loop {
            let s = self.session.call(|| self.session.api().upload_status().upload_id(&id).send()).await?;
            match s.state {
                types::UploadState::Done => {
                    break s.file.ok_or_else(|| ApiError::Protocol("done without a file".into()))?;
                }
                types::UploadState::Failed => {
                    let _ = std::fs::remove_file(&state_file);
                    let reason = s.reason.unwrap_or_else(|| "no reason given".into());
                    return Err(UploadError::Failed { path, reason });
                }
                // Only after an answer said otherwise, which states never undo.
                types::UploadState::Uploading if !completed => {
                    self.session.send(|| self.session.api().upload_complete().upload_id(&id).send()).await?;
                    completed = true;
                }
                _ => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
            }
        };
        let _ = std::fs::remove_file(&state_file);
        // Chunks this run sent that another sender's got there first count as held.
        let sent = sent.load(Ordering::Relaxed);
        let how = if was_resumed || !held.is_empty() || sent < missing.len() as u64 { "resumed" } else { "uploaded" };
        self.verified(path, file, how, sent, count, &sha1, &sha256)
    }

    /// Answers an init's or a declare's `challenge` from the file's own
    /// bytes; the answer as it came otherwise.
    async fn prove_if_asked(
        &self,
        path: &Path,
        answer: types::InitResponse,
    ) -> Result<types::InitResponse, UploadError> {
        let (Some(challenge), Some(id)) = (answer.challenge.clone(), answer.upload_id.clone()) else {
            return Ok(answer);
        };
        let p = path.to_owned();
        let proof = tokio::task::spawn_blocking(move || answer_challenge(&p, &challenge))
            .await
            .expect("proof panicked")
            .map_err(UploadError::io(path))?;
        let body = types::ProveRequest { proof: typed("proof", proof)? };
        Ok(self.session.call(|| self.session.api().upload_prove().upload_id(&id).body(body.clone()).send()).await?)
    }

    /// Sends one chunk, read from its region of the file into one buffer,
    /// with its `Upload-Checksum`, once a slot is free. True when the server
    /// stored it; false when the upload needed it no more (`settled` says
    /// so, set here when the answer tells it: nothing more is sent then).
    async fn send_chunk(
        &self,
        file: &Arc<std::fs::File>,
        path: &Path,
        before: Stamp,
        id: &str,
        chunk: Chunk,
        settled: &AtomicBool,
    ) -> Result<bool, UploadError> {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        if let Some(d) = self.chunk_delay {
            tokio::time::sleep(d).await;
        }
        if settled.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if stamp(path)? != before {
            return Err(UploadError::Changed(path.to_owned()));
        }
        let file = file.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0; chunk.len as usize];
            file.read_exact_at(&mut buf, chunk.offset).map(|()| buf)
        })
        .await
        .expect("reading panicked")
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => UploadError::Changed(path.to_owned()),
            _ => UploadError::Io { path: path.to_owned(), source: e },
        })?;
        let checksum: types::UploadPartUploadChecksum = typed(
            "Upload-Checksum",
            format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(&bytes))),
        )?;
        let bytes = bytes::Bytes::from(bytes);
        let sent = self
            .session
            .call(|| {
                self.session
                    .api()
                    .upload_part()
                    .upload_id(id)
                    .chkidx(chunk.index)
                    .upload_checksum(checksum.clone())
                    .body(bytes.clone())
                    .send()
            })
            .await;
        let Some(receipt) = not_uploading(sent, settled)? else { return Ok(false) };
        if matches!(receipt.state, types::UploadState::Uploading) {
            return Ok(true);
        }
        settled.store(true, Ordering::Relaxed);
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    fn verified(
        &self,
        local: PathBuf,
        file: types::FileInfo,
        how: &'static str,
        sent: u64,
        count: u64,
        sha1: &str,
        sha256: &str,
    ) -> Result<Outcome, UploadError> {
        if !file.filehash.eq_ignore_ascii_case(sha1) {
            return Err(UploadError::Mismatch { path: local, what: "SHA-1", theirs: file.filehash, ours: sha1.into() });
        }
        match &file.sha256 {
            Some(theirs) if !theirs.eq_ignore_ascii_case(sha256) => {
                return Err(UploadError::Mismatch {
                    path: local,
                    what: "SHA-256",
                    theirs: theirs.clone(),
                    ours: sha256.into(),
                });
            }
            _ => {}
        }
        Ok(Outcome { local, file, how, chunks_sent: sent, chunks_held: count - sent })
    }
}

/// An answer, or `None` (with `settled` set) when it is 409
/// `UPLOAD_NOT_UPLOADING`: the upload left `uploading` (another sender
/// completed it, or its merge failed); the status poll says which.
fn not_uploading<T>(answer: Result<T, impl Into<UploadError>>, settled: &AtomicBool) -> Result<Option<T>, UploadError> {
    match answer.map_err(Into::into) {
        Ok(t) => Ok(Some(t)),
        Err(UploadError::Api(e)) if e.code() == Some(types::ErrorCode::UploadNotUploading) => {
            settled.store(true, Ordering::Relaxed);
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// SHA-1 and SHA-256 of a file in one pass, 1 MiB at a time.
pub fn hash_file(path: &Path) -> std::io::Result<(String, String)> {
    let mut f = std::fs::File::open(path)?;
    let (mut h1, mut h256) = (sha1::Sha1::new(), sha2::Sha256::new());
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h1.update(&buf[..n]);
        h256.update(&buf[..n]);
    }
    Ok((hex::encode(h1.finalize()), hex::encode(h256.finalize())))
}

/// The proof of possession: SHA-256 of the nonce's bytes, then of each
/// challenged range of the file, in order.
pub fn answer_challenge(path: &Path, challenge: &types::Challenge) -> std::io::Result<String> {
    let f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let nonce = hex::decode(&challenge.nonce)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("challenge nonce: {e}")))?;
    h.update(nonce);
    let mut buf = vec![0; 1 << 20];
    for r in &challenge.ranges {
        let (mut at, end) = (r.first, r.last + 1);
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            f.read_exact_at(&mut buf[..n], at)?;
            h.update(&buf[..n]);
            at += n as u64;
        }
    }
    Ok(hex::encode(h.finalize()))
}
