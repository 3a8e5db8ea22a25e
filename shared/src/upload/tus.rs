//! The tus 1.0 use cases on the upload engine: a tus upload is a
//! server-hashed upload (the running hash is the identity) whose bytes only
//! ever arrive at its offset, the end of the bytes received from 0 on. Its
//! last byte hands it to the merge like any other upload, and the request
//! that sent it waits for the file's entry. Names, quota, dedup and
//! versions are the upload engine's own: nothing here decides them.

use std::time::Duration;

use bytes::Bytes;
use futures::Stream;

use super::{BodyChecksum, BytesRequest, InitOutcome, NewUpload, Source, Staged, Uploads, objects, running_hash};
use crate::domain::error::{Error, ErrorCode, Result};
use crate::domain::{
    FailureCode, FileName, FolderId, Mtime, NameRule, Placement, UploadId, UploadSession, UploadState, User,
    covered_ranges,
};

/// The fingerprint that marks a session as a tus partial upload (no client
/// can send it: fingerprints are printable ASCII without spaces).
pub const PARTIAL_MARK: &str = "tus partial";

/// The lease a tus `PATCH` holds while it sends: one sender per upload.
const TURN_LEASE: &str = "tus-turn";
/// The lease a newer `PATCH` holds while it waits for the turn: the sender
/// sees it and stops at its next durable boundary.
const STOP_LEASE: &str = "tus-stop";
/// How often a sender looks for a newer `PATCH` (in any api process).
const STOP_POLL: Duration = Duration::from_millis(250);
/// How often a newer `PATCH` looks whether the sender let go.
const TURN_POLL: Duration = Duration::from_millis(50);
/// How long a newer `PATCH` waits for the sender to let go before it is
/// answered `UPLOAD_LOCKED` (423).
pub const LET_GO_WITHIN: Duration = Duration::from_secs(10);

/// How long the request that sent an upload's last byte waits for its
/// merge to commit the file, before answering without the entry (a `HEAD`
/// gives it once the merge is done).
pub const FINISH_WAIT: Duration = Duration::from_secs(120);

/// A tus creation, as the front door parsed it.
#[derive(Debug, Clone)]
pub struct TusCreate {
    /// `Upload-Length`; `None` with `Upload-Defer-Length: 1`.
    pub length: Option<u64>,
    /// The name to list the file under (`filename` or `name`).
    pub filename: FileName,
    /// `folder`: a path from the root, made as needed.
    pub folder: Option<String>,
    /// The folder itself, when the caller may not choose (an upload link's):
    /// `folder` is then ignored.
    pub within: Option<FolderId>,
    /// `on_conflict`: a taken name is numbered (the default), refused now,
    /// or replaced when the upload finishes.
    pub rule: NameRule,
    /// `mtime`: the file's modification time.
    pub mtime: Option<Mtime>,
    /// `Upload-Concat: partial`: bytes for a final upload to take, never a
    /// file by themselves.
    pub partial: bool,
    /// The upload link it comes through (`None`: the owner's own).
    pub via_link: Option<String>,
}

/// A tus `PATCH`, as the front door parsed it.
#[derive(Debug, Clone, Copy)]
pub struct TusPatch {
    /// `Upload-Offset`: must be the upload's offset.
    pub offset: u64,
    /// The body's `Content-Length`, when it has one (else it runs to its
    /// end, at most to the upload's size or, unknown, the largest file).
    pub content_length: Option<u64>,
    /// `Upload-Checksum` of the body: none of it counts unless all matches.
    pub checksum: Option<BodyChecksum>,
    /// `Upload-Length`, for an upload created with its length deferred.
    pub length: Option<u64>,
    /// Slowest acceptable rate, as for any body of bytes.
    pub min_rate: u64,
}

/// Where a tus upload is.
#[derive(Debug, Clone)]
pub struct TusUpload {
    /// The session underneath.
    pub session: UploadSession,
    /// The upload's offset: the bytes received from 0 on, without a gap.
    pub offset: u64,
    /// The file's entry, once the upload is done.
    pub file_id: Option<String>,
    /// When an idle upload expires (Unix seconds).
    pub expires_at: i64,
    /// Whether it is a partial upload (concatenation).
    pub partial: bool,
}

impl TusUpload {
    /// Whether every byte is in (and the file, once done, committed).
    pub fn finished(&self) -> bool {
        self.session.state != UploadState::Uploading
    }
}

impl Uploads {
    /// Creates a tus upload: its folder made as needed, its name checked
    /// now when `refuse`, its size (when given) reserved in the quota, as
    /// any upload's init does. An empty file is finished at once.
    #[tracing::instrument(name = "tus create", skip(self, user, create), fields(user = user.id))]
    pub async fn tus_create(&self, user: &User, create: TusCreate) -> Result<TusUpload> {
        let folder = match create.folder.as_deref().map(str::trim).filter(|p| !p.is_empty() && *p != "/") {
            _ if create.within.is_some() => create.within.clone(),
            Some(path) => {
                let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
                self.tree.ensure_folder_path(user, &path).await?
            }
            None => None,
        };
        let place = Placement { folder, rule: create.rule, if_match: None };
        let source = if create.partial { Source::TusPartial } else { Source::Server };
        let new = NewUpload {
            filename: create.filename,
            filesize: create.length,
            mtime: create.mtime,
            source,
            via_link: create.via_link,
        };
        let session = match self.init(user, new, &place).await? {
            InitOutcome::New(session, _) => session,
            // A server-hashed upload has no hashes or fingerprint to resume by.
            InitOutcome::Resume(session, _) => session,
            InitOutcome::Instant(..) => return Err(Error::internal("creating a tus upload", "an instant answer")),
        };
        if session.size == Some(0) && !create.partial {
            return self.tus_finish(user, session.id.as_str()).await;
        }
        Ok(self.tus_upload(session, 0))
    }

    /// A tus upload of the caller's ([`Error::UploadNotFound`] for anyone
    /// else's), with its offset.
    pub async fn tus_state(&self, user: &User, id: &str) -> Result<TusUpload> {
        let (session, segments) = match self.sessions.get_with_segments(&UploadId::parse(id)?).await? {
            Some((s, segments)) if s.owner == user.id => (s, segments),
            _ => return Err(Error::UploadNotFound),
        };
        let offset = match session.state {
            UploadState::Uploading => covered_ranges(segments).first().filter(|r| r.start == 0).map_or(0, |r| r.end),
            _ => session.size.unwrap_or(session.received),
        };
        Ok(self.tus_upload(session, offset))
    }

    fn tus_upload(&self, session: UploadSession, offset: u64) -> TusUpload {
        let file_id = match session.state {
            UploadState::Done => session.entry_id.clone(),
            _ => None,
        };
        let expires_at = session.updated_at + self.limits.upload_ttl as i64;
        let partial = session.fingerprint.as_deref() == Some(PARTIAL_MARK);
        TusUpload { session, offset, file_id, expires_at, partial }
    }

    /// Receives a tus `PATCH`: the body's bytes at the upload's offset
    /// ([`ErrorCode::OffsetMismatch`] at any other), durable in segments of
    /// at most [`super::SEGMENT_MAX`]; a body cut off (the client gone, or
    /// stopped for a newer `PATCH`) keeps every byte that arrived, unless it
    /// carries a checksum: then nothing counts unless all of it matches. An upload of unknown size has its
    /// quota checked against the offset plus the `Content-Length` before a
    /// byte is read. The request that completes the upload hands it to the
    /// merge and waits (at most [`FINISH_WAIT`]) for the file's entry.
    #[tracing::instrument(name = "tus patch", skip(self, user, body), fields(user = user.id, offset = patch.offset))]
    pub async fn tus_patch<S>(&self, user: &User, id: &str, patch: TusPatch, body: &mut S) -> Result<TusUpload>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let mut now = self.tus_state(user, id).await?;
        if let Some(length) = patch.length {
            match now.session.size {
                Some(size) if size != length => {
                    return Err(Error::SizeConflict { message: format!("the upload's length is {size} bytes") });
                }
                Some(_) => {}
                None => now.session = self.set_size(user, id, length).await?,
            }
        }
        match now.session.state {
            UploadState::Uploading => {}
            // Every byte is in: a resent last request (empty, at the end) is
            // answered like the one that finished it.
            UploadState::Merging | UploadState::Done
                if patch.offset == now.offset && patch.content_length.unwrap_or(0) == 0 =>
            {
                return self.tus_finish(user, id).await;
            }
            // A merge that failed and kept the bytes is tried again.
            UploadState::Failed
                if patch.offset == now.offset
                    && patch.content_length.unwrap_or(0) == 0
                    && now.session.reason_code.is_some_and(FailureCode::retryable) =>
            {
                return self.tus_finish(user, id).await;
            }
            UploadState::Merging | UploadState::Done => return Err(offset_mismatch(now.offset)),
            UploadState::Failed => return Err(Error::NotUploading { state: now.session.state.to_string() }),
        }
        // One sender at a time; a sender that is there already (a client's
        // earlier connection, maybe half dead) is asked to let go.
        let turn = self.tus_turn(&now.session.id).await?;
        crate::runtime::crash::point("tus.after_turn");
        let sent = self.tus_send(user, id, patch, body).await;
        turn.release().await;
        sent?;
        let now = self.tus_state(user, id).await?;
        match now.session.size {
            // A partial's bytes wait for a final upload.
            Some(size) if now.offset == size && !now.partial => self.tus_finish(user, id).await,
            _ => Ok(now),
        }
    }

    /// Sends a `PATCH`'s body once the turn is held: checked against the
    /// offset (read again: the sender before may have moved it), the size
    /// and the quota, then received as a body that runs to its end, so that
    /// a newer `PATCH` (seen through [`STOP_LEASE`]) can end it early: what
    /// arrived until then is staged, durable and counted like any segment.
    async fn tus_send<S>(&self, user: &User, id: &str, patch: TusPatch, body: &mut S) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
    {
        let now = self.tus_state(user, id).await?;
        if now.session.state != UploadState::Uploading || patch.offset != now.offset {
            return Err(offset_mismatch(now.offset));
        }
        if let Some(len) = patch.content_length {
            let end = patch.offset.saturating_add(len);
            match now.session.size {
                Some(size) if end > size => {
                    return Err(Error::SizeConflict {
                        message: format!("the bytes would end at {end}, past the upload's length of {size}"),
                    });
                }
                Some(_) => {}
                None if end > self.limits.max_file_size => {
                    return Err(Error::TooLarge {
                        code: ErrorCode::FileTooLarge,
                        message: format!("the file would pass the limit of {} bytes", self.limits.max_file_size),
                    });
                }
                // The quota, for every byte this request says it brings, first.
                None => {
                    self.accounts.reserve_growth(user, id, end.max(now.session.received), end).await?;
                }
            }
        }
        let leases = self.hash.leases.clone();
        let upload = now.session.id.clone();
        let newer = Box::pin(async move {
            loop {
                tokio::time::sleep(STOP_POLL).await;
                match leases.leases_held(&upload, STOP_LEASE, running_hash::now_ms()).await {
                    Ok(0) => {}
                    Ok(_) => {
                        tracing::info!(upload = %upload, "a newer PATCH is waiting: this one stops here");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "looking for a newer PATCH failed"),
                }
            }
        });
        // A body cut off (the client gone: its connection closed mid-body)
        // ends where it was cut, and what arrived is kept like a body that
        // ended there: tus asks a server to keep as much of the data as it
        // can, and a client that sends a whole file in one PATCH (the
        // default of tus-js-client and Uppy) then resumes from those bytes
        // rather than from the start of the segment. (With an
        // `Upload-Checksum`, a cut body cannot match: none of it counts.)
        let cut = futures::StreamExt::scan(&mut *body, (), |_, piece| {
            futures::future::ready(match piece {
                Ok(bytes) => Some(Ok(bytes)),
                Err(e) => {
                    tracing::info!(error = %e, "the PATCH body was cut off: keeping what arrived");
                    None
                }
            })
        });
        let mut body = futures::StreamExt::take_until(cut, newer);
        // Without a length: the body may end early (see above); hyper holds
        // it to its Content-Length, checked above.
        let request = BytesRequest {
            offset: patch.offset,
            content_length: None,
            checksum: patch.checksum,
            min_rate: patch.min_rate,
        };
        self.put_bytes(user, id, request, &mut body).await?;
        Ok(())
    }

    /// Takes the upload's turn to send: at once when nobody holds it; else
    /// asks the holder to let go (the stop lease, unless another waiter
    /// asks already) and waits up to [`LET_GO_WITHIN`].
    async fn tus_turn(&self, id: &UploadId) -> Result<running_hash::Lease> {
        if let Some(turn) = self.hash.lease(id, TURN_LEASE).await? {
            return Ok(turn);
        }
        let ask = self.hash.lease(id, STOP_LEASE).await?;
        let deadline = tokio::time::Instant::now() + LET_GO_WITHIN;
        let turn = loop {
            tokio::time::sleep(TURN_POLL).await;
            match self.hash.lease(id, TURN_LEASE).await {
                Ok(Some(turn)) => break Ok(turn),
                Ok(None) if tokio::time::Instant::now() < deadline => {}
                Ok(None) => {
                    break Err(Error::invalid(
                        ErrorCode::UploadLocked,
                        format!(
                            "another request is sending to this upload and did not let go within {} s; retry",
                            LET_GO_WITHIN.as_secs()
                        ),
                    ));
                }
                Err(e) => break Err(e),
            }
        };
        if let Some(ask) = ask {
            ask.release().await;
        }
        turn
    }

    /// Creates a final upload (`Upload-Concat: final;…`): the bytes of the
    /// caller's finished partial uploads `partials`, in that order, copied
    /// into a new upload placed by `create`, which is then completed like
    /// any other (names, quota, dedup, versions). Nothing is made unless
    /// every partial is the caller's, a partial, and whole
    /// ([`Error::UploadNotFound`] for any other upload). The partials are
    /// deleted once the file is committed (naming one again is 404); if the
    /// copy fails, the final goes and the partials stay.
    #[tracing::instrument(name = "tus concat", skip(self, user, create), fields(user = user.id))]
    pub async fn tus_concat(&self, user: &User, create: TusCreate, partials: &[String]) -> Result<TusUpload> {
        if partials.is_empty() {
            return Err(Error::invalid(ErrorCode::InvalidRequest, "a final upload names at least one partial upload"));
        }
        let mut parts = Vec::with_capacity(partials.len());
        for id in partials {
            let part = self.tus_state(user, id).await?;
            if !part.partial || parts.iter().any(|p: &TusUpload| p.session.id == part.session.id) {
                return Err(Error::UploadNotFound);
            }
            match part.session.size {
                Some(size) if part.session.state == UploadState::Uploading && part.offset == size => parts.push(part),
                _ => {
                    return Err(Error::invalid(
                        ErrorCode::InvalidRequest,
                        format!("partial upload {id} is not finished: send its last bytes first"),
                    ));
                }
            }
        }
        let total = parts.iter().map(|p| p.offset).fold(0u64, u64::saturating_add);
        let create = TusCreate { length: Some(total), partial: false, ..create };
        let made = self.tus_create(user, create).await?;
        if made.finished() {
            self.drop_partials(user, &parts).await;
            return Ok(made);
        }
        let id = made.session.id.as_str().to_owned();
        self.continue_first_hash(&made.session.id, &parts[0]).await?;
        let copied = self.copy_partials(user, &made.session, &parts).await;
        if let Err(e) = copied {
            if let Err(abort) = self.abort(user, &id).await {
                tracing::warn!(error = %abort, "dropping a failed final upload failed; it expires");
            }
            return Err(e);
        }
        let done = self.tus_finish(user, &id).await?;
        if done.file_id.is_some() {
            self.drop_partials(user, &parts).await;
        }
        Ok(done)
    }

    /// Starts the final upload's running hash where its first partial's
    /// ended, when that covers the whole partial: those bytes (the final's
    /// first ones) are not hashed again; the rest are, in order, as they are
    /// copied in. Skipped (the final hashes from 0) when the partial's hash
    /// is not through.
    async fn continue_first_hash(&self, id: &UploadId, first: &TusUpload) -> Result<()> {
        let progress = self.hash.settled_progress(&first.session.id).await?;
        if progress.next == 0 || progress.next != first.offset {
            return Ok(());
        }
        let Some(lease) = self.hash.lease(id, crate::stores::uploads::HASH_LEASE).await? else { return Ok(()) };
        let saved = self.hash.leases.save_hash_progress(id, lease.holder(), &progress, running_hash::now_ms()).await;
        lease.release().await;
        tracing::info!(
            saved = saved?,
            bytes = progress.next,
            "the final upload's hash goes on from its first partial's"
        );
        Ok(())
    }

    /// Copies each partial's staged segments into the final upload `id`,
    /// one after the other at its offset: where the staging store can, on
    /// its side (a `CopyObject` per segment on S3, `copy_file_range` into
    /// the data file locally), marked as received at once; else through
    /// the byte engine. Either way the final's running hash then reads
    /// them in order (its first partial's bytes not again: see
    /// [`Uploads::continue_first_hash`]).
    async fn copy_partials(&self, user: &User, session: &UploadSession, parts: &[TusUpload]) -> Result<()> {
        use futures::StreamExt;
        let id = session.id.as_str();
        let (mut at, mut by_store, mut through_pan) = (0u64, 0u64, 0u64);
        for part in parts {
            for staged in self.sessions.segments(&part.session.id).await? {
                let key = object_store::path::Path::from(staged.key.as_str());
                let segment = crate::domain::Segment { start: at + staged.segment.start, len: staged.segment.len };
                let target = objects::SegmentAt { id: &session.id, segment };
                if let Some(copied) = self.staging.copy_segment(&key, staged.segment, target).await? {
                    self.mark_staged(session, &Staged { segment, key: copied.to_string() }).await?;
                    by_store += segment.len;
                    continue;
                }
                let stream = self
                    .staging
                    .read_segment(&key, staged.segment)
                    .await?
                    .ok_or_else(|| Error::internal("concatenating uploads", "a partial's bytes are not staged"))?;
                let mut stream = stream.map(|piece| piece.map_err(|e| std::io::Error::other(e.to_string())));
                let request = BytesRequest {
                    offset: segment.start,
                    content_length: Some(segment.len),
                    checksum: None,
                    min_rate: 0,
                };
                self.put_bytes(user, id, request, &mut stream).await?;
                through_pan += segment.len;
            }
            at += part.offset;
        }
        if by_store > 0 {
            self.hash.advance_in_background(session.clone());
        }
        tracing::info!(
            upload = id,
            partials = parts.len(),
            by_store,
            through_pan,
            "partial uploads copied into the final upload"
        );
        Ok(())
    }

    /// Deletes partial uploads a final upload took.
    async fn drop_partials(&self, user: &User, parts: &[TusUpload]) {
        for part in parts {
            if let Err(e) = self.abort(user, part.session.id.as_str()).await {
                tracing::warn!(error = %e, upload = %part.session.id, "dropping a partial upload failed; it expires");
            }
        }
    }

    /// Completes an upload whose every byte is in and waits (at most
    /// [`FINISH_WAIT`]) for the merge to commit its file; a merge that
    /// failed is reported as the error it failed with.
    async fn tus_finish(&self, user: &User, id: &str) -> Result<TusUpload> {
        self.complete(user, id, None).await?;
        let deadline = tokio::time::Instant::now() + FINISH_WAIT;
        let mut pause = Duration::from_millis(10);
        loop {
            let now = self.tus_state(user, id).await?;
            match now.session.state {
                UploadState::Done => return Ok(now),
                UploadState::Failed => {
                    let reason = now.session.reason.clone().unwrap_or_default();
                    return Err(match now.session.reason_code {
                        Some(FailureCode::ContentChanged) => Error::ContentChanged,
                        _ => Error::internal("finishing a tus upload", reason),
                    });
                }
                _ if tokio::time::Instant::now() >= deadline => return Ok(now),
                _ => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Ends a tus upload (`DELETE`): an unfinished one is aborted (its bytes
    /// and quota hold go, and an upload link's bytes back to it); a
    /// finished one is forgotten, its file stays.
    #[tracing::instrument(name = "tus terminate", skip(self, user), fields(user = user.id))]
    pub async fn tus_terminate(&self, user: &User, id: &str) -> Result<()> {
        self.abort(user, id).await.map(|_| ())
    }
}

fn offset_mismatch(offset: u64) -> Error {
    Error::invalid(ErrorCode::OffsetMismatch, format!("the upload's offset is {offset}: HEAD it and send from there"))
}
