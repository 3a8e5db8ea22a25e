//! The tus 1.0 front door at `/tus/`, spoken by hand (the header-level
//! rules); `tus_clients` runs real tus clients against it.

use base64::Engine;
use pan_tests::*;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// How a tus request authenticates.
#[derive(Clone, Copy)]
enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
    None,
}

/// One tus request (with `Tus-Resumable: 1.0.0` unless `headers` says
/// otherwise with an empty value): status, headers, JSON body (Null when empty).
async fn tus(
    app: &TestApp,
    method: &str,
    path: &str,
    auth: Auth<'_>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let url = if path.starts_with("http") { path.to_owned() } else { app.url(path) };
    let mut req = app.http.request(method.parse().expect("method"), url);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("tus-resumable")) {
        req = req.header("tus-resumable", "1.0.0");
    }
    for (k, v) in headers.iter().filter(|(_, v)| !v.is_empty()) {
        req = req.header(*k, *v);
    }
    req = match auth {
        Auth::Bearer(t) => req.bearer_auth(t),
        Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
        Auth::None => req,
    };
    if let Some(b) = body {
        req = req.body(b);
    }
    let resp = req.send().await.expect("tus request");
    let (code, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.bytes().await.expect("body");
    let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    (code, headers, value)
}

/// Feeds a request body piece by piece; dropping it ends the body.
type BodySender = futures::channel::mpsc::UnboundedSender<Result<Vec<u8>, std::io::Error>>;
/// A request sent in the background.
type InFlight = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// A PATCH at offset 0 of `path` with `headers`, announcing `len` bytes
/// and sending only `first` until the returned sender is dropped: a
/// stalled client. Returns that sender and the request in flight.
fn stalled_patch(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    len: usize,
    first: Vec<u8>,
) -> (BodySender, InFlight) {
    let (tx, rx) = futures::channel::mpsc::unbounded::<Result<Vec<u8>, std::io::Error>>();
    tx.unbounded_send(Ok(first)).unwrap();
    let mut req = app
        .http
        .patch(app.url(path))
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .header("content-length", len.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    (tx, tokio::spawn(req.body(reqwest::Body::wrap_stream(rx)).send()))
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header in {h:?}"))
}

/// A new user whose quota is 100 KiB; their token.
async fn user_with_100k_quota(app: &TestApp) -> String {
    let name = uname("tus");
    let token = app.user(&name).await;
    let (status, _, err) = app.admin(&["set-quota", &name, "--bytes", "100K", "--files", "unlimited"], "");
    assert_eq!(status, Some(0), "{err}");
    token
}

/// Creates an upload of `len` bytes (None: deferred) with `meta` pairs;
/// returns its path `/tus/<id>`.
async fn create(app: &TestApp, token: &str, len: Option<u64>, meta: &[(&str, &str)]) -> String {
    let (code, h, body) = create_raw(app, token, len, meta).await;
    assert_eq!(code, StatusCode::CREATED, "create: {body}");
    let location = header(&h, "location").to_owned();
    let id = location.strip_prefix("/tus/").unwrap_or_else(|| panic!("relative /tus/<id> location: {location}"));
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "32 hex: {location}");
    location
}

async fn create_raw(
    app: &TestApp,
    token: &str,
    len: Option<u64>,
    meta: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let meta: Vec<String> = meta.iter().map(|(k, v)| format!("{k} {}", b64(v.as_bytes()))).collect();
    let meta = meta.join(",");
    let len_s = len.map(|n| n.to_string()).unwrap_or_default();
    let mut headers = vec![("upload-metadata", meta.as_str())];
    match len {
        Some(_) => headers.push(("upload-length", len_s.as_str())),
        None => headers.push(("upload-defer-length", "1")),
    }
    tus(app, "POST", "/tus/", Auth::Bearer(token), &headers, None).await
}

async fn patch(
    app: &TestApp,
    token: &str,
    at: &str,
    offset: u64,
    bytes: &[u8],
    extra: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let offset = offset.to_string();
    let mut headers = vec![("content-type", "application/offset+octet-stream"), ("upload-offset", offset.as_str())];
    headers.extend_from_slice(extra);
    tus(app, "PATCH", at, Auth::Bearer(token), &headers, Some(bytes.to_vec())).await
}

async fn offset_of(app: &TestApp, token: &str, at: &str) -> u64 {
    let (code, h, _) = tus(app, "HEAD", at, Auth::Bearer(token), &[], None).await;
    assert_eq!(code, StatusCode::OK);
    header(&h, "upload-offset").parse().expect("offset")
}

/// The entry `id`'s bytes.
async fn content(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

both!(
    /// OPTIONS tells what is served (version, extensions, checksums, the
    /// largest file) without credentials; CORS answers name an origin of
    /// `PAN_TUS_CORS_ORIGINS` exactly, never `*`, never credentials, and
    /// nothing for another origin; any other request without
    /// `Tus-Resumable: 1.0.0` is 412 and without credentials 401, both
    /// with pan's JSON error; `/tus/` is not in the spec.
    tus_options_version_and_credentials,
    |b: TestAppBuilder| b.env("PAN_MAX_FILE_SIZE", "1000000").env("PAN_TUS_CORS_ORIGINS", "https://uppy.example,http://127.0.0.1:9"),
    |app| {
        let (code, h, _) = tus(&app, "OPTIONS", "/tus/", Auth::None, &[("tus-resumable", "")], None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "tus-version"), "1.0.0");
        assert_eq!(
            header(&h, "tus-extension"),
            "creation,creation-with-upload,creation-defer-length,termination,checksum,expiration,concatenation"
        );
        assert_eq!(header(&h, "tus-checksum-algorithm"), "sha1,sha256");
        assert_eq!(header(&h, "tus-max-size"), "1000000");
        assert!(h.get("access-control-allow-origin").is_none(), "no Origin, no CORS");
        // CORS, for Uppy on a page of an origin the operator named: a
        // preflight without credentials, answered for that origin only.
        let preflight = [("origin", "https://uppy.example"), ("access-control-request-method", "PATCH")];
        let (code, h, _) = tus(&app, "OPTIONS", "/tus/", Auth::None, &preflight, None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "access-control-allow-origin"), "https://uppy.example");
        assert!(h.get("access-control-allow-credentials").is_none(), "never credentials");
        assert!(header(&h, "vary").contains("Origin"));
        assert!(header(&h, "access-control-allow-methods").contains("PATCH"));
        assert!(header(&h, "access-control-expose-headers").contains("Upload-Offset"));
        assert!(header(&h, "access-control-allow-headers").contains("Upload-Link"));
        let other = [("origin", "https://evil.example"), ("access-control-request-method", "PATCH")];
        let (code, h, _) = tus(&app, "OPTIONS", "/tus/", Auth::None, &other, None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert!(h.get("access-control-allow-origin").is_none(), "an origin not named gets no CORS");

        let token = app.user(&uname("tus")).await;
        let (code, h, body) = tus(&app, "POST", "/tus/", Auth::Bearer(&token), &[("tus-resumable", "0.2.2"), ("upload-length", "5")], None).await;
        assert_error(code, &body, StatusCode::PRECONDITION_FAILED, "old version");
        assert_eq!(body["code"], "TUS_VERSION_UNSUPPORTED");
        assert_eq!(header(&h, "tus-version"), "1.0.0");
        let (code, _, body) = tus(&app, "POST", "/tus/", Auth::None, &[("upload-length", "5")], None).await;
        assert_error(code, &body, StatusCode::UNAUTHORIZED, "no credentials");
        assert_eq!(body["code"], "UNAUTHENTICATED");
        // Past the largest file: 413, nothing made.
        let (code, _, body) = create_raw(&app, &token, Some(1_000_001), &[("filename", "big.bin")]).await;
        assert_error(code, &body, StatusCode::PAYLOAD_TOO_LARGE, "past Tus-Max-Size");
        assert_eq!(body["code"], "FILE_TOO_LARGE");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["open_uploads"], 0, "{info}");

        let spec: Value = app.http.get(app.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
        let paths = spec["paths"].as_object().expect("paths");
        assert!(!paths.keys().any(|p| p.starts_with("/tus")), "the spec names no tus path");
    }
);

both!(
    /// An upload in two PATCHes lands as a file: the folder of its metadata
    /// made as needed, its name and mtime kept, the bytes server-hashed; a
    /// PATCH at the wrong offset is 409 `OFFSET_MISMATCH` and changes
    /// nothing; HEAD reports the offset and length, uncached; the last
    /// PATCH and any HEAD after it name the file's entry.
    tus_upload_in_pieces_lands_as_a_file,
    |app| {
        let token = app.user(&uname("tus")).await;
        let data = test_bytes(300_000, 27);
        let at = create(
            &app,
            &token,
            Some(data.len() as u64),
            &[("filename", "report.pdf"), ("folder", "/docs/2026"), ("filetype", "application/pdf"), ("mtime", "1700000000")],
        )
        .await;
        let (code, h, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(header(&h, "upload-offset"), "0");
        assert_eq!(header(&h, "upload-length"), "300000");
        assert_eq!(header(&h, "cache-control"), "no-store");
        assert_eq!(header(&h, "tus-resumable"), "1.0.0");
        assert!(header(&h, "upload-expires").ends_with(" GMT"), "an HTTP-date");
        assert!(h.get("pan-file-id").is_none());

        let (code, h, _) = patch(&app, &token, &at, 0, &data[..100_000], &[]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "upload-offset"), "100000");
        assert!(h.get("pan-file-id").is_none());
        for wrong in [0u64, 99_999, 100_001] {
            let (code, _, body) = patch(&app, &token, &at, wrong, &data[wrong as usize..200_000], &[]).await;
            assert_error(code, &body, StatusCode::CONFLICT, "wrong offset");
            assert_eq!(body["code"], "OFFSET_MISMATCH");
        }
        assert_eq!(offset_of(&app, &token, &at).await, 100_000);
        // Another user: no such upload.
        let other = app.user(&uname("tus_other")).await;
        let (code, _, body) = tus(&app, "HEAD", &at, Auth::Bearer(&other), &[], None).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        let (code, _, body) = patch(&app, &other, &at, 100_000, &data[100_000..], &[]).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "another user's upload");

        let (code, h, _) = patch(&app, &token, &at, 100_000, &data[100_000..], &[]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "upload-offset"), "300000");
        let file = header(&h, "pan-file-id").to_owned();
        let (code, h, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(header(&h, "pan-file-id"), file);
        assert_eq!(header(&h, "upload-offset"), "300000");

        let (code, stat) = app.call("GET", "/folder/stat?path=/docs/2026/report.pdf", Some(&token)).await;
        assert_eq!(code, StatusCode::OK, "{stat}");
        assert_eq!(stat["id"], file.as_str());
        assert_eq!(stat["mtime"], 1_700_000_000, "{stat}");
        assert_eq!(stat["sha256"], sha256_hex(&data).as_str(), "{stat}");
        assert_eq!(content(&app, &token, &file).await, data);
        assert_eq!(app.call("GET", "/file/query", Some(&token)).await.1["total"], 1);
    }
);

both!(
    /// `Upload-Checksum` (sha1 or sha256) covers the PATCH body: a mismatch
    /// is 460 `CHECKSUM_MISMATCH` and appends nothing, a match appends; an
    /// unknown algorithm is 400 `UNSUPPORTED_CHECKSUM`.
    tus_checksum_covers_the_patch_body,
    |app| {
        use sha2::Digest;
        let token = app.user(&uname("tus")).await;
        let data = test_bytes(50_000, 3);
        let at = create(&app, &token, Some(data.len() as u64), &[("filename", "sum.bin")]).await;
        let first = &data[..20_000];
        let wrong = format!("sha1 {}", b64(&sha1::Sha1::digest(b"something else")));
        let (code, _, body) = patch(&app, &token, &at, 0, first, &[("upload-checksum", &wrong)]).await;
        assert_error(code, &body, StatusCode::from_u16(460).unwrap(), "sha1 mismatch");
        assert_eq!(body["code"], "CHECKSUM_MISMATCH");
        assert_eq!(offset_of(&app, &token, &at).await, 0);
        let (code, _, body) = patch(&app, &token, &at, 0, first, &[("upload-checksum", "md5 AAAA")]).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "md5");
        assert_eq!(body["code"], "UNSUPPORTED_CHECKSUM");
        let right = format!("sha1 {}", b64(&sha1::Sha1::digest(first)));
        let (code, h, _) = patch(&app, &token, &at, 0, first, &[("upload-checksum", &right)]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "upload-offset"), "20000");
        let rest = &data[20_000..];
        let wrong = format!("sha256 {}", b64(&sha2::Sha256::digest(first)));
        let (code, _, body) = patch(&app, &token, &at, 20_000, rest, &[("upload-checksum", &wrong)]).await;
        assert_error(code, &body, StatusCode::from_u16(460).unwrap(), "sha256 mismatch");
        assert_eq!(offset_of(&app, &token, &at).await, 20_000);
        let right = format!("sha256 {}", b64(&sha2::Sha256::digest(rest)));
        let (code, h, _) = patch(&app, &token, &at, 20_000, rest, &[("upload-checksum", &right)]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let file = header(&h, "pan-file-id").to_owned();
        assert_eq!(content(&app, &token, &file).await, data);
    }
);

both!(
    /// With its length deferred, an upload takes bytes, learns its length
    /// from a later PATCH and finishes there; past the quota a PATCH is 507
    /// `QUOTA_EXCEEDED` before a byte lands (offset + Content-Length), and
    /// a creation whose length does not fit is 507 at once.
    tus_deferred_length_and_the_quota,
    |app| {
        let token = user_with_100k_quota(&app).await;
        let (code, _, body) = create_raw(&app, &token, Some(200_000), &[("filename", "big.bin")]).await;
        assert_error(code, &body, StatusCode::INSUFFICIENT_STORAGE, "length past the quota");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");

        let data = test_bytes(60_000, 9);
        let at = create(&app, &token, None, &[("name", "stream.bin")]).await;
        let (_, h, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(header(&h, "upload-defer-length"), "1");
        let (code, h, _) = patch(&app, &token, &at, 0, &data[..30_000], &[]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(header(&h, "upload-offset"), "30000");
        // 30 000 + 80 000 is past 100 KiB: refused whole.
        let (code, _, body) = patch(&app, &token, &at, 30_000, &test_bytes(80_000, 1), &[]).await;
        assert_error(code, &body, StatusCode::INSUFFICIENT_STORAGE, "PATCH past the quota");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
        assert_eq!(offset_of(&app, &token, &at).await, 30_000);
        let (code, h, _) = patch(&app, &token, &at, 30_000, &data[30_000..], &[("upload-length", "60000")]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let file = header(&h, "pan-file-id").to_owned();
        let (_, h, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(header(&h, "upload-length"), "60000");
        assert_eq!(content(&app, &token, &file).await, data);
        let (_, stat) = app.call("GET", "/folder/stat?path=/stream.bin", Some(&token)).await;
        assert_eq!(stat["id"], file.as_str(), "{stat}");
    }
);

both!(
    /// DELETE of an unfinished upload aborts it (then 404, its quota hold
    /// gone); DELETE of a finished one forgets the upload, never the file;
    /// another user's DELETE is 404.
    tus_termination_aborts_or_forgets,
    |app| {
        let token = app.user(&uname("tus")).await;
        let at = create(&app, &token, Some(10_000), &[("filename", "gone.bin")]).await;
        patch(&app, &token, &at, 0, &test_bytes(4_000, 1), &[]).await;
        let other = app.user(&uname("tus_other")).await;
        let (code, _, body) = tus(&app, "DELETE", &at, Auth::Bearer(&other), &[], None).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "another user's DELETE");
        let (code, _, _) = tus(&app, "DELETE", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((info["open_uploads"].as_u64(), info["bytes_reserved"].as_u64()), (Some(0), Some(0)), "{info}");

        let data = test_bytes(5_000, 2);
        let at = create(&app, &token, Some(5_000), &[("filename", "kept.bin")]).await;
        let (_, h, _) = patch(&app, &token, &at, 0, &data, &[]).await;
        let file = header(&h, "pan-file-id").to_owned();
        let (code, _, _) = tus(&app, "DELETE", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _, _) = tus(&app, "HEAD", &at, Auth::Bearer(&token), &[], None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(content(&app, &token, &file).await, data);
    }
);

both!(
    /// Names follow the engine's rules: `refuse` is checked at creation
    /// (409 `NAME_TAKEN`), the default numbers a taken name, `replace`
    /// makes the old content a version; creation-with-upload takes the
    /// first bytes in the POST; an empty file is finished at creation.
    tus_names_creation_with_upload_and_empty_files,
    |app| {
        let token = app.user(&uname("tus")).await;
        let first = test_bytes(1_000, 1);
        let len = first.len().to_string();
        let meta = format!("filename {}", b64(b"a.txt"));
        let (code, h, body) = tus(
            &app,
            "POST",
            "/tus/",
            Auth::Bearer(&token),
            &[("upload-length", &len), ("upload-metadata", &meta), ("content-type", "application/offset+octet-stream")],
            Some(first.clone()),
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        assert_eq!(header(&h, "upload-offset"), "1000");
        let a = header(&h, "pan-file-id").to_owned();

        let (code, _, body) = create_raw(&app, &token, Some(10), &[("filename", "a.txt"), ("on_conflict", "refuse")]).await;
        assert_error(code, &body, StatusCode::CONFLICT, "refuse");
        assert_eq!(body["code"], "NAME_TAKEN");
        let (code, _, body) = create_raw(&app, &token, Some(10), &[("filename", "a.txt"), ("on_conflict", "keep")]).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "unknown on_conflict");
        let (code, _, body) = create_raw(&app, &token, Some(10), &[("filename", "../x")]).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "bad name");
        let (code, _, body) = create_raw(&app, &token, Some(10), &[("filename", "m.txt"), ("mtime", "soon")]).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "bad mtime");
        assert_eq!(body["code"], "INVALID_MTIME");

        let second = test_bytes(10, 2);
        let at = create(&app, &token, Some(10), &[("filename", "a.txt")]).await;
        let (_, h, _) = patch(&app, &token, &at, 0, &second, &[]).await;
        let renamed = header(&h, "pan-file-id").to_owned();
        let (_, stat) = app.call("GET", "/folder/stat?path=/a (1).txt", Some(&token)).await;
        assert_eq!(stat["id"], renamed.as_str(), "{stat}");

        let at = create(&app, &token, Some(10), &[("filename", "a.txt"), ("on_conflict", "replace")]).await;
        let (_, h, _) = patch(&app, &token, &at, 0, &second, &[]).await;
        assert_eq!(header(&h, "pan-file-id"), a, "a replacement keeps the entry");
        assert_eq!(content(&app, &token, &a).await, second);
        let (_, versions) = app.call("GET", &format!("/file/versions?id={a}"), Some(&token)).await;
        assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "{versions}");

        let (code, h, body) = create_raw(&app, &token, Some(0), &[("filename", "empty")]).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let empty = header(&h, "pan-file-id").to_owned();
        assert!(content(&app, &token, &empty).await.is_empty());
    }
);

both!(
    /// An app password works as `Basic` credentials (the username and the
    /// password); a wrong one is 401.
    tus_takes_app_passwords,
    |app| {
        let name = uname("tus");
        let token = app.user(&name).await;
        let (code, made) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": "uppy"})).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let password = made["password"].as_str().unwrap().to_owned();
        let (code, h, body) = tus(
            &app,
            "POST",
            "/tus/",
            Auth::Basic(&name, &password),
            &[("upload-length", "3"), ("upload-metadata", &format!("filename {}", b64(b"x")))],
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let at = header(&h, "location").to_owned();
        let (code, _, body) = tus(&app, "PATCH", &at, Auth::Basic(&name, &"0".repeat(64)), &[], None).await;
        assert_error(code, &body, StatusCode::UNAUTHORIZED, "wrong app password");
        let (code, _, _) = tus(&app, "HEAD", &at, Auth::Basic(&name, &password), &[], None).await;
        assert_eq!(code, StatusCode::OK);
    }
);

both!(
    /// A client that reconnects is not stranded: while an older PATCH
    /// stalls mid-body (its connection half dead), a newer one, on another
    /// api process of the fleet, makes it stop at its next durable boundary
    /// with its bytes kept and gets the upload within 2 s (409
    /// `OFFSET_MISMATCH` naming the kept bytes, then a PATCH from there
    /// finishes it); the older request is answered, not left hanging.
    tus_a_newer_patch_takes_over_from_a_stalled_one,
    |app| {
        let token = app.user(&uname("tus")).await;
        // Past one whole segment (64 MiB), so the older PATCH is seen at work.
        const SEGMENT: usize = 64 << 20;
        let data = test_bytes(SEGMENT + 300_000, 5);
        let at = create(&app, &token, Some(data.len() as u64), &[("filename", "re.bin")]).await;
        // The older PATCH: a segment and 100 000 bytes, then nothing.
        let bearer = format!("Bearer {token}");
        let auth = [("authorization", bearer.as_str())];
        let (tx, older) = stalled_patch(&app, &at, &auth, data.len(), data[..SEGMENT + 100_000].to_vec());
        eventually(60, "the older PATCH's first segment durable", || async {
            (offset_of(&app, &token, &at).await == SEGMENT as u64).then_some(())
        })
        .await;
        let other = if app.deployment == Deployment::Fleet { Some(app.spawn_another_api().await) } else { None };
        let newer_at = match &other {
            Some(base) => format!("{base}{at}"),
            None => at.clone(),
        };
        let started = std::time::Instant::now();
        let (code, _, body) = patch(&app, &token, &newer_at, SEGMENT as u64, &data[SEGMENT..], &[]).await;
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_secs(2), "the newer PATCH waited {took:?}");
        assert_error(code, &body, StatusCode::CONFLICT, "the older PATCH kept its bytes");
        assert_eq!(body["code"], "OFFSET_MISMATCH");
        let kept = SEGMENT + 100_000;
        assert_eq!(offset_of(&app, &token, &newer_at).await, kept as u64);
        let (code, h, _) = patch(&app, &token, &newer_at, kept as u64, &data[kept..], &[]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let file = header(&h, "pan-file-id").to_owned();
        assert!(content(&app, &token, &file).await == data, "the file is every byte, in order");
        // The older request was answered (its client gone or not).
        let answered = tokio::time::timeout(std::time::Duration::from_secs(10), older).await;
        assert!(answered.is_ok(), "the older PATCH was answered");
        drop(tx);
    }
);

/// A sender that cannot let go (its api process killed while it held the
/// upload's turn) keeps a newer PATCH out no longer than its lease: the
/// newer one, on another process, is answered 423 `UPLOAD_LOCKED` after
/// waiting 10 s (tus-js-client retries a 423), nothing is lost, and a
/// retry once the dead holder's lease has run out finishes the upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_a_patch_is_423_when_the_sender_does_not_let_go_within_10_s() {
    let mut app = TestApp::builder(Deployment::Fleet).spawn().await;
    let token = app.user(&uname("tus423")).await;
    let data = test_bytes(300_000, 9);
    let at = create(&app, &token, Some(data.len() as u64), &[("filename", "held.bin")]).await;
    assert_eq!(patch(&app, &token, &at, 0, &data[..100_000], &[]).await.0, StatusCode::NO_CONTENT);
    let doomed = app.spawn_another_api_with(&[("PAN_CRASH_AT", "tus.after_turn")]).await;
    let cut = app
        .http
        .patch(format!("{doomed}{at}"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "100000")
        .body(data[100_000..200_000].to_vec())
        .send()
        .await;
    assert!(cut.is_err(), "the process died holding the turn: {cut:?}");

    let started = std::time::Instant::now();
    let (code, _, body) = patch(&app, &token, &at, 100_000, &data[100_000..], &[]).await;
    let waited = started.elapsed();
    assert_error(code, &body, StatusCode::LOCKED, "the dead sender's turn");
    assert_eq!(body["code"], "UPLOAD_LOCKED");
    assert!(waited >= std::time::Duration::from_secs(10), "answered after {waited:?}");
    assert_eq!(offset_of(&app, &token, &at).await, 100_000, "nothing lost, nothing half-written");

    let file = eventually(30, "the dead holder's lease runs out", || async {
        let (code, h, _) = patch(&app, &token, &at, 100_000, &data[100_000..], &[]).await;
        (code == StatusCode::NO_CONTENT).then(|| header(&h, "pan-file-id").to_owned())
    })
    .await;
    assert!(content(&app, &token, &file).await == data, "the file is every byte, in order");
}

both!(
    /// Concatenation: partial uploads are uploads of their own (never
    /// files); a final names them (relative or under this server's URL)
    /// and its file is their bytes in the listed order, placed by its
    /// metadata; the partials are gone afterwards (naming one again is
    /// 404). A final naming another user's partial, an unfinished one, or
    /// a URL of another server is refused and makes nothing.
    tus_concatenation_joins_partials_in_order,
    |app| {
        let token = app.user(&uname("tus")).await;
        let data = test_bytes(250_000, 8);
        let cuts = [0usize, 70_000, 150_000, 250_000];
        let mut parts = Vec::new();
        for w in cuts.windows(2) {
            let len = (w[1] - w[0]).to_string();
            let (code, h, body) = tus(
                &app,
                "POST",
                "/tus/",
                Auth::Bearer(&token),
                &[("upload-length", &len), ("upload-concat", "partial")],
                None,
            )
            .await;
            assert_eq!(code, StatusCode::CREATED, "{body}");
            parts.push(header(&h, "location").to_owned());
        }
        // Sent in another order than listed; the last one not yet.
        patch(&app, &token, &parts[1], 0, &data[70_000..150_000], &[]).await;
        let (code, h, _) = patch(&app, &token, &parts[0], 0, &data[..70_000], &[]).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert!(h.get("pan-file-id").is_none(), "a partial is no file");
        let (_, h, _) = tus(&app, "HEAD", &parts[0], Auth::Bearer(&token), &[], None).await;
        assert_eq!(header(&h, "upload-concat"), "partial");
        assert_eq!(app.call("GET", "/file/query", Some(&token)).await.1["total"], 0);

        let meta = format!("filename {},folder {}", b64(b"joined.bin"), b64(b"/parts"));
        let final_of = |list: String| {
            let meta = meta.clone();
            let token = token.clone();
            let app = &app;
            async move {
                let concat = format!("final;{list}");
                tus(app, "POST", "/tus/", Auth::Bearer(&token), &[("upload-concat", &concat), ("upload-metadata", &meta)], None)
                    .await
            }
        };
        let all = format!("{} {} {}", parts[0], app.url(&parts[1]), parts[2]);
        let (code, _, body) = final_of(all.clone()).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "an unfinished partial");
        patch(&app, &token, &parts[2], 0, &data[150_000..], &[]).await;
        let (code, _, body) = final_of(format!("{} http://elsewhere.example/tus/{}", parts[0], &parts[1][5..])).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "a URL of another server");
        let other = app.user(&uname("tus_other")).await;
        let (code, h, _) = tus(&app, "POST", "/tus/", Auth::Bearer(&other), &[("upload-length", "5"), ("upload-concat", "partial")], None).await;
        assert_eq!(code, StatusCode::CREATED);
        let theirs = header(&h, "location").to_owned();
        patch(&app, &other, &theirs, 0, b"12345", &[]).await;
        let (code, _, body) = final_of(format!("{} {theirs}", parts[0])).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "another user's partial");
        assert_eq!(app.call("GET", "/file/query", Some(&token)).await.1["total"], 0, "nothing made");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["open_uploads"], 3, "only the partials: {info}");

        let (code, h, body) = final_of(all.clone()).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let file = header(&h, "pan-file-id").to_owned();
        assert_eq!(header(&h, "upload-offset"), "250000");
        assert_eq!(content(&app, &token, &file).await, data);
        let (_, stat) = app.call("GET", "/folder/stat?path=/parts/joined.bin", Some(&token)).await;
        assert_eq!(stat["id"], file.as_str(), "{stat}");
        assert_eq!(stat["sha256"], sha256_hex(&data).as_str());
        for part in &parts {
            let (code, _, _) = tus(&app, "HEAD", part, Auth::Bearer(&token), &[], None).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "the partials are gone");
        }
        let (code, _, body) = final_of(all).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "a partial used again");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((info["open_uploads"].as_u64(), info["bytes_reserved"].as_u64()), (Some(0), Some(0)), "{info}");
    }
);

/// A tus request through an upload link (no account), with its password.
async fn via_link(
    app: &TestApp,
    method: &str,
    path: &str,
    link: &str,
    password: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (StatusCode, HeaderMap, Value) {
    let mut all = vec![("upload-link", link)];
    if let Some(p) = password {
        all.push(("upload-link-password", p));
    }
    all.extend_from_slice(headers);
    tus(app, method, path, Auth::None, &all, body).await
}

both!(
    /// An upload link (a file drop): a stranger without an account uploads
    /// through tus into the owner's folder (their own `folder` and
    /// `replace` ignored), needs the link's password, sees no file id, and
    /// is held to the link's byte limit (410 `SHARE_EXHAUSTED`; an upload
    /// refused at creation or aborted gives its bytes back); the bytes
    /// count against the owner's quota; a revoked link is 404.
    tus_through_an_upload_link_lands_in_the_owners_folder,
    |app| {
        let token = app.user(&uname("owner")).await;
        let (code, folder) = app.post_json("/folder/create", Some(&token), &json!({"name": "drop"})).await;
        assert_eq!(code, StatusCode::CREATED, "{folder}");
        let body = json!({"folder": folder["id"], "password": "open sesame", "max_bytes": 15_000});
        let (code, made) = app.post_json("/uplink/create", Some(&token), &body).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let link = made["link"].as_str().unwrap().to_owned();
        assert!(made["url"].as_str().unwrap().ends_with(&format!("/u/{link}")), "{made}");

        let meta = format!("filename {},folder {},on_conflict {}", b64(b"hello.txt"), b64(b"/elsewhere"), b64(b"replace"));
        let create = [("upload-length", "10000"), ("upload-metadata", meta.as_str())];
        let (code, _, body) = via_link(&app, "POST", "/tus/", &link, None, &create, None).await;
        assert_error(code, &body, StatusCode::UNAUTHORIZED, "no password");
        assert_eq!(body["code"], "SHARE_PASSWORD_REQUIRED");
        let (code, _, body) = via_link(&app, "POST", "/tus/", &link, Some("wrong one"), &create, None).await;
        assert_error(code, &body, StatusCode::FORBIDDEN, "wrong password");
        assert_eq!(body["code"], "SHARE_PASSWORD_WRONG");
        let (code, h, body) = via_link(&app, "POST", "/tus/", &link, Some("open sesame"), &create, None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let at = header(&h, "location").to_owned();
        let data = test_bytes(10_000, 77);
        let patch_headers = [("content-type", "application/offset+octet-stream"), ("upload-offset", "0")];
        let (code, h, body) =
            via_link(&app, "PATCH", &at, &link, Some("open sesame"), &patch_headers, Some(data.clone())).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(header(&h, "upload-offset"), "10000");
        assert!(h.get("pan-file-id").is_none(), "a stranger sees no file id");

        let (code, stat) = app.call("GET", "/folder/stat?path=/drop/hello.txt", Some(&token)).await;
        assert_eq!(code, StatusCode::OK, "{stat}");
        assert_eq!(content(&app, &token, stat["id"].as_str().unwrap()).await, data);
        let (code, _) = app.call("GET", "/folder/stat?path=/elsewhere", Some(&token)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "the stranger's folder is not made");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["bytes_used"], 10_000, "{info}");

        let more = [("upload-length", "6000"), ("upload-metadata", meta.as_str())];
        let (code, _, body) = via_link(&app, "POST", "/tus/", &link, Some("open sesame"), &more, None).await;
        assert_error(code, &body, StatusCode::GONE, "past the link's byte limit");
        assert_eq!(body["code"], "SHARE_EXHAUSTED");
        let (_, list) = app.call("GET", "/uplink/list", Some(&token)).await;
        assert_eq!(list["links"][0]["bytes_used"], 10_000, "{list}");

        // An upload refused at creation, or aborted unfinished, gives its
        // bytes back to the link.
        let refuse = format!("filename {},on_conflict {}", b64(b"hello.txt"), b64(b"refuse"));
        let taken = [("upload-length", "4000"), ("upload-metadata", refuse.as_str())];
        let (code, _, body) = via_link(&app, "POST", "/tus/", &link, Some("open sesame"), &taken, None).await;
        assert_error(code, &body, StatusCode::CONFLICT, "the name is taken and the upload refuses to rename");
        let fits = [("upload-length", "5000"), ("upload-metadata", meta.as_str())];
        let (code, h, body) = via_link(&app, "POST", "/tus/", &link, Some("open sesame"), &fits, None).await;
        assert_eq!(code, StatusCode::CREATED, "the refused upload's 4000 bytes came back: {body}");
        let aborted = header(&h, "location").to_owned();
        let (_, list) = app.call("GET", "/uplink/list", Some(&token)).await;
        assert_eq!(list["links"][0]["bytes_used"], 15_000, "{list}");
        let (code, _, body) = via_link(&app, "DELETE", &aborted, &link, Some("open sesame"), &[], None).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        let (_, list) = app.call("GET", "/uplink/list", Some(&token)).await;
        assert_eq!(list["links"][0]["bytes_used"], 10_000, "the aborted upload's bytes came back: {list}");

        // A link's holder touches only uploads made through that link: not
        // the owner's own, nor another link's (404, as for an unknown id).
        let own = crate::tus::create(&app, &token, Some(100), &[("filename", "own.bin")]).await;
        let body = json!({"folder": folder["id"]});
        let (_, other) = app.post_json("/uplink/create", Some(&token), &body).await;
        let other = other["link"].as_str().unwrap().to_owned();
        let (code, h, body) = via_link(&app, "POST", "/tus/", &other, None, &fits, None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let others = header(&h, "location").to_owned();
        for (at, holder, password) in [(&own, &link, Some("open sesame")), (&others, &link, Some("open sesame")), (&own, &other, None)] {
            for method in ["HEAD", "DELETE"] {
                let (code, _, _) = via_link(&app, method, at, holder, password, &[], None).await;
                assert_eq!(code, StatusCode::NOT_FOUND, "{method} {at} through another link");
            }
        }
        assert_eq!(offset_of(&app, &token, &own).await, 0, "the owner's upload is there still");
        let (code, _, _) = via_link(&app, "HEAD", &others, &other, None, &[], None).await;
        assert_eq!(code, StatusCode::OK, "its own link's holder sees it");

        let (code, _) = app.call("DELETE", &format!("/uplink/revoke?link={link}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _, body) = via_link(&app, "POST", "/tus/", &link, Some("open sesame"), &create, None).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "a revoked link");
        assert_eq!(body["code"], "SHARE_NOT_FOUND");
    }
);

both!(
    /// Strangers sending through an upload link hold slots of the link's
    /// own (`PAN_USER_CHUNKS` of them), never the owner's: with one each, a
    /// PATCH held open through the link leaves the owner's own chunk free
    /// to go, and a second body through the link gets 429 `TOO_MANY_CHUNKS`.
    tus_upload_link_bodies_take_the_links_slots_not_the_owners,
    |b: TestAppBuilder| b.env("PAN_USER_CHUNKS", "1"),
    |app| {
        let token = app.user(&uname("slots")).await;
        let (code, made) = app.post_json("/uplink/create", Some(&token), &json!({})).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let link = made["link"].as_str().unwrap().to_owned();
        let data = test_bytes(200_000, 41);
        let create = |name: &'static str| {
            let meta = format!("filename {}", b64(name.as_bytes()));
            [("upload-length".to_owned(), data.len().to_string()), ("upload-metadata".to_owned(), meta)]
        };
        let first = create("first.bin");
        let first: Vec<(&str, &str)> = first.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, h, body) = via_link(&app, "POST", "/tus/", &link, None, &first, None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let held_at = header(&h, "location").to_owned();
        let (tx, held) = stalled_patch(&app, &held_at, &[("upload-link", &link)], data.len(), data[..1000].to_vec());
        let staged = app.data.path().join("staging").join(held_at.trim_start_matches("/tus/"));
        eventually(10, "the held PATCH's body to be received", || async {
            std::fs::read_dir(&staged).is_ok_and(|mut d| d.next().is_some()).then_some(())
        })
        .await;

        let (_, init) = app.init(&token, "own.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, body) = app.put_chunk(&token, &id, 0, data.clone()).await;
        assert_eq!(code, StatusCode::OK, "the owner's own slot is free: {body}");

        let second = create("second.bin");
        let second: Vec<(&str, &str)> = second.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, h, body) = via_link(&app, "POST", "/tus/", &link, None, &second, None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let at = header(&h, "location").to_owned();
        let patch_headers = [("content-type", "application/offset+octet-stream"), ("upload-offset", "0")];
        let (code, _, body) = via_link(&app, "PATCH", &at, &link, None, &patch_headers, Some(data.clone())).await;
        assert_error(code, &body, StatusCode::TOO_MANY_REQUESTS, "the link's one slot is held");
        assert_eq!(body["code"], "TOO_MANY_CHUNKS");
        drop(tx);
        let _ = held.await;
    }
);

/// A tus upload in two PATCHes and a concatenation, on S3 staging and
/// file stores (Garage).
async fn on_s3_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d).s3(&g).spawn().await;
    let token = app.user(&uname("tus_s3")).await;
    let data = test_bytes(700_000, 12);
    let at = create(&app, &token, Some(data.len() as u64), &[("filename", "s3.bin")]).await;
    let (code, _, _) = patch(&app, &token, &at, 0, &data[..300_000], &[]).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    assert_eq!(offset_of(&app, &token, &at).await, 300_000);
    let (code, h, _) = patch(&app, &token, &at, 300_000, &data[300_000..], &[]).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let file = header(&h, "pan-file-id").to_owned();
    assert!(content(&app, &token, &file).await == data);

    let mut parts = Vec::new();
    for piece in [&data[..250_000], &data[250_000..]] {
        let len = piece.len().to_string();
        let (code, h, _) = tus(
            &app,
            "POST",
            "/tus/",
            Auth::Bearer(&token),
            &[("upload-length", &len), ("upload-concat", "partial")],
            None,
        )
        .await;
        assert_eq!(code, StatusCode::CREATED);
        let part = header(&h, "location").to_owned();
        patch(&app, &token, &part, 0, piece, &[]).await;
        parts.push(part);
    }
    let meta = format!("filename {}", b64(b"joined.bin"));
    let concat = format!("final;{} {}", parts[0], parts[1]);
    let (code, h, body) = tus(
        &app,
        "POST",
        "/tus/",
        Auth::Bearer(&token),
        &[("upload-concat", &concat), ("upload-metadata", &meta)],
        None,
    )
    .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let joined = header(&h, "pan-file-id").to_owned();
    assert!(content(&app, &token, &joined).await == data);
}

on_both!(
    /// tus on S3 stores (Garage): bytes in two PATCHes and a concatenation
    /// of two partials land whole.
    tus_on_s3_stores,
    on_s3_body
);

both!(
    /// A PATCH without a Content-Length (a stream) on an upload of unknown
    /// length stops at the quota's end: 507 `QUOTA_EXCEEDED`, the bytes up
    /// to it kept (the offset says so), nothing past it.
    tus_a_streamed_patch_stops_at_the_quota,
    |app| {
        let token = user_with_100k_quota(&app).await;
        let at = create(&app, &token, None, &[("filename", "stream.bin")]).await;
        let data = test_bytes(150_000, 4);
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> = data.chunks(10_000).map(|c| Ok(c.to_vec())).collect();
        let resp = app
            .http
            .patch(app.url(&at))
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", "application/offset+octet-stream")
            .header("upload-offset", "0")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_error(code, &body, StatusCode::INSUFFICIENT_STORAGE, "a stream past the quota");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
        assert_eq!(offset_of(&app, &token, &at).await, 100 << 10, "the bytes up to the quota are kept");
    }
);
