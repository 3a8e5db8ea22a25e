//! The `pan` command line: settings, the commands, progress and exit codes.
//!
//! Settings come from flags, then the environment (`PAN_SERVER`,
//! `PAN_TOKEN`, `PAN_CACERT`), then the config file
//! (`<config dir>/pan/config.json`, mode 0600, written by `pan login`).
//! Unfinished uploads keep a state file in `<state dir>/pan/uploads`
//! (see [`crate::upload`]).
//!
//! Exit codes: 0 done; 1 failed; 2 bad usage; 3 not logged in or the token
//! was refused; 4 not found; 130 interrupted (state kept: the same command
//! resumes). A failure prints one line on stderr.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::{Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use crate::download;
use crate::http::{ApiError, Retry, Session, typed};
use crate::types;
use crate::upload::{Event, Observer, Outcome, State, UploadError, Uploader};

/// pan's command line: upload, download and manage files on a pan server.
#[derive(Parser, Debug)]
#[command(name = "pan", version, about)]
struct Cli {
    /// The server, e.g. https://pan.example.org (default: the one `pan login` saved).
    #[arg(long, global = true, env = "PAN_SERVER")]
    server: Option<String>,
    /// PEM file of a private CA to trust for the server's certificate.
    #[arg(long, global = true, env = "PAN_CACERT")]
    cacert: Option<PathBuf>,
    /// Print results as JSON on stdout (and no progress bars).
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars and no messages but errors.
    #[arg(long, short, global = true)]
    quiet: bool,
    /// Retries of a failed request (network errors, 5xx, 429) before giving up.
    #[arg(long, global = true, default_value_t = 6)]
    retries: u32,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sign in and keep the token in the config file.
    Login {
        /// The account (asked for when missing).
        #[arg(long, short)]
        username: Option<String>,
        /// Read the password from the first line of stdin instead of asking.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Revoke the token and forget it.
    Logout,
    /// Show the account signed in and its usage.
    Whoami,
    /// List a folder (default: the root).
    Ls {
        /// A folder path such as /photos.
        path: Option<String>,
    },
    /// Upload files (or, with -r, a directory) into a folder, created as needed.
    Put {
        /// Upload a directory and everything in it.
        #[arg(short, long)]
        recursive: bool,
        /// FILE... [DEST]: with two or more arguments the last is the destination folder (default /).
        #[arg(required = true, value_name = "FILE... [DEST]")]
        args: Vec<String>,
        /// Chunks in flight at once, over all files.
        #[arg(long, short, default_value_t = 4)]
        jobs: usize,
        /// Files uploaded at once.
        #[arg(long, default_value_t = 2)]
        files: usize,
        /// When a file of that name is in the folder: replace its content
        /// (the default; the old content is kept as a version on the
        /// server), rename (`name (1).ext`) or refuse. A folder of that
        /// name is never replaced.
        #[arg(long, value_enum, default_value_t = Conflict::Replace)]
        on_conflict: Conflict,
    },
    /// Download a file by path or id (resumable; verified by SHA-256).
    Get {
        /// /path/to/file or the file's id.
        target: String,
        /// Where to write it (a file, or a directory to write into; default: its name here).
        out: Option<PathBuf>,
    },
    /// Move or rename a file or folder.
    Mv {
        /// What to move.
        src: String,
        /// An existing folder to move into, or the new path.
        dst: String,
    },
    /// Delete files or folders (into the trash).
    Rm {
        /// What to delete.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Delete for good instead of into the trash.
        #[arg(long)]
        permanent: bool,
    },
    /// Make a share link for a file or folder and print its URL.
    Share {
        /// What to share.
        path: String,
        /// Protect the link with a password read from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        /// Seconds the link works (0: never expires; default: the server's).
        #[arg(long, value_name = "SECS")]
        expires: Option<i64>,
        /// Downloads the link allows.
        #[arg(long, value_name = "N")]
        max_downloads: Option<std::num::NonZeroU64>,
    },
    /// List unfinished uploads (the next pan put of the same file resumes them).
    Status,
    /// List a file's versions (the contents it had before it was replaced), newest first.
    Versions {
        /// /path/to/file or the file's id.
        target: String,
    },
    /// Make a version the file's content again (the content it has now becomes a version).
    Restore {
        /// /path/to/file or the file's id.
        target: String,
        /// The version's id, as pan versions lists it.
        #[arg(long, value_name = "ID")]
        version: String,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Conflict {
    Replace,
    Rename,
    Refuse,
}

impl From<Conflict> for types::OnConflict {
    fn from(c: Conflict) -> types::OnConflict {
        match c {
            Conflict::Replace => types::OnConflict::Replace,
            Conflict::Rename => types::OnConflict::Rename,
            Conflict::Refuse => types::OnConflict::Refuse,
        }
    }
}

/// A failure: its exit code and its one line.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        let code = match e.status() {
            Some(StatusCode::UNAUTHORIZED) => 3,
            Some(StatusCode::NOT_FOUND) => 4,
            _ => 1,
        };
        fail(code, e.to_string())
    }
}

impl From<UploadError> for Failure {
    fn from(e: UploadError) -> Failure {
        match e {
            UploadError::Api(e) => e.into(),
            e => fail(1, e.to_string()),
        }
    }
}

impl From<download::DownloadError> for Failure {
    fn from(e: download::DownloadError) -> Failure {
        match e {
            download::DownloadError::Api(e) => e.into(),
            e => fail(1, e.to_string()),
        }
    }
}

type Result<T, E = Failure> = std::result::Result<T, E>;

/// What `pan login` keeps.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Config {
    server: Option<String>,
    username: Option<String>,
    token: Option<String>,
    expires_at: Option<i64>,
    cacert: Option<PathBuf>,
}

fn config_path() -> Result<PathBuf> {
    let dir = dirs::config_dir().ok_or_else(|| fail(1, "no config directory: set HOME"))?;
    Ok(dir.join("pan").join("config.json"))
}

fn state_dir() -> PathBuf {
    dirs::state_dir().or_else(dirs::data_local_dir).unwrap_or_else(std::env::temp_dir).join("pan").join("uploads")
}

fn load_config() -> Result<Config> {
    let path = config_path()?;
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| fail(1, format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(fail(1, format!("{}: {e}", path.display()))),
    }
}

/// Writes the config with mode 0600 (it holds the token), through a
/// temporary file renamed over the old one.
fn save_config(c: &Config) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = config_path()?;
    let dir = path.parent().expect("config.json has a folder");
    let err = |e: std::io::Error| fail(1, format!("cannot write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(".config.json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(err)?;
    f.write_all(&serde_json::to_vec_pretty(c).expect("config serialises")).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)
}

/// Everything a command needs.
struct Ctx {
    cli: Cli,
    config: Config,
}

impl Ctx {
    fn server(&self) -> Result<String> {
        self.cli
            .server
            .clone()
            .or_else(|| self.config.server.clone())
            .map(|s| s.trim_end_matches('/').to_owned())
            .ok_or_else(|| fail(3, "no server: run pan login --server URL"))
    }

    fn cacert(&self) -> Option<PathBuf> {
        self.cli.cacert.clone().or_else(|| self.config.cacert.clone())
    }

    /// A session with the token: `PAN_TOKEN`, else the saved one when it
    /// is for this server.
    fn session(&self) -> Result<Session> {
        let server = self.server()?;
        let token = std::env::var("PAN_TOKEN").ok().filter(|t| !t.is_empty()).or_else(|| {
            let saved = self.config.server.as_deref().map(|s| s.trim_end_matches('/'));
            if saved == Some(server.as_str()) { self.config.token.clone() } else { None }
        });
        let token = token.ok_or_else(|| fail(3, format!("not logged in to {server}: run pan login")))?;
        self.session_with(&server, Some(token))
    }

    fn session_with(&self, server: &str, token: Option<String>) -> Result<Session> {
        let mut s = Session::new(server, token, self.cacert().as_deref()).map_err(|m| fail(1, m))?;
        s.retry = Retry { retries: self.cli.retries, ..Retry::default() };
        Ok(s)
    }

    fn bars(&self) -> MultiProgress {
        if self.cli.quiet || self.cli.json || !std::io::stderr().is_terminal() {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::new()
        }
    }

    /// A line for people (not with --json or --quiet).
    fn say(&self, line: impl AsRef<str>) {
        if !self.cli.json && !self.cli.quiet {
            println!("{}", line.as_ref());
        }
    }

    fn print_json(&self, v: &impl Serialize) {
        println!("{}", serde_json::to_string_pretty(v).expect("output serialises"));
    }
}

/// Runs `pan` with the process's arguments and gives its exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let result = runtime.block_on(async {
        let config = load_config()?;
        let ctx = Ctx { cli, config };
        tokio::select! {
            r = run(&ctx) => r,
            _ = tokio::signal::ctrl_c() => Err(fail(130, "interrupted: what was done is kept; run the same command again to resume")),
        }
    });
    // Chunk tasks still running are dropped with the runtime.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("pan: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

async fn run(ctx: &Ctx) -> Result<()> {
    match &ctx.cli.command {
        Command::Login { username, password_stdin } => login(ctx, username.clone(), *password_stdin).await,
        Command::Logout => logout(ctx).await,
        Command::Whoami => whoami(ctx).await,
        Command::Ls { path } => ls(ctx, path.as_deref().unwrap_or("/")).await,
        Command::Put { recursive, args, jobs, files, on_conflict } => {
            put(ctx, *recursive, args, *jobs, *files, *on_conflict).await
        }
        Command::Get { target, out } => get(ctx, target, out.as_deref()).await,
        Command::Mv { src, dst } => mv(ctx, src, dst).await,
        Command::Rm { paths, permanent } => rm(ctx, paths, *permanent).await,
        Command::Share { path, password_stdin, expires, max_downloads } => {
            share(ctx, path, *password_stdin, *expires, *max_downloads).await
        }
        Command::Status => status(ctx).await,
        Command::Versions { target } => versions(ctx, target).await,
        Command::Restore { target, version } => restore(ctx, target, version).await,
    }
}

fn read_stdin_line(what: &str) -> Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| fail(1, format!("cannot read the {what}: {e}")))?;
    let line = line.trim_end_matches(['\n', '\r']).to_owned();
    if line.is_empty() {
        return Err(fail(2, format!("no {what} on stdin")));
    }
    Ok(line)
}

async fn login(ctx: &Ctx, username: Option<String>, password_stdin: bool) -> Result<()> {
    let server = ctx.server().map_err(|_| fail(2, "no server: pan login --server URL (or PAN_SERVER)"))?;
    let username = match username.or_else(|| ctx.config.username.clone().filter(|_| password_stdin)) {
        Some(u) => u,
        None if password_stdin => return Err(fail(2, "--password-stdin needs --username")),
        None => {
            eprint!("Username: ");
            read_stdin_line("username")?
        }
    };
    let password = if password_stdin {
        read_stdin_line("password")?
    } else {
        rpassword::prompt_password("Password: ").map_err(|e| fail(1, format!("cannot read the password: {e}")))?
    };
    let session = ctx.session_with(&server, None)?;
    let credentials = types::Credentials {
        username: typed(&format!("user name {username:?}"), username.as_str())?,
        password: typed("password", password.as_str())?,
        device: None,
    };
    let signed = session.call(|| session.api().signin().body(credentials.clone()).send()).await.map_err(|e| match e
        .status()
    {
        Some(StatusCode::UNAUTHORIZED) => fail(3, "wrong username or password"),
        _ => e.into(),
    })?;
    let config = Config {
        server: Some(server.clone()),
        username: Some(username.clone()),
        token: Some(signed.token),
        expires_at: Some(signed.expires_at),
        cacert: ctx.cacert().map(|p| std::path::absolute(&p).unwrap_or(p)),
    };
    save_config(&config)?;
    if ctx.cli.json {
        #[derive(Serialize)]
        struct LoggedIn<'a> {
            server: &'a str,
            username: &'a str,
            expires_at: i64,
        }
        ctx.print_json(&LoggedIn { server: &server, username: &username, expires_at: signed.expires_at });
    }
    ctx.say(format!("logged in to {server} as {username}"));
    Ok(())
}

async fn logout(ctx: &Ctx) -> Result<()> {
    let mut config = ctx.config.clone();
    if let Ok(session) = ctx.session() {
        // An expired or revoked token is as good as signed out.
        match session.send(|| session.api().signout().send()).await {
            Ok(_) | Err(ApiError::Unauthorized) => {}
            Err(e) => return Err(e.into()),
        }
    }
    config.token = None;
    config.expires_at = None;
    save_config(&config)?;
    if ctx.cli.json {
        #[derive(Serialize)]
        struct LoggedOut {
            logged_out: bool,
        }
        ctx.print_json(&LoggedOut { logged_out: true });
    }
    ctx.say("logged out");
    Ok(())
}

async fn whoami(ctx: &Ctx) -> Result<()> {
    let s = ctx.session()?;
    let info = s.call(|| s.api().user_info().send()).await?;
    if ctx.cli.json {
        #[derive(Serialize)]
        struct Whoami<'a> {
            #[serde(flatten)]
            info: &'a types::UserInfo,
            server: &'a str,
        }
        ctx.print_json(&Whoami { info: &info, server: &s.base });
    } else {
        ctx.say(format!(
            "{} on {} ({} files, {})",
            info.username,
            s.base,
            info.file_count,
            human_bytes(info.bytes_used.max(0) as u64)
        ));
    }
    Ok(())
}

/// A remote path as pan wants it: absolute, without a trailing slash
/// (the root is `/`).
fn remote_path(p: &str) -> String {
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn is_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

async fn stat(s: &Session, path: &str) -> Result<types::TreeEntry> {
    let path = remote_path(path);
    folder_stat(s, &path).await.map_err(|e| match e.status() {
        Some(StatusCode::NOT_FOUND) => fail(4, format!("no such file or folder: {path}")),
        _ => e.into(),
    })
}

/// `GET /folder/stat` of an absolute path.
async fn folder_stat(s: &Session, path: &str) -> Result<types::TreeEntry, ApiError> {
    let path: types::FolderStatPath = typed(&format!("path {path:?}"), path)?;
    s.call(|| s.api().folder_stat().path(path.clone()).send()).await
}

async fn ls(ctx: &Ctx, path: &str) -> Result<()> {
    let s = ctx.session()?;
    let path = remote_path(path);
    let typed_path: types::FolderListPath = typed(&format!("path {path:?}"), path.as_str())?;
    let limit = std::num::NonZeroU64::new(500).expect("not zero");
    let mut entries = Vec::new();
    let mut cursor: Option<types::FolderListCursor> = None;
    loop {
        let page = s
            .call(|| {
                let list = s.api().folder_list().path(typed_path.clone()).limit(limit);
                match &cursor {
                    Some(c) => list.cursor(c.clone()).send(),
                    None => list.send(),
                }
            })
            .await
            .map_err(|e| match e.status() {
                Some(StatusCode::NOT_FOUND) => fail(4, format!("no such folder: {path}")),
                _ => e.into(),
            })?;
        entries.extend(page.entries);
        match page.next_cursor {
            Some(c) if !c.is_empty() => cursor = Some(typed("cursor", c)?),
            _ => break,
        }
    }
    if ctx.cli.json {
        #[derive(Serialize)]
        struct Listing<'a> {
            path: &'a str,
            entries: &'a [types::TreeEntry],
        }
        ctx.print_json(&Listing { path: &path, entries: &entries });
        return Ok(());
    }
    for e in &entries {
        let name = &e.name;
        if matches!(e.kind, types::EntryKind::Folder) {
            ctx.say(format!("{:>10}  {name}/", "-"));
        } else {
            ctx.say(format!("{:>10}  {name}", human_bytes(e.size.unwrap_or(0).max(0) as u64)));
        }
    }
    Ok(())
}

/// Finds or creates the folders of `path` (like `mkdir -p`); the id of the
/// last one (`None`: the root). `known` caches paths already resolved.
async fn ensure_folder(
    s: &Session,
    path: &str,
    known: &Mutex<HashMap<String, Option<String>>>,
) -> Result<Option<String>> {
    let path = remote_path(path);
    let mut parent: Option<String> = None;
    let mut here = String::new();
    for name in path.split('/').filter(|n| !n.is_empty()) {
        here = format!("{here}/{name}");
        if let Some(id) = known.lock().expect("lock").get(&here).cloned() {
            parent = id;
            continue;
        }
        let id = match folder_stat(s, &here).await {
            Ok(e) if matches!(e.kind, types::EntryKind::Folder) => e.id,
            Ok(_) => return Err(fail(1, format!("{here} is a file, not a folder"))),
            Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
                let body = types::CreateFolderRequest {
                    name: typed(&format!("folder name {name:?}"), name)?,
                    on_conflict: Some(types::FolderOnConflict::Refuse),
                    parent: parent.as_deref().map(|p| typed(&format!("folder id {p:?}"), p)).transpose()?,
                };
                match s.call(|| s.api().folder_create().body(body.clone()).send()).await {
                    Ok(f) => f.id,
                    // Made meanwhile by someone else: take it.
                    Err(e) if e.code() == Some(types::ErrorCode::NameTaken) => folder_stat(s, &here).await?.id,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        known.lock().expect("lock").insert(here.clone(), Some(id.clone()));
        parent = Some(id);
    }
    Ok(parent)
}

/// One file to upload.
struct Job {
    local: PathBuf,
    name: String,
    folder_path: String,
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| fail(2, format!("{}: not a file name pan can store (UTF-8 needed)", p.display())))
}

/// Every file and folder under `dir` (folders as paths relative to it).
fn walk(dir: &Path, rel: &str, folders: &mut Vec<String>, files: &mut Vec<(PathBuf, String)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| fail(1, format!("{}: {e}", dir.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| fail(1, format!("{}: {e}", dir.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = file_name(&e.path())?;
        let kind = e.file_type().map_err(|err| fail(1, format!("{}: {err}", e.path().display())))?;
        let sub = format!("{rel}/{name}");
        if kind.is_dir() {
            folders.push(sub.clone());
            walk(&e.path(), &sub, folders, files)?;
        } else if kind.is_file() {
            files.push((e.path(), rel.to_owned()));
        }
    }
    Ok(())
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ")
}

async fn put(
    ctx: &Ctx,
    recursive: bool,
    args: &[String],
    jobs: usize,
    files: usize,
    on_conflict: Conflict,
) -> Result<()> {
    let s = Arc::new(ctx.session()?);
    let (sources, dest) = match args {
        [one] => (vec![one.clone()], "/".to_owned()),
        [sources @ .., dest] => (sources.to_vec(), remote_path(dest)),
        [] => return Err(fail(2, "nothing to upload")),
    };
    let known = Mutex::new(HashMap::new());
    let mut work = Vec::new();
    if recursive {
        let [dir] = sources.as_slice() else {
            return Err(fail(2, "pan put -r takes one directory and an optional destination"));
        };
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            return Err(fail(2, format!("{} is not a directory", dir.display())));
        }
        let dir = std::path::absolute(&dir).map_err(|e| fail(1, format!("{}: {e}", dir.display())))?;
        let base = remote_path(&format!("{dest}/{}", file_name(&dir)?));
        let (mut folders, mut found) = (Vec::new(), Vec::new());
        walk(&dir, "", &mut folders, &mut found)?;
        ensure_folder(&s, &base, &known).await?;
        for f in &folders {
            ensure_folder(&s, &format!("{base}{f}"), &known).await?;
        }
        for (local, rel) in found {
            work.push(Job { name: file_name(&local)?, local, folder_path: remote_path(&format!("{base}{rel}")) });
        }
    } else {
        for src in &sources {
            let local = PathBuf::from(src);
            let meta = std::fs::metadata(&local).map_err(|e| fail(1, format!("{src}: {e}")))?;
            if meta.is_dir() {
                return Err(fail(2, format!("{src} is a directory: use pan put -r")));
            }
            work.push(Job { name: file_name(&local)?, local, folder_path: dest.clone() });
        }
        ensure_folder(&s, &dest, &known).await?;
    }

    let bars = ctx.bars();
    let total_size: u64 = work.iter().map(|j| std::fs::metadata(&j.local).map(|m| m.len()).unwrap_or(0)).sum();
    let total = bars.add(ProgressBar::new(total_size));
    total.set_style(bar_style(
        "{prefix:>20} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ));
    total.set_prefix(format!("total ({} files)", work.len()));
    let uploader = Uploader::new(s.clone(), jobs, state_dir());
    let conflict = types::OnConflict::from(on_conflict);
    let results: Vec<_> = futures::stream::iter(work)
        .map(|job| {
            let (uploader, bars, total, known) = (uploader.clone(), bars.clone(), total.clone(), &known);
            let s = s.clone();
            async move {
                let folder = ensure_folder(&s, &job.folder_path, known).await?;
                let bar = bars.insert_before(&total, ProgressBar::new(0));
                bar.set_style(bar_style("{prefix:>20!} {msg:9} [{bar:30}] {binary_bytes}/{binary_total_bytes}"));
                bar.set_prefix(job.name.clone());
                let observe: Observer = {
                    let (bar, total) = (bar.clone(), total.clone());
                    Arc::new(move |e| match e {
                        Event::Sending { size, held } => {
                            bar.set_length(size);
                            bar.set_position(held);
                            bar.reset_eta();
                            bar.set_message("sending");
                            total.inc(held);
                        }
                        Event::Sent(n) => {
                            bar.inc(n);
                            total.inc(n);
                        }
                        Event::Merging => bar.set_message("merging"),
                    })
                };
                let r = uploader.upload(&job.local, &job.name, folder.as_deref(), Some(conflict), observe).await;
                match &r {
                    Ok(o) => {
                        if o.how == "instant" {
                            total.inc(o.file.filesize.max(0) as u64);
                        }
                        bar.set_position(bar.length().unwrap_or(0));
                        bar.finish_with_message(o.how);
                    }
                    Err(_) => bar.abandon_with_message("failed"),
                }
                r.map(|o| (job.folder_path, o)).map_err(Failure::from)
            }
        })
        .buffer_unordered(files.max(1))
        .collect()
        .await;
    total.finish();
    let _ = bars.clear();

    /// One stored file, for `--json`.
    #[derive(Serialize)]
    struct Put {
        #[serde(flatten)]
        outcome: Outcome,
        path: String,
    }
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for r in results {
        match r {
            Ok((folder, o)) => {
                // The stored name: the server numbers it when the name was taken.
                let path = remote_path(&format!("{folder}/{}", o.file.filename));
                ctx.say(format!(
                    "{} {} → {path} ({})",
                    o.how,
                    o.local.display(),
                    human_bytes(o.file.filesize.max(0) as u64)
                ));
                out.push(Put { outcome: o, path });
            }
            Err(f) => failures.push(f),
        }
    }
    if ctx.cli.json {
        ctx.print_json(&out);
    }
    match failures.len() {
        0 => Ok(()),
        1 => Err(failures.remove(0)),
        n => {
            for f in &failures[1..] {
                eprintln!("pan: {}", f.message);
            }
            let first = failures.remove(0);
            Err(fail(first.code, format!("{} ({n} files failed)", first.message)))
        }
    }
}

async fn get(ctx: &Ctx, target: &str, out: Option<&Path>) -> Result<()> {
    let s = ctx.session()?;
    let id = file_id(&s, target, "pan get downloads files").await?;
    let remote = download::probe(&s, &id).await.map_err(|e| match e.status() {
        Some(StatusCode::NOT_FOUND) => fail(4, format!("no such file: {target}")),
        _ => e.into(),
    })?;
    let name = remote.name.clone().unwrap_or_else(|| id.clone());
    let name = Path::new(&name).file_name().map(PathBuf::from).unwrap_or_else(|| PathBuf::from(&id));
    let out = match out {
        Some(o) if o.is_dir() => o.join(&name),
        Some(o) => o.to_owned(),
        None => name,
    };
    let bars = ctx.bars();
    let bar = bars.add(ProgressBar::new(remote.size));
    bar.set_style(bar_style(
        "{prefix:>20!} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ));
    bar.set_prefix(out.display().to_string());
    let b = bar.clone();
    let r = download::download(&s, &remote, &out, &move |n| b.set_position(n)).await;
    bar.finish_and_clear();
    let size = r?;
    if ctx.cli.json {
        #[derive(Serialize)]
        struct Got<'a> {
            id: &'a str,
            path: &'a Path,
            size: u64,
            digest: &'a str,
        }
        ctx.print_json(&Got { id: &id, path: &out, size, digest: &remote.digest });
    }
    ctx.say(format!("{} ({}, verified)", out.display(), human_bytes(size)));
    Ok(())
}

/// The id of the file `target` names: an id as it is, else a path (a
/// folder is bad usage: `why` says what the command takes).
async fn file_id(s: &Session, target: &str, why: &str) -> Result<String> {
    if is_id(target) {
        return Ok(target.to_owned());
    }
    let e = stat(s, target).await?;
    if matches!(e.kind, types::EntryKind::Folder) {
        return Err(fail(2, format!("{} is a folder: {why}", remote_path(target))));
    }
    Ok(e.id)
}

/// `GET /file/versions`, a not-found file named as the user wrote it.
async fn list_versions(s: &Session, target: &str, id: &str) -> Result<Vec<types::VersionInfo>> {
    let typed_id: types::FileVersionsId = typed(&format!("file id {id:?}"), id)?;
    let list = s.call(|| s.api().file_versions().id(typed_id.clone()).send()).await.map_err(|e| match e.status() {
        Some(StatusCode::NOT_FOUND) => fail(4, format!("no such file: {target}")),
        _ => e.into(),
    })?;
    Ok(list.versions)
}

/// A time for people: `2026-12-07 05:30:12 UTC` (the JSON has Unix seconds).
fn utc(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

async fn versions(ctx: &Ctx, target: &str) -> Result<()> {
    let s = ctx.session()?;
    let id = file_id(&s, target, "only files have versions").await?;
    let versions = list_versions(&s, target, &id).await?;
    if ctx.cli.json {
        #[derive(Serialize)]
        struct Versions<'a> {
            id: &'a str,
            versions: &'a [types::VersionInfo],
        }
        ctx.print_json(&Versions { id: &id, versions: &versions });
        return Ok(());
    }
    if versions.is_empty() {
        ctx.say(format!("{}: no versions (its content was never replaced)", remote_path(target)));
        return Ok(());
    }
    let rows: Vec<[String; 6]> = versions
        .iter()
        .map(|v| {
            [
                v.version.clone(),
                utc(v.replaced_at),
                human_bytes(v.size.max(0) as u64),
                v.author.name.clone(),
                v.label.clone().unwrap_or_default(),
                if v.pinned { "pinned".to_owned() } else { String::new() },
            ]
        })
        .collect();
    let head = ["VERSION", "REPLACED AT", "SIZE", "AUTHOR", "LABEL", "PINNED"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&head).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&head).chain(&rows) {
        let line = row
            .iter()
            .zip(widths)
            .enumerate()
            // Sizes line up on the right, the rest on the left.
            .map(|(i, (cell, w))| if i == 2 { format!("{cell:>w$}") } else { format!("{cell:<w$}") })
            .collect::<Vec<_>>()
            .join("  ");
        ctx.say(line.trim_end());
    }
    Ok(())
}

async fn restore(ctx: &Ctx, target: &str, version: &str) -> Result<()> {
    let s = ctx.session()?;
    let id = file_id(&s, target, "only files have versions").await?;
    let body = types::VersionRequest {
        id: typed(&format!("file id {id:?}"), id.as_str())?,
        version: typed(&format!("version {version:?}"), version).map_err(|e| fail(2, e.to_string()))?,
    };
    // An unknown version is 404 VERSION_NOT_FOUND: exit 4 with the server's line.
    let file = s.call(|| s.api().file_version_restore().body(body.clone()).send()).await?;
    if ctx.cli.json {
        ctx.print_json(&file);
    }
    let path = file.path.clone().unwrap_or_else(|| remote_path(target));
    ctx.say(format!("restored {path} to version {version} ({})", human_bytes(file.filesize.max(0) as u64)));
    Ok(())
}

async fn mv(ctx: &Ctx, src: &str, dst: &str) -> Result<()> {
    let s = ctx.session()?;
    let entry = stat(&s, src).await?;
    let dst = remote_path(dst);
    let (to, name) = match folder_stat(&s, &dst).await {
        Ok(d) if matches!(d.kind, types::EntryKind::Folder) => (d.id, None),
        Ok(_) => return Err(fail(1, format!("{dst} exists"))),
        Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => {
            let (parent, name) = dst.rsplit_once('/').expect("an absolute path");
            let to = if parent.is_empty() { String::new() } else { stat(&s, parent).await?.id };
            (to, Some(name.to_owned()))
        }
        Err(e) => return Err(e.into()),
    };
    let path = if matches!(entry.kind, types::EntryKind::Folder) {
        let body = types::FolderMoveRequest {
            id: typed(&format!("id {:?}", entry.id), entry.id.as_str())?,
            to: Some(typed(&format!("folder id {to:?}"), to.as_str())?),
            name: name.map(|n| typed(&format!("name {n:?}"), n.as_str())).transpose()?,
            on_conflict: None,
        };
        let moved = s.call(|| s.api().folder_move().body(body.clone()).send()).await?;
        if ctx.cli.json {
            ctx.print_json(&moved);
        }
        Some(moved.path)
    } else {
        let body = types::MoveRequest {
            id: typed(&format!("id {:?}", entry.id), entry.id.as_str())?,
            to: Some(typed(&format!("folder id {to:?}"), to.as_str())?),
            name: name.map(|n| typed(&format!("name {n:?}"), n.as_str())).transpose()?,
            on_conflict: None,
            if_match: None,
        };
        let moved = s.call(|| s.api().file_move().body(body.clone()).send()).await?;
        if ctx.cli.json {
            ctx.print_json(&moved);
        }
        moved.path
    };
    ctx.say(format!("{} → {}", remote_path(src), path.as_deref().unwrap_or(&dst)));
    Ok(())
}

async fn rm(ctx: &Ctx, paths: &[String], permanent: bool) -> Result<()> {
    let s = ctx.session()?;
    /// One removed entry, for `--json`.
    #[derive(Serialize)]
    struct Removed {
        path: String,
        id: String,
    }
    let mut done = Vec::new();
    for p in paths {
        let e = stat(&s, p).await?;
        if matches!(e.kind, types::EntryKind::Folder) {
            let id: types::FolderDeleteId = typed(&format!("folder id {:?}", e.id), e.id.as_str())?;
            s.send(|| s.api().folder_delete().id(id.clone()).permanent(permanent).send()).await?;
        } else {
            let id: types::FileDeleteId = typed(&format!("file id {:?}", e.id), e.id.as_str())?;
            s.send(|| s.api().file_delete().id(id.clone()).permanent(permanent).send()).await?;
        }
        ctx.say(format!("removed {}{}", remote_path(p), if permanent { "" } else { " (into the trash)" }));
        done.push(Removed { path: remote_path(p), id: e.id });
    }
    if ctx.cli.json {
        ctx.print_json(&done);
    }
    Ok(())
}

async fn share(
    ctx: &Ctx,
    path: &str,
    password_stdin: bool,
    expires: Option<i64>,
    max: Option<std::num::NonZeroU64>,
) -> Result<()> {
    let s = ctx.session()?;
    let e = stat(&s, path).await?;
    let password = if password_stdin { Some(read_stdin_line("password")?) } else { None };
    let body = types::CreateShareRequest {
        id: typed(&format!("id {:?}", e.id), e.id.as_str())?,
        password: password.map(|p| typed("share password", p)).transpose()?,
        expires_in: expires,
        max_downloads: max,
    };
    let link = s.call(|| s.api().share_create().body(body.clone()).send()).await?;
    if ctx.cli.json {
        ctx.print_json(&link);
    } else if !ctx.cli.quiet {
        println!("{}", link.url);
    }
    Ok(())
}

/// An unfinished upload as `pan status` shows it: its state file and,
/// when its server is the session's, what the server says of it.
#[derive(Serialize)]
struct Unfinished {
    #[serde(flatten)]
    local: State,
    /// The server's state of the upload (`uploading`, …), or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    /// Chunks the server holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks_held: Option<u64>,
    /// Chunks in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    chunkcount: Option<u64>,
}

async fn status(ctx: &Ctx) -> Result<()> {
    let states = State::list(&state_dir());
    let session = ctx.session().ok();
    let mut out = Vec::new();
    for (_, st) in states {
        let mut v = Unfinished { local: st, state: None, chunks_held: None, chunkcount: None };
        let here = session.as_ref().filter(|s| s.base == v.local.server.trim_end_matches('/'));
        if let (Some(s), Some(id)) = (here, &v.local.upload_id) {
            match s.call(|| s.api().upload_status().upload_id(id).send()).await {
                Ok(u) => {
                    v.state = Some(u.state.to_string());
                    v.chunks_held = Some(u.uploaded_count);
                    v.chunkcount = Some(u.chunkcount);
                }
                Err(e) if e.status() == Some(StatusCode::NOT_FOUND) => v.state = Some("expired".to_owned()),
                Err(_) => {}
            }
        }
        out.push(v);
    }
    if ctx.cli.json {
        ctx.print_json(&out);
        return Ok(());
    }
    if out.is_empty() {
        ctx.say("no unfinished uploads");
    }
    for v in &out {
        let progress = match (v.chunks_held, v.chunkcount) {
            (Some(h), Some(c)) => format!("{h}/{c} chunks on the server"),
            _ => v.state.clone().unwrap_or_else(|| "server not asked".to_owned()),
        };
        ctx.say(
            format!("{}  {}  {}  ({progress})", v.local.path.display(), human_bytes(v.local.size), v.local.server,),
        );
    }
    Ok(())
}

/// `1.5 MiB`.
fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_paths_are_absolute_without_a_trailing_slash() {
        assert_eq!(remote_path(""), "/");
        assert_eq!(remote_path("/"), "/");
        assert_eq!(remote_path("a/b/"), "/a/b");
        assert_eq!(remote_path("//a//b"), "/a/b");
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::try_parse_from(["pan", "put", "-r", "dir", "/dest", "--jobs", "8"]).unwrap();
        assert!(matches!(c.command, Command::Put { recursive: true, jobs: 8, .. }));
        let c = Cli::try_parse_from(["pan", "restore", "/a.txt", "--version", "0123"]).unwrap();
        assert!(matches!(c.command, Command::Restore { ref version, .. } if version == "0123"));
    }
}
