//! pan's core, shared by the `api` and `worker` binaries: every rule of the
//! product, whichever front door a request came through.
//!
//! Nothing here knows about HTTP: the api crate maps [`Error`] to statuses.
//!
//! The layers, lowest first; a module uses only its own layer and those
//! below (`tests/e2e/structure.rs` checks it):
//! 1. [`runtime`] and [`domain`]: settings, crash points, metrics, logging;
//!    validated types, the error every layer speaks, content hashing.
//! 2. [`stores`]: the roles (metadata, upload state, bytes, the job queue),
//!    each a trait beside one implementation per real system.
//! 3. The use cases, one module per capability, each a service holding only
//!    the roles it uses: [`accounts`], then [`tree`], [`files`], [`upload`]
//!    and [`shares`] (each may call those before it in this list).
//! 4. [`Services`] (here): opens the stores once at start-up and hands each
//!    front door the use cases (`api admin audit` opens its own, read-only:
//!    [`files::audit::Audit::open`]). The roles stay `pub(crate)`, so no front
//!    door can reach a store.
//!
//! Layout:
//! - [`runtime`]: `config` (the typed settings), `crash`, `metrics`, `process`,
//!   `background` (the tracker every background task belongs to).
//! - [`domain`]: `names` and `plan` (types parsed at the edge), `error`, `hashing`.
//! - [`stores`]: `meta` (users, tree, files, shares, quota holds on SQLite or
//!   MySQL), `uploads` (upload state on SQL or Redis, in four roles),
//!   `objects` (byte stores on a directory or S3; chunks land through a
//!   sink), `queue` (apalis on SQLite or Redis), `open`.
//! - [`accounts`]: signup, signin, tokens, profiles, the quota ledger; `password`, `operator`.
//! - [`tree`]: paths, folders, moves, the trash; `locks` (WebDAV's).
//! - [`files`]: commit, single upload, download, repair; `links`, `backup`, `audit`.
//! - [`upload`]: init (from a client's or the server's hashes), declare,
//!   prove, chunks, status, complete, abort; `receive` (a chunk body's
//!   rules), `running_hash`, `merge`, `cleanup`.
//! - [`shares`]: share links and their rules, browsing, zips.

pub mod accounts;
pub mod domain;
pub mod files;
pub mod runtime;
pub mod shares;
pub mod stores;
pub mod tree;
pub mod upload;

use std::sync::Arc;

pub use domain::ErrorCode;
pub use domain::error::{Error, Result};

use crate::accounts::{AccountPolicy, Accounts, HashingPool};
use crate::files::Files;
use crate::files::links::{ChallengeSeed, Keys};
use crate::runtime::background::Background;
use crate::runtime::config::Settings;
use crate::shares::Shares;
use crate::stores::meta::{Totals, TreeBounds};
use crate::stores::queue::{BackupJob, MergeJob, Queue};
use crate::stores::{Backends, OpenError};
use crate::tree::Tree;
use crate::upload::running_hash::RunningHash;
use crate::upload::{UploadLimits, Uploads};

/// Seconds since the Unix epoch: how every time is stored and returned.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// `n` random bytes from the OS generator, as lowercase hex.
pub fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; n];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The settings of share links, which belong to the front door that serves them.
#[derive(Debug, Clone, Copy)]
pub struct ShareRules {
    /// Days a new link works by default (0: forever).
    pub default_days: u64,
    /// Most entries in one zip of a shared folder.
    pub zip_max_entries: usize,
}

/// The api's defaults (`PAN_SHARE_DAYS`, `PAN_ZIP_MAX_ENTRIES`), for the
/// processes that make no links (the worker, `api admin`).
impl Default for ShareRules {
    fn default() -> Self {
        ShareRules { default_days: 30, zip_max_entries: 10_000 }
    }
}

/// Every use case of one installation, cheap to clone: what a front door
/// (the api, the worker, `api admin`) holds.
#[derive(Clone)]
pub struct Services {
    /// Signup, signin, tokens, profiles, quotas.
    pub accounts: Accounts,
    /// Folders, moves, the trash.
    pub tree: Tree,
    /// WebDAV locks.
    pub locks: tree::locks::Locks,
    /// Stored files: single upload, download, rename, delete, backup.
    pub files: Files,
    /// Chunked uploads and their merge.
    pub uploads: Uploads,
    /// Share links.
    pub shares: Shares,
    /// The signing keys of download URLs and share access tokens.
    pub keys: Keys,
    stores: Backends,
    /// Every task the use cases start in the background.
    background: Background,
    scrub_always: bool,
}

impl Services {
    /// Opens every store the settings name, once, and builds the use cases
    /// on them.
    pub async fn open(settings: &Settings, share_rules: ShareRules) -> Result<Self, OpenError> {
        let stores = Backends::open(settings).await?;
        let (b, jobs) = (&stores.data, &stores.jobs);
        let hashing = HashingPool::default();
        let background = Background::default();
        let keys = Keys::new(b.repo.clone(), settings.key_days);
        let accounts = Accounts {
            repo: b.repo.clone(),
            policy: Arc::new(AccountPolicy::from_settings(settings)),
            hashing: hashing.clone(),
        };
        let tree = Tree {
            repo: b.repo.clone(),
            files: b.files.clone(),
            backup: b.backup.clone(),
            trash_retention_secs: settings.trash_days as i64 * 86_400,
            bounds: TreeBounds { max_depth: settings.max_depth, max_entries: settings.quota_entries.0 },
        };
        let files = Files {
            repo: b.repo.clone(),
            files: b.files.clone(),
            backup: b.backup.clone(),
            backups: jobs.backups.clone(),
            tree: tree.clone(),
            accounts: accounts.clone(),
            keys: keys.clone(),
            repairing: Default::default(),
            background: background.clone(),
            max_single_upload: settings.max_single_upload,
            url_ttl: settings.url_ttl,
            version_max_age: settings.version_max_age as i64 * 86_400,
            metadata: files::metadata::MetadataBackups::new(b.repo.clone(), b.backup.clone(), settings),
        };
        let uploads = Uploads {
            repo: b.repo.clone(),
            sessions: b.uploads.clone(),
            staging: b.staging.clone(),
            file_store: b.files.clone(),
            merges: jobs.merges.clone(),
            hash: RunningHash::new(b.uploads.clone(), b.uploads.clone(), b.staging.clone(), background.clone()),
            accounts: accounts.clone(),
            tree: tree.clone(),
            files: files.clone(),
            challenge_seed: ChallengeSeed { repo: b.repo.clone(), cached: Default::default() },
            limits: Arc::new(UploadLimits {
                max_file_size: settings.max_file_size,
                chunk_size: settings.chunk_size,
                max_chunks: settings.max_chunks,
                instant_across_users: settings.instant_across_users,
                merge_stall_secs: settings.merge_stall_secs,
                merge_threads: settings.merge_threads as u64,
                upload_ttl: settings.upload_ttl,
                disk_reserve: settings.disk_reserve,
            }),
        };
        let shares = Shares {
            repo: b.repo.clone(),
            files: files.clone(),
            tree: tree.clone(),
            hashing,
            keys: keys.clone(),
            default_days: share_rules.default_days,
            zip_max_entries: share_rules.zip_max_entries,
            verified: Default::default(),
        };
        let locks = tree::locks::Locks { store: b.locks.clone() };
        Ok(Services {
            accounts,
            tree,
            locks,
            files,
            uploads,
            shares,
            keys,
            stores,
            background,
            scrub_always: settings.scrub_always,
        })
    }

    /// Waits, at most `grace`, for every task the use cases started in the
    /// background, and starts no more long work: what a front door calls at
    /// shutdown, once its requests or jobs have drained. Logs the outcome;
    /// `false` when the grace ran out.
    pub async fn finish_background(&self, grace: std::time::Duration) -> bool {
        self.background.finish(grace).await
    }

    /// The queues the worker takes jobs from (its front door, as a listening
    /// socket is the api's).
    pub fn job_sources(&self) -> (Queue<MergeJob>, Queue<BackupJob>) {
        (self.stores.jobs.merges.clone(), self.stores.jobs.backups.clone())
    }

    /// Caps of `per_user` bodies of one `kind` in flight per user, on this
    /// deployment's slots (shared by every api process on the fleet).
    pub fn user_slots(&self, kind: &'static str, per_user: u32) -> accounts::limits::UserSlots {
        accounts::limits::UserSlots::new(self.stores.data.slots.clone(), self.background.clone(), kind, per_user)
    }

    /// The rate limits of `settings`, on this deployment's buckets (shared
    /// by every api process on the fleet).
    pub fn rate_limiter(&self, settings: accounts::limits::RateSettings) -> accounts::limits::RateLimiter {
        accounts::limits::RateLimiter::new(self.stores.data.limits.clone(), settings)
    }

    /// The largest piece a chunk body is staged in, in bytes (the api sizes
    /// its memory cap on chunks in flight by it).
    pub fn staging_part_size(&self) -> usize {
        self.stores.data.staging.part_size()
    }

    /// Whether the database answers; then whether the upload state store does.
    /// `Err((what, error))` names the one that does not.
    pub async fn health_check(&self) -> std::result::Result<(), (&'static str, Error)> {
        self.stores.data.repo.health_check().await.map_err(|e| ("the database", e))?;
        self.stores.data.uploads.health_check().await.map_err(|e| ("the upload state store", e))
    }

    /// Installation-wide totals, for `/metrics`.
    pub async fn totals(&self) -> Result<Totals> {
        self.stores.data.repo.totals().await
    }

    /// The scheduled clean-up, every step idempotent (several worker
    /// processes may run it at once). The scrub lists whole stores, so it
    /// runs only in the hour after 03:00 UTC, unless `PAN_SCRUB_ALWAYS`.
    #[tracing::instrument(name = "clean up", skip(self))]
    pub async fn clean_up(&self) -> Result<()> {
        let expired = self.uploads.expire_idle().await?;
        let holds = self.uploads.release_stale_holds().await?;
        let orphans = self.uploads.drop_orphan_chunks().await?;
        let stale_uploads = self.stores.housekeep().await;
        let restarted = self.uploads.restart_stale_merges().await?;
        let backups = self.files.requeue_backups().await?;
        let trash = self.tree.empty_expired(1000).await?;
        let props = self.tree.drop_orphan_props().await?;
        let versions = self.files.expire_versions(now()).await?;
        // A failed metadata backup is due again once its claim lapses; the
        // steps after it still run.
        let metadata = self.files.metadata.take_if_due().await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the scheduled metadata backup failed");
            false
        });
        let scrubbed = if (now() / 3600) % 24 == 3 || self.scrub_always { self.files.scrub().await? } else { 0 };
        self.accounts.drop_expired_tokens().await?;
        self.uploads.forget_old_challenges().await?;
        tracing::info!(
            expired,
            holds,
            orphans,
            stale_uploads,
            restarted,
            backups,
            trash,
            props,
            versions,
            scrubbed,
            metadata,
            "clean-up done"
        );
        Ok(())
    }
}
