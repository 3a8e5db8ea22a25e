//! Uploads as byte ranges (`PUT /file/mupload/bytes`): a server-hashed
//! upload whose size comes at the end, streamed in; ranges in any order,
//! held to the rules on overlaps, sizes and checksums; a client-declared
//! upload sent as ranges, whose chunk view still holds; and the quota of an
//! upload of unknown size, reserved as its bytes come.

use pan_tests::*;
use serde_json::{Value, json};

/// `Upload-Checksum` for `data`.
fn checksum(data: &[u8]) -> String {
    use base64::Engine;
    use sha1::Digest;
    format!("sha1 {}", base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(data)))
}

/// Starts a server-hashed upload named `name` (`size`: none, known at the end).
async fn init_server_hashed(app: &TestApp, token: &str, name: &str, size: Option<usize>) -> String {
    let mut body = json!({"filename": name, "server_hashed": true});
    if let Some(size) = size {
        body["filesize"] = json!(size);
    }
    let (code, init) = app.post_json("/file/mupload/init", Some(token), &body).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    assert_eq!(init["status"], "new");
    init["uploadID"].as_str().expect("uploadID").to_owned()
}

/// Completes upload `id` with `size` (when given).
async fn complete_with(app: &TestApp, token: &str, id: &str, size: Option<usize>) -> (StatusCode, Value) {
    let size = size.map(|n| format!("&filesize={n}")).unwrap_or_default();
    app.call("POST", &format!("/file/mupload/complete?uploadID={id}{size}"), Some(token)).await
}

/// Checks that a finished upload's file is `data`, byte for byte.
async fn assert_stored(app: &TestApp, token: &str, done: &Value, data: &[u8]) {
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["file"]["filehash"], sha1_hex(data));
    assert_eq!(done["file"]["sha256"], sha256_hex(data));
    let (code, _, got) = app.download(token, &sha1_hex(data), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(got == data, "the stored bytes are the ones sent");
}

both!(
    /// A server-hashed upload begun without a size takes bodies without a
    /// length, each appended where the last ended (one with a checksum of
    /// its whole body); complete refuses it until the size is given, and a
    /// size below the bytes received; given, the file is what arrived.
    a_streamed_upload_of_unknown_size_is_stored_as_received,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("stream")).await;
        let data = test_bytes(5000, 31);
        let id = init_server_hashed(&app, &token, "s.bin", None).await;
        let (_, status) = app.status(&token, &id).await;
        assert_eq!((&status["filesize"], &status["chunkcount"], &status["received"]), (&Value::Null, &json!(0), &json!(0)));

        let (code, r) = app.put_bytes(&token, &id, 0, data[..3000].to_vec(), true, None).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        assert_eq!(r, json!({"uploadID": id, "offset": 0, "size": 3000, "received": 3000, "state": "uploading"}));
        let (code, body) = complete_with(&app, &token, &id, None).await;
        assert_error(code, &body, StatusCode::CONFLICT, "complete before the size is known");
        assert_eq!(body["code"], "SIZE_CONFLICT");

        let rest = data[3000..].to_vec();
        let (code, r) = app.put_bytes(&token, &id, 3000, rest.clone(), true, Some(checksum(&rest))).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        assert_eq!((&r["size"], &r["received"]), (&json!(2000), &json!(5000)));
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["ranges"], json!([{"start": 0, "end": 5000}]));
        assert_eq!(status["uploaded"], json!([]), "no chunks while the size is unknown");

        let (code, body) = complete_with(&app, &token, &id, Some(4999)).await;
        assert_error(code, &body, StatusCode::CONFLICT, "a size below the bytes received");
        assert_eq!(body["code"], "SIZE_CONFLICT");
        let (code, body) = complete_with(&app, &token, &id, Some(5000)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_stored(&app, &token, &done, &data).await;
        assert_eq!(done["filesize"], 5000);
    }
);

both!(
    /// Ranges of a server-hashed upload of known size arrive in any order:
    /// a range sent again whole is taken, one overlapping received bytes in
    /// other bounds is 409 `RANGE_OVERLAP`, one past the size 409
    /// `SIZE_CONFLICT`, a body that fails its checksum 400 with nothing
    /// counted, and complete with a gap 409 `CHUNKS_MISSING`.
    ranges_arrive_in_any_order_and_never_overlap,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("ranges")).await;
        let data = test_bytes(3000, 32);
        let id = init_server_hashed(&app, &token, "r.bin", Some(3000)).await;
        let put = |offset: usize, end: usize| app.put_bytes(&token, &id, offset as u64, data[offset..end].to_vec(), false, None);
        let (code, r) = put(2000, 3000).await;
        assert_eq!((code, &r["received"]), (StatusCode::OK, &json!(1000)), "{r}");
        let (code, r) = put(0, 700).await;
        assert_eq!((code, &r["received"]), (StatusCode::OK, &json!(1700)), "{r}");
        let (code, r) = put(0, 700).await;
        assert_eq!((code, &r["received"]), (StatusCode::OK, &json!(1700)), "the same range again: {r}");

        for (offset, end) in [(500, 1500), (600, 701), (1999, 2001)] {
            let (code, body) = put(offset, end).await;
            assert_error(code, &body, StatusCode::CONFLICT, "an overlap in other bounds");
            assert_eq!(body["code"], "RANGE_OVERLAP", "{offset}..{end}");
        }
        let (code, body) = app.put_bytes(&token, &id, 2500, vec![1; 501], false, None).await;
        assert_error(code, &body, StatusCode::CONFLICT, "past the size");
        assert_eq!(body["code"], "SIZE_CONFLICT");
        let middle = data[700..2000].to_vec();
        let (code, body) = app.put_bytes(&token, &id, 700, middle.clone(), false, Some(checksum(b"other"))).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "a body that fails its checksum");
        assert_eq!(body["code"], "CHUNK_CHECKSUM_MISMATCH");
        let (code, body) = complete_with(&app, &token, &id, None).await;
        assert_error(code, &body, StatusCode::CONFLICT, "complete with a gap");
        assert_eq!(body["code"], "CHUNKS_MISSING");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["ranges"], json!([{"start": 0, "end": 700}, {"start": 2000, "end": 3000}]));
        assert_eq!(status["received"], 1700, "nothing of the refused bodies counts");

        let (code, r) = app.put_bytes(&token, &id, 700, middle, true, None).await;
        assert_eq!((code, &r["received"]), (StatusCode::OK, &json!(3000)), "the gap, streamed: {r}");
        let (code, body) = complete_with(&app, &token, &id, Some(3000)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_stored(&app, &token, &done, &data).await;
    }
);

both!(
    /// An upload whose client declared its hashes may be sent as ranges
    /// too: ranges that are chunks show as chunks in status, chunks and
    /// ranges mix, and the merge checks the file against the declaration.
    a_declared_upload_sent_as_ranges_keeps_its_chunk_view,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("mixed")).await;
        let data = test_bytes(2500, 33);
        let (code, init) = app.init(&token, "m.bin", &data).await;
        assert_eq!(code, StatusCode::OK, "{init}");
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, r) = app.put_bytes(&token, &id, 1024, data[1024..2048].to_vec(), false, None).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        let (code, r) = app.put_chunk(&token, &id, 0, data[..1024].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["uploaded"], json!([0, 1]));
        let (code, body) = app.put_bytes(&token, &id, 1024, data[1024..2048].to_vec(), true, None).await;
        assert_error(code, &body, StatusCode::CONFLICT, "a body of unknown length inside received bytes");
        assert_eq!(body["code"], "RANGE_OVERLAP");
        let (code, r) = app.put_bytes(&token, &id, 2048, data[2048..].to_vec(), false, None).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        let (code, body) = complete_with(&app, &token, &id, Some(2501)).await;
        assert_error(code, &body, StatusCode::CONFLICT, "another size than declared");
        assert_eq!(body["code"], "SIZE_CONFLICT");
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_stored(&app, &token, &done, &data).await;
    }
);

both!(
    /// An upload of unknown size reserves quota as its bytes come: a body
    /// of unknown length stops where the quota does (507
    /// `QUOTA_EXCEEDED`, what fit kept), one of known length past it is
    /// refused before a byte is read, and the size at complete is held
    /// exactly.
    an_upload_of_unknown_size_stops_at_the_quota,
    |b: TestAppBuilder| b.env("PAN_QUOTA_BYTES", "10000").env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("quota")).await;
        let id = init_server_hashed(&app, &token, "q.bin", None).await;
        let data = test_bytes(12_000, 34);
        let (code, body) = app.put_bytes(&token, &id, 0, data.clone(), true, None).await;
        assert_error(code, &body, StatusCode::INSUFFICIENT_STORAGE, "a stream past the quota");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["ranges"], json!([{"start": 0, "end": 10000}]), "what fit is kept");
        let (code, body) = app.put_bytes(&token, &id, 10_000, vec![1; 10], false, None).await;
        assert_error(code, &body, StatusCode::INSUFFICIENT_STORAGE, "a range past the quota");
        let (code, body) = complete_with(&app, &token, &id, Some(10_000)).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_stored(&app, &token, &done, &data[..10_000]).await;
    }
);

both!(
    /// A range sent again after the running hash passed it, in a request
    /// that then fails (its whole-body checksum is wrong), leaves the bytes
    /// received before as they were: the upload still completes with them.
    a_failed_send_again_of_hashed_bytes_leaves_them_whole,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("again")).await;
        let data = test_bytes(2000, 35);
        let id = init_server_hashed(&app, &token, "a.bin", Some(2000)).await;
        let first = data[..1000].to_vec();
        let (code, r) = app.put_bytes(&token, &id, 0, first.clone(), false, Some(checksum(&first))).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        eventually(30, "the running hash to pass the first range", || async {
            let (_, status) = app.status(&token, &id).await;
            (status["hashed_bytes"] == 1000).then_some(())
        })
        .await;
        let (code, body) = app.put_bytes(&token, &id, 0, first, false, Some(checksum(b"not these bytes"))).await;
        assert_error(code, &body, StatusCode::BAD_REQUEST, "a send again whose checksum fails");
        assert_eq!(body["code"], "CHUNK_CHECKSUM_MISMATCH");
        let (code, r) = app.put_bytes(&token, &id, 1000, data[1000..].to_vec(), false, None).await;
        assert_eq!(code, StatusCode::OK, "{r}");
        let (code, body) = complete_with(&app, &token, &id, None).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_stored(&app, &token, &done, &data).await;
    }
);
