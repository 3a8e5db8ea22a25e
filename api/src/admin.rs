//! `api admin …`: what an operator does on the server itself, on either
//! deployment, like Nextcloud's `occ`: account commands (they talk to the SQL
//! database `DATABASE_URL` names, nothing else) and the consistency audit
//! (which also reads the stores and the upload state).

use std::io::Read;

use clap::Subcommand;
use shared::domain::{Password, UserName};
use shared::runtime::config::{Limit, Settings};

use shared::accounts::operator::Operator;
use shared::files::metadata::MetadataBackups;
use shared::files::restore::Restore;

/// Operator commands.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create a user. The password is read from standard input (one line);
    /// with `--random-password` one is made and printed.
    CreateUser {
        /// The username.
        name: String,
        /// Make a random password and print it.
        #[arg(long)]
        random_password: bool,
    },
    /// Set a user's password (the recovery path: there is no e-mail). The
    /// password is read from standard input (one line); with
    /// `--random-password` one is made and printed. Their sessions are
    /// signed out; their app passwords keep working.
    SetPassword {
        /// The username.
        name: String,
        /// Make a random password and print it.
        #[arg(long)]
        random_password: bool,
    },
    /// Set a user's own quota; `default` goes back to the server's setting.
    SetQuota {
        /// The username.
        name: String,
        /// Bytes (K, M, G, T suffixes), `unlimited` or `default`.
        #[arg(long)]
        bytes: Option<String>,
        /// Files, `unlimited` or `default`.
        #[arg(long)]
        files: Option<String>,
    },
    /// Make one-time invite codes (for `PAN_SIGNUP=invite`) and print them.
    Invite {
        /// How many.
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// List users with their files, bytes, quota and state.
    Users,
    /// Lock a user out (their tokens and app passwords are revoked at once).
    Disable {
        /// The username.
        name: String,
    },
    /// Let a disabled user back in.
    Enable {
        /// The username.
        name: String,
    },
    /// Check that the database and the stores agree: every file has its
    /// bytes (of the right size; with --deep, the right digests), reference
    /// counts are right, no bytes or staged chunks are left over, no upload
    /// is stuck merging, every backed-up file has its backup. Exit 0 when
    /// consistent, 1 with a report otherwise. Reads only.
    Audit {
        /// Re-hash every stored file (reads all the bytes).
        #[arg(long)]
        deep: bool,
        /// Seconds during which new objects are not called left over (a
        /// merge may be between storing and recording).
        #[arg(long, default_value_t = 3600)]
        grace: i64,
    },
    /// Make fresh signing keys for signed download URLs and share access
    /// tokens now (they also rotate every `PAN_KEY_DAYS`). Every api process
    /// signs with them within 10 seconds; the replaced keys keep verifying
    /// what they signed until it can have expired (7 days for URLs, 1 hour
    /// for share tokens), then they are dropped.
    RotateKeys,
    /// Back up the metadata database now: one consistent copy of every
    /// table that outlives an upload, written to `PAN_BACKUP_URL` under
    /// `metadata/` (also taken every `PAN_METADATA_BACKUP_SECS` by the
    /// clean-up). Runs beside a live installation.
    Backup,
    /// List the metadata backups in the backup store, oldest first.
    Backups,
    /// Bring a new installation back from the backup store: the metadata
    /// from a metadata backup, then every file's bytes from its backup
    /// copy. Only into an empty database (no users, no files); start no api
    /// on it until this ends (none will while it is unfinished). Exit 0
    /// when every file is back, 1 with a list of those that are not: run it
    /// again to go on (it never loads twice), or with --accept-missing to
    /// finish without them.
    Restore {
        /// The backup to restore (its key or file name, as `backups`
        /// lists it); the newest when not given.
        #[arg(long)]
        from: Option<String>,
        /// Finish even when some files could not be brought back (their
        /// entries stay; `api admin audit` lists them).
        #[arg(long)]
        accept_missing: bool,
    },
}

/// A quota argument: `default` (None), `unlimited` (-1, stored), or a number.
fn quota_arg(value: Option<&str>, current: Option<i64>) -> Result<Option<i64>, String> {
    match value {
        None => Ok(current),
        Some(v) if v.eq_ignore_ascii_case("default") => Ok(None),
        Some(v) => match v.parse::<Limit>()? {
            Limit(None) => Ok(Some(-1)),
            Limit(Some(n)) => i64::try_from(n).map(Some).map_err(|_| format!("{v:?} is too large")),
        },
    }
}

fn show_quota(own: Option<i64>, default: Limit) -> String {
    match own {
        None => format!("{default} (default)"),
        Some(n) if n < 0 => "unlimited".into(),
        Some(n) => n.to_string(),
    }
}

/// Runs one command; what it prints goes to stdout, errors are returned as one line.
pub async fn run(settings: &Settings, command: AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::Audit { deep, grace } => audit(settings, deep, grace).await,
        AdminCommand::RotateKeys => rotate_keys(settings).await,
        AdminCommand::Backup => back_up(settings).await,
        AdminCommand::Backups => list_backups(settings).await,
        AdminCommand::Restore { from, accept_missing } => restore(settings, from.as_deref(), accept_missing).await,
        account => accounts(settings, account).await,
    }
}

/// The consistency audit: prints the report; an error when it found differences.
async fn audit(settings: &Settings, deep: bool, grace: i64) -> Result<(), String> {
    let audit = shared::files::audit::Audit::open(settings).await.map_err(|e| e.to_string())?;
    let depth = if deep { shared::files::audit::Depth::Deep } else { shared::files::audit::Depth::Quick };
    let report = audit.run(depth, grace).await.map_err(|e| e.to_string())?;
    print!("{report}");
    if report.is_clean() { Ok(()) } else { Err(format!("{} kind(s) of inconsistency found", report.findings.len())) }
}

/// Makes fresh signing keys and prints what signs from now on and until
/// when each replaced key still verifies.
async fn rotate_keys(settings: &Settings) -> Result<(), String> {
    let keys = shared::files::links::Keys::open(settings).await.map_err(|e| e.to_string())?;
    for r in keys.rotate().await.map_err(|e| e.to_string())? {
        println!("{}: key {} signs from now on", r.purpose.name(), r.kid);
        for (kid, until) in r.kept {
            println!("{}: key {kid} still verifies what it signed until {until} (Unix seconds)", r.purpose.name());
        }
    }
    println!("every api process signs with the new keys within 10 seconds");
    Ok(())
}

/// Takes a metadata backup and says where it went.
async fn back_up(settings: &Settings) -> Result<(), String> {
    let backups = MetadataBackups::open(settings).await.map_err(|e| e.to_string())?;
    let taken = backups.take().await.map_err(|e| e.to_string())?;
    println!(
        "backed up {} tables, {} rows (schema {}) to {} ({} bytes)",
        taken.summary.tables, taken.summary.rows, taken.summary.schema, taken.backup.key, taken.backup.bytes
    );
    if taken.pruned > 0 {
        println!("{} older backup(s) deleted (PAN_METADATA_BACKUPS_KEPT)", taken.pruned);
    }
    Ok(())
}

/// Lists the metadata backups, oldest first.
async fn list_backups(settings: &Settings) -> Result<(), String> {
    let backups = MetadataBackups::open(settings).await.map_err(|e| e.to_string())?;
    println!("{:<40} {:>14} {:>14}", "backup", "bytes", "stored at");
    for b in backups.list().await.map_err(|e| e.to_string())? {
        println!("{:<40} {:>14} {:>14}", b.key, b.bytes, b.stored_at);
    }
    Ok(())
}

/// Restores a new installation and reports what came back.
async fn restore(settings: &Settings, from: Option<&str>, accept_missing: bool) -> Result<(), String> {
    let restore = Restore::open(settings).await.map_err(|e| e.to_string())?;
    let report = restore.run(from, accept_missing).await.map_err(|e| e.to_string())?;
    match &report.loaded {
        Some(l) => println!(
            "restored {} tables, {} rows from {} (taken on {} at {}, schema {})",
            l.summary.tables, l.summary.rows, l.backup.key, l.header.dialect, l.header.taken_at, l.header.schema
        ),
        None => println!("the metadata was restored by an earlier run; going on with the files"),
    }
    println!(
        "files: {} contents, {} copied from the backup store ({} bytes), {} already in place",
        report.contents, report.copied, report.bytes, report.present
    );
    for why in report.missing.iter().take(20) {
        println!("missing: {why}");
    }
    match (report.finished, report.missing.len()) {
        (true, 0) => Ok(()),
        (true, n) => {
            println!("finished without {n} file(s) (--accept-missing); `api admin audit` lists them");
            Ok(())
        }
        (false, n) => Err(format!(
            "{n} file(s) not brought back; the restore is unfinished (no api starts): run it again, \
             or with --accept-missing to finish without them"
        )),
    }
}

/// The account commands: they need only the SQL database.
/// A password made at random, or read from standard input (one line).
fn new_password(random: bool) -> Result<(String, Password), String> {
    let password = if random {
        shared::random_hex(12)
    } else {
        let mut line = String::new();
        std::io::stdin().read_to_string(&mut line).map_err(|e| format!("reading the password: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    let checked = Password::parse(&password).map_err(|e| e.to_string())?;
    Ok((password, checked))
}

async fn accounts(settings: &Settings, command: AdminCommand) -> Result<(), String> {
    let operator = Operator::open(settings).await.map_err(|e| e.to_string())?;
    let policy = operator.policy();
    match command {
        AdminCommand::CreateUser { name, random_password } => {
            let name = UserName::parse(&name).map_err(|e| e.to_string())?;
            let (password, checked) = new_password(random_password)?;
            let user = operator.create_user(&name, &checked).await.map_err(|e| e.to_string())?;
            println!("created user {}", user.username);
            if random_password {
                println!("password: {password}");
            }
        }
        AdminCommand::SetPassword { name, random_password } => {
            let (password, checked) = new_password(random_password)?;
            operator.set_password(&name, &checked).await.map_err(|e| e.to_string())?;
            println!("{name}: password set; their sessions are signed out");
            if random_password {
                println!("password: {password}");
            }
        }
        AdminCommand::SetQuota { name, bytes, files } => {
            let user = operator
                .accounts()
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .find(|a| a.user.username == name)
                .ok_or("no such user")?
                .user;
            let new_bytes = quota_arg(bytes.as_deref(), user.quota_bytes)?;
            let new_files = quota_arg(files.as_deref(), user.quota_files)?;
            operator.set_quota(&name, new_bytes, new_files).await.map_err(|e| e.to_string())?;
            println!(
                "{name}: bytes {}, files {}",
                show_quota(new_bytes, policy.quota_bytes),
                show_quota(new_files, policy.quota_files)
            );
        }
        AdminCommand::Invite { count } => {
            for _ in 0..count {
                println!("{}", operator.invite().await.map_err(|e| e.to_string())?);
            }
        }
        AdminCommand::Users => {
            println!("{:<24} {:>8} {:>16} {:>24} {:>18} state", "user", "files", "bytes", "quota bytes", "quota files");
            for a in operator.accounts().await.map_err(|e| e.to_string())? {
                println!(
                    "{:<24} {:>8} {:>16} {:>24} {:>18} {}",
                    a.user.username,
                    a.files,
                    a.bytes,
                    show_quota(a.user.quota_bytes, policy.quota_bytes),
                    show_quota(a.user.quota_files, policy.quota_files),
                    if a.disabled { "disabled" } else { "active" }
                );
            }
        }
        AdminCommand::Disable { name } => {
            operator.set_disabled(&name, true).await.map_err(|e| e.to_string())?;
            println!("{name} is disabled; their tokens and app passwords are revoked");
        }
        AdminCommand::Enable { name } => {
            operator.set_disabled(&name, false).await.map_err(|e| e.to_string())?;
            println!("{name} is enabled");
        }
        AdminCommand::Audit { deep, grace } => audit(settings, deep, grace).await?,
        AdminCommand::RotateKeys => rotate_keys(settings).await?,
        AdminCommand::Backup => back_up(settings).await?,
        AdminCommand::Backups => list_backups(settings).await?,
        AdminCommand::Restore { from, accept_missing } => restore(settings, from.as_deref(), accept_missing).await?,
    }
    Ok(())
}
