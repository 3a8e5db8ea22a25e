//! Hostile and malformed input: always a 4xx with `{code, message}`, never a
//! 500 or a hang, and nothing stored changes.

use pan_tests::*;
use serde_json::{Value, json};

both!(
    /// Malformed signup bodies (empty, not JSON, bad UTF-8, missing fields,
    /// wrong types, bad usernames) each get their exact 4xx as a JSON `{code,
    /// message}`.
    malformed_signup_bodies_get_json_4xx, |app| {
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("empty body", vec![], StatusCode::BAD_REQUEST),
        ("not json", b"{bad".to_vec(), StatusCode::BAD_REQUEST),
        ("invalid utf-8", b"{\"username\":\"\xff\xfe\",\"password\":\"12345678\"}".to_vec(), StatusCode::BAD_REQUEST),
        ("missing field", br#"{"username":"x"}"#.to_vec(), StatusCode::BAD_REQUEST),
        ("wrong types", br#"{"username":1,"password":[]}"#.to_vec(), StatusCode::BAD_REQUEST),
        ("empty username", br#"{"username":"","password":"12345678"}"#.to_vec(), StatusCode::BAD_REQUEST),
        (
            "long username",
            format!(r#"{{"username":"{}","password":"12345678"}}"#, "a".repeat(65)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        ("NUL in username", br#"{"username":"a\u0000b","password":"12345678"}"#.to_vec(), StatusCode::BAD_REQUEST),
        ("short password", br#"{"username":"shorty","password":"1234567"}"#.to_vec(), StatusCode::BAD_REQUEST),
        (
            "long password",
            format!(r#"{{"username":"longpw","password":"{}"}}"#, "p".repeat(1025)).into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        ("NUL in password", br#"{"username":"nulpw","password":"1234\u00005678"}"#.to_vec(), StatusCode::BAD_REQUEST),
        (
            "oversized body",
            format!(r#"{{"username":"big","password":"{}"}}"#, "p".repeat(200_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (what, body, want) in cases {
        let resp = app
            .http
            .post(app.url("/usr/signup"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let body: Value = resp.json().await.unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        assert_error(code, &body, want, what);
    }
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM users").await, 0, "no user may have been created");
});

both!(
    /// A JSON body past the size limit sent without `Content-Length` (chunked) is
/// refused with 413, not read whole.
    a_chunked_oversized_json_body_is_413, |app| {
    let big = format!(r#"{{"username":"big","password":"{}"}}"#, "p".repeat(200_000));
    let stream = futures::stream::iter(
        big.into_bytes().chunks(4096).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>(),
    );
    let resp = app
        .http
        .post(app.url("/usr/signup"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let code = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_error(code, &body, StatusCode::PAYLOAD_TOO_LARGE, "chunked");
});

both!(
    /// Unknown routes are a JSON 404, wrong methods a JSON 405, and bad query
    /// parameters a JSON 400 (after the missing token's 401).
    unknown_routes_and_methods_get_json_errors, |app| {
    let (code, body) = app.call("GET", "/no/such/route", None).await;
    assert_error(code, &body, StatusCode::NOT_FOUND, "404");
    let (code, body) = app.call("PUT", "/usr/signup", None).await;
    assert_error(code, &body, StatusCode::METHOD_NOT_ALLOWED, "405");
    // Without a token, the missing credentials are what is wrong first.
    let (code, body) = app.call("GET", "/file/query?limit=abc", None).await;
    assert_error(code, &body, StatusCode::UNAUTHORIZED, "no token");
    assert_eq!(body["code"], "UNAUTHENTICATED");
    let token = app.user(&uname("q")).await;
    for q in ["limit=abc", "limit=0", "limit=100000", "offset=-1"] {
        let (code, body) = app.call("GET", &format!("/file/query?{q}"), Some(&token)).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, q);
    }
});

both!(
    /// Bad upload requests (bad ids, indexes, sizes, hashes, bodies) each get
    /// their exact 4xx code and leave the staged chunks and the upload
    /// unchanged.
    bad_upload_requests_get_4xx_and_change_nothing,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024").env("PAN_MAX_FILE_SIZE", "1000000"),
    |app| {
        let token = app.user(&uname("u")).await;
        let data = test_bytes(2500, 1);
        let (code, init) = app.init(&token, "good.bin", &data).await;
        assert_eq!(code, StatusCode::OK, "{init}");
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, _) = app.put_chunk(&token, &id, 0, data[..1024].to_vec()).await;
        assert_eq!(code, StatusCode::OK);
        let before = app.staging();
        assert_eq!(before.len(), 1);
        let received_before = app.staged_chunks(&id, 1024, &[0]);

        let hash = sha1_hex(&data);
        // What the schema refuses is 400 INVALID_REQUEST; a size over the
        // server's limit is 413 FILE_TOO_LARGE.
        let (bad, invalid) = (StatusCode::BAD_REQUEST, "INVALID_REQUEST");
        let bad_inits = vec![
            ("short hash", json!({"filename": "a", "filehash": "abc", "filesize": 1}), bad, invalid),
            ("non-hex hash", json!({"filename": "a", "filehash": "z".repeat(40), "filesize": 1}), bad, invalid),
            ("negative size", json!({"filename": "a", "filehash": hash, "filesize": -1}), bad, invalid),
            ("size not a number", json!({"filename": "a", "filehash": hash, "filesize": "ten"}), bad, invalid),
            (
                "size too big",
                json!({"filename": "a", "filehash": hash, "filesize": 1_000_001}),
                StatusCode::PAYLOAD_TOO_LARGE,
                "FILE_TOO_LARGE",
            ),
            ("empty filename", json!({"filename": "", "filehash": hash, "filesize": 1}), bad, invalid),
            ("NUL in filename", json!({"filename": "a\u{0}b", "filehash": hash, "filesize": 1}), bad, invalid),
            ("control char in filename", json!({"filename": "a\nb", "filehash": hash, "filesize": 1}), bad, invalid),
            (
                "filename over 255 bytes (128 characters: the schema counts characters, the rule bytes)",
                json!({"filename": "é".repeat(128), "filehash": hash, "filesize": 1}),
                bad,
                "INVALID_FILENAME",
            ),
        ];
        for (what, body, status, want) in bad_inits {
            let (code, resp) = app.post_json("/file/mupload/init", Some(&token), &body).await;
            assert_eq!(code, status, "{what}: {resp}");
            assert_eq!(resp["code"], want, "{what}: {resp}");
            assert!(resp["message"].is_string(), "{what}: {resp}");
        }

        let up = |q: String, body: Vec<u8>| {
            let app = &app;
            let token = token.clone();
            async move {
                let resp = app
                    .http
                    .post(app.url(&format!("/file/mupload/uppart?{q}")))
                    .bearer_auth(token)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let code = resp.status();
                (code, resp.json::<Value>().await.unwrap())
            }
        };
        let cases = vec![
            ("index out of range", format!("uploadID={id}&chkidx=3"), vec![0u8; 452], StatusCode::BAD_REQUEST),
            ("index not a number", format!("uploadID={id}&chkidx=one"), vec![0u8; 1024], StatusCode::BAD_REQUEST),
            ("negative index", format!("uploadID={id}&chkidx=-1"), vec![0u8; 1024], StatusCode::BAD_REQUEST),
            ("missing index", format!("uploadID={id}"), vec![0u8; 1024], StatusCode::BAD_REQUEST),
            ("body too long", format!("uploadID={id}&chkidx=1"), vec![0u8; 1025], StatusCode::PAYLOAD_TOO_LARGE),
            ("body too short", format!("uploadID={id}&chkidx=1"), vec![0u8; 1023], StatusCode::BAD_REQUEST),
            ("empty body", format!("uploadID={id}&chkidx=1"), vec![], StatusCode::BAD_REQUEST),
            ("last chunk too long", format!("uploadID={id}&chkidx=2"), vec![0u8; 1024], StatusCode::PAYLOAD_TOO_LARGE),
            ("unknown upload", format!("uploadID={}&chkidx=0", "0".repeat(32)), vec![0u8; 1024], StatusCode::NOT_FOUND),
            ("malformed upload id", "uploadID=../../etc&chkidx=0".to_string(), vec![0u8; 1024], StatusCode::NOT_FOUND),
        ];
        for (what, q, body, want) in cases {
            let (code, resp) = up(q, body).await;
            assert_error(code, &resp, want, what);
        }
        // A wrong Upload-Checksum is refused and the chunk does not count.
        let resp = app
            .http
            .post(app.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx=1")))
            .bearer_auth(&token)
            .header("upload-checksum", "sha1 2jmj7l5rSw0yVb/vlWAYkK/YBwk=")
            .body(data[1024..2048].to_vec())
            .send()
            .await
            .unwrap();
        let code = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_error(code, &body, StatusCode::BAD_REQUEST, "checksum mismatch");
        assert_eq!(body["code"], "CHUNK_CHECKSUM_MISMATCH");
        // Another user cannot see or touch the upload.
        let other = app.user(&uname("other")).await;
        let (code, body) = app.status(&other, &id).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "foreign status");
        let (code, body) = app.put_chunk(&other, &id, 1, data[1024..2048].to_vec()).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "foreign uppart");
        let (code, body) = app.complete(&other, &id).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "foreign complete");
        let (code, body) = app.call("DELETE", &format!("/file/mupload/abort?uploadID={id}"), Some(&other)).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "foreign abort");

        // Refused requests stage nothing new and leave received chunks as
        // they were (a refused first send may leave bytes where no received
        // chunk lies, in the data file's unreceived range).
        assert_eq!(app.staging().keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "nothing new staged");
        assert_eq!(
            app.staged_chunks(&id, 1024, &[0]),
            received_before,
            "received chunks unchanged by refused requests"
        );
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["uploaded"], json!([0]));
        assert_eq!(status["state"], "uploading");
    }
);

// A chunk sent to a finished upload is read and answered 200 with state
// `done` (a resumed client learns it is over), whatever its bytes, and
// nothing is staged; one of a bad index or length is still refused; a chunk
// after abort is 404.
both!(
    /// A chunk sent after the upload is done is answered `done` and stages
    /// nothing; after an abort, chunk, status and complete are 404.
    chunks_after_complete_are_answered_done_and_after_abort_refused,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("late")).await;
        let data = test_bytes(2048, 2);
        let done = app.upload(&token, "a.bin", &data).await;
        assert_eq!(done["state"], "done");
        let id = done["uploadID"].as_str().unwrap();
        // The merge deletes the chunks right after it records `done`.
        app.wait_staging_empty().await;
        let (code, body) = app.put_chunk(&token, id, 0, test_bytes(1024, 99)).await;
        assert_eq!(code, StatusCode::OK, "chunk after complete: {body}");
        assert_eq!(body, json!({"uploadID": id, "chkidx": 0, "size": 1024, "state": "done"}));
        assert!(app.staging().is_empty(), "nothing staged: {:?}", app.staging().keys());
        let (code, body) = app.put_chunk(&token, id, 2, data[..1024].to_vec()).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "chunk index past the end");
        let (code, body) = app.put_chunk(&token, id, 1, data[..1000].to_vec()).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "short chunk");
        assert_eq!(body["code"], "CHUNK_SIZE_MISMATCH");

        let data = test_bytes(2048, 3);
        let (_, init) = app.init(&token, "b.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, body) = app.put_chunk(&token, &id, 0, data[..1024].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, _) = app.call("DELETE", &format!("/file/mupload/abort?uploadID={id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert!(app.staging().is_empty(), "abort must delete staged chunks: {:?}", app.staging().keys());
        let (code, body) = app.put_chunk(&token, &id, 1, data[1024..].to_vec()).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "chunk after abort");
        let (code, body) = app.status(&token, &id).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "status after abort");
        let (code, body) = app.complete(&token, &id).await;
        assert_error(code, &body, StatusCode::NOT_FOUND, "complete after abort");
    }
);

both!(
    /// An upload left alone past `PAN_UPLOAD_TTL` is gone: status and chunks answer
/// 404 `UPLOAD_NOT_FOUND`.
    an_expired_upload_is_gone,
    |b: TestAppBuilder| b.env("PAN_UPLOAD_TTL", "1").env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("slow")).await;
        let data = test_bytes(2048, 4);
        let (_, init) = app.init(&token, "slow.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let body = eventually(10, "an upload with a 1 s TTL to expire", || async {
            let (code, body) = app.status(&token, &id).await;
            if code == StatusCode::NOT_FOUND {
                return Some(body);
            }
            assert_eq!(code, StatusCode::OK, "{body}");
            None
        })
        .await;
        assert_eq!(body["code"], "UPLOAD_NOT_FOUND");
        let (code, _) = app.put_chunk(&token, &id, 0, data[..1024].to_vec()).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
);

/// The header timeout the tests below run with, in seconds.
const HEAD_SECS: u64 = 2;

fn with_head_timeout(b: TestAppBuilder) -> TestAppBuilder {
    b.env("PAN_HEADER_TIMEOUT", &HEAD_SECS.to_string())
}

/// Waits (at most `HEAD_SECS` + 3 s) until the server closes `reader`;
/// returns what it sent before closing.
async fn closed_by_server(reader: &mut (impl tokio::io::AsyncRead + Unpin), ctx: &str) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let margin = std::time::Duration::from_secs(HEAD_SECS + 3);
    match tokio::time::timeout(margin, reader.read_to_end(&mut got)).await {
        Ok(Ok(_)) => got,
        // A reset is a close too.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => got,
        Ok(Err(e)) => panic!("{ctx}: {e}"),
        Err(_) => panic!("{ctx}: the connection is still open {margin:?} later"),
    }
}

/// Two connections that have each been served once (a GET /healthz) and
/// stay open.
async fn two_served(app: &TestApp) -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let mut first = app.raw().await;
    first.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut first).await.0, 200);
    let mut second = app.raw().await;
    second.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut second).await.0, 200);
    (first, second)
}

/// Reads one response (head, then a `Content-Length` body) from a raw
/// connection; returns its status code and body.
async fn read_response(stream: &mut tokio::net::TcpStream) -> (u16, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut piece = [0u8; 4096];
        let n = stream.read(&mut piece).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no content-length in {head:?}"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut piece = [0u8; 4096];
        let n = stream.read(&mut piece).await.unwrap();
        assert!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&piece[..n]);
    }
    assert_eq!(body.len(), length, "more bytes than one response");
    (status, body)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: pan\r\n\r\n";

both!(
    /// A request head trickled in a byte at a time (never idle, never finished)
    /// is closed unanswered at `PAN_HEADER_TIMEOUT`, not before.
    a_trickled_request_head_is_cut_off_at_the_header_timeout, with_head_timeout, |app| {
    use tokio::io::AsyncWriteExt;
    let started = std::time::Instant::now();
    let (mut rd, mut wr) = app.raw().await.into_split();
    // A byte every 100 ms: never idle, never done. (The pauses are the
    // behaviour under test, not a wait.)
    let trickle = tokio::spawn(async move {
        let line = format!("GET /healthz HTTP/1.1\r\nHost: pan\r\nX-Slow: {}", "a".repeat(200));
        for b in line.bytes() {
            if wr.write_all(&[b]).await.is_err() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
    let sent = closed_by_server(&mut rd, "trickled head").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= std::time::Duration::from_secs(HEAD_SECS), "closed after {elapsed:?}, before the timeout");
    assert!(sent.is_empty(), "no response to a head that never ended: {:?}", String::from_utf8_lossy(&sent));
    trickle.abort();
});

both!(
    /// A head whose final empty line never comes is closed at the header timeout,
/// not before.
    headers_without_the_final_empty_line_are_cut_off, with_head_timeout, |app| {
    use tokio::io::AsyncWriteExt;
    let started = std::time::Instant::now();
    let mut stream = app.raw().await;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: pan\r\n").await.unwrap();
    closed_by_server(&mut stream, "unfinished head").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= std::time::Duration::from_secs(HEAD_SECS), "closed after {elapsed:?}, before the timeout");
});

both!(
    /// A kept-alive connection may idle longer than the header timeout between
    /// requests, and a later head gets the whole timeout from its own first
    /// byte.
    a_kept_alive_connection_may_idle_past_the_header_timeout_between_requests, with_head_timeout, |app| {
    use tokio::io::AsyncWriteExt;
    let mut stream = app.raw().await;
    let gap = std::time::Duration::from_secs(HEAD_SECS + 1);
    for i in 0..3 {
        if i > 0 {
            // Longer than the header timeout, far shorter than the idle
            // timeout: the idle gap is the behaviour under test.
            tokio::time::sleep(gap).await;
        }
        stream.write_all(HEALTHZ).await.unwrap();
        let (status, body) = read_response(&mut stream).await;
        assert_eq!(status, 200, "request {i} on the same connection: {}", String::from_utf8_lossy(&body));
    }
    // A later request's head is bounded from its own first byte: the
    // connection is older than the timeout, and still gets the whole of it.
    // (Idling again is the behaviour under test.)
    tokio::time::sleep(gap).await;
    let started = std::time::Instant::now();
    stream.write_all(b"GET /hea").await.unwrap();
    closed_by_server(&mut stream, "unfinished second head").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= std::time::Duration::from_secs(HEAD_SECS), "closed after {elapsed:?}, before the timeout");
});

both!(
    /// A body that takes longer than the header timeout (with and without
    /// `Expect: 100-continue`) is served: the header timeout bounds heads only.
    a_slow_body_is_not_a_slow_head, with_head_timeout, |app| {
    use tokio::io::AsyncWriteExt;
    let mut stream = app.raw().await;
    // Once with `Expect: 100-continue` (the server answers `100 Continue`
    // before the body comes), once without; both bodies take longer than
    // the header timeout and hold no empty line.
    for expect in [true, false] {
        let body = json!({"username": uname("slowbody"), "password": "correct horse"}).to_string();
        let head = format!(
            "POST /usr/signup HTTP/1.1\r\nHost: pan\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            body.len(),
            if expect { "Expect: 100-continue\r\n" } else { "" }
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        if expect {
            use tokio::io::AsyncReadExt;
            let want = b"HTTP/1.1 100 Continue\r\n\r\n";
            let mut got = vec![0u8; want.len()];
            stream.read_exact(&mut got).await.unwrap();
            assert_eq!(got, want, "{}", String::from_utf8_lossy(&got));
        }
        let pause = std::time::Duration::from_millis((HEAD_SECS * 1000 + 1000) / body.len() as u64 + 1);
        for b in body.bytes() {
            stream.write_all(&[b]).await.unwrap();
            // A slow body is the behaviour under test.
            tokio::time::sleep(pause).await;
        }
        let (status, resp) = read_response(&mut stream).await;
        assert_eq!(status, 201, "expect={expect}: {}", String::from_utf8_lossy(&resp));
    }
});

both!(
    /// Past `PAN_MAX_CONNECTIONS`, a new connection waits unserved and is served as
/// soon as another closes.
    connections_past_the_cap_wait_until_one_closes, |b: TestAppBuilder| b.env("PAN_MAX_CONNECTIONS", "2"), |app| {
    use tokio::io::AsyncWriteExt;
    // The test bench's own client keeps pooled connections: start from none.
    let (first, _second) = two_served(&app).await;
    // Two are held open: a third is not served while they are.
    let mut third = app.raw().await;
    third.write_all(HEALTHZ).await.unwrap();
    let waited = tokio::time::timeout(std::time::Duration::from_secs(1), read_response(&mut third)).await;
    assert!(waited.is_err(), "a third connection was served past a cap of two");
    drop(first);
    let served = tokio::time::timeout(std::time::Duration::from_secs(10), read_response(&mut third)).await;
    assert_eq!(served.expect("served once a slot freed").0, 200);
});

both!(
    /// Past `PAN_MAX_CONNECTIONS_PER_ADDRESS`, a new connection from that
    /// address is closed unanswered, and one is accepted again after another
    /// closes.
    connections_past_the_per_address_cap_are_closed,
    |b: TestAppBuilder| b.env("PAN_MAX_CONNECTIONS_PER_ADDRESS", "2"),
    |app| {
        use tokio::io::AsyncWriteExt;
        let (first, _second) = two_served(&app).await;
        // A third from the same address is closed at once, unanswered.
        let mut third = app.raw().await;
        let _ = third.write_all(HEALTHZ).await;
        let sent = closed_by_server(&mut third, "third connection").await;
        assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
        // The others still work, and a slot comes back when one closes.
        drop(first);
        // (Until the server has seen the close, a new connection is still
        // closed: read whatever comes rather than expect a response.)
        eventually(10, "a slot to come back", || async {
            use tokio::io::AsyncReadExt;
            let mut s = app.raw().await;
            s.write_all(HEALTHZ).await.ok()?;
            let mut got = vec![0u8; 64];
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), s.read(&mut got)).await.ok()?.ok()?;
            got[..n].starts_with(b"HTTP/1.1 200").then_some(())
        })
        .await;
    }
);

both!(
    /// A cleartext HTTP/2 preface (h2c) is closed without an answer.
    cleartext_http2_is_refused, |app| {
    use tokio::io::AsyncWriteExt;
    let mut conn = app.raw().await;
    conn.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
    let sent = closed_by_server(&mut conn, "h2c").await;
    assert!(sent.is_empty(), "{:?}", String::from_utf8_lossy(&sent));
});

both!(
    /// A JSON body announced but never sent is answered 400 `BODY_TIMEOUT`
    /// after the body timeout (about 20 s), not held forever.
    a_json_body_that_does_not_arrive_is_cut_off, |app| {
    use tokio::io::AsyncWriteExt;
    let mut conn = app.raw().await;
    let head =
        "POST /usr/signin HTTP/1.1\r\nHost: pan\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
    conn.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let answer =
        tokio::time::timeout(std::time::Duration::from_secs(40), read_response(&mut conn)).await.expect("an answer");
    assert_eq!(answer.0, 400);
    let body: Value = serde_json::from_slice(&answer.1).unwrap();
    assert_eq!(body["code"], "BODY_TIMEOUT");
    assert!(started.elapsed() >= std::time::Duration::from_secs(19), "{:?}", started.elapsed());
});
