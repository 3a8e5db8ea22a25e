//! The MergeJob: turn a fully received upload into a stored, verified file.
//!
//! Steps, each safe to repeat when a crashed or killed attempt is retried:
//! 1. load the session; anything but `merging` means there is nothing to do;
//! 2. assemble the chunks into a temporary file beside the file store and
//!    hash it ([`crate::assemble`]);
//! 3. a hash other than the declared one ends the upload `failed`, with the
//!    reason, and no rows;
//! 4. move the file to its content-addressed key, then in one transaction
//!    record (or reference) the content and the owner's entry;
//! 5. mark the session `done`; only then delete the staged chunks.

use std::fs::File;
use std::path::{Path as FsPath, PathBuf};

use apalis::prelude::{BoxDynError, Data};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use shared::db::NewUserFile;
use shared::domain::{UploadId, UploadSession, UploadState};
use shared::error::{Error, Result, ResultExt};
use shared::jobs::MergeJob;
use shared::objects;

use crate::MergeContext;
use crate::assemble::assemble;

/// The apalis handler.
pub async fn handle(job: MergeJob, ctx: Data<MergeContext>) -> Result<(), BoxDynError> {
    merge(&ctx, &job).await.map_err(|e| {
        tracing::warn!(upload = %job.upload_id, error = %e, "merge attempt failed; it will be retried");
        Box::new(e) as BoxDynError
    })
}

/// Deletes a temporary file unless the merge moved it into place.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Runs one merge. Ok(()) also when there is nothing (left) to do.
#[tracing::instrument(name = "merge upload", skip(ctx), fields(upload = %job.upload_id, size, chunks, merge_mb_s))]
pub async fn merge(ctx: &MergeContext, job: &MergeJob) -> Result<()> {
    let b = &ctx.backends;
    let Ok(id) = UploadId::parse(&job.upload_id) else {
        tracing::error!("malformed upload id in merge job; dropping it");
        return Ok(());
    };
    let Some(session) = b.uploads.get(&id).await? else {
        tracing::info!("upload is gone (aborted or expired); nothing to merge");
        return Ok(());
    };
    match session.state {
        UploadState::Merging => {}
        UploadState::Done => {
            // A retry after the session was marked done: only the clean-up may be left.
            objects::delete_prefix(&b.staging, &objects::upload_prefix(&id)).await?;
            return Ok(());
        }
        other => {
            tracing::info!(state = %other, "upload is not merging; nothing to do");
            return Ok(());
        }
    }
    let span = tracing::Span::current();
    span.record("size", session.plan.file_size);
    span.record("chunks", session.plan.chunk_count);

    let chunks = b.uploads.chunks(&id).await?;
    let missing: Vec<u64> = (0..session.plan.chunk_count)
        .filter(|i| !chunks.contains_key(i))
        .collect();
    if !missing.is_empty() {
        let reason = format!(
            "{} chunk(s) missing at merge time, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        return fail(ctx, &session, &reason).await;
    }
    let staging_dir = b.staging_dir.clone().ok_or_else(|| {
        Error::internal(
            "merging",
            "the staging store must be a local or shared directory (file://)",
        )
    })?;
    let sources: Vec<PathBuf> = chunks.values().map(|k| staging_dir.join(k)).collect();

    let tmp_dir = match &b.files_dir {
        Some(dir) => dir.join(".tmp"),
        None => ctx.settings.data_dir.join("tmp"),
    };
    std::fs::create_dir_all(&tmp_dir).context("creating the merge directory")?;
    let mut tmp = TempFile {
        path: tmp_dir.join(format!("{id}-{}.part", shared::random_hex(4))),
        keep: false,
    };

    let (plan, threads, path) = (
        session.plan,
        ctx.settings.merge_threads as usize,
        tmp.path.clone(),
    );
    let assembled = tokio::task::spawn_blocking(move || {
        let out = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        assemble(&out, plan.file_size, plan.chunk_size, &sources, threads)
    })
    .await
    .context("merge task")?
    .context("assembling the file")?;
    let rate = if assembled.seconds > 0.0 {
        plan.file_size as f64 / 1e6 / assembled.seconds
    } else {
        0.0
    };
    span.record("merge_mb_s", rate.round());
    tracing::info!(sha1 = %assembled.sha1, seconds = assembled.seconds, mb_s = rate.round(), "assembled and hashed");

    if assembled.sha1 != session.filehash.as_str() {
        let reason = format!(
            "SHA-1 mismatch: declared {}, actual {}",
            session.filehash, assembled.sha1
        );
        return fail(ctx, &session, &reason).await;
    }

    let key = objects::file_key(session.filehash.as_str(), plan.file_size);
    store_file(ctx, &tmp.path, &key).await?;
    tmp.keep = true;

    let entry = NewUserFile {
        user_id: session.owner,
        filehash: session.filehash.as_str(),
        filesize: plan.file_size as i64,
        filename: &session.filename,
        now: shared::now(),
    };
    let (_, stored) = b.repo.commit_merged(&entry, key.as_ref()).await?;
    if stored.storage_key != key.as_ref() {
        // The same content was stored first by another merge: keep that copy.
        let _ = b.files.delete(&key).await;
    }
    b.uploads
        .set_state(&id, UploadState::Done, None, shared::now())
        .await?;
    objects::delete_prefix(&b.staging, &objects::upload_prefix(&id)).await?;
    tracing::info!(key = %stored.storage_key, "upload done");
    Ok(())
}

/// Ends an upload `failed` with `reason`: no rows, chunks deleted.
async fn fail(ctx: &MergeContext, session: &UploadSession, reason: &str) -> Result<()> {
    tracing::warn!(reason, "upload failed");
    let b = &ctx.backends;
    b.uploads
        .set_state(
            &session.id,
            UploadState::Failed,
            Some(reason),
            shared::now(),
        )
        .await?;
    objects::delete_prefix(&b.staging, &objects::upload_prefix(&session.id)).await?;
    Ok(())
}

/// Moves the assembled file to `key` in the file store: a rename when the
/// store is a local directory (same filesystem), else an upload.
async fn store_file(ctx: &MergeContext, tmp: &FsPath, key: &Path) -> Result<()> {
    match &ctx.backends.files_dir {
        Some(dir) => {
            let dest = dir.join(key.as_ref());
            let parent = dest
                .parent()
                .map(FsPath::to_path_buf)
                .unwrap_or_else(|| dir.clone());
            std::fs::create_dir_all(&parent).context("creating the file's directory")?;
            std::fs::rename(tmp, &dest).context("moving the file into the store")?;
            // The rename is durable only once the directory is synced.
            File::open(&parent)
                .and_then(|d| d.sync_all())
                .context("syncing the store directory")?;
            Ok(())
        }
        None => Err(Error::internal(
            "storing the file",
            "only file:// stores are supported",
        )),
    }
}
