//! The MergeJob: turn a fully received upload into a stored, verified file.
//!
//! Steps, each safe to repeat when a crashed or killed attempt is retried:
//! 1. load the session; anything but `merging` means there is nothing to do;
//! 2. wait for chunk sends still in flight, then at once: hash only what the
//!    running hash ([`crate::upload::running_hash`]) has not, reading it where it is
//!    staged, and store the file at its key (composed from the chunks on
//!    the store's side where it can; else the staged file, linked or
//!    fetched, is put); no row names it yet;
//! 3. a hash other than the declared ones (SHA-1, and SHA-256 when given; at
//!    init or declared later), or a chunk no longer staged, ends the upload
//!    `failed`, with the reason, no rows, and the stored copy deleted;
//!    local I/O trouble (a full disk, unreadable staged bytes) also reports
//!    `failed` but keeps the chunks, so `complete` can start it again;
//! 4. in one transaction record the content
//!    (or reference the same content, by SHA-256 and size) and the owner's entry;
//! 5. mark the session `done`; only then delete the staged chunks.
//!
//! Throughout, a heartbeat refreshes the upload's `updated_at` every few
//! seconds; the clean-up enqueues merges whose heartbeat stopped.

use std::sync::Arc;

use object_store::path::Path;

use super::Uploads;
use crate::domain::error::Result;
use crate::domain::{FailureCode, UploadId, UploadSession, UploadState};
use crate::runtime::background::Background;
use crate::stores::meta::NewUserFile;
use crate::stores::objects;
use crate::stores::queue::MergeJob;
use crate::stores::uploads::{Staged, UploadSessions};

impl Uploads {
    /// Runs one merge. Ok(()) also when there is nothing (left) to do.
    #[tracing::instrument(name = "merge upload", skip(self), fields(upload = %job.upload_id, size, chunks, merge_mb_s))]
    pub async fn merge(&self, job: &MergeJob) -> Result<()> {
        let id = job.upload_id.clone();
        tracing::debug!("merge picked up");
        let Some(session) = self.sessions.get(&id).await? else {
            tracing::info!("upload is gone (aborted or expired); nothing to merge");
            return Ok(());
        };
        match session.state {
            UploadState::Merging => {}
            UploadState::Done => {
                // A retry after the session was marked done: only the clean-up may be left.
                self.staging.delete_prefix(&objects::upload_prefix(&id)).await?;
                return Ok(());
            }
            other => {
                tracing::info!(state = %other, "upload is not merging; nothing to do");
                return Ok(());
            }
        }
        // While this merge runs, its upload's heartbeat stays fresh, so the
        // clean-up can tell a live merge from one whose job was lost.
        let _heartbeat = Heartbeat::start(&self.hash.background, self.sessions.clone(), id.clone());
        let span = tracing::Span::current();
        // `complete` starts a merge only once the size is known.
        let Some(size) = session.size else {
            return self.fail(&session, FailureCode::ChunksMissing, "the upload's size is not known", None).await;
        };
        span.record("size", size);

        // Sends that began before `complete` finish first (one may replace a
        // chunk: the chunk map is read after them). Then two things at once:
        // hashing what the running hash has not (once it has settled), and
        // storing the file at its key, which no row names until the hashes have
        // been checked (an unverified copy is deleted; one left by a crash is
        // unreferenced bytes, which the audit reports and the scrub removes).
        let waited = std::time::Instant::now();
        self.hash.wait_for_writers(&id).await?;
        let staged = self.sessions.segments(&id).await?;
        span.record("chunks", staged.len());
        if let Err(gap) = objects::check_covers(&staged, size) {
            let reason = format!("bytes missing at merge time: {gap}");
            return self.fail(&session, FailureCode::ChunksMissing, &reason, None).await;
        }
        let key = objects::file_key(id.as_str());
        let hashing = async {
            let progress = self.hash.settled_progress(&id).await?;
            tracing::debug!(ms = waited.elapsed().as_millis() as u64, hashed = progress.next, "hash settled");
            let started = std::time::Instant::now();
            let digests = self.hash.finish_hash(&id, &staged, &progress).await?;
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(seconds, hashed_before = progress.next, "hashed the rest");
            Ok::<_, crate::Error>(digests)
        };
        let storing = async {
            let stored = self.store(&session, size, &staged, &key).await;
            tracing::info!(seconds = waited.elapsed().as_secs_f64(), "stored (not yet verified)");
            stored
        };
        let (digests, stored) = tokio::join!(hashing, storing);
        let seconds = waited.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 { size as f64 / 1e6 / seconds } else { 0.0 };
        span.record("merge_mb_s", rate.round());
        // A copy that can never be committed (other bytes than declared, or a
        // chunk gone) goes, once this attempt has ended the upload (see `fail`).
        let unverified = matches!(stored, Ok(Stored::Done)).then_some(&key);
        let digests = match digests {
            Ok(Ok(digests)) => digests,
            Ok(Err(what)) => {
                let reason = format!("{what} are no longer staged");
                return self.fail(&session, FailureCode::ChunksMissing, &reason, unverified).await;
            }
            // A store that is away: the job queue retries later.
            Err(e) if e.is_unavailable() => return Err(e),
            // Staged bytes that cannot be read (a broken disk, a chunk of the
            // wrong length) do not mend by retrying at once: report it.
            // (The copy stays: the retry overwrites it, and only a verified
            // one is ever named by a row.)
            Err(e) => {
                let reason = format!("could not read the staged chunks: {e}");
                return self.pause(&session, FailureCode::AssemblyFailed, &reason).await;
            }
        };
        let digests = &digests;
        tracing::info!(sha1 = %digests.sha1, seconds, "hashed");

        // `complete` refuses an upload whose hashes were never declared, so a
        // merge without one is not expected: it commits nothing unverified.
        let mismatch = match (&session.filehash, &session.sha256) {
            // Server-hashed: what was received is the content.
            (None, _) if session.server_hashed => None,
            (None, _) => Some((FailureCode::Sha1Mismatch, format!("no SHA-1 was declared; actual {}", digests.sha1))),
            (Some(declared), _) if digests.sha1 != declared.as_str() => Some((
                FailureCode::Sha1Mismatch,
                format!("SHA-1 mismatch: declared {declared}, actual {}", digests.sha1),
            )),
            (_, Some(declared)) if digests.sha256 != declared.as_str() => Some((
                FailureCode::Sha256Mismatch,
                format!("SHA-256 mismatch: declared {declared}, actual {}", digests.sha256),
            )),
            _ => None,
        };
        if let Some((code, reason)) = mismatch {
            return self.fail(&session, code, &reason, unverified).await;
        }
        match stored? {
            Stored::Done => {}
            Stored::Paused(code, reason) => return self.pause(&session, code, &reason).await,
        }
        crate::runtime::crash::point("merge.after_store");
        let entry = NewUserFile {
            user_id: session.owner,
            filehash: &digests.sha1,
            sha256: &digests.sha256,
            filesize: size as i64,
            filename: &session.filename,
            // A name taken while the upload ran gets a number (the bytes are
            // in), unless the upload replaces the file of that name.
            folder: session.folder.as_ref().map(|f| f.as_str()),
            rule: super::placement_of(&session).rule,
            now: crate::now(),
            // The time the client declared at init, else now.
            mtime: session.mtime,
            // The room the upload reserved becomes the entry's.
            hold: Some(id.as_str()),
            if_match: session.if_match.as_ref().map(|h| h.as_str()),
            author: &session.author,
        };
        // When the same content (SHA-256 and size) is stored already, that copy
        // wins and ours is dropped: dedup without trusting any client hash.
        let file = match self.files.commit(&entry, &key).await {
            Ok(file) => file,
            // The file it was to replace changed (or a folder took its name):
            // the upload keeps its bytes for the client to decide.
            Err(
                e
                @ (crate::Error::ContentChanged | crate::Error::NameTaken { .. } | crate::Error::AmbiguousPath { .. }),
            ) => {
                objects::delete_quietly(&*self.file_store, &key).await;
                let code = FailureCode::ContentChanged;
                return self.pause(&session, code, &format!("the file was not replaced: {e}")).await;
            }
            Err(e) => return Err(e),
        };
        crate::runtime::crash::point("merge.after_commit");
        if !self.sessions.finish_merge(&id, UploadState::Done, None, Some(&file.id), crate::now()).await? {
            tracing::info!("another attempt finished this upload first");
            return Ok(());
        }
        crate::runtime::crash::point("merge.after_done");
        // Every byte arrived and matched: a challenge this upload left
        // unanswered is no failed proof.
        if let Err(e) = self.repo.challenge_answered(id.as_str(), true).await {
            tracing::warn!(error = %e, "could not clear the upload's challenge; it ages out in a day");
        }
        self.staging.delete_prefix(&objects::upload_prefix(&id)).await?;
        crate::runtime::metrics::MERGES_DONE.inc();
        crate::runtime::metrics::MERGE_BYTES.add(size);
        tracing::info!("upload done");
        Ok(())
    }

    /// Stores the upload's staged segments (`size` bytes) as `key` in the
    /// file store: copied there on the store's side when it can (no byte
    /// passes through this process), otherwise as the staged file (a local
    /// staging store's data file, linked; the segments fetched into one file
    /// elsewhere).
    async fn store(&self, session: &UploadSession, size: u64, staged: &[Staged], key: &Path) -> Result<Stored> {
        let (id, parallel) = (&session.id, self.limits.merge_threads as usize);
        let composed = objects::compose_staged(&*self.staging, &*self.file_store, staged, key, parallel).await;
        let (code, reason) = match composed {
            Ok(true) => return Ok(Stored::Done),
            Ok(false) => {
                match self.staging.staged_file(id, size, staged, self.file_store.scratch_dir(), parallel).await {
                    Ok(mut tmp) => {
                        crate::runtime::crash::point("merge.after_assemble");
                        match self.file_store.put_file(&mut tmp, key).await {
                            Ok(()) => return Ok(Stored::Done),
                            Err(e) if e.is_unavailable() => return Err(e),
                            Err(e) => (FailureCode::StoreFailed, format!("could not store the file: {e}")),
                        }
                    }
                    // A store that is away: the job queue retries later.
                    Err(e) if e.is_unavailable() => return Err(e),
                    // Local I/O trouble (a full disk above all) does not go away by
                    // retrying at once: report it and keep the chunks, so that calling
                    // complete again retries once there is room.
                    Err(e) => (FailureCode::AssemblyFailed, format!("could not assemble the file: {e}")),
                }
            }
            Err(e) if e.is_unavailable() => return Err(e),
            Err(e) => (FailureCode::StoreFailed, format!("could not store the file: {e}")),
        };
        Ok(Stored::Paused(code, reason))
    }

    /// Ends an upload `failed` for good with `code` and `reason`: no rows, chunks
    /// deleted, and this attempt's unverified copy at `stored` too. Only the
    /// attempt that ends the upload deletes anything: another attempt of the
    /// same merge may have committed rows naming the same key and marked the
    /// upload done (after which its chunks go, and a slower attempt finds them
    /// gone).
    async fn fail(
        &self,
        session: &UploadSession,
        code: FailureCode,
        reason: &str,
        stored: Option<&Path>,
    ) -> Result<()> {
        tracing::warn!(reason, code = code.as_str(), "upload failed");
        crate::runtime::metrics::MERGES_FAILED.inc();
        let failure = Some((code, reason));
        if !self.sessions.finish_merge(&session.id, UploadState::Failed, failure, None, crate::now()).await? {
            tracing::info!("another attempt finished this upload first");
            return Ok(());
        }
        if let Some(key) = stored {
            crate::stores::objects::delete_quietly(&*self.file_store, key).await;
        }
        self.accounts.release(session.id.as_str()).await?;
        self.sessions.forget_segments(&session.id).await?;
        self.staging.delete_prefix(&objects::upload_prefix(&session.id)).await?;
        Ok(())
    }

    /// Marks an upload `failed` with `code` and `reason` but keeps its chunks,
    /// so that `complete` starts the merge again.
    async fn pause(&self, session: &UploadSession, code: FailureCode, reason: &str) -> Result<()> {
        let reason = format!("{reason}; call complete again to retry");
        tracing::warn!(reason, code = code.as_str(), "merge failed; chunks kept for a retry");
        crate::runtime::metrics::MERGES_FAILED.inc();
        let failure = Some((code, reason.as_str()));
        self.sessions.finish_merge(&session.id, UploadState::Failed, failure, None, crate::now()).await?;
        // A failed upload reserves nothing, as before it is completed again.
        self.accounts.release(session.id.as_str()).await?;
        Ok(())
    }
}

/// How storing a merged file ended, when no backend was away.
enum Stored {
    /// The file is at its key.
    Done,
    /// Local trouble (a full disk): the upload is to be paused with this
    /// code and reason, its chunks kept for `complete` to retry.
    Paused(FailureCode, String),
}

/// Refreshes an upload's merge heartbeat until dropped.
struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    fn start(background: &Background, sessions: Arc<dyn UploadSessions>, id: UploadId) -> Self {
        Heartbeat(background.spawn(async move {
            let mut tick = tokio::time::interval(super::MERGE_HEARTBEAT);
            loop {
                tick.tick().await;
                match sessions.touch_merge(&id, crate::now()).await {
                    Ok(true) => {}
                    Ok(false) => return, // finished (or gone): nothing to keep alive
                    Err(e) => tracing::warn!(error = %e, "merge heartbeat failed; retrying"),
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
