//! Real tus clients against a live api, unchanged: tus-js-client (what
//! Uppy's Tus plugin runs) under Node, tuspy under Python, and Uppy itself
//! (@uppy/core + @uppy/tus) on a page of another origin in Debian's
//! headless Chromium, all installed and pinned by `scripts/deps tus`
//! (tests/tus). They stop half-way and resume (a new upload object, a new
//! process after a SIGKILL, a PATCH cut off mid-body), and every file must
//! be the bytes sent.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use pan_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_path_buf()
}

/// Runs a client script; its stdout's last line is JSON.
async fn run_client(program: PathBuf, script: &str, args: &[String]) -> Value {
    assert!(program.exists(), "{} is missing: run scripts/deps tus (scripts/test does)", program.display());
    let script = workspace().join("tests/tus").join(script);
    let args = args.to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program).arg(&script).args(&args).output().expect("run the tus client")
    })
    .await
    .expect("client thread");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the tus client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Checks what a client reports: the entry it was told of holds `data`
/// at `/tus clients/<name>`, and the second run resumed half-way.
async fn check(app: &TestApp, token: &str, report: &Value, name: &str, data: &[u8], resumed: &str) {
    let id = report[if report.get("fileId").is_some() { "fileId" } else { "file_id" }].as_str();
    let id = id.unwrap_or_else(|| panic!("no Pan-File-Id seen: {report}"));
    let at = report[resumed].as_u64().unwrap_or_else(|| panic!("no resume offset: {report}"));
    assert!(at > 0 && at < data.len() as u64, "resumed inside the file: {report}");
    let (code, stat) = app.call("GET", &format!("/folder/stat?path=/tus clients/{name}"), Some(token)).await;
    assert_eq!(code, StatusCode::OK, "{stat}");
    assert_eq!(stat["id"], id, "{stat}");
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap() == data, "the stored bytes are the ones sent");
}

both!(
    /// tus-js-client 4.3.1 (bearer token) uploads 3 MiB in 256 KiB
    /// PATCHes, is stopped half-way, resumes from HEAD's offset with a new
    /// `Upload` on the same URL, and is told the entry (`Pan-File-Id`).
    tus_js_client_uploads_and_resumes,
    |app| {
        let token = app.user(&uname("tusjs")).await;
        let data = test_bytes(3 << 20, 41);
        let path = app.data.path().join("js.bin");
        std::fs::write(&path, &data).unwrap();
        let args = [&app.base, &format!("Bearer {token}"), &path.display().to_string(), "js.bin", "/tus clients"]
            .map(|s| s.to_string());
        let installed = workspace().join("tests/tus/node_modules/tus-js-client");
        assert!(installed.exists(), "{} is missing: run scripts/deps tus (scripts/test does)", installed.display());
        let node = which("node").expect("node on PATH (the machine image has it)");
        let report = run_client(node, "js_upload.mjs", &args).await;
        check(&app, &token, &report, "js.bin", &data, "resumedFrom").await;
    }
);

both!(
    /// tuspy 1.1.0 (an app password, as `Basic`) uploads 3 MiB in 256 KiB
    /// PATCHes, each with `Upload-Checksum: sha1`, is stopped half-way,
    /// resumes from HEAD's offset with a new uploader, and is told the
    /// entry (`Pan-File-Id`).
    tuspy_uploads_with_checksums_and_resumes,
    |app| {
        let name = uname("tuspy");
        let token = app.user(&name).await;
        let (code, made) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": "tuspy"})).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let basic = base64::engine::general_purpose::STANDARD
            .encode(format!("{name}:{}", made["password"].as_str().unwrap()));
        let data = test_bytes(3 << 20, 42);
        let path = app.data.path().join("py.bin");
        std::fs::write(&path, &data).unwrap();
        let args = [&app.base, &format!("Basic {basic}"), &path.display().to_string(), "py.bin", "/tus clients"]
            .map(|s| s.to_string());
        let report = run_client(workspace().join("target/tus-venv/bin/python"), "tuspy_upload.py", &args).await;
        check(&app, &token, &report, "py.bin", &data, "resumed_from").await;
    }
);

both!(
    /// tus-js-client with `parallelUploads: 4` (the concatenation
    /// extension: four partial uploads at once, then a final naming them)
    /// uploads 3 MiB; the file is the bytes in order, and no partial is
    /// left behind.
    tus_js_client_parallel_uploads_concatenate,
    |app| {
        let token = app.user(&uname("tusjs")).await;
        let data = test_bytes(3 << 20, 43);
        let path = app.data.path().join("par.bin");
        std::fs::write(&path, &data).unwrap();
        let args = [&app.base, &format!("Bearer {token}"), &path.display().to_string(), "par.bin", "/tus clients", "4"]
            .map(|s| s.to_string());
        let installed = workspace().join("tests/tus/node_modules/tus-js-client");
        assert!(installed.exists(), "{} is missing: run scripts/deps tus (scripts/test does)", installed.display());
        let node = which("node").expect("node on PATH (the machine image has it)");
        let report = run_client(node, "js_upload.mjs", &args).await;
        let id = report["fileId"].as_str().unwrap_or_else(|| panic!("no Pan-File-Id seen: {report}"));
        let (code, stat) = app.call("GET", "/folder/stat?path=/tus clients/par.bin", Some(&token)).await;
        assert_eq!(code, StatusCode::OK, "{stat}");
        assert_eq!(stat["id"], id, "{stat}");
        let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(&token).send().await.unwrap();
        assert!(resp.bytes().await.unwrap() == data, "the stored bytes are the ones sent, in order");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((info["open_uploads"].as_u64(), info["bytes_reserved"].as_u64()), (Some(0), Some(0)), "{info}");
    }
);

/// Node, after checking that tests/tus has `packages` installed: a missing
/// one fails the test, saying how to install it.
fn node_with(packages: &[&str]) -> PathBuf {
    for package in packages {
        let installed = workspace().join("tests/tus/node_modules").join(package);
        assert!(installed.exists(), "{} is missing: run scripts/deps tus (scripts/test does)", installed.display());
    }
    which("node").expect("node on PATH (the machine image has it)")
}

/// js_killed.mjs's arguments: `mode`, where to upload what, the file its
/// `FileUrlStorage` keeps, and `arg`.
fn killed_args(app: &TestApp, token: &str, file: &Path, store: &Path, mode: &str, arg: &str) -> Vec<String> {
    let (file, store) = (file.display().to_string(), store.display().to_string());
    let name = file.rsplit('/').next().unwrap_or_default().to_owned();
    [mode, &app.base, &format!("Bearer {token}"), &file, &name, "/tus clients", &store, arg].map(str::to_owned).to_vec()
}

/// Runs js_killed.mjs until the process dies of the SIGKILL it sends
/// itself; returns the line it printed first.
async fn run_until_killed(node: PathBuf, args: Vec<String>) -> Value {
    let script = workspace().join("tests/tus/js_killed.mjs");
    let out = tokio::task::spawn_blocking(move || Command::new(node).arg(script).args(args).output())
        .await
        .expect("client thread")
        .expect("run the tus client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGKILL),
        "the client was to die of SIGKILL ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().next().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Starts a Node script of tests/tus with piped stdin and stdout (its
/// stderr goes to the test's); killed if the test ends first.
fn start_script(node: &Path, script: &str, args: &[String]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = tokio::process::Command::new(node)
        .arg(workspace().join("tests/tus").join(script))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("start node {script}: {e}"));
    let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    (child, lines)
}

/// The next line a script prints, as JSON, within `secs`.
async fn next_json(lines: &mut Lines<BufReader<ChildStdout>>, secs: u64, what: &str) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(secs), lines.next_line())
        .await
        .unwrap_or_else(|_| panic!("no {what} within {secs} s"))
        .expect("read the script's output")
        .unwrap_or_else(|| panic!("the script ended before printing {what} (its stderr is above)"));
    let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(value.get("error").is_none(), "the script failed: {value}");
    value
}

/// `Upload-Offset` of the tus upload at `url`, as `HEAD` gives it.
async fn tus_offset(app: &TestApp, token: &str, url: &str) -> u64 {
    let resp = app.http.head(url).bearer_auth(token).header("Tus-Resumable", "1.0.0").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "HEAD {url}");
    resp.headers()["upload-offset"].to_str().unwrap().parse().unwrap()
}

both!(
    /// tus-js-client in Node as an app that outlives its process: 3 MiB in
    /// 256 KiB PATCHes, its upload URL kept on disk by `FileUrlStorage`;
    /// the process SIGKILLs itself once 1.5 MB are accepted (the 6th of 12
    /// PATCHes answered), and a new process finds the upload with
    /// `findPreviousUploads()` and goes on with
    /// `resumeFromPreviousUpload()`: its HEAD and its first PATCH are at
    /// the 6 chunks the server holds (nothing sent twice, nothing lost),
    /// and the file is the bytes sent.
    tus_js_client_killed_mid_upload_resumes_from_its_url_storage,
    |app| {
        let token = app.user(&uname("tusjs")).await;
        let data = test_bytes(3 << 20, 44);
        let path = app.data.path().join("killed.bin");
        std::fs::write(&path, &data).unwrap();
        let store = app.data.path().join("tus-urls.json");
        let node = node_with(&["tus-js-client"]);
        let first = run_until_killed(node.clone(), killed_args(&app, &token, &path, &store, "kill-after", "1500000")).await;
        let killed_at = 6 * 256 * 1024;
        assert_eq!(first["killedAt"].as_u64(), Some(killed_at), "{first}");
        let url = first["url"].as_str().unwrap_or_else(|| panic!("no upload URL: {first}"));
        assert_eq!(tus_offset(&app, &token, url).await, killed_at, "the server holds every PATCH it answered");

        let second = run_client(node, "js_killed.mjs", &killed_args(&app, &token, &path, &store, "resume", "256k")).await;
        assert_eq!((second["url"].as_str(), second["previous"].as_u64()), (Some(url), Some(1)), "{second}");
        let at = (second["resumedFrom"].as_u64(), second["firstPatchAt"].as_u64());
        assert_eq!(at, (Some(killed_at), Some(killed_at)), "resumed where the server was: {second}");
        check(&app, &token, &second, "killed.bin", &data, "resumedFrom").await;
    }
);

both!(
    /// tus-js-client with its default `chunkSize` (one PATCH for the whole
    /// 3 MiB file, as Uppy sends by default) over a network that stalls
    /// after the PATCH's first 1,234,567 bytes, SIGKILLed there. While the
    /// body is open nothing counts (HEAD says 0: bytes count once durable,
    /// and the segment has not ended); once the connection is gone the
    /// server keeps exactly the bytes that arrived, as tus asks (pan used to
    /// drop a cut segment, up to 64 MiB, so such a client began again from
    /// 0). A new process finds the upload through `findPreviousUploads()`
    /// and sends the rest in one PATCH from there; the file is the bytes
    /// sent.
    tus_js_client_whole_file_patch_cut_off_resumes_from_the_bytes_that_arrived,
    |app| {
        let token = app.user(&uname("tusjs")).await;
        let data = test_bytes(3 << 20, 46);
        let path = app.data.path().join("cut.bin");
        std::fs::write(&path, &data).unwrap();
        let store = app.data.path().join("tus-urls.json");
        let node = node_with(&["tus-js-client"]);
        let held_at = 1_234_567;
        let hold = killed_args(&app, &token, &path, &store, "hold", &held_at.to_string());
        let (mut child, mut lines) = start_script(&node, "js_killed.mjs", &hold);
        let held = next_json(&mut lines, 60, "the line saying the PATCH stalled").await;
        assert_eq!(held["heldAt"].as_u64(), Some(held_at), "{held}");
        let url = held["url"].as_str().unwrap_or_else(|| panic!("no upload URL: {held}")).to_owned();
        assert_eq!(tus_offset(&app, &token, &url).await, 0, "nothing counts while the segment's body flows");
        child.start_kill().expect("SIGKILL the client");
        let status = child.wait().await.expect("wait for the client");
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        let (a, t, u) = (&app, token.as_str(), url.as_str());
        let kept = eventually(30, "the server to keep the cut PATCH's bytes", move || async move {
            Some(tus_offset(a, t, u).await).filter(|&offset| offset > 0)
        })
        .await;
        assert_eq!(kept, held_at, "every byte that left the killed process is kept");

        let second = run_client(node, "js_killed.mjs", &killed_args(&app, &token, &path, &store, "resume", "whole")).await;
        assert_eq!((second["url"].as_str(), second["previous"].as_u64()), (Some(url.as_str()), Some(1)), "{second}");
        let at = (second["resumedFrom"].as_u64(), second["firstPatchAt"].as_u64());
        assert_eq!(at, (Some(held_at), Some(held_at)), "resumed from the bytes that arrived: {second}");
        check(&app, &token, &second, "cut.bin", &data, "resumedFrom").await;
    }
);

on_both!(
    /// Uppy (@uppy/core 6.3.1 and @uppy/tus 6.0.0, bundled with esbuild)
    /// on a page of another origin, in Debian's headless Chromium: a
    /// visitor picks a 3 MiB file and Uppy uploads it through an upload
    /// link (`Upload-Link`, no account credentials) in 1 MiB PATCHes. pan,
    /// started with `PAN_TUS_CORS_ORIGINS` naming that origin, answers the
    /// POST (201) and the four PATCHes (204) with
    /// `Access-Control-Allow-Origin: <that origin>`, and the file lands in
    /// the link's folder byte for byte. The same page served from an
    /// origin not named is stopped by the browser at the preflight: no
    /// request gets through, Uppy reports the upload failed, and nothing
    /// is made.
    uppy_on_another_origin_uploads_through_an_upload_link,
    uppy_through_an_upload_link
);

async fn uppy_through_an_upload_link(deployment: Deployment) {
    let node = node_with(&["@uppy/core", "@uppy/tus", "esbuild", "playwright-core"]);
    let chromium = Path::new("/usr/bin/chromium");
    assert!(chromium.exists(), "{} is missing: run scripts/deps tus (scripts/test does)", chromium.display());
    let (mut child, mut lines) = start_script(&node, "uppy_upload.mjs", &[]);
    let origins = next_json(&mut lines, 60, "the page's origins").await;
    let allowed = origins["allowed"].as_str().unwrap_or_else(|| panic!("no origin: {origins}")).to_owned();
    let refused = origins["refused"].as_str().unwrap_or_else(|| panic!("no origin: {origins}")).to_owned();
    let app = TestApp::builder(deployment).env("PAN_TUS_CORS_ORIGINS", &allowed).spawn().await;

    let token = app.user(&uname("owner")).await;
    let (code, folder) = app.post_json("/folder/create", Some(&token), &json!({"name": "Drop"})).await;
    assert_eq!(code, StatusCode::CREATED, "{folder}");
    let (code, made) = app.post_json("/uplink/create", Some(&token), &json!({"folder": folder["id"]})).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let data = test_bytes((3 << 20) + 17, 45);
    let path = app.data.path().join("from uppy.bin");
    std::fs::write(&path, &data).unwrap();
    let ask = json!({"pan": app.base, "link": made["link"], "file": path.display().to_string()});
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(format!("{ask}\n").as_bytes()).await.expect("tell the script");
    drop(stdin);
    let report = next_json(&mut lines, 150, "Uppy's report").await;
    let status = child.wait().await.expect("wait for the script");
    assert!(status.success(), "uppy_upload.mjs: {status}");

    // The named origin: every answer names it, and the file is in the link's folder.
    let ok = &report["allowed"];
    assert_eq!(ok["uploaded"]["failed"], json!([]), "{ok}");
    assert_eq!(ok["uploaded"]["successful"].as_array().map(Vec::len), Some(1), "{ok}");
    assert_eq!(ok["uploaded"]["successful"][0]["name"], "from uppy.bin", "{ok}");
    let seen: Vec<Value> = ok["requests"].as_array().cloned().unwrap_or_default();
    let mut want = vec![json!({"method": "POST", "status": 201, "allowOrigin": allowed})];
    want.extend((0..4).map(|_| json!({"method": "PATCH", "status": 204, "allowOrigin": allowed})));
    assert_eq!(seen, want, "{ok}");
    let (code, stat) = app.call("GET", "/folder/stat?path=/Drop/from uppy.bin", Some(&token)).await;
    assert_eq!(code, StatusCode::OK, "{stat}");
    let id = stat["id"].as_str().unwrap();
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap() == data, "the stored bytes are the ones picked");

    // Another origin: the browser stops it at the preflight, and nothing is made.
    let no = &report["refused"];
    assert_eq!(no["uploaded"]["successful"], json!([]), "{no}");
    assert_eq!(no["uploaded"]["failed"][0]["name"], "from uppy.bin", "{no}");
    assert_eq!(no["requests"], json!([]), "no request got past the preflight: {no}");
    assert!(no["failed"].as_array().is_some_and(|f| !f.is_empty() && f.iter().all(|r| r["method"] == "POST")), "{no}");
    let blocked = format!("from origin '{refused}' has been blocked by CORS policy");
    let said =
        no["console"].as_array().is_some_and(|c| c.iter().any(|m| m.as_str().is_some_and(|m| m.contains(&blocked))));
    assert!(said, "the browser names the CORS refusal: {no}");
    let (code, listing) = app.call("GET", "/folder/list?path=/Drop", Some(&token)).await;
    assert_eq!(code, StatusCode::OK, "{listing}");
    let names: Vec<&str> = listing["entries"].as_array().unwrap().iter().filter_map(|e| e["name"].as_str()).collect();
    assert_eq!(names, ["from uppy.bin"], "{listing}");
    let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!(info["open_uploads"].as_u64(), Some(0), "{info}");
}

/// The program `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.exists())
}
