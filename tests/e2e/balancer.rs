//! Behind a load balancer: api processes of a fleet behind nginx, run from
//! the site file pan ships (`deploy/nginx/pan.conf`, round-robin, no
//! stickiness), as the README's "Behind a load balancer" deploys them.
//! Uploads whose chunks land on different processes, a process SIGKILLed
//! mid-upload, `X-Forwarded-For` believed only from the proxy, and a
//! rolling restart under a steady load.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use pan_tests::*;
use serde_json::{Value, json};

/// The chunk size every test here uses (small files, several chunks).
const CHUNK: usize = 1 << 20;
/// The metrics token of these apps (each process's counters are read).
const METRICS: &str = "balancer-metrics-token";
/// nginx connects to the api processes from this address: the trusted proxy.
const PROXY: &str = "127.0.0.1";

/// A fleet of `apis` api processes and `workers` workers, settings as the
/// README deploys them behind nginx (`PAN_TRUSTED_PROXIES` = the proxy;
/// signup open for the tests), with `more` settings; and nginx in front.
/// Returns the app, each api process's base URL, and nginx.
async fn fleet(
    apis: usize,
    workers: usize,
    more: impl FnOnce(TestAppBuilder) -> TestAppBuilder,
) -> (TestApp, Vec<String>, Nginx) {
    let builder = TestApp::builder(Deployment::Fleet)
        .workers(workers)
        .env("PAN_TRUSTED_PROXIES", PROXY)
        .env("PAN_SIGNUP", "open")
        .env("PAN_CHUNK_SIZE", &CHUNK.to_string())
        .env("PAN_METRICS_TOKEN", METRICS);
    let mut app = more(builder).spawn().await;
    let mut bases = vec![app.base.clone()];
    for _ in 1..apis {
        bases.push(app.spawn_another_api().await);
    }
    let nginx = Nginx::start(&bases).await;
    (app, bases, nginx)
}

/// `127.0.0.1:<port>` of a base URL, as nginx's log names an api process.
fn addr(base: &str) -> &str {
    base.trim_start_matches("http://")
}

/// Bytes `i` of `data` cut in [`CHUNK`]s.
fn chunk(data: &[u8], i: u64) -> Vec<u8> {
    data[i as usize * CHUNK..((i as usize + 1) * CHUNK).min(data.len())].to_vec()
}

/// An answer's status and JSON body (`Null` when the body is not JSON,
/// e.g. nginx's own HTML error page).
async fn answer(resp: reqwest::Response) -> (StatusCode, Value) {
    let code = resp.status();
    let text = resp.text().await.expect("body");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends chunk `i` through `lb` with an `X-Test-Id: tag` header, by which
/// nginx's access log tells which api process answered it.
async fn tagged_chunk(lb: &Client, token: &str, id: &str, i: u64, bytes: Vec<u8>, tag: &str) -> (StatusCode, Value) {
    let req = lb
        .http
        .post(lb.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx={i}")))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .header("x-test-id", tag)
        .body(bytes);
    answer(req.send().await.expect("chunk through nginx")).await
}

/// A chunk send whose body stops half-way until it is released: a request
/// in flight on whichever api process took it.
struct HeldChunk {
    index: u64,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    /// The answer (status, body text), or how the connection was cut.
    send: tokio::task::JoinHandle<Result<(StatusCode, String), String>>,
}

impl HeldChunk {
    /// Starts sending chunk `index` of upload `id` (`bytes`, with its
    /// Content-Length) to `base`; half the body goes at once.
    fn start(http: &reqwest::Client, base: &str, token: &str, id: &str, index: u64, bytes: Vec<u8>) -> HeldChunk {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let len = bytes.len();
        let rest = Bytes::copy_from_slice(&bytes[len / 2..]);
        let first = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(Bytes::copy_from_slice(
            &bytes[..len / 2],
        ))));
        let second = futures::stream::once(async move {
            let _ = rx.await;
            Ok(rest)
        });
        let req = http
            .post(format!("{base}/file/mupload/uppart?uploadID={id}&chkidx={index}"))
            .bearer_auth(token)
            .header("content-type", "application/octet-stream")
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(first.chain(second)));
        let send = tokio::spawn(async move {
            let resp = req.send().await.map_err(|e| format!("{e:?}"))?;
            let code = resp.status();
            Ok((code, resp.text().await.map_err(|e| format!("{e:?}"))?))
        });
        HeldChunk { index, release: Some(tx), send }
    }

    /// Lets the rest of the body go and waits for the answer.
    async fn finish(mut self) -> Result<(StatusCode, String), String> {
        if let Some(tx) = self.release.take() {
            let _ = tx.send(());
        }
        self.send.await.expect("the send's task")
    }
}

/// Chunk bodies each api process is receiving now (`pan_chunks_in_flight`).
async fn in_flight(app: &TestApp, bases: &[String]) -> Vec<u64> {
    let mut out = Vec::new();
    for b in bases {
        out.push(app.metric_at(b, "pan_chunks_in_flight").await);
    }
    out
}

/// An upload through nginx in front of three api processes (and three
/// workers) is whole: its chunks land on every process, a chunk sent again
/// lands on another process than its first send and is taken (200), the
/// complete and status calls land anywhere, the file downloads byte-exact
/// through nginx and the audit is clean. Which process answered each send
/// is read from nginx's access log, and each process's own count of chunks
/// received (`pan_chunks_received_total`) agrees with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uploads_chunks_and_resends_spread_over_the_api_processes_make_one_file() {
    let (app, bases, nginx) = fleet(3, 3, |b| b).await;
    let lb = app.through(&nginx.base);
    let token = lb.user(&uname("spread")).await;
    let data = test_bytes(5 * CHUNK + 12_345, 81);
    let (code, init) = lb.init(&token, "spread.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    assert_eq!((init["chunkcount"].as_u64(), init["chunksize"].as_u64()), (Some(6), Some(CHUNK as u64)), "{init}");

    let mut served_by = BTreeMap::new();
    for i in 0..6 {
        let tag = format!("spread-{i}");
        let (code, body) = tagged_chunk(&lb, &token, &id, i, chunk(&data, i), &tag).await;
        assert_eq!((code, body["chkidx"].as_u64()), (StatusCode::OK, Some(i)), "chunk {i}: {body}");
        let line = nginx.request(&tag).await;
        assert_eq!(line.upstream_statuses, ["200"], "one process took chunk {i}: {line:?}");
        served_by.insert(i, line.answered_by().unwrap().to_owned());
    }
    let processes: BTreeSet<&str> = served_by.values().map(String::as_str).collect();
    let all: BTreeSet<&str> = bases.iter().map(|b| addr(b)).collect();
    assert_eq!(processes, all, "round-robin gave every process chunks: {served_by:?}");

    // Chunk 0 again (a client retrying a send it thinks lost) until nginx
    // passes it to another process than its first send: round-robin over
    // three processes does so within three sends.
    let mut resends = Vec::new();
    while resends.last().is_none_or(|p| *p == served_by[&0]) {
        assert!(resends.len() < 3, "three resends of chunk 0 all went to its first process: {resends:?}");
        let tag = format!("resend-{}", resends.len());
        let (code, body) = tagged_chunk(&lb, &token, &id, 0, chunk(&data, 0), &tag).await;
        assert_eq!((code, body["chkidx"].as_u64()), (StatusCode::OK, Some(0)), "resend of chunk 0: {body}");
        resends.push(nginx.request(&tag).await.answered_by().unwrap().to_owned());
    }
    println!("chunk 0 first went to {}, its resends to {resends:?}", served_by[&0]);

    // Each process counted the sends nginx says it answered.
    let mut answered: BTreeMap<&str, u64> = all.iter().map(|a| (*a, 0)).collect();
    for a in served_by.values().chain(&resends) {
        *answered.get_mut(a.as_str()).unwrap() += 1;
    }
    for b in &bases {
        let counted = app.metric_at(b, "pan_chunks_received_total").await;
        assert_eq!(counted, answered[addr(b)], "chunks received by {b}");
    }

    completes_through(&lb, &token, &id, &data).await;
    app.assert_consistent().await;
}

/// An api process SIGKILLed while a chunk body streams into it through
/// nginx (three processes): that one send fails (nginx answers 502, or the
/// connection is cut) and nothing else does: the other sends in flight
/// finish 200, and nginx passes later requests to the live processes. The
/// client sends the failed chunk again through nginx (waiting out the dead
/// send's claim on it, 503 `CHUNK_BUSY` with Retry-After, while it lasts),
/// completes, the file downloads byte-exact and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_process_killed_mid_upload_costs_the_client_one_resend() {
    let (mut app, bases, nginx) = fleet(3, 2, |b| b).await;
    let lb = app.through(&nginx.base);
    let token = lb.user(&uname("killed")).await;
    let data = test_bytes(6 * CHUNK + 777, 82);
    let (code, init) = lb.init(&token, "killed.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let count = init["chunkcount"].as_u64().unwrap();
    assert_eq!(count, 7, "{init}");

    // Chunk sends held open through nginx, one more at a time, until one
    // streams into the victim (its own gauge says so).
    let victim = bases[2].clone();
    let mut held: Vec<HeldChunk> = Vec::new();
    loop {
        assert!(held.len() < 3, "three held sends through nginx and none reached {victim}");
        let i = held.len() as u64;
        held.push(HeldChunk::start(&lb.http, &lb.base, &token, &id, i, chunk(&data, i)));
        let want = held.len() as u64;
        let now = eventually(10, "the held send to reach an api process", || async {
            let now = in_flight(&app, &bases).await;
            (now.iter().sum::<u64>() == want).then_some(now)
        })
        .await;
        if now[2] == 1 {
            break;
        }
    }
    let on_victim = held.last().unwrap().index;

    app.kill_api_at(&victim);
    let mut failed = Vec::new();
    for h in held {
        let i = h.index;
        match h.finish().await {
            Ok((code, body)) if code == StatusCode::OK => {
                assert_ne!(i, on_victim, "the killed process answered: {body}")
            }
            Ok((code, body)) => {
                assert_eq!(code, StatusCode::BAD_GATEWAY, "chunk {i}: {body}");
                failed.push((i, format!("{code}")));
            }
            Err(cut) => failed.push((i, cut)),
        }
    }
    assert_eq!(
        failed.iter().map(|f| f.0).collect::<Vec<_>>(),
        [on_victim],
        "only the victim's send failed: {failed:?}"
    );

    // The client carries on through nginx: the chunks not yet sent, then the
    // failed one again.
    for i in (0..count).filter(|i| *i > on_victim) {
        let (code, body) = lb.put_chunk(&token, &id, i, chunk(&data, i)).await;
        assert_eq!(code, StatusCode::OK, "chunk {i} after the kill: {body}");
    }
    // The dead send's claim on the chunk runs out LEASE_TTL after it was
    // last renewed; until then a resend is told to wait.
    let patience = std::time::Instant::now() + 2 * shared::upload::running_hash::LEASE_TTL;
    let (mut busy, mut resends) = (0, 0);
    loop {
        resends += 1;
        let (code, body) = lb.put_chunk(&token, &id, on_victim, chunk(&data, on_victim)).await;
        if code == StatusCode::OK {
            break;
        }
        assert_eq!((code, body["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("CHUNK_BUSY")), "{body}");
        assert!(std::time::Instant::now() < patience, "chunk {on_victim} still busy after {busy} waits");
        busy += 1;
        let wait = body["retry_after"].as_u64().expect("CHUNK_BUSY says when to retry");
        // Waiting as told is how a well-behaved client acts, not a poll.
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    println!(
        "killed {victim} with chunk {on_victim} in flight: the client saw {} failed send ({}), then {busy} CHUNK_BUSY, \
         and the chunk went through on resend {resends}",
        failed.len(),
        failed[0].1
    );

    completes_through(&lb, &token, &id, &data).await;
    app.assert_consistent().await;
}

/// A client on loopback address `ip`.
fn client_from(ip: &str) -> reqwest::Client {
    let ip: IpAddr = ip.parse().unwrap();
    reqwest::Client::builder().local_address(ip).timeout(Duration::from_secs(30)).build().unwrap()
}

/// A wrong signin (a made-up user) by `http` at `base`, with a
/// `X-Forwarded-For` of the client's own making when `forged`: the status,
/// the `Retry-After` header and the body.
async fn wrong_signin(http: &reqwest::Client, base: &str, forged: Option<&str>) -> (StatusCode, Option<u64>, Value) {
    let body = json!({"username": uname("nobody"), "password": "not the one"});
    let mut req = http.post(format!("{base}/usr/signin")).json(&body);
    if let Some(xff) = forged {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.expect("signin");
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse().unwrap());
    let (code, body) = answer(resp).await;
    (code, retry_after, body)
}

/// Asserts a wrong signin that the limit let through: 401 `BAD_CREDENTIALS`.
fn assert_let_through(seen: &(StatusCode, Option<u64>, Value), ctx: &str) {
    assert_eq!(
        (seen.0, seen.2["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("BAD_CREDENTIALS")),
        "{ctx}: {seen:?}"
    );
}

/// Asserts a signin the limit refused: 429 `RATE_LIMITED`, with a
/// Retry-After of at most one replenish interval (60 s / 3).
fn assert_limited(seen: &(StatusCode, Option<u64>, Value), ctx: &str) {
    assert_eq!(
        (seen.0, seen.2["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED")),
        "{ctx}: {seen:?}"
    );
    assert!(seen.1.is_some_and(|s| (1..=20).contains(&s)), "{ctx}: Retry-After {:?}", seen.1);
}

/// `X-Forwarded-For` is believed only from the proxy (`PAN_TRUSTED_PROXIES`
/// = the address nginx connects from, 127.0.0.1), with a signin limit of 3
/// a minute per client address: a client writing the header itself straight
/// to an api process (from 127.0.0.4) is limited by its own address whatever
/// it writes; through nginx, two clients (127.0.0.2 and 127.0.0.3) have a
/// budget each, though nginx is one peer to pan, and a forged header,
/// naming a fresh address or the other client's, spends the sender's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_counts_only_from_the_proxy() {
    let (_app, bases, nginx) = fleet(2, 1, |b| b.env("PAN_SIGNIN_RATE", "3").env("PAN_SIGNIN_USER_RATE", "1000")).await;

    let direct = client_from("127.0.0.4");
    for n in 1..=3 {
        let forged = format!("198.51.100.{n}");
        assert_let_through(&wrong_signin(&direct, &bases[1], Some(&forged)).await, &format!("direct, as {forged}"));
    }
    assert_limited(&wrong_signin(&direct, &bases[1], Some("198.51.100.9")).await, "direct, a fourth forged address");

    let (a, b) = (client_from("127.0.0.2"), client_from("127.0.0.3"));
    for n in 1..=3 {
        assert_let_through(
            &wrong_signin(&a, &nginx.base, None).await,
            &format!("127.0.0.2 through nginx, attempt {n}"),
        );
    }
    assert_limited(&wrong_signin(&a, &nginx.base, None).await, "127.0.0.2, a fourth attempt");
    for forged in ["198.51.100.77", "127.0.0.3", "127.0.0.1"] {
        assert_limited(&wrong_signin(&a, &nginx.base, Some(forged)).await, &format!("127.0.0.2 forging {forged}"));
    }
    for n in 1..=3 {
        assert_let_through(
            &wrong_signin(&b, &nginx.base, None).await,
            &format!("127.0.0.3 through nginx, attempt {n}"),
        );
    }
    assert_limited(&wrong_signin(&b, &nginx.base, None).await, "127.0.0.3, a fourth attempt");

    // nginx passed on what the clients wrote with the address each request
    // came from appended: the right-most address pan reads.
    let sent: Vec<String> =
        nginx.access_log().into_iter().filter(|p| p.uri == "/usr/signin").map(|p| p.forwarded_for).collect();
    let mut want = vec!["127.0.0.2"; 4];
    want.extend(["198.51.100.77, 127.0.0.2", "127.0.0.3, 127.0.0.2", "127.0.0.1, 127.0.0.2"]);
    want.extend(["127.0.0.3"; 4]);
    assert_eq!(sent, want);
}

/// How many times one request is sent again at most.
const RETRIES: usize = 3;

/// A client running a steady mix through nginx, as a load-balanced client
/// behaves: it sends a request again only after a 502, 503 or 504 or a
/// connection cut before the answer, at most [`RETRIES`] times (a 503's
/// Retry-After waited out as told).
struct Mix {
    lb: Client,
    token: String,
    stop: AtomicBool,
    /// Operations finished.
    ops: AtomicUsize,
    /// Each request sent again: what it was and what the previous send got.
    retries: std::sync::Mutex<Vec<String>>,
    /// Every file uploaded: name → bytes.
    files: std::sync::Mutex<BTreeMap<String, Vec<u8>>>,
    /// Held for reading by each request: the test takes it for writing to
    /// pause the client between two requests.
    gate: tokio::sync::RwLock<()>,
    /// The operation that failed, which ended the run.
    failed: std::sync::Mutex<Option<String>>,
}

impl Mix {
    /// Sends what `make` builds until the answer is one not to retry.
    async fn send(
        &self,
        what: &str,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Value), String> {
        let mut last = String::new();
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                self.retries.lock().unwrap().push(format!("{what} after {last}"));
            }
            let pass = self.gate.read().await;
            let sent = make().send().await;
            match sent {
                Ok(resp) => {
                    let code = resp.status();
                    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
                    let text = resp.text().await;
                    drop(pass);
                    match text {
                        Ok(text) if ![502, 503, 504].contains(&code.as_u16()) => {
                            return Ok((code, serde_json::from_str(&text).unwrap_or(Value::Null)));
                        }
                        Ok(text) => {
                            last = format!("{code} {}", text.chars().take(120).collect::<String>());
                            if let Some(secs) = retry_after {
                                // Waiting as told is how a well-behaved client acts.
                                tokio::time::sleep(Duration::from_secs(secs)).await;
                            }
                        }
                        Err(e) => last = format!("{code}, then its body was cut: {e:?}"),
                    }
                }
                Err(e) => last = format!("a cut connection: {e:?}"),
            }
        }
        Err(format!("{what}: still failing after {RETRIES} retries: {last}"))
    }

    fn url(&self, path: &str) -> String {
        self.lb.url(path)
    }

    /// A small file in one request.
    async fn single_upload(&self, n: usize) -> Result<(), String> {
        let name = format!("single-{n}.bin");
        let data = test_bytes(32 << 10, 1000 + n as u64);
        let (code, body) = self
            .send(&format!("POST /file/upload {name}"), || {
                let part = reqwest::multipart::Part::bytes(data.clone()).file_name(name.clone());
                let form = reqwest::multipart::Form::new().part("file", part);
                self.lb.http.post(self.url("/file/upload")).bearer_auth(&self.token).multipart(form)
            })
            .await?;
        if code != StatusCode::CREATED || body["filehash"] != sha1_hex(&data).as_str() {
            return Err(format!("single upload {name}: {code} {body}"));
        }
        self.files.lock().unwrap().insert(name, data);
        Ok(())
    }

    /// A file of three chunks: init, the chunks, complete, status until done.
    async fn chunked_upload(&self, n: usize) -> Result<(), String> {
        let name = format!("chunked-{n}.bin");
        let data = test_bytes(2 * CHUNK + 4096, 2000 + n as u64);
        let spec =
            json!({"filename": name, "filehash": sha1_hex(&data), "sha256": sha256_hex(&data), "filesize": data.len()});
        let (code, init) = self
            .send(&format!("init {name}"), || {
                self.lb.http.post(self.url("/file/mupload/init")).bearer_auth(&self.token).json(&spec)
            })
            .await?;
        let id = match (code, init["uploadID"].as_str()) {
            (StatusCode::OK, Some(id)) => id.to_owned(),
            _ => return Err(format!("init {name}: {code} {init}")),
        };
        for i in 0..3 {
            let part = Bytes::from(chunk(&data, i));
            let url = self.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx={i}"));
            let (code, body) = self
                .send(&format!("chunk {i} of {name}"), || {
                    let req = self.lb.http.post(&url).bearer_auth(&self.token);
                    req.header("content-type", "application/octet-stream").body(part.clone())
                })
                .await?;
            if code != StatusCode::OK {
                return Err(format!("chunk {i} of {name}: {code} {body}"));
            }
        }
        let url = self.url(&format!("/file/mupload/complete?uploadID={id}"));
        let (code, body) =
            self.send(&format!("complete {name}"), || self.lb.http.post(&url).bearer_auth(&self.token)).await?;
        // Complete again reports the current state: `done` (200) if a retry
        // follows a complete that went through and merged meanwhile.
        if !matches!(
            (code, body["state"].as_str()),
            (StatusCode::ACCEPTED, Some("merging")) | (StatusCode::OK, Some("done"))
        ) {
            return Err(format!("complete {name}: {code} {body}"));
        }
        let url = self.url(&format!("/file/mupload/status?uploadID={id}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut pause = Duration::from_millis(10);
        loop {
            let (code, s) =
                self.send(&format!("status {name}"), || self.lb.http.get(&url).bearer_auth(&self.token)).await?;
            match (code, s["state"].as_str()) {
                (StatusCode::OK, Some("done")) => break,
                (StatusCode::OK, Some("merging")) if std::time::Instant::now() < deadline => {}
                _ => return Err(format!("status {name}: {code} {s}")),
            }
            // Polling the upload's status is the protocol's own way to wait.
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(200));
        }
        self.files.lock().unwrap().insert(name, data);
        Ok(())
    }

    /// The listing: every file uploaded so far, none more.
    async fn listing(&self) -> Result<(), String> {
        let want = self.files.lock().unwrap().len();
        let url = self.url("/file/query?limit=1000");
        let (code, body) = self.send("GET /file/query", || self.lb.http.get(&url).bearer_auth(&self.token)).await?;
        let names: BTreeSet<&str> =
            body["files"].as_array().into_iter().flatten().filter_map(|f| f["filename"].as_str()).collect();
        let known: BTreeSet<String> = self.files.lock().unwrap().keys().cloned().collect();
        let known: BTreeSet<&str> = known.iter().map(String::as_str).collect();
        if code != StatusCode::OK || body["total"].as_u64() != Some(want as u64) || names != known {
            return Err(format!("listing: {code}, {want} files uploaded: {body}"));
        }
        Ok(())
    }

    /// One file uploaded earlier, downloaded whole; its bytes compared.
    async fn download(&self, n: usize) -> Result<(), String> {
        let picked = {
            let files = self.files.lock().unwrap();
            files.iter().nth(n % files.len().max(1)).map(|(k, v)| (k.clone(), v.clone()))
        };
        let Some((name, data)) = picked else { return self.listing().await };
        let url = self.url(&format!("/file/download?filehash={}", sha1_hex(&data)));
        for attempt in 0..=RETRIES {
            if attempt > 0 {
                self.retries.lock().unwrap().push(format!("download {name}: cut or 5xx"));
            }
            let _pass = self.gate.read().await;
            let Ok(resp) = self.lb.http.get(&url).bearer_auth(&self.token).send().await else { continue };
            let code = resp.status();
            if [502, 503, 504].contains(&code.as_u16()) {
                continue;
            }
            let Ok(got) = resp.bytes().await else { continue };
            if code != StatusCode::OK || got != data {
                return Err(format!("download {name}: {code}, {} bytes of {}", got.len(), data.len()));
            }
            return Ok(());
        }
        Err(format!("download {name}: still failing after {RETRIES} retries"))
    }

    /// Runs single uploads, chunked uploads, listings and downloads in turn
    /// until stopped; the first failure ends it (kept in `failed`).
    async fn run(self: Arc<Self>) {
        let mut n = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let done = match n % 4 {
                0 => self.single_upload(n).await,
                1 => self.chunked_upload(n).await,
                2 => self.listing().await,
                _ => self.download(n).await,
            };
            if let Err(e) = done {
                *self.failed.lock().unwrap() = Some(e);
                return;
            }
            n += 1;
            self.ops.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Fails the test with the operation that failed, if one did.
    fn assert_going(&self, nginx: &Nginx) {
        if let Some(e) = self.failed.lock().unwrap().as_ref() {
            panic!(
                "an operation failed: {e}\nnginx's error log:\n{}\nthe api processes' log ends:\n{}",
                nginx.error_log(),
                self.lb.api_log_tail(40)
            );
        }
    }
}

/// A rolling restart behind nginx fails no request the client does not
/// retry successfully. While a client runs a steady mix through nginx
/// (small single uploads, chunked uploads, listings, downloads), each of
/// three api processes in turn gets SIGTERM with a chunk body streaming
/// into it through nginx: the process stops accepting (its port refuses;
/// nginx passes new requests to the others), answers that chunk 200 once
/// its body is in, exits 0, is started again on the same port, and nginx
/// sends it requests again. The client sends again only what a
/// load-balanced client should (502/503/504, a cut connection; at most 3
/// times per request): every operation succeeds, every file it uploaded
/// (and the held chunks' file) downloads byte-exact, and the audit is
/// clean. It prints the operations and the retries they needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_behind_nginx_fails_no_request_the_client_does_not_retry() {
    let (mut app, bases, nginx) = fleet(3, 2, |b| b).await;
    let lb = app.through(&nginx.base);
    let token = lb.user(&uname("rolling")).await;
    // The upload whose chunks are held open through nginx, one on each
    // process as it stops.
    let held_data = test_bytes(9 * CHUNK, 83);
    let (code, init) = lb.init(&token, "held.bin", &held_data).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let held_id = init["uploadID"].as_str().unwrap().to_owned();

    let mix = Arc::new(Mix {
        lb: lb.clone(),
        token: token.clone(),
        stop: AtomicBool::new(false),
        ops: AtomicUsize::new(0),
        retries: Default::default(),
        files: Default::default(),
        gate: Default::default(),
        failed: Default::default(),
    });
    let running = tokio::spawn(mix.clone().run());
    let ops_past = |n: usize| {
        let (mix, nginx) = (&mix, &nginx);
        async move {
            eventually(60, &format!("the client to finish {n} operations"), || async move {
                mix.assert_going(nginx);
                (mix.ops.load(Ordering::SeqCst) >= n).then_some(())
            })
            .await
        }
    };
    ops_past(4).await;

    let mut next = 0;
    for (k, victim) in bases.iter().enumerate() {
        // The client pauses between two requests while chunk bodies start
        // streaming through nginx, one at a time, until one streams into the
        // victim (the processes' gauges then count that one only; one that
        // went elsewhere is let through). Then the client goes on, and the
        // victim gets SIGTERM at once.
        let pause = mix.gate.write().await;
        let mut tries = 0;
        let held = loop {
            assert!(tries < 3, "nginx sent none of three held chunks in a row to {victim} (round-robin over three)");
            tries += 1;
            let h = HeldChunk::start(&lb.http, &lb.base, &token, &held_id, next, chunk(&held_data, next));
            next += 1;
            let now = eventually(10, "a held chunk to stream into an api process", || async {
                let now = in_flight(&app, &bases).await;
                (now.iter().sum::<u64>() == 1).then_some(now)
            })
            .await;
            if now[k] == 1 {
                break h;
            }
            let (i, done) = (h.index, h.finish().await);
            assert!(matches!(&done, Ok((StatusCode::OK, _))), "held chunk {i}, let through: {done:?}");
        };
        drop(pause);
        let port = addr(victim).to_owned();
        let ops_before = mix.ops.load(Ordering::SeqCst);
        let draining = async {
            eventually(30, &format!("{victim} to stop accepting after SIGTERM"), || async {
                tokio::net::TcpStream::connect(&port).await.is_err().then_some(())
            })
            .await;
            assert!(!held.send.is_finished(), "the held chunk was answered before its body was in");
            held.finish().await
        };
        let (exit, answered) = tokio::join!(app.terminate_api_at(victim, 60), draining);
        assert_eq!(exit, Some(0), "{victim} exits cleanly after SIGTERM");
        let (code, body) = answered.unwrap_or_else(|cut| panic!("the held chunk on {victim} was cut: {cut}"));
        assert_eq!(code, StatusCode::OK, "the chunk in flight on {victim} as it stopped: {body}");
        app.start_api_at(victim).await;
        // nginx sends it the client's chunks again: the new process's own
        // count says so. Only then is the next one stopped, as the README's
        // restart waits for the restarted one to be ready.
        eventually(30, &format!("nginx to pass chunks to {victim} again"), || async {
            mix.assert_going(&nginx);
            (app.metric_at(victim, "pan_chunks_received_total").await > 0).then_some(())
        })
        .await;
        ops_past(ops_before + 2).await;
    }

    mix.stop.store(true, Ordering::SeqCst);
    running.await.expect("the client's task");
    let retries = mix.retries.lock().unwrap().clone();
    let ops = mix.ops.load(Ordering::SeqCst);
    let passed_on = nginx.access_log().iter().filter(|p| p.upstreams.len() > 1).count();
    println!(
        "rolling restart: {ops} operations through nginx; nginx passed {passed_on} requests on to another process; \
         the client sent {} requests again:",
        retries.len()
    );
    for r in &retries {
        println!("  {r}");
    }

    mix.assert_going(&nginx);

    // Every file the client uploaded, and the held chunks' file, downloads byte-exact.
    for i in next..9 {
        let (code, body) = lb.put_chunk(&token, &held_id, i, chunk(&held_data, i)).await;
        assert_eq!(code, StatusCode::OK, "held.bin chunk {i}: {body}");
    }
    let (code, body) = lb.complete(&token, &held_id).await;
    assert_eq!((code, body["state"].as_str()), (StatusCode::ACCEPTED, Some("merging")), "{body}");
    assert_eq!(lb.wait_merged(&token, &held_id).await["state"], "done");
    let mut files = mix.files.lock().unwrap().clone();
    files.insert("held.bin".into(), held_data);
    for (name, data) in &files {
        let (code, _, got) = lb.download(&token, &sha1_hex(data), None).await;
        assert_eq!(code, StatusCode::OK, "{name}");
        assert!(got == *data, "{name} downloads with other bytes");
    }
    let (code, list) = lb.call("GET", "/file/query?limit=1000", Some(&token)).await;
    assert_eq!((code, list["total"].as_u64()), (StatusCode::OK, Some(files.len() as u64)), "{list}");
    app.assert_consistent().await;
}

/// Completes upload `id` through the load balancer `lb`, waits for its
/// merge and checks the file downloaded through it is `data`.
async fn completes_through(lb: &Client, token: &str, id: &str, data: &[u8]) {
    let (code, body) = lb.complete(token, id).await;
    assert_eq!((code, body["state"].as_str()), (StatusCode::ACCEPTED, Some("merging")), "{body}");
    let done = lb.wait_merged(token, id).await;
    assert_eq!(done["state"], "done", "{done}");
    let (code, _, got) = lb.download(token, &sha1_hex(data), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(got == data, "the download through nginx differs from the upload");
}
