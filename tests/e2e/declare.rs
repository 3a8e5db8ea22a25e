//! Uploads begun without the whole-file hash: init with a name, a size and
//! a fingerprint, chunks at once, the hashes declared while they flow.

use pan_tests::*;
use serde_json::{Value, json};

/// init without hashes: returns (status, body).
async fn init_unhashed(app: &TestApp, token: &str, name: &str, size: usize, fingerprint: &str) -> (StatusCode, Value) {
    let body = json!({"filename": name, "filesize": size, "fingerprint": fingerprint});
    app.post_json("/file/mupload/init", Some(token), &body).await
}

/// declare the hashes of `data` for upload `id`: returns (status, body).
async fn declare(app: &TestApp, token: &str, id: &str, data: &[u8]) -> (StatusCode, Value) {
    let body = json!({"filehash": sha1_hex(data), "sha256": sha256_hex(data)});
    app.post_json(&format!("/file/mupload/declare?uploadID={id}"), Some(token), &body).await
}

/// Sends chunks `indexes` of `data` (4 KiB chunks), each expected to be received.
async fn send(app: &TestApp, token: &str, id: &str, data: &[u8], indexes: impl IntoIterator<Item = u64>) {
    for i in indexes {
        let part = data[i as usize * 4096..((i as usize + 1) * 4096).min(data.len())].to_vec();
        let (code, body) = app.put_chunk(token, id, i, part).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
}

both!(
    /// An upload begun with a fingerprint and no hashes takes chunks at once;
    /// once the hashes are declared, complete verifies them and stores the
    /// file.
    an_upload_begun_without_hashes_stores_the_file_once_they_are_declared,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let token = app.user(&uname("decl")).await;
        let data = test_bytes(4096 * 9 + 17, 31);
        let (code, init) = init_unhashed(&app, &token, "d.bin", data.len(), "fp-d").await;
        assert_eq!(code, StatusCode::OK, "{init}");
        assert_eq!(init["status"], "new");
        assert_eq!(init["chunkcount"], 10);
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (_, status) = app.status(&token, &id).await;
        assert!(status.get("filehash").is_none() && status.get("sha256").is_none(), "nothing declared: {status}");
        assert_eq!(status["fingerprint"], "fp-d");

        send(&app, &token, &id, &data, 0..10).await;
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "HASH_NOT_DECLARED");

        let (code, declared) = declare(&app, &token, &id, &data).await;
        assert_eq!(code, StatusCode::OK, "{declared}");
        assert_eq!(declared["status"], "new");
        assert_eq!(declared["uploadID"], id.as_str());
        assert_eq!(declared["uploaded"], json!((0..10).collect::<Vec<u64>>()));
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["filehash"], sha1_hex(&data).as_str());
        assert_eq!(status["sha256"], sha256_hex(&data).as_str());

        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let (code, late) = declare(&app, &token, &id, &data).await;
        assert_eq!(code, StatusCode::CONFLICT, "{late}");
        assert_eq!(late["code"], "UPLOAD_NOT_UPLOADING");
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["file"]["filehash"], sha1_hex(&data).as_str());
        assert_eq!(done["file"]["sha256"], sha256_hex(&data).as_str());
        assert_eq!(done["file"]["filename"], "d.bin");
        let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data);
        app.assert_consistent().await;
    }
);

both!(
    /// Hashes declared for other bytes than those sent make the merge fail with
    /// the mismatch's code, and nothing is stored.
    a_declared_hash_the_bytes_do_not_have_fails_the_merge,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let token = app.user(&uname("wrong")).await;
        let data = test_bytes(4096 * 3 + 5, 32);
        let other = test_bytes(data.len(), 33);
        let (_, init) = init_unhashed(&app, &token, "w.bin", data.len(), "fp-w").await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        send(&app, &token, &id, &data, [0, 1]).await;
        let (code, declared) = declare(&app, &token, &id, &other).await;
        assert_eq!(code, StatusCode::OK, "{declared}");
        assert_eq!(declared["status"], "new");
        send(&app, &token, &id, &data, [2, 3]).await;
        let (code, _) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        let failed = app.wait_merged(&token, &id).await;
        assert_eq!(failed["state"], "failed", "{failed}");
        assert_eq!(failed["reason_code"], "SHA1_MISMATCH", "{failed}");
        let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
        assert_eq!(list["total"], 0, "no file row: {list}");
        app.assert_consistent().await;
    }
);

both!(
    /// Declaring hashes of content the caller already holds ends the upload at
    /// once (instant): its status and chunks are then 404 and its staged chunks
    /// are deleted; another user's instant needs a proof.
    declaring_content_the_caller_has_ends_the_upload_at_once,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let alice = app.user(&uname("has")).await;
        let data = test_bytes(4096 * 6, 34);
        let done = app.upload(&alice, "first.bin", &data).await;
        assert_eq!(done["state"], "done", "{done}");
        app.wait_staging_empty().await;

        let (_, init) = init_unhashed(&app, &alice, "again.bin", data.len(), "fp-again").await;
        assert_eq!(init["status"], "new", "without hashes nothing is known yet: {init}");
        let id = init["uploadID"].as_str().unwrap().to_owned();
        send(&app, &alice, &id, &data, [0, 1]).await;
        let (code, declared) = declare(&app, &alice, &id, &data).await;
        assert_eq!(code, StatusCode::OK, "{declared}");
        assert_eq!(declared["status"], "instant", "{declared}");
        assert_eq!(declared["file"]["filename"], "again.bin");
        assert_eq!(declared["file"]["sha256"], sha256_hex(&data).as_str());
        // The upload is over: status and further chunks find nothing, and
        // the chunks sent before are gone.
        let (code, body) = app.status(&alice, &id).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "UPLOAD_NOT_FOUND");
        let (code, body) = app.put_chunk(&alice, &id, 2, data[8192..12288].to_vec()).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "UPLOAD_NOT_FOUND");
        app.wait_staging_empty().await;
        let (_, list) = app.call("GET", "/file/query", Some(&alice)).await;
        assert_eq!(list["total"], 2, "two entries, one content: {list}");
        assert_eq!(app.stored().len(), 1, "the content is stored once");

        // Someone else's content: a challenge, as at init, and a right proof is instant.
        let bob = app.user(&uname("bob")).await;
        let (_, init) = init_unhashed(&app, &bob, "bobs.bin", data.len(), "fp-bob").await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, declared) = declare(&app, &bob, &id, &data).await;
        assert_eq!(code, StatusCode::OK, "{declared}");
        assert_eq!(declared["status"], "new", "{declared}");
        let (code, proved) = app.prove(&bob, &id, &answer_challenge(&declared["challenge"], &data)).await;
        assert_eq!(code, StatusCode::OK, "{proved}");
        assert_eq!(proved["status"], "instant", "{proved}");
        assert_eq!(proved["file"]["filename"], "bobs.bin");
        app.assert_consistent().await;
    }
);

both!(
    /// Declaring the same hashes twice is fine, but declaring different hashes
    /// for the same upload is refused with a code.
    declaring_other_hashes_a_second_time_is_refused, |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"), |app| {
    let token = app.user(&uname("twice")).await;
    let data = test_bytes(4096 * 2, 35);
    let (_, init) = init_unhashed(&app, &token, "t.bin", data.len(), "fp-t").await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let (code, first) = declare(&app, &token, &id, &data).await;
    assert_eq!(code, StatusCode::OK, "{first}");
    let (code, again) = declare(&app, &token, &id, &data).await;
    assert_eq!(code, StatusCode::OK, "the same hashes again are fine: {again}");
    assert_eq!(again["status"], "new");
    let (code, other) = declare(&app, &token, &id, &test_bytes(data.len(), 36)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{other}");
    assert_eq!(other["code"], "HASH_ALREADY_DECLARED");
    let (_, status) = app.status(&token, &id).await;
    assert_eq!(status["filehash"], sha1_hex(&data).as_str(), "the first declaration stays");
    // An upload begun with its hashes has them declared already.
    let (_, hashed) = app.init(&token, "h.bin", &data).await;
    let hashed_id = hashed["uploadID"].as_str().unwrap();
    let (code, body) = declare(&app, &token, hashed_id, &test_bytes(data.len(), 37)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "HASH_ALREADY_DECLARED");
    // Someone else's upload is not found.
    let eve = app.user(&uname("eve")).await;
    let (code, body) = declare(&app, &eve, &id, &data).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "UPLOAD_NOT_FOUND");
});

both!(
    /// An init with the same fingerprint and size (even after an api restart)
    /// resumes the open upload, listing the chunks the server already holds.
    an_init_with_the_same_fingerprint_and_size_resumes_the_upload,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let token = app.user(&uname("fp")).await;
        let data = test_bytes(4096 * 5, 38);
        let (_, init) = init_unhashed(&app, &token, "f.bin", data.len(), "fp-resume").await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        send(&app, &token, &id, &data, [0, 2]).await;
        app.restart_api().await;

        let (code, again) = init_unhashed(&app, &token, "f.bin", data.len(), "fp-resume").await;
        assert_eq!(code, StatusCode::OK, "{again}");
        assert_eq!(again["status"], "resume", "{again}");
        assert_eq!(again["uploadID"], id.as_str());
        assert_eq!(again["uploaded"], json!([0, 2]));
        let (_, other) = init_unhashed(&app, &token, "f.bin", data.len(), "fp-other").await;
        assert_eq!(other["status"], "new", "another fingerprint is another upload");
        let (_, resized) = init_unhashed(&app, &token, "f.bin", data.len() + 1, "fp-resume").await;
        assert_eq!(resized["status"], "new", "another size is another upload");
        let bob = app.user(&uname("fpbob")).await;
        let (_, bobs) = init_unhashed(&app, &bob, "f.bin", data.len(), "fp-resume").await;
        assert_eq!(bobs["status"], "new", "another user's fingerprint is not yours");

        send(&app, &token, &id, &data, [1, 3, 4]).await;
        let (code, _) = declare(&app, &token, &id, &data).await;
        assert_eq!(code, StatusCode::OK);
        let (code, _) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");

        // sha256 alone is not a declaration.
        let body = json!({"filename": "x.bin", "filesize": 3, "sha256": sha256_hex(b"abc")});
        let (code, body) = app.post_json("/file/mupload/init", Some(&token), &body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["code"], "FILEHASH_REQUIRED");
    }
);
