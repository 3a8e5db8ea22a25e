//! Real tus clients against a live api, unchanged: tus-js-client (what
//! Uppy's Tus plugin runs) under Node and tuspy under Python, installed
//! and pinned by `scripts/deps tus` (tests/tus). Each uploads a file in
//! 256 KiB PATCHes, stops half-way, resumes from the server's offset in a
//! new upload object, and finishes; the file must be the bytes sent.

use std::path::PathBuf;
use std::process::Command;

use base64::Engine;
use pan_tests::*;
use serde_json::{Value, json};

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

/// The program `name` on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.exists())
}
