//! The consistency audit: compares the database with the stores and reports
//! what differs. Run by `api admin audit` (an operator's check) and by the
//! tests after every fault they inject. It only reads; it repairs nothing.
//!
//! Checks:
//! - every stored content has its bytes, of the right size (`deep`: and the
//!   right SHA-1, and SHA-256 where recorded);
//! - no user entry without its content row, no wrong reference count;
//! - no live file or folder inside a folder that is not live (it would be
//!   listed nowhere), no trash item's contents left live, and no name index
//!   rows for entries that are gone;
//! - no stored bytes without a row, past a grace period (a merge may be
//!   between storing and recording);
//! - no staged chunks of an upload that is gone or finished, past the grace;
//! - no upload left `merging` without a heartbeat;
//! - every content whose backup is `done` has its backup object.

use futures::TryStreamExt;
use object_store::path::Path;

use crate::domain::error::Result;
use crate::domain::hashing::ContentHasher;
use crate::domain::{BackupState, UploadId, UploadState};
use std::sync::Arc;

use crate::runtime::config::Settings;
use crate::stores::meta::MetaRepo;
use crate::stores::objects::Store;
use crate::stores::open::{DataStores, OpenError};
use crate::stores::uploads::UploadSessions;

/// How many examples each finding lists.
const EXAMPLES: usize = 10;

/// How deep to look at stored bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Existence and size.
    Quick,
    /// Existence, size and digests (reads every byte).
    Deep,
}

/// One kind of inconsistency: how many, and a few examples.
#[derive(Debug, Clone, Default)]
pub struct Finding {
    /// What is wrong.
    pub what: &'static str,
    /// How many times.
    pub count: u64,
    /// The first few, as keys or ids with details.
    pub examples: Vec<String>,
}

/// What the audit saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Stored contents checked.
    pub files: u64,
    /// Their bytes in all.
    pub bytes: u64,
    /// What differs; empty when the installation is consistent.
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether nothing differs.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    fn note(&mut self, what: &'static str, example: String) {
        match self.findings.iter_mut().find(|f| f.what == what) {
            Some(f) => {
                f.count += 1;
                if f.examples.len() < EXAMPLES {
                    f.examples.push(example);
                }
            }
            None => self.findings.push(Finding { what, count: 1, examples: vec![example] }),
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} stored files, {} bytes checked", self.files, self.bytes)?;
        if self.is_clean() {
            return writeln!(f, "consistent: nothing to report");
        }
        for finding in &self.findings {
            writeln!(f, "{}: {}", finding.what, finding.count)?;
            for e in &finding.examples {
                writeln!(f, "  {e}")?;
            }
        }
        Ok(())
    }
}

/// The consistency audit (`api admin audit`): the rows against the
/// stores they describe. It only reads.
#[derive(Clone)]
pub struct Audit {
    pub(crate) repo: Arc<dyn MetaRepo>,
    pub(crate) files: Store,
    pub(crate) backup: Option<Store>,
    pub(crate) staging: Store,
    pub(crate) uploads: Arc<dyn UploadSessions>,
    /// Seconds without a heartbeat after which a merge counts as stalled.
    pub(crate) merge_stall_secs: u64,
}

impl Audit {
    /// The audit on these stores.
    fn on(d: &DataStores, settings: &Settings) -> Self {
        Audit {
            repo: d.repo.clone(),
            files: d.files.clone(),
            backup: d.backup.clone(),
            staging: d.staging.clone(),
            uploads: d.uploads.clone(),
            merge_stall_secs: settings.merge_stall_secs,
        }
    }

    /// Opens the stores it reads, and not the job queue: `api admin audit`
    /// runs beside a live api, which may hold the queue's write lock.
    pub async fn open(settings: &Settings) -> Result<Self, OpenError> {
        Ok(Audit::on(&DataStores::open(settings).await?, settings))
    }

    /// Runs every check once; `grace` seconds shield objects still on their way
    /// (a merge between storing and recording, chunks of an upload just made).
    pub async fn run(&self, depth: Depth, grace: i64) -> Result<Report> {
        let mut report = Report::default();
        let now = crate::now();

        let files = self.repo.all_files().await?;
        let mut keys = std::collections::HashSet::new();
        for f in &files {
            report.files += 1;
            report.bytes += f.filesize.max(0) as u64;
            keys.insert(f.storage_key.clone());
            let key = Path::from(f.storage_key.as_str());
            match self.files.head(&key).await? {
                Some(meta) if meta.size != f.filesize as u64 => report.note(
                    "stored files of the wrong size",
                    format!("{} ({} bytes, {} expected)", f.storage_key, meta.size, f.filesize),
                ),
                Some(_) if depth == Depth::Deep => match self.files.read(&key, None).await? {
                    Some(mut stream) => {
                        let mut hasher = ContentHasher::new();
                        while let Some(piece) = stream.try_next().await? {
                            hasher.update(&piece);
                        }
                        let d = hasher.finish();
                        if d.sha1 != f.filehash || f.sha256.as_ref().is_some_and(|h| *h != d.sha256) {
                            report.note("stored files whose bytes do not match their digests", f.storage_key.clone());
                        }
                    }
                    None => report.note("stored files missing their bytes", f.storage_key.clone()),
                },
                Some(_) => {}
                None => report.note("stored files missing their bytes", f.storage_key.clone()),
            }
            if f.backup_state == BackupState::Done
                && let (Some(backup), Some(bkey)) = (&self.backup, &f.backup_key)
                && backup.head(&Path::from(bkey.as_str())).await?.is_none()
            {
                report.note("backed-up files missing their backup copy", bkey.clone())
            }
        }

        for id in self.repo.entries_without_content().await? {
            report.note("user entries without their stored file", id);
        }
        for (id, refcount, entries) in self.repo.refcount_mismatches().await? {
            report.note("wrong reference counts", format!("file {id}: refcount {refcount}, {entries} entries"));
        }
        for id in self.repo.entries_outside_tree().await? {
            report.note("live files or folders in a folder that is not live", id);
        }
        for item in self.repo.stale_name_index().await? {
            report.note("name index rows for entries that are gone", item);
        }
        for name in self.repo.nfc_twins().await? {
            report.note("names one folder holds twice in different Unicode forms (rename one)", name);
        }
        for (id, name) in self.repo.entry_names().await? {
            if crate::domain::FileName::parse(&name).is_err() {
                report.note("names the name rule refuses today (rename them)", id);
            }
        }

        let mut listing = self.files.list(None);
        while let Some(meta) = listing.try_next().await? {
            let key = meta.key.as_ref();
            if keys.contains(key) || meta.last_modified > now - grace {
                continue;
            }
            // Another process may have recorded it since the rows were read.
            if !self.repo.is_referenced(key).await? {
                report.note("stored bytes no row refers to", key.to_owned());
            }
        }

        for prefix in self.staging.list_prefixes().await? {
            let Ok(id) = UploadId::parse(prefix.as_ref()) else { continue };
            let live = matches!(self.uploads.get(&id).await?, Some(s) if s.state != UploadState::Done);
            if live {
                continue;
            }
            let recent = self
                .staging
                .list(Some(&prefix))
                .try_any(|m| futures::future::ready(m.last_modified > now - grace))
                .await?;
            if !recent {
                report.note("staged chunks of uploads that are gone or done", id.to_string());
            }
        }

        for id in self.uploads.stale_merges(now - self.merge_stall_secs as i64, 1000).await? {
            report.note("uploads merging without a heartbeat", id.to_string());
        }
        Ok(report)
    }
}
