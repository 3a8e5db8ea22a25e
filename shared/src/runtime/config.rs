//! Settings shared by `api` and `worker`: where the data lives and how uploads
//! are shaped. Every field is a flag and an environment variable; the doc
//! comments are what `--help` prints.

use std::path::{Path, PathBuf};

use clap::Args;

/// Storage and upload settings common to every pan process.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Directory for the embedded deployment: the SQLite database, the job
    /// queue and the local staging and file stores.
    #[arg(long, env = "PAN_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// SQL database for metadata: `mysql://user:password@host:port/db` for a
    /// fleet, or `sqlite://path`. Unset: `<data dir>/pan.db`.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Redis for upload chunk state, the shared limits and the job queue
    /// (`redis://host:port/db`), or a Redis Cluster
    /// (`redis-cluster://host:port,host:port,…`; then `PAN_QUEUE_URL`).
    /// Unset: chunk state in the SQL database and the queue in
    /// `<data dir>/jobs.db`.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Redis for the job queue when it must differ from `REDIS_URL`:
    /// required when `REDIS_URL` names a Redis Cluster
    /// (`redis-cluster://host:port,host:port,…`), whose upload state and
    /// shared limits it holds, while the queue needs a plain Redis.
    #[arg(long, env = "PAN_QUEUE_URL")]
    pub queue_url: Option<String>,

    /// Prefix of every Redis key and job queue pan uses, so that several pan
    /// installations (or test runs) can share one Redis.
    #[arg(long, env = "PAN_REDIS_PREFIX", default_value = "pan")]
    pub redis_prefix: String,

    /// Where finished files are stored: `file:///abs/path`. Unset:
    /// `<data dir>/files`.
    #[arg(long, env = "PAN_STORE_URL")]
    pub store_url: Option<String>,

    /// Where uploaded chunks wait for their merge: `file:///abs/path`. Unset:
    /// `<data dir>/staging`. In a fleet it must be shared by api and workers.
    #[arg(long, env = "PAN_STAGING_URL")]
    pub staging_url: Option<String>,

    /// Backup store for finished files: `file:///abs/path` or
    /// `s3://bucket/prefix` (Aliyun OSS, S3, Garage, Ceph…). Unset: no backup.
    #[arg(long, env = "PAN_BACKUP_URL")]
    pub backup_url: Option<String>,

    /// Seconds between backups of the metadata database to
    /// `PAN_BACKUP_URL` (`metadata/` beside the files), taken by the clean-up
    /// job when one is due: one consistent copy of every table that outlives
    /// an upload (users, entries, contents, shares, versions, keys), which
    /// `api admin restore` brings back. 0: only by `api admin backup`.
    #[arg(long, env = "PAN_METADATA_BACKUP_SECS", default_value_t = 86_400)]
    pub metadata_backup_secs: u64,

    /// How many metadata backups the backup store keeps (the oldest go when
    /// a new one is taken); at least 1.
    #[arg(long, env = "PAN_METADATA_BACKUPS_KEPT", default_value_t = 14,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub metadata_backups_kept: u64,

    /// When the clean-up job runs, as a cron expression with seconds
    /// (`sec min hour day month weekday`): it expires idle uploads and their
    /// chunks, drops chunks no upload owns, and retries failed backups.
    #[arg(long, env = "PAN_SWEEP_SCHEDULE", default_value = "0 */5 * * * *")]
    pub sweep_schedule: String,

    /// Scrub the file store (delete stored files nothing refers to, older
    /// than a day) on every clean-up instead of only between 03:00 and 04:00
    /// UTC. The scrub lists the whole store.
    #[arg(long, env = "PAN_SCRUB_ALWAYS", value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub scrub_always: bool,

    /// The address clients reach this service at (e.g.
    /// `https://pan.example.com`), used in signed download URLs. Required when
    /// the api listens beyond loopback; unset on loopback: `http://<listen
    /// address>`. Never taken from a request's Host header.
    #[arg(long, env = "PAN_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Seconds a download URL from `/file/downloadurl` stays valid by default
    /// (at most 7 days may be asked for).
    #[arg(long, env = "PAN_URL_TTL", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub url_ttl: u64,

    /// Days a signing key (of signed download URLs, of share access tokens)
    /// signs before a fresh one replaces it. A replaced key still verifies
    /// what it signed until that can have expired (7 days for URLs, 1 hour
    /// for share tokens), then it is dropped. `api admin rotate-keys`
    /// rotates at once.
    #[arg(long, env = "PAN_KEY_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub key_days: u64,

    /// Chunk size the server prefers, in bytes. Larger files get larger chunks
    /// so that no upload has more than `max_chunks` chunks.
    #[arg(long, env = "PAN_CHUNK_SIZE", default_value_t = 8 << 20,
          value_parser = clap::value_parser!(u64).range(1024..=(1u64 << 32)))]
    pub chunk_size: u64,

    /// Most chunks one upload may have (S3 allows 10,000 parts).
    #[arg(long, env = "PAN_MAX_CHUNKS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_chunks: u64,

    /// Largest file a client may upload, in bytes (default 1 TiB).
    #[arg(long, env = "PAN_MAX_FILE_SIZE", default_value_t = 1 << 40,
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 50)))]
    pub max_file_size: u64,

    /// Bytes of the staging directory's file system kept free: an init whose
    /// size does not fit in the free space, less what open uploads still
    /// reserve and this, answers 507 `SERVER_DISK_FULL` before any byte
    /// (S3 staging is not checked: it does not say how full it is).
    #[arg(long, env = "PAN_DISK_RESERVE", default_value_t = 1 << 30,
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 50)))]
    pub disk_reserve: u64,

    /// Largest file `POST /file/upload` (one multipart request) accepts, in
    /// bytes; bigger files go through the chunked upload.
    #[arg(long, env = "PAN_MAX_SINGLE_UPLOAD", default_value_t = 64 << 20,
          value_parser = clap::value_parser!(u64).range(0..=(1u64 << 40)))]
    pub max_single_upload: u64,

    /// Let a user's init of content another user stored finish at once
    /// ("instant"), after the client proves it holds the bytes (it answers a
    /// challenge on a few server-chosen byte ranges). Off: such uploads send
    /// every chunk and the merge still stores the content once. Either way,
    /// knowing a file's hashes and size is never enough to get it; but a
    /// challenge does tell the asker that the content is stored somewhere,
    /// so turn this off where that is itself a secret.
    #[arg(long, env = "PAN_INSTANT_ACROSS_USERS", value_parser = clap::builder::BoolishValueParser::new(),
          default_value_t = true)]
    pub instant_across_users: bool,

    /// Seconds without a heartbeat after which an upload still `merging`
    /// counts as having lost its merge job: the clean-up enqueues it again.
    /// A running merge beats every 5 s.
    #[arg(long, env = "PAN_MERGE_STALL_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(10..=86_400))]
    pub merge_stall_secs: u64,

    /// Days a deleted file or folder stays in its owner's trash before the
    /// clean-up deletes it for good (its bytes go once nobody else has
    /// them). 0 empties the trash at every clean-up.
    #[arg(long, env = "PAN_TRASH_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub trash_days: u64,

    /// Days an unpinned version of a file is kept at most (0: no age
    /// limit). Younger versions are thinned as they age: of those replaced
    /// in the same 2 s (first 10 s), 10 s (first minute), minute (first
    /// hour), hour (first day), day (first 30 days) or week, the newest is
    /// kept; at most 100 unpinned per file. Pinned versions are kept.
    #[arg(long, env = "PAN_VERSION_MAX_AGE", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=36_500))]
    pub version_max_age: u64,

    /// Each user's storage quota in bytes (a number, optionally with K, M,
    /// G or T for KiB…TiB, or `unlimited`). Files in the trash count.
    /// Uploads reserve their declared size at init. `api admin set-quota`
    /// gives a user their own. Default: `unlimited` on loopback, `10G` when
    /// pan is exposed (see `PAN_SIGNUP`).
    #[arg(long, env = "PAN_QUOTA_BYTES")]
    pub quota_bytes: Option<Limit>,

    /// Each user's limit on files (open uploads count), or `unlimited`.
    /// Default: `unlimited` on loopback, 100000 when pan is exposed.
    #[arg(long, env = "PAN_QUOTA_FILES")]
    pub quota_files: Option<Limit>,

    /// Each user's limit on files and folders together, live and in the
    /// trash (open uploads count), or `unlimited`: past it, a new folder or
    /// upload answers 507 `QUOTA_EXCEEDED`. It bounds the rows one account
    /// can make us hold.
    #[arg(long, env = "PAN_QUOTA_ENTRIES", default_value = "1000000")]
    pub quota_entries: Limit,

    /// The deepest a folder may be (a folder at the root is at depth 1):
    /// a new folder, a move or a restore past it answers 409
    /// `FOLDER_TOO_DEEP`. It bounds what a path, a zip or a search of one
    /// tree can cost.
    #[arg(long, env = "PAN_MAX_DEPTH", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_depth: u32,

    /// Most unfinished uploads one user may have open at once; more answer
    /// 429 `TOO_MANY_UPLOADS`. At least 16 (the web page sends up to 16).
    #[arg(long, env = "PAN_MAX_OPEN_UPLOADS", default_value_t = 64,
          value_parser = clap::value_parser!(u64).range(16..=100_000))]
    pub max_open_uploads: u64,

    /// Slowest a chunk body may arrive, in bytes per second, averaged over
    /// each 30 s window from its first byte (a fast start buys no later
    /// trickle); slower ones are cut off with 400 `CHUNK_TOO_SLOW`, so a
    /// trickling client cannot hold a slot. 0 turns the floor off.
    #[arg(long, env = "PAN_MIN_CHUNK_RATE", default_value_t = 16 << 10)]
    pub min_chunk_rate: u64,

    /// Who may sign up: `open` (anyone), `invite` (with a one-time code from
    /// `api admin invite`) or `closed` (only `api admin create-user`).
    /// Default: `open` on loopback, `invite` when pan is exposed: listening
    /// beyond loopback, a `PAN_PUBLIC_URL` whose host is not loopback, or
    /// `PAN_TRUSTED_PROXIES` set. A disk anyone can fill is never a default.
    #[arg(long, env = "PAN_SIGNUP", value_enum)]
    pub signup: Option<SignupPolicy>,

    /// Seconds an upload may sit idle before it expires with its chunks.
    #[arg(long, env = "PAN_UPLOAD_TTL", default_value_t = 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub upload_ttl: u64,

    /// Seconds a signin token stays valid.
    #[arg(long, env = "PAN_TOKEN_TTL", default_value_t = 7 * 86_400,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub token_ttl: u64,

    /// Chunks one merge fetches at once when they must be copied into one
    /// file (chunks staged on S3; a local staging store needs no copy).
    #[arg(long, env = "PAN_MERGE_THREADS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub merge_threads: u32,

    /// Merge jobs one process runs at a time.
    #[arg(long, env = "PAN_WORKER_JOBS", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    pub worker_jobs: u32,

    /// Whether strangers may reach this installation: not a setting, the
    /// api derives it (see [`Settings::exposed`]).
    #[arg(skip)]
    exposed: bool,
}

/// Who may create an account through `POST /usr/signup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignupPolicy {
    /// Anyone.
    Open,
    /// Whoever holds a one-time invite code.
    Invite,
    /// Nobody; the operator creates accounts.
    Closed,
}

impl SignupPolicy {
    /// As the setting spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SignupPolicy::Open => "open",
            SignupPolicy::Invite => "invite",
            SignupPolicy::Closed => "closed",
        }
    }
}

/// A limit that may be `unlimited`; numbers take K, M, G, T (binary) suffixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

impl std::str::FromStr for Limit {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("unlimited") {
            return Ok(Limit(None));
        }
        let (digits, shift) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => {
                let shift = match c.to_ascii_uppercase() {
                    'K' => 10,
                    'M' => 20,
                    'G' => 30,
                    'T' => 40,
                    _ => return Err(format!("{s:?}: use a number, with K, M, G or T, or `unlimited`")),
                };
                (&s[..i], shift)
            }
            _ => (s, 0),
        };
        let n: u64 =
            digits.trim().parse().map_err(|_| format!("{s:?}: use a number, with K, M, G or T, or `unlimited`"))?;
        n.checked_mul(1 << shift).map(|v| Limit(Some(v))).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unlimited"),
        }
    }
}

impl Settings {
    /// The SQL URL in effect: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("pan.db").display()),
        }
    }

    /// The file store URL in effect.
    pub fn store_url(&self) -> String {
        self.store_url.clone().unwrap_or_else(|| file_url(&self.data_dir.join("files")))
    }

    /// The staging store URL in effect.
    pub fn staging_url(&self) -> String {
        self.staging_url.clone().unwrap_or_else(|| file_url(&self.data_dir.join("staging")))
    }

    /// The SQLite file holding the embedded job queue.
    pub fn jobs_db_path(&self) -> PathBuf {
        self.data_dir.join("jobs.db")
    }

    /// A one-line description of the effective settings with secrets removed.
    /// Whether strangers may reach this installation (set at start-up by
    /// the api from its listen address, public URL and proxies): the
    /// defaults of `PAN_SIGNUP` and the quotas follow it.
    pub fn exposed(&self) -> bool {
        self.exposed
    }

    /// Marks the installation as reachable by strangers (or not).
    pub fn set_exposed(&mut self, exposed: bool) {
        self.exposed = exposed;
    }

    /// Who may sign up: as set, or the default for how exposed pan is.
    pub fn signup_policy(&self) -> SignupPolicy {
        self.signup.unwrap_or(if self.exposed { SignupPolicy::Invite } else { SignupPolicy::Open })
    }

    /// The default byte quota: as set, or the default for how exposed pan is.
    pub fn default_quota_bytes(&self) -> Limit {
        self.quota_bytes.unwrap_or(if self.exposed { Limit(Some(10 << 30)) } else { Limit(None) })
    }

    /// The default file quota: as set, or the default for how exposed pan is.
    pub fn default_quota_files(&self) -> Limit {
        self.quota_files.unwrap_or(if self.exposed { Limit(Some(100_000)) } else { Limit(None) })
    }

    /// The account defaults in force, in one line for the start-up log.
    pub fn defaults_in_force(&self) -> String {
        let how = |set: bool| {
            if set {
                "set"
            } else if self.exposed {
                "exposed default"
            } else {
                "loopback default"
            }
        };
        format!(
            "signup={} ({}), quota bytes={} ({}), quota files={} ({}), entries={}, depth={}",
            self.signup_policy().as_str(),
            how(self.signup.is_some()),
            self.default_quota_bytes(),
            how(self.quota_bytes.is_some()),
            self.default_quota_files(),
            how(self.quota_files.is_some()),
            self.quota_entries,
            self.max_depth,
        )
    }

    /// The stores this process uses, with secrets redacted, for the log.
    pub fn redacted_summary(&self) -> String {
        format!(
            "database={} redis={} store={} staging={}",
            redact_url(&self.database_url()),
            self.redis_url.as_deref().map(redact_url).unwrap_or_else(|| "off".into()),
            self.store_url(),
            self.staging_url(),
        )
    }
}

fn file_url(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!("file://{}", abs.display())
}

/// `scheme://user:secret@host` → `scheme://user:***@host`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::Limit;

    #[test]
    fn limits_read_numbers_suffixes_and_unlimited() {
        assert_eq!("unlimited".parse::<Limit>().unwrap(), Limit(None));
        assert_eq!("1000".parse::<Limit>().unwrap(), Limit(Some(1000)));
        assert_eq!("10G".parse::<Limit>().unwrap(), Limit(Some(10 << 30)));
        assert_eq!("2k".parse::<Limit>().unwrap(), Limit(Some(2048)));
        for bad in ["", "ten", "1X", "-1", "99999999999T"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad:?} accepted");
        }
    }
}
