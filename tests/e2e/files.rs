//! The file routes: list, download with Range, rename, delete, single upload.

use pan_tests::*;
use serde_json::json;

both!(
    /// Range downloads answer 206 with exactly the asked bytes and
    /// `Content-Range`; a range outside the file answers 416.
    ranges_are_served_as_206_and_outside_ranges_as_416, |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"), |app| {
    let token = app.user(&uname("range")).await;
    let data = test_bytes(10_000, 20);
    let hash = sha1_hex(&data);
    app.upload(&token, "r.bin", &data).await;
    let cases: [(&str, std::ops::Range<usize>); 5] = [
        ("bytes=0-0", 0..1),
        ("bytes=9999-9999", 9999..10_000),
        ("bytes=1234-5677", 1234..5678),
        ("bytes=-100", 9900..10_000),
        ("bytes=9000-", 9000..10_000),
    ];
    for (range, want) in cases {
        let (code, headers, bytes) = app.download(&token, &hash, Some(range)).await;
        assert_eq!(code, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(bytes, &data[want.clone()], "{range}");
        assert_eq!(headers["content-range"], format!("bytes {}-{}/10000", want.start, want.end - 1).as_str());
        assert_eq!(headers["content-length"], (want.end - want.start).to_string().as_str());
    }
    let (code, headers, body) = app.download(&token, &hash, Some("bytes=10000-")).await;
    assert_eq!(code, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(headers["content-range"], "bytes */10000", "RFC 9110 §15.5.17");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "RANGE_NOT_SATISFIABLE");
    let (code, headers, bytes) = app.download(&token, &hash, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, data);
    assert_eq!(headers["accept-ranges"], "bytes");
});

both!(
    /// Downloads name the file in a safe `Content-Disposition` (quoted ASCII
    /// fallback plus RFC 5987 UTF-8) and answer `If-None-Match` on the ETag
    /// with 304.
    downloads_name_the_file_safely_and_honour_if_none_match, |app| {
    let token = app.user(&uname("cd")).await;
    let data = b"name me".to_vec();
    let name = "报告 \"final\"; v2.txt";
    let done = app.upload(&token, name, &data).await;
    assert_eq!(done["state"], "done");
    let (_, headers, _) = app.download(&token, &sha1_hex(&data), None).await;
    let cd = headers["content-disposition"].to_str().unwrap();
    assert!(cd.starts_with("attachment; filename=\""), "{cd}");
    assert!(cd.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22final%22%3B%20v2.txt"), "{cd}");
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let resp = app
        .http
        .get(app.url(&format!("/file/download?filehash={}", sha1_hex(&data))))
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
});

both!(
    /// `/file/query` lists a user's files newest first with a total and paging;
    /// a file can be renamed by its owner only, and deleted.
    files_are_listed_newest_first_and_can_be_renamed_and_deleted, |app| {
    let token = app.user(&uname("list")).await;
    let mut hashes = Vec::new();
    for i in 0..5u64 {
        let data = test_bytes(100 + i as usize, 30 + i);
        app.upload(&token, &format!("f{i}"), &data).await;
        hashes.push(sha1_hex(&data));
    }
    let (_, page) = app.call("GET", "/file/query?limit=2&offset=1", Some(&token)).await;
    assert_eq!(page["total"], 5);
    let files = page["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let (_, past) = app.call("GET", "/file/query?limit=2&offset=7", Some(&token)).await;
    assert_eq!((past["total"].as_i64(), past["files"].as_array().map(Vec::len)), (Some(5), Some(0)), "{past}");
    let (_, all) = app.call("GET", "/file/query", Some(&token)).await;
    let times: Vec<i64> = all["files"].as_array().unwrap().iter().map(|f| f["uploaded_at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");

    let (code, renamed) =
        app.post_json("/file/rename", Some(&token), &json!({"filehash": hashes[0], "filename": "new name.txt"})).await;
    assert_eq!(code, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["filename"], "new name.txt");
    let other = app.user(&uname("other")).await;
    let (code, body) =
        app.post_json("/file/rename", Some(&other), &json!({"filehash": hashes[1], "filename": "mine"})).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let (code, _) = app.call("DELETE", &format!("/file/delete?filehash={}", hashes[1]), Some(&other)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "another user's file cannot be deleted");
    let (code, _, _) = app.download(&other, &hashes[1], None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "another user's file cannot be downloaded");
    let (code, _) = app.call("DELETE", &format!("/file/delete?filehash={}", hashes[1]), Some(&token)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, body) = app.call("DELETE", &format!("/file/delete?filehash={}", hashes[1]), Some(&token)).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FILE_NOT_FOUND")), "it is in the trash");
    let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!((info["file_count"].as_i64(), info["trash_count"].as_i64()), (Some(4), Some(1)), "{info}");
});

both!(
    /// A small file uploaded in one multipart request answers 201 and is stored
    /// like a chunked upload: same hashes, same dedup, instant for the same
    /// content.
    a_small_file_uploads_in_one_request_through_the_same_dedup_path,
    |b: TestAppBuilder| b.env("PAN_MAX_SINGLE_UPLOAD", "100000"),
    |app| {
        let token = app.user(&uname("single")).await;
        let data = test_bytes(50_000, 40);
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(data.clone()).file_name("one.bin"));
        let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["filehash"], sha1_hex(&data).as_str());
        assert_eq!(body["filename"], "one.bin");
        // The same content through the chunked protocol: another user proves
        // possession and gets it at once.
        let other = app.user(&uname("other")).await;
        let (_, init) = app.init(&other, "same.bin", &data).await;
        assert_eq!(init["status"], "new");
        let id = init["uploadID"].as_str().unwrap();
        let (_, proved) = app.prove(&other, id, &answer_challenge(&init["challenge"], &data)).await;
        assert_eq!(proved["status"], "instant", "{proved}");
        let big = test_bytes(200_000, 41);
        let form =
            reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(big).file_name("big.bin"));
        let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.stored().len(), 1);
    }
);

both!(
    /// Every file and directory pan writes under its data directory is readable
    /// by its own user only (no group or other permission bits).
    everything_pan_writes_under_the_data_dir_is_private_to_its_user, |app| {
    use std::os::unix::fs::PermissionsExt;
    let token = app.user(&uname("private")).await;
    let done = app.upload(&token, "p.bin", &test_bytes(3000, 77)).await;
    assert_eq!(done["state"], "done");
    let mut seen = 0;
    let mut stack = vec![app.data.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                continue; // the bench's own capture of the processes' output
            }
            let meta = entry.metadata().unwrap();
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", entry.path().display());
            seen += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(seen >= 3, "the stores and the stored file were checked");
});

both!(
    /// File names holding bidirectional override or isolate characters are
    /// refused with 400 `INVALID_REQUEST`, while zero-width joiners in emoji
    /// stay allowed.
    file_names_with_bidirectional_overrides_are_refused, |app| {
    let token = app.user(&uname("bidi")).await;
    let data = test_bytes(10, 78);
    for name in ["invoice\u{202E}fdp.exe", "a\u{2066}b"] {
        let (code, body) = app.init(&token, name, &data).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{name:?}: {body}");
        assert_eq!(body["code"], "INVALID_REQUEST", "the schema's pattern refuses it: {body}");
    }
    let (code, body) = app.init(&token, "family \u{1F468}\u{200D}\u{1F469}.jpg", &data).await;
    assert_eq!(code, StatusCode::OK, "zero-width joiners stay allowed: {body}");
});
