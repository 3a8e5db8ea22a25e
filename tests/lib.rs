//! The end-to-end test bench: each test gets its own `api` process (and, for
//! the fleet, `worker` processes) on a random port, its own data directory,
//! its own MariaDB database and its own Redis key prefix, and speaks to it
//! over HTTP like any client.
//!
//! Two deployments, the same test bodies (see [`both!`]):
//! - [`Deployment::Embedded`]: no settings but a data dir: SQLite, chunk state
//!   in SQL, apalis-sqlite, workers inside the api process;
//! - [`Deployment::Fleet`]: `DATABASE_URL` on MariaDB, `REDIS_URL`, an api
//!   with `--no-worker` and separate `worker` processes.
//!
//! MariaDB and Redis must be reachable (scripts/test installs and starts
//! them); a test that cannot reach them fails and says which, never skips.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha1::{Digest, Sha1};

pub use reqwest::StatusCode;

/// Which deployment a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deployment {
    /// SQLite + SQL chunk state + apalis-sqlite + in-process workers.
    Embedded,
    /// MariaDB + Redis + separate worker processes.
    Fleet,
}

/// MariaDB URL (without a database) the fleet tests use.
pub fn mysql_url() -> String {
    std::env::var("PAN_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://pan_test:pan_test_pw@127.0.0.1:3306".into())
}

/// Redis URL the fleet tests use.
pub fn redis_url() -> String {
    std::env::var("PAN_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The directory holding the `api` and `worker` binaries of this build.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/e2e-… → target/debug
    exe.parent().and_then(Path::parent).expect("target directory").to_path_buf()
}

/// Path of a workspace binary; fails with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)", p.display());
    p
}

/// A running pan installation for one test.
///
/// It derefs to the [`Client`] of its (first) api process, so `app.base`,
/// `app.http` and every request helper (`app.upload(…)`) speak to that
/// process; [`TestApp::through`] gives the same helpers on another address
/// (a load balancer in front of the app).
pub struct TestApp {
    /// Speaks to the api: `base` is `http://127.0.0.1:<port>`.
    client: Client,
    /// Which deployment this is.
    pub deployment: Deployment,
    /// The data directory (SQLite, staging, files).
    pub data: tempfile::TempDir,
    env: Vec<(String, String)>,
    api: Option<Child>,
    /// More api processes on the same backends (fleet): see [`TestApp::spawn_another_api`].
    more_apis: Vec<ExtraApi>,
    workers: Vec<Child>,
    mysql_db: Option<String>,
    /// The Redis key prefix, for the fleet.
    pub redis_prefix: Option<String>,
    listen: String,
}

/// One more api process of a fleet ([`TestApp::spawn_another_api`]): its
/// address stays the same when it is started again.
struct ExtraApi {
    /// `127.0.0.1:<port>`.
    listen: String,
    /// `None` while it is stopped.
    child: Option<Child>,
}

impl std::ops::Deref for TestApp {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Marks a setting whose `{data}` stands for the data directory.
const DATA_DIR_MARK: &str = "\u{0}data-dir\u{0}";

/// Builds a [`TestApp`] with extra settings.
pub struct TestAppBuilder {
    deployment: Deployment,
    env: Vec<(String, String)>,
    workers: usize,
}

impl TestAppBuilder {
    /// Adds an environment setting for every process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Adds an environment setting whose value names a path under the app's
    /// data directory: `{data}` in `v` is replaced by it.
    pub fn env_in_data(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), format!("{DATA_DIR_MARK}{v}")));
        self
    }

    /// How many `worker` processes the fleet starts (default 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Starts everything and waits until the api answers.
    pub async fn spawn(self) -> TestApp {
        let data = tempfile::tempdir().expect("temp dir");
        let suffix = hex::encode(rand::random::<[u8; 6]>());
        let mut env: Vec<(String, String)> = vec![
            ("PAN_DATA_DIR".into(), data.path().display().to_string()),
            ("PAN_LOG".into(), std::env::var("PAN_TEST_LOG").unwrap_or_else(|_| "info,sqlx=warn".into())),
        ];
        let (mut mysql_db, mut redis_prefix) = (None, None);
        if self.deployment == Deployment::Fleet {
            let db = format!("pan_test_{suffix}");
            create_mysql_db(&db).await;
            check_redis().await;
            env.push(("DATABASE_URL".into(), format!("{}/{db}", mysql_url())));
            env.push(("REDIS_URL".into(), redis_url()));
            let prefix = format!("pan_test_{suffix}");
            env.push(("PAN_REDIS_PREFIX".into(), prefix.clone()));
            mysql_db = Some(db);
            redis_prefix = Some(prefix);
        }
        let data_dir = data.path().display().to_string();
        env.extend(self.env.into_iter().map(|(k, v)| match v.strip_prefix(DATA_DIR_MARK) {
            Some(v) => (k, v.replace("{data}", &data_dir)),
            None => (k, v),
        }));
        let client = Client {
            base: String::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client"),
            log: data.path().join("api.log"),
        };
        let mut app = TestApp {
            client,
            deployment: self.deployment,
            data,
            env,
            api: None,
            more_apis: Vec::new(),
            workers: Vec::new(),
            mysql_db,
            redis_prefix,
            listen: "127.0.0.1:0".into(),
        };
        app.start_api().await;
        if app.deployment == Deployment::Fleet {
            for _ in 0..self.workers {
                app.spawn_worker();
            }
        }
        app
    }
}

pub async fn create_mysql_db(db: &str) {
    use sqlx::Connection;
    let url = mysql_url();
    let mut con = sqlx::MySqlConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("MariaDB at {url} is unreachable ({e}); scripts/test installs and starts it"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")))
        .execute(&mut con)
        .await
        .expect("create test database");
}

async fn check_redis() {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {url} is unreachable ({e}); scripts/test installs and starts it"));
    let _: String = redis::cmd("PING").query_async(&mut con).await.expect("redis PING");
}

/// Waits (at most 60 s, without blocking the runtime) for the api's
/// "listening" banner on stdout; returns the address.
async fn wait_for_banner(child: &mut Child, log: &Path) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = tokio::sync::oneshot::channel();
    // The pipe is read on a thread of its own until the process ends, so
    // that the api never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("pan is listening on http://") {
                let addr = rest.split('/').next().unwrap_or("").to_owned();
                if let Some(tx) = tx.take() {
                    let _ = tx.send(addr);
                }
            }
        }
    });
    match tokio::time::timeout(Duration::from_secs(60), rx).await {
        Ok(Ok(addr)) => addr,
        _ => {
            let status = child.try_wait().ok().flatten();
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("api did not start (exit status: {status:?}); its log ends:\n{}", tail.join("\n"))
        }
    }
}

impl TestApp {
    /// Starts building an app.
    pub fn builder(deployment: Deployment) -> TestAppBuilder {
        TestAppBuilder { deployment, env: Vec::new(), workers: 1 }
    }

    /// An app with default settings.
    pub async fn spawn(deployment: Deployment) -> TestApp {
        Self::builder(deployment).spawn().await
    }

    fn command(&self, bin: &str) -> Command {
        let mut cmd = Command::new(binary(bin));
        cmd.env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        // Each process logs to a file in the data dir; failures quote its tail.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join(format!("{bin}.log")))
            .expect("log file");
        cmd.stdin(Stdio::null()).stderr(log);
        cmd
    }

    /// Starts an api process listening on `listen` and waits until it says it
    /// listens; returns it and the address it listens on.
    async fn launch_api(&self, listen: &str) -> (Child, String) {
        let mut cmd = self.command("api");
        cmd.env("PAN_LISTEN", listen).stdout(Stdio::piped());
        if self.deployment == Deployment::Fleet {
            cmd.arg("--no-worker");
        }
        let mut child = cmd.spawn().expect("spawn api");
        let addr = wait_for_banner(&mut child, &self.data.path().join("api.log")).await;
        (child, addr)
    }

    async fn start_api(&mut self) {
        let (child, addr) = self.launch_api(&self.listen).await;
        // Keep the port across restarts, like a real service.
        self.listen = addr.clone();
        self.client.base = format!("http://{addr}");
        self.api = Some(child);
    }

    /// Starts one more api process on the same backends, as a fleet behind a
    /// load balancer runs them (fleet only); returns its base URL, which
    /// names it to [`TestApp::kill_api_at`], [`TestApp::terminate_api_at`]
    /// and [`TestApp::start_api_at`].
    pub async fn spawn_another_api(&mut self) -> String {
        assert_eq!(self.deployment, Deployment::Fleet, "only a fleet shares its backends between processes");
        let (child, addr) = self.launch_api("127.0.0.1:0").await;
        self.more_apis.push(ExtraApi { listen: addr.clone(), child: Some(child) });
        format!("http://{addr}")
    }

    /// Like [`TestApp::spawn_another_api`], with settings of its own for
    /// this process only (such as `PAN_CRASH_AT`); started again, it goes
    /// without them.
    pub async fn spawn_another_api_with(&mut self, env: &[(&str, &str)]) -> String {
        let kept = self.env.len();
        self.env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let base = self.spawn_another_api().await;
        self.env.truncate(kept);
        base
    }

    /// The index in `more_apis` of the api process serving `base`, or `None`
    /// for the first one (`self.base`).
    fn api_at(&self, base: &str) -> Option<usize> {
        if base == self.base {
            return None;
        }
        let i = self.more_apis.iter().position(|a| format!("http://{}", a.listen) == base);
        Some(i.unwrap_or_else(|| panic!("no api process of this app serves {base}")))
    }

    /// Kills the api process serving `base` with SIGKILL (a crash).
    pub fn kill_api_at(&mut self, base: &str) {
        match self.api_at(base) {
            None => self.kill_api(),
            Some(i) => {
                if let Some(mut c) = self.more_apis[i].child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
        }
    }

    /// Sends SIGTERM to the api process serving `base` and waits (at most
    /// `secs`) for it to exit; returns its exit code (`None` when a signal
    /// ended it).
    pub async fn terminate_api_at(&mut self, base: &str, secs: u64) -> Option<i32> {
        let Some(i) = self.api_at(base) else { return self.terminate_api(secs).await };
        let log = self.data.path().join("api.log");
        let mut child = self.more_apis[i].child.take().unwrap_or_else(|| panic!("the api at {base} is not running"));
        sigterm(&child);
        exit_of(&mut child, secs, &format!("the api at {base} to exit after SIGTERM"), &log).await.code()
    }

    /// Starts the api process serving `base` again after it stopped, on the
    /// same port (as a service manager restarts it).
    pub async fn start_api_at(&mut self, base: &str) {
        let Some(i) = self.api_at(base) else { return self.start_api_again().await };
        assert!(self.more_apis[i].child.is_none(), "the api at {base} is still running");
        let listen = self.more_apis[i].listen.clone();
        let (child, addr) = self.launch_api(&listen).await;
        assert_eq!(addr, listen, "the api came back on another address");
        self.more_apis[i].child = Some(child);
    }

    /// The same request helpers as the app's own (see [`Client`]), sent to
    /// `base` instead: a load balancer in front of the app's api processes.
    pub fn through(&self, base: &str) -> Client {
        Client { base: base.trim_end_matches('/').to_owned(), ..self.client.clone() }
    }

    /// Starts one more `worker` process (fleet only); returns its index.
    pub fn spawn_worker(&mut self) -> usize {
        let child = self.command("worker").stdout(Stdio::null()).spawn().expect("spawn worker");
        self.workers.push(child);
        self.workers.len() - 1
    }

    /// Kills a worker process with SIGKILL.
    pub fn kill_worker(&mut self, i: usize) {
        let w = &mut self.workers[i];
        let _ = w.kill();
        let _ = w.wait();
    }

    /// Sends SIGTERM to a worker process and waits (at most `secs`) for it to
    /// exit; returns its exit code.
    pub async fn terminate_worker(&mut self, i: usize, secs: u64) -> Option<i32> {
        let log = self.data.path().join("worker.log");
        let w = &mut self.workers[i];
        sigterm(w);
        exit_of(w, secs, "the worker to exit after SIGTERM", &log).await.code()
    }

    /// Sends SIGTERM to the api process and waits (at most `secs`) for it to
    /// exit; returns its exit code (`None` when a signal ended it).
    pub async fn terminate_api(&mut self, secs: u64) -> Option<i32> {
        let log = self.data.path().join("api.log");
        let child = self.api.as_mut().expect("the api is running");
        sigterm(child);
        let status = exit_of(child, secs, "the api to exit after SIGTERM", &log).await;
        self.api = None;
        status.code()
    }

    /// Kills the api process with SIGKILL (a crash).
    pub fn kill_api(&mut self) {
        if let Some(mut c) = self.api.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sets (or with `None` removes) a variable of this app's environment,
    /// for the processes started from now on.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != key);
        if let Some(v) = value {
            self.env.push((key.to_owned(), v.to_owned()));
        }
    }

    /// Waits (at most `secs`) for the api process to die by itself; returns
    /// the signal that killed it, if one did.
    pub async fn wait_api_death(&mut self, secs: u64) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        let log = self.data.path().join("api.log");
        let child = self.api.as_mut().expect("the api is running");
        let status = exit_of(child, secs, "the api to die", &log).await;
        self.api = None;
        status.signal()
    }

    /// Starts the api again after it died (same port, current environment).
    pub async fn start_api_again(&mut self) {
        assert!(self.api.is_none(), "the api is still running");
        self.start_api().await;
    }

    /// Crashes the api process and starts it again on the same port.
    pub async fn restart_api(&mut self) {
        self.kill_api();
        self.start_api().await;
    }

    /// Runs the api binary with `args` and this app's environment; returns
    /// (exit code, stderr).
    pub fn run_api_once(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (Option<i32>, String) {
        let out = self
            .command("api")
            .args(args)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("run api");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Runs `api admin <args>` against this app's database, with `stdin` as
    /// its standard input; returns (exit code, stdout, stderr).
    pub fn admin(&self, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
        use std::io::Write;
        let mut child = self
            .command("api")
            .arg("admin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run api admin");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
        let out = child.wait_with_output().expect("api admin");
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (out.status.code(), text(out.stdout), text(out.stderr))
    }
}

/// Speaks HTTP to a pan installation at one address: an api process, or a
/// load balancer in front of several ([`TestApp::through`]). The request
/// helpers live here; a [`TestApp`] derefs to the client of its api.
#[derive(Clone)]
pub struct Client {
    /// `http://<host>:<port>`, no trailing slash.
    pub base: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// The api's log, quoted by failure messages.
    log: PathBuf,
}

impl Client {
    /// The same client sending through `http` (e.g. one bound to a local address).
    pub fn with_http(self, http: reqwest::Client) -> Client {
        Client { http, ..self }
    }

    /// The last `n` lines of the api's log, for failure messages.
    pub fn api_log_tail(&self, n: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// A URL on this app.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up `name` with a fixed password and returns a token.
    pub async fn user(&self, name: &str) -> String {
        let r = self.post_json("/usr/signup", None, &json!({"username": name, "password": "correct horse"})).await;
        assert_eq!(r.0, StatusCode::CREATED, "signup {name}: {}", r.1);
        self.signin(name, "correct horse").await
    }

    /// Signs in and returns the token.
    pub async fn signin(&self, name: &str, password: &str) -> String {
        let r = self.post_json("/usr/signin", None, &json!({"username": name, "password": password})).await;
        assert_eq!(r.0, StatusCode::OK, "signin {name}: {}", r.1);
        r.1["token"].as_str().expect("token").to_owned()
    }

    /// POSTs JSON; returns status and JSON body (Null when empty).
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (StatusCode, Value) {
        let mut req = self.http.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// Any request; returns status and JSON body (Null when empty).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.http.request(method.parse().expect("method"), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        into_json(req.send().await.expect("request")).await
    }

    /// init, declaring SHA-1 and SHA-256 (as pan's own clients do): returns (status, body).
    pub async fn init(&self, token: &str, name: &str, data: &[u8]) -> (StatusCode, Value) {
        self.post_json(
            "/file/mupload/init",
            Some(token),
            &json!({"filename": name, "filehash": sha1_hex(data), "sha256": sha256_hex(data), "filesize": data.len()}),
        )
        .await
    }

    /// Answers an upload's challenge with `proof`: returns (status, body).
    pub async fn prove(&self, token: &str, id: &str, proof: &str) -> (StatusCode, Value) {
        self.post_json(&format!("/file/mupload/prove?uploadID={id}"), Some(token), &json!({ "proof": proof })).await
    }

    /// Sends chunk `i` with raw bytes.
    pub async fn put_chunk(&self, token: &str, id: &str, i: u64, bytes: Vec<u8>) -> (StatusCode, Value) {
        let req = self
            .http
            .post(self.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx={i}")))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .body(bytes);
        into_json(req.send().await.expect("request")).await
    }

    /// Sends `bytes` from `offset` (`PUT /file/mupload/bytes`): with a
    /// `Content-Length`, or when `streamed` as a chunked body (no length)
    /// of 1000-byte pieces; `checksum` is an `Upload-Checksum` value.
    pub async fn put_bytes(
        &self,
        token: &str,
        id: &str,
        offset: u64,
        bytes: Vec<u8>,
        streamed: bool,
        checksum: Option<String>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .put(self.url(&format!("/file/mupload/bytes?uploadID={id}&offset={offset}")))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream");
        if let Some(c) = checksum {
            req = req.header("upload-checksum", c);
        }
        req = if streamed {
            let pieces: Vec<std::io::Result<bytes::Bytes>> =
                bytes.chunks(1000).map(|p| Ok(bytes::Bytes::copy_from_slice(p))).collect();
            req.body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        } else {
            req.body(bytes)
        };
        into_json(req.send().await.expect("request")).await
    }

    /// [`TestApp::put_bytes`] as a client should: again after `Retry-After`
    /// while the server answers 503 `CHUNK_BUSY` (a send cut off by a crash
    /// whose claim on the bytes has not yet run out), for at most 60 s.
    pub async fn put_bytes_patiently(
        &self,
        token: &str,
        id: &str,
        offset: u64,
        bytes: Vec<u8>,
        streamed: bool,
    ) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = self.put_bytes(token, id, offset, bytes.clone(), streamed, None).await;
            if code != StatusCode::SERVICE_UNAVAILABLE || body["code"] != "CHUNK_BUSY" || Instant::now() > deadline {
                return (code, body);
            }
            let wait = body["retry_after"].as_u64().expect("CHUNK_BUSY says when to retry");
            // Waiting as told is how a well-behaved client acts, not a poll.
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    /// complete.
    /// Sends chunk `i` as a client should: again after `Retry-After` while
    /// the server answers 503 `CHUNK_BUSY` (another send of it, or one cut
    /// off by a crash whose claim has not yet run out), for at most 60 s.
    pub async fn put_chunk_patiently(&self, token: &str, id: &str, i: u64, bytes: Vec<u8>) -> (StatusCode, Value) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (code, body) = self.put_chunk(token, id, i, bytes.clone()).await;
            if code != StatusCode::SERVICE_UNAVAILABLE || body["code"] != "CHUNK_BUSY" || Instant::now() > deadline {
                return (code, body);
            }
            let wait = body["retry_after"].as_u64().expect("CHUNK_BUSY says when to retry");
            // Waiting as told is how a well-behaved client acts, not a poll.
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
    }

    pub async fn complete(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call("POST", &format!("/file/mupload/complete?uploadID={id}"), Some(token)).await
    }

    /// status.
    pub async fn status(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call("GET", &format!("/file/mupload/status?uploadID={id}"), Some(token)).await
    }

    /// Polls status until the upload leaves `merging` (at most 120 s).
    pub async fn wait_merged(&self, token: &str, id: &str) -> Value {
        eventually(120, &format!("upload {id} to leave merging"), || async {
            let (code, s) = self.status(token, id).await;
            assert_eq!(code, StatusCode::OK, "status: {s}");
            (s["state"] != "merging").then_some(s)
        })
        .await
    }

    /// init + every chunk of `data`, without complete; returns the upload id.
    pub async fn send_all_chunks(&self, token: &str, name: &str, data: &[u8]) -> String {
        let (code, init) = self.init(token, name, data).await;
        assert_eq!(code, StatusCode::OK, "init: {init}");
        let id = init["uploadID"].as_str().expect("uploadID").to_owned();
        let size = init["chunksize"].as_u64().expect("chunksize") as usize;
        for i in 0..init["chunkcount"].as_u64().expect("chunkcount") as usize {
            let (code, body) =
                self.put_chunk(token, &id, i as u64, data[i * size..((i + 1) * size).min(data.len())].to_vec()).await;
            assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
        }
        id
    }

    /// Waits (at most 60 s) until a worker is merging upload `id`: the
    /// merge's first heartbeat, sent as it starts, moved the upload's
    /// `updated_at` past the second `complete` ran in (`merge_started_at`).
    /// Start the workers only once that second is over
    /// ([`TestApp::wait_past_merge_start`]), or a merge picked up within it
    /// is seen only at its next heartbeat, 5 s on.
    pub async fn wait_for_merge_start(&self, token: &str, id: &str) {
        eventually(60, &format!("a worker to start merging {id}"), || async {
            let (code, s) = self.status(token, id).await;
            assert_eq!(code, StatusCode::OK, "status: {s}");
            assert_eq!(s["state"], "merging", "the merge ended before it was seen running: {s}");
            (s["updated_at"].as_i64() > s["merge_started_at"].as_i64()).then_some(())
        })
        .await
    }

    /// Waits until the wall clock has left the second `complete` moved
    /// upload `id` to `merging` in (see [`TestApp::wait_for_merge_start`]).
    pub async fn wait_past_merge_start(&self, token: &str, id: &str) {
        let (code, s) = self.status(token, id).await;
        assert_eq!(code, StatusCode::OK, "status: {s}");
        let started = s["merge_started_at"].as_i64().unwrap_or_else(|| panic!("upload {id} is not merging: {s}"));
        eventually(5, "the second complete ran in to pass", || async {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
            (now as i64 > started).then_some(())
        })
        .await
    }

    /// Uploads `data` through init → every chunk → complete → done; returns
    /// the final status.
    pub async fn upload(&self, token: &str, name: &str, data: &[u8]) -> Value {
        let (code, init) = self.init(token, name, data).await;
        assert_eq!(code, StatusCode::OK, "init: {init}\n{}", self.api_log_tail(20));
        if init["status"] == "instant" {
            return init;
        }
        let id = init["uploadID"].as_str().expect("uploadID").to_owned();
        let size = init["chunksize"].as_u64().expect("chunksize") as usize;
        for i in 0..init["chunkcount"].as_u64().expect("chunkcount") {
            let part = data[i as usize * size..((i as usize + 1) * size).min(data.len())].to_vec();
            let (code, body) = self.put_chunk(token, &id, i, part).await;
            assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
        }
        let (code, body) = self.complete(token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "complete: {body}");
        self.wait_merged(token, &id).await
    }

    /// Downloads a file; returns status, headers and bytes.
    pub async fn download(
        &self,
        token: &str,
        hash: &str,
        range: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let mut req = self.http.get(self.url(&format!("/file/download?filehash={hash}"))).bearer_auth(token);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = req.send().await.expect("download");
        let (code, headers) = (resp.status(), resp.headers().clone());
        (code, headers, resp.bytes().await.expect("body").to_vec())
    }
}

impl TestApp {
    /// Every file under the staging directory, with its bytes.
    pub fn staging(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.data.path().join("staging"))
    }

    /// The staged bytes of chunks `indexes` of upload `id` (chunks of
    /// `chunk_size`): an object of the chunk's own (`<id>/<index>.<nonce>`,
    /// a send again) when there is one, else its range of the upload's
    /// data file (`<id>/data`, where first sends are written in place).
    pub fn staged_chunks(&self, id: &str, chunk_size: usize, indexes: &[u64]) -> BTreeMap<u64, Vec<u8>> {
        let staging = self.staging();
        let data = staging.get(&format!("{id}/data"));
        indexes
            .iter()
            .map(|&i| {
                let own = staging.iter().find(|(k, _)| k.starts_with(&format!("{id}/{i:05}.")));
                let bytes = match (own, data) {
                    (Some((_, b)), _) => b.clone(),
                    (None, Some(d)) => {
                        d[(i as usize * chunk_size).min(d.len())..((i as usize + 1) * chunk_size).min(d.len())].to_vec()
                    }
                    (None, None) => panic!("chunk {i} of {id} is not staged"),
                };
                (i, bytes)
            })
            .collect()
    }

    /// Waits (at most 30 s) until no upload has chunks staged any more.
    ///
    /// Call it once every upload the test began is seen to have ended
    /// ([`TestApp::upload`] and [`TestApp::wait_merged`] return after the
    /// merge recorded `done` or `failed`; an instant answer ends an upload at
    /// once): an ended upload's chunks are deleted right after that record,
    /// so the deletion is all that is left to wait for. It watches which
    /// uploads still have a staging folder, never the names of the files in
    /// it (the store's scratch folder of half-written files is not one).
    pub async fn wait_staging_empty(&self) {
        let staging = self.data.path().join("staging");
        let left = eventually(30, "the staged chunks of ended uploads to be deleted", || {
            let uploads: Vec<String> = std::fs::read_dir(&staging)
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let uploads: Vec<String> = uploads.into_iter().filter(|n| !n.starts_with('.')).collect();
            async move { uploads.is_empty().then_some(()) }
        });
        left.await
    }

    /// Every file under the file store directory (temporary files excluded).
    pub fn stored(&self) -> BTreeMap<String, Vec<u8>> {
        files_under(&self.data.path().join("files")).into_iter().filter(|(k, _)| !k.starts_with(".tmp")).collect()
    }

    /// A query on this app's MariaDB database (fleet) or SQLite file (embedded):
    /// one integer.
    /// A raw TCP connection to the api: no client library in between that
    /// would finish a head or open a new connection on its own.
    pub async fn raw(&self) -> tokio::net::TcpStream {
        tokio::net::TcpStream::connect(self.base.trim_start_matches("http://")).await.expect("connect to the api")
    }

    /// A raw connection on which the head of chunk 0 of upload `id`, `len`
    /// bytes long, has been sent (and none of its body).
    pub async fn raw_chunk_head(&self, token: &str, id: &str, len: usize) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut conn = self.raw().await;
        let head = format!(
            "POST /file/mupload/uppart?uploadID={id}&chkidx=0 HTTP/1.1\r\nHost: pan\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await.expect("send a chunk head");
        conn
    }

    /// Runs the consistency audit (`api admin audit --deep`, no grace) once
    /// the staged chunks of finished uploads are gone, and asserts it is clean.
    pub async fn assert_consistent(&self) {
        self.wait_staging_empty().await;
        let (code, out, err) = self.admin(&["audit", "--deep", "--grace", "0"], "");
        assert_eq!(code, Some(0), "the audit found inconsistencies:\n{out}{err}");
    }

    /// Makes upload `id` look like a merge whose job was lost: state
    /// `merging`, last heartbeat `secs_ago` seconds back, and no job queued.
    /// (What a crash between `complete`'s state change and its push leaves.)
    pub async fn lose_merge_job(&self, id: &str, secs_ago: i64) {
        use sqlx::Connection;
        let then =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 - secs_ago;
        match &self.redis_prefix {
            Some(prefix) => {
                let client = redis::Client::open(redis_url()).expect("redis url");
                let mut con = client.get_multiplexed_async_connection().await.expect("redis");
                let _: () = redis::pipe()
                    .hset_multiple(
                        format!("{prefix}:upload:{{{id}}}"),
                        &[("state", "merging"), ("updated_at", &then.to_string())],
                    )
                    .zadd(format!("{prefix}:merging"), id, then)
                    .query_async(&mut con)
                    .await
                    .expect("redis");
            }
            None => {
                let url = format!("sqlite://{}", self.data.path().join("pan.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query("UPDATE upload_sessions SET state = 'merging', updated_at = ? WHERE id = ?")
                    .bind(then)
                    .bind(id)
                    .execute(&mut c)
                    .await
                    .expect("update");
            }
        }
    }

    pub async fn sql_count(&self, sql: &'static str) -> i64 {
        use sqlx::Connection;
        match &self.mysql_db {
            Some(db) => {
                let mut c = sqlx::MySqlConnection::connect(&format!("{}/{db}", mysql_url())).await.expect("mysql");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.expect("count")
            }
            None => {
                let url = format!("sqlite://{}", self.data.path().join("pan.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query_scalar::<_, i64>(sql).fetch_one(&mut c).await.expect("count")
            }
        }
    }
}

/// What one process has used so far, from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct ProcessUse {
    /// Resident memory now, and its peak since the last [`TestApp::api_use`]
    /// with `reset_peak` (bytes).
    pub rss: u64,
    pub peak_rss: u64,
    /// User plus system CPU time (seconds).
    pub cpu_secs: f64,
}

impl TestApp {
    /// The api process's memory and CPU so far; with `reset_peak`, the peak
    /// starts over from now (`/proc/<pid>/clear_refs`), so a later call's
    /// `peak_rss` is what the work in between took at most.
    pub fn api_use(&self, reset_peak: bool) -> ProcessUse {
        let pid = self.api.as_ref().expect("the api is running").id();
        if reset_peak {
            std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("reset the peak resident size");
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let kib = |field: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in status"));
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
        let rest: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
        let ticks: u64 = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
        // SAFETY: sysconf(3) reads a constant of the system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ProcessUse { rss: kib("VmRSS:"), peak_rss: kib("VmHWM:"), cpu_secs: ticks as f64 / hz }
    }

    /// One figure of the api's `/metrics` (the app must set `PAN_METRICS_TOKEN`).
    pub async fn metric(&self, name: &str) -> u64 {
        self.metric_at(&self.base, name).await
    }

    /// One figure of `/metrics` of the api process serving `base` (each
    /// process counts its own work).
    pub async fn metric_at(&self, base: &str, name: &str) -> u64 {
        let token = self.env.iter().find(|(k, _)| k == "PAN_METRICS_TOKEN").map(|(_, v)| v.clone());
        let token = token.expect("this app sets PAN_METRICS_TOKEN");
        let resp = self.http.get(format!("{base}/metrics")).bearer_auth(token).send().await.unwrap();
        let text = resp.text().await.unwrap();
        let line = text.lines().find(|l| l.strip_prefix(name).is_some_and(|v| v.starts_with(' '))).expect(name);
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    /// Runs one statement on this app's database (for tests that set up
    /// what an older version or a crash would have left).
    pub async fn sql_exec(&self, sql: &'static str) {
        use sqlx::Connection;
        match &self.mysql_db {
            Some(db) => {
                let mut c = sqlx::MySqlConnection::connect(&format!("{}/{db}", mysql_url())).await.expect("mysql");
                sqlx::query(sql).execute(&mut c).await.expect("statement");
            }
            None => {
                let url = format!("sqlite://{}", self.data.path().join("pan.db").display());
                let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
                sqlx::query(sql).execute(&mut c).await.expect("statement");
            }
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill_api();
        for w in self.more_apis.iter_mut().filter_map(|a| a.child.as_mut()).chain(&mut self.workers) {
            let _ = w.kill();
            let _ = w.wait();
        }
        if let Some(db) = self.mysql_db.take() {
            // Drop is synchronous: clean up on a thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut c = sqlx::MySqlConnection::connect(&mysql_url()).await.ok()?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS `{db}`")))
                        .execute(&mut c)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

pub fn files_under(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p.strip_prefix(root).unwrap_or(&p).display().to_string(), bytes);
            }
        }
    }
    out
}

async fn into_json(resp: reqwest::Response) -> (StatusCode, Value) {
    let code = resp.status();
    let text = resp.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{code}: body is not JSON: {text:?}"))
    };
    (code, value)
}

/// Asserts an error answer: status `want` and a `{code, message}` body.
pub fn assert_error(code: StatusCode, body: &Value, want: StatusCode, ctx: &str) {
    assert_eq!(code, want, "{ctx}: {body}");
    assert!(body["code"].is_string() && body["message"].is_string(), "{ctx}: not {{code, message}}: {body}");
}

/// Polls `f` until it returns Some, for at most `secs` seconds: the one
/// way the tests wait for something to happen. The first looks come every
/// 10 ms, then less often (at most every 200 ms); the runtime's thread is
/// free in between.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut pause = Duration::from_millis(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Sends SIGTERM to a child process.
fn sigterm(child: &Child) {
    // SAFETY: kill(2) on a child process id we own; no memory is involved.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
}

/// Waits (at most `secs`, without blocking the runtime) for `child` to
/// exit; a timeout fails with the end of its `log`.
async fn exit_of(child: &mut Child, secs: u64, what: &str, log: &Path) -> std::process::ExitStatus {
    let timeout = Instant::now() + Duration::from_secs(secs);
    let what = format!("{what} (its log: {})", log.display());
    let waited = eventually(secs + 1, &what, || {
        let status = child.try_wait().expect("wait for a child process");
        let late = Instant::now() >= timeout;
        async move {
            match (status, late) {
                (Some(s), _) => Some(Some(s)),
                (None, true) => Some(None),
                (None, false) => None,
            }
        }
    })
    .await;
    waited.unwrap_or_else(|| {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        panic!(
            "timed out after {secs} s waiting for {what}; its log ends:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    })
}

/// SHA-1 as 40 lowercase hex characters.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// SHA-256 as 64 lowercase hex characters.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// The answer to a proof-of-possession challenge from init, computed from
/// the file's bytes: SHA-256 of the nonce's bytes, then each range in order.
pub fn answer_challenge(challenge: &Value, data: &[u8]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(hex::decode(challenge["nonce"].as_str().expect("nonce")).expect("hex nonce"));
    for r in challenge["ranges"].as_array().expect("ranges") {
        let (first, last) = (r["first"].as_u64().unwrap() as usize, r["last"].as_u64().unwrap() as usize);
        h.update(&data[first..=last]);
    }
    hex::encode(h.finalize())
}

/// `n` pseudo-random bytes (seeded, so failures reproduce).
pub fn test_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A unique username for a test.
pub fn uname(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(rand::random::<[u8; 4]>()))
}

/// Runs one async test body against both deployments:
/// `both!(name, |app| { … });` makes `name::embedded` and `name::fleet`;
/// `both!(name, |b: TestAppBuilder| b.env(…), |app| { … })` adds settings;
/// a doc comment goes inside, before the name: `both!(/// proves … \n name, …)`.
#[macro_export]
macro_rules! both {
    ($(#[$doc:meta])* $name:ident, |$app:ident| $body:block) => {
        $crate::both!($(#[$doc])* $name, |b: $crate::TestAppBuilder| b, |$app| $body);
    };
    ($(#[$doc:meta])* $name:ident, $builder:expr, |$app:ident| $body:block) => {
        $(#[$doc])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run(d: $crate::Deployment) {
                #[allow(unused_mut)]
                let mut $app = ($builder)($crate::TestApp::builder(d)).spawn().await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                run($crate::Deployment::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fleet() {
                run($crate::Deployment::Fleet).await
            }
        }
    };
}

/// Runs `async fn $body(Deployment)` as an `embedded` and a `fleet` test
/// (for bodies that build their own app, e.g. beside a private Garage); a
/// doc comment goes inside, before the name, as in [`both!`].
#[macro_export]
macro_rules! on_both {
    ($(#[$doc:meta])* $name:ident, $body:ident) => {
        $(#[$doc])*
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$body($crate::Deployment::Embedded).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fleet() {
                super::$body($crate::Deployment::Fleet).await
            }
        }
    };
}

/// A small tmpfs mounted for one test (needs root, as in CI); unmounted on drop.
pub struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `size` (e.g. `4m`) at `path`.
    pub fn new(path: &Path, size: &str) -> Self {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "mounting a tmpfs at {} failed: this test needs root (CI runs as root)", path.display());
        TmpfsMount { path: path.to_path_buf() }
    }

    /// Grows (or shrinks) the filesystem.
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "remounting {} failed", self.path.display());
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A private Redis for one test, on its own port and directory, so that the
/// test may crash and restart it without touching the Redis other tests use.
pub struct RedisServer {
    dir: tempfile::TempDir,
    port: u16,
    aof: bool,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts redis-server; with `aof`, every write is appended and fsynced
    /// (`appendfsync always`), else nothing is kept on disk.
    pub async fn start(aof: bool) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut r = RedisServer { dir: tempfile::tempdir().unwrap(), port, aof, child: None };
        r.spawn().await;
        r
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let (appendonly, fsync) = if self.aof { ("yes", "always") } else { ("no", "no") };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .args(["--appendonly", appendonly, "--appendfsync", fsync])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        self.child = Some(child);
        let url = self.url();
        eventually(20, &format!("the private redis-server at {url} to answer"), || async {
            let client = redis::Client::open(url.as_str()).ok()?;
            let mut con = client.get_multiplexed_async_connection().await.ok()?;
            redis::cmd("PING").query_async::<String>(&mut con).await.ok()
        })
        .await;
    }

    /// SIGKILLs the server (a crash: nothing is flushed) and starts it again
    /// on the same port and directory.
    pub async fn crash_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private Redis Cluster of three masters on loopback (no replicas), for
/// one test; stopped on drop.
pub struct RedisCluster {
    _dir: tempfile::TempDir,
    /// The masters' ports.
    pub ports: Vec<u16>,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts three `redis-server --cluster-enabled yes`, joins them with
    /// `redis-cli --cluster create` and waits until every node says the
    /// cluster is ok.
    pub async fn start() -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let mut children = Vec::new();
        for port in &ports {
            let node = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node).unwrap();
            let child = Command::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .arg("--dir")
                .arg(&node)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (scripts/test installs it)");
            children.push(child);
        }
        for port in &ports {
            let url = format!("redis://127.0.0.1:{port}");
            eventually(20, &format!("cluster node {url} to answer"), || async {
                let client = redis::Client::open(url.as_str()).ok()?;
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING").query_async::<String>(&mut con).await.ok()
            })
            .await;
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (scripts/test installs it)");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        for port in &ports {
            let url = format!("redis://127.0.0.1:{port}");
            eventually(30, &format!("cluster node {url} to say cluster_state:ok"), || async {
                let client = redis::Client::open(url.as_str()).ok()?;
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                let info: String = redis::cmd("CLUSTER").arg("INFO").query_async(&mut con).await.ok()?;
                info.contains("cluster_state:ok").then_some(())
            })
            .await;
        }
        RedisCluster { _dir: dir, ports, children }
    }

    /// `redis-cluster://127.0.0.1:<port>,…`: pan's URL for it.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis-cluster://{}", nodes.join(","))
    }

    /// How many keys each master holds.
    pub async fn keys_per_master(&self) -> Vec<u64> {
        let mut counts = Vec::new();
        for port in &self.ports {
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            let mut con = client.get_multiplexed_async_connection().await.unwrap();
            counts.push(redis::cmd("DBSIZE").query_async::<u64>(&mut con).await.unwrap());
        }
        counts
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private Garage (S3-compatible object store) for one test: its own
/// directories and ports, one bucket, one key. Stopped on drop; `stop` and
/// `start` simulate an outage.
pub struct GarageServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The bucket every store of the test lives in.
    pub bucket: String,
    /// Access key id.
    pub key_id: String,
    /// Secret key.
    pub secret: String,
}

/// The garage binary: `PAN_TEST_GARAGE_BIN`, else `garage` on PATH, else
/// `~/.cargo/bin/garage` (where scripts/services installs it).
pub fn garage_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PAN_TEST_GARAGE_BIN") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("garage")).find(|c| c.exists()))
        .unwrap_or_default();
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/garage");
    let bin = on_path.unwrap_or(home);
    assert!(bin.exists(), "garage is not installed ({}); scripts/test installs it", bin.display());
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl GarageServer {
    /// Starts a fresh single-node Garage and creates the bucket and key.
    pub async fn start() -> GarageServer {
        Self::start_cluster(1).await.pop().expect("one node")
    }

    /// Starts `n` Garage nodes on loopback as one cluster with replication
    /// factor `n` (each node its own zone), and creates the bucket and key;
    /// every node serves the same bucket. A write needs a quorum of the
    /// nodes, so with 3 one may be down.
    pub async fn start_cluster(n: usize) -> Vec<GarageServer> {
        let rpc_secret = hex::encode(rand::random::<[u8; 32]>());
        let key_id = format!("GK{}", hex::encode(rand::random::<[u8; 12]>()));
        let key_secret = hex::encode(rand::random::<[u8; 32]>());
        let mut nodes = Vec::new();
        for _ in 0..n {
            let dir = tempfile::tempdir().expect("garage dir");
            let (s3, rpc, admin) = (free_port(), free_port(), free_port());
            let config = format!(
                r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "sqlite"
replication_factor = {n}
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                d = dir.path().display(),
            );
            std::fs::write(dir.path().join("garage.toml"), config).unwrap();
            let mut g = GarageServer {
                dir,
                child: None,
                endpoint: format!("http://127.0.0.1:{s3}"),
                bucket: "pan-test".into(),
                key_id: key_id.clone(),
                secret: key_secret.clone(),
            };
            g.start_process().await;
            nodes.push(g);
        }
        let mut ids = Vec::new();
        for g in &nodes {
            ids.push(g.cli(&["node", "id", "-q"]).await.trim().to_owned());
        }
        let first = &nodes[0];
        for id in &ids[1..] {
            first.cli(&["node", "connect", id]).await;
        }
        for (i, id) in ids.iter().enumerate() {
            let node = id.split('@').next().expect("a node id");
            first.cli(&["layout", "assign", "-z", &format!("dc{}", i + 1), "-c", "1GB", node]).await;
        }
        first.cli(&["layout", "apply", "--version", "1"]).await;
        first.cli(&["key", "import", "--yes", "-n", "pan-test", &key_id, &key_secret]).await;
        first.cli(&["bucket", "create", "pan-test"]).await;
        first.cli(&["bucket", "allow", "--read", "--write", "--owner", "pan-test", "--key", "pan-test"]).await;
        for g in &nodes {
            g.wait_until_serving().await;
        }
        nodes
    }

    /// Runs `garage <args>` until it succeeds (the daemon may still be
    /// starting), for at most 30 s; returns its output.
    async fn cli(&self, args: &[&str]) -> String {
        let config = self.dir.path().join("garage.toml");
        let what = format!("garage {args:?} to succeed (its errors are printed above)");
        let run = eventually(30, &what, || async {
            let out = tokio::process::Command::new(garage_bin())
                .arg("-c")
                .arg(&config)
                .args(args)
                .output()
                .await
                .expect("run garage");
            if !out.status.success() {
                eprintln!("garage {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        });
        run.await
    }

    async fn start_process(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("garage.log")).unwrap();
        let child = Command::new(garage_bin())
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start garage");
        self.child = Some(child);
    }

    /// Polls the S3 port until it answers HTTP.
    async fn wait_until_serving(&self) {
        eventually(30, "garage's S3 API to come up", || async { reqwest::get(&self.endpoint).await.ok() }).await;
    }

    /// Stops the server (an outage); data stays.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again after [`stop`](Self::stop).
    pub async fn restart(&mut self) {
        self.start_process().await;
        self.wait_until_serving().await;
    }

    /// The environment a pan process needs to use this server
    /// (object_store's standard `AWS_*` variables).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT".into(), self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID".into(), self.key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret.clone()),
            ("AWS_REGION".into(), "garage".into()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// An independent client for checking what is in the bucket.
    pub fn client(&self) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_access_key_id(&self.key_id)
            .with_secret_access_key(&self.secret)
            .with_region("garage")
            .with_allow_http(true)
            .build()
            .expect("s3 client")
    }

    /// Every object under `prefix` with its bytes.
    pub async fn objects(&self, prefix: &str) -> BTreeMap<String, Vec<u8>> {
        use futures::TryStreamExt;
        use object_store::{ObjectStore, ObjectStoreExt};
        let s3 = self.client();
        let prefix = object_store::path::Path::from(prefix);
        let metas: Vec<_> = s3.list(Some(&prefix)).try_collect().await.expect("list bucket");
        let mut out = BTreeMap::new();
        for m in metas {
            let bytes = s3.get(&m.location).await.expect("get").bytes().await.expect("bytes");
            out.insert(m.location.to_string(), bytes.to_vec());
        }
        out
    }
}

impl Drop for GarageServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl TestAppBuilder {
    /// Adds the settings that point pan at a Garage server.
    pub fn s3(mut self, g: &GarageServer) -> Self {
        self.env.extend(g.env());
        self
    }
}

/// A TCP proxy on loopback in front of a server, that a test can cut (every
/// connection dropped, new ones refused) and restore: a backend that is
/// unreachable for a while, as a network partition or a restart makes it.
pub struct CuttableProxy {
    /// Where clients connect.
    pub addr: std::net::SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    /// Starts forwarding to `target`.
    pub async fn start(target: std::net::SocketAddr) -> CuttableProxy {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a proxy port");
        let addr = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, links2) = (cut.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound); // refused: the peer sees the connection close
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        CuttableProxy { addr, cut, links, accept }
    }

    /// Drops every connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// nginx in front of api processes, run from the site file pan ships
/// (`deploy/nginx/pan.conf`): the test's main config includes that file
/// with only its upstream's `server` addresses and its `listen` address
/// changed (see [`site_file`]), so what is tested is what is shipped. The
/// access log says which api process answered each request
/// ([`Nginx::access_log`]). Stopped, with its worker, on drop.
pub struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

/// One line of the test nginx's access log: a request and the api
/// processes nginx sent it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxied {
    /// What nginx answered the client.
    pub status: u16,
    /// Each api process nginx tried (`127.0.0.1:<port>`), in order: more
    /// than one when it passed the request on; none when it reached none.
    pub upstreams: Vec<String>,
    /// What each of them answered (`502` for a connection that failed).
    pub upstream_statuses: Vec<String>,
    /// `POST`, `GET`, …
    pub method: String,
    /// The path and query.
    pub uri: String,
    /// The `X-Forwarded-For` nginx sent on: the client's own, if it sent
    /// one, then the address the request came from.
    pub forwarded_for: String,
    /// The request's `X-Test-Id` header (`-` without one): lets a test find
    /// the line of one request.
    pub test_id: String,
}

impl Proxied {
    /// The api process that gave nginx its answer (the last one tried).
    pub fn answered_by(&self) -> Option<&str> {
        self.upstreams.last().map(String::as_str)
    }
}

/// The nginx binary; a test that needs it fails (never skips) without it.
fn nginx_bin() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("nginx")).find(|c| c.exists()))
        .unwrap_or_default();
    let bin = on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
    assert!(
        bin.exists(),
        "nginx is not installed ({}); scripts/test installs it (scripts/deps services)",
        bin.display()
    );
    bin
}

/// The shipped site file `deploy/nginx/pan.conf` with its upstream's
/// `server` lines replaced by one per address of `upstreams` (keeping the
/// parameters of the first, `max_fails=…`), and its one `listen` line by
/// `listen <listen>;`. Fails when the file no longer has that shape.
pub fn site_file(upstreams: &[&str], listen: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/pan.conf");
    let shipped = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (mut out, mut in_upstream, mut servers, mut listens) = (Vec::new(), false, 0, 0);
    for line in shipped.lines() {
        let code = line.split('#').next().unwrap_or("").trim();
        if code.starts_with("upstream ") {
            in_upstream = true;
        } else if in_upstream && code == "}" {
            in_upstream = false;
        }
        if in_upstream && code.starts_with("server ") {
            servers += 1;
            if servers == 1 {
                let params: Vec<&str> = code.trim_end_matches(';').split_whitespace().skip(2).collect();
                for addr in upstreams {
                    out.push(format!("    server {addr} {};", params.join(" ")));
                }
            }
        } else if !in_upstream && code.starts_with("listen ") {
            listens += 1;
            out.push(format!("    listen {listen};"));
        } else {
            out.push(line.to_owned());
        }
    }
    assert!(
        servers > 0 && listens == 1,
        "{}: expected an upstream with server lines and one listen line",
        path.display()
    );
    out.join("\n") + "\n"
}

impl Nginx {
    /// Starts nginx in front of the api processes at `upstreams` (base URLs,
    /// `http://127.0.0.1:<port>`) and waits until it passes a request on.
    pub async fn start(upstreams: &[String]) -> Nginx {
        Nginx::start_with_body_limit(upstreams, "0").await
    }

    /// Like [`Nginx::start`], refusing request bodies over `max_body`
    /// (nginx's `client_max_body_size`, such as `20m`; `0`: no limit, as
    /// the shipped site file has it) with 413, as many proxies do.
    pub async fn start_with_body_limit(upstreams: &[String], max_body: &str) -> Nginx {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().expect("nginx dir");
        let d = dir.path().display();
        let port = free_port();
        let addrs: Vec<&str> =
            upstreams.iter().map(|u| u.trim_start_matches("http://").trim_end_matches('/')).collect();
        let site = site_file(&addrs, &format!("127.0.0.1:{port}"));
        assert!(site.contains("client_max_body_size 0;"), "the site file sets client_max_body_size 0");
        let site = site.replace("client_max_body_size 0;", &format!("client_max_body_size {max_body};"));
        std::fs::write(dir.path().join("pan.conf"), site).unwrap();
        // The tests run as root (as bench/compare.py's nginx does): the
        // worker keeps root to reach the temp directories below.
        let main = format!(
            r#"user root;
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format pan_test '$status|$upstream_addr|$upstream_status|$request_method|$request_uri|$proxy_add_x_forwarded_for|$http_x_test_id';
    access_log {d}/access.log pan_test;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/pan.conf;
}}
"#
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, main).unwrap();
        let child = Command::new(nginx_bin())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: dropping it kills the master and its worker.
            .process_group(0)
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx { dir, child, base: format!("http://127.0.0.1:{port}") };
        let (http, url) = (reqwest::Client::new(), format!("{}/healthz", nginx.base));
        let error_log = nginx.dir.path().join("error.log");
        let child = &mut nginx.child;
        eventually(20, "nginx to pass /healthz on to an api process", || {
            if let Some(status) = child.try_wait().expect("wait for nginx") {
                let log = std::fs::read_to_string(&error_log).unwrap_or_default();
                panic!("nginx exited ({status}); its error log:\n{log}");
            }
            let answer = http.get(&url).send();
            async move { answer.await.ok().filter(|r| r.status() == StatusCode::OK).map(|_| ()) }
        })
        .await;
        nginx
    }

    /// Every request nginx has logged so far, oldest first.
    pub fn access_log(&self) -> Vec<Proxied> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        let list = |s: &str| -> Vec<String> {
            s.split([',', ':'])
                .map(str::trim)
                .filter(|p| !p.is_empty() && *p != "-")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        text.lines()
            .map(|line| {
                let f: Vec<&str> = line.splitn(7, '|').collect();
                assert_eq!(f.len(), 7, "an access log line of another shape: {line}");
                // `$upstream_addr` separates tries by ", " (and groups by " : "):
                // the addresses themselves hold one ':' each, so split and pair again.
                let parts = list(f[1]);
                let upstreams = parts.chunks(2).map(|p| p.join(":")).collect();
                Proxied {
                    status: f[0].parse().unwrap_or_else(|_| panic!("status in {line}")),
                    upstreams,
                    upstream_statuses: list(f[2]),
                    method: f[3].to_owned(),
                    uri: f[4].to_owned(),
                    forwarded_for: f[5].to_owned(),
                    test_id: f[6].to_owned(),
                }
            })
            .collect()
    }

    /// The logged line of the request whose `X-Test-Id` was `id` (nginx
    /// writes it once the answer is sent: waits at most 10 s for it).
    pub async fn request(&self, id: &str) -> Proxied {
        eventually(10, &format!("nginx to log request {id}"), || {
            let found = self.access_log().into_iter().find(|p| p.test_id == id);
            async move { found }
        })
        .await
    }

    /// nginx's error log (what it said about the api processes).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group of the nginx this test started.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}
