//! What survives a crash of a backend: Redis with and without AOF.

use pan_tests::*;

/// Sends chunks `indexes` of `data` (chunks of `size` bytes).
async fn send(app: &TestApp, token: &str, id: &str, data: &[u8], size: usize, indexes: &[u64]) {
    for &i in indexes {
        let part = data[i as usize * size..((i as usize + 1) * size).min(data.len())].to_vec();
        let (code, body) = app.put_chunk(token, id, i, part).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
}

/// With AOF (`appendfsync always`), a crashed and restarted Redis keeps the
/// chunk marks: the unfinished upload resumes where it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_aof_a_redis_crash_keeps_unfinished_uploads() {
    let mut redis = RedisServer::start(true).await;
    let app =
        TestApp::builder(Deployment::Fleet).env("REDIS_URL", &redis.url()).env("PAN_CHUNK_SIZE", "4096").spawn().await;
    let token = app.user(&uname("aof")).await;
    let data = test_bytes(3 * 4096, 80);
    let (_, init) = app.init(&token, "a.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    send(&app, &token, &id, &data, 4096, &[0, 2]).await;
    redis.crash_and_restart().await;
    let again = eventually(30, "pan to reach the restarted Redis", || async {
        let (code, body) = app.init(&token, "a.bin", &data).await;
        (code == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(again["status"], "resume", "{again}");
    assert_eq!(again["uploadID"], id.as_str());
    assert_eq!(again["uploaded"], serde_json::json!([0, 2]));
    send(&app, &token, &id, &data, 4096, &[1]).await;
    let (code, _) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    assert_eq!(app.wait_merged(&token, &id).await["state"], "done");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(bytes, data);
}

/// Without AOF, a Redis crash forgets unfinished uploads: they answer a
/// clear 404 and start again; finished files (rows and bytes) are untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_aof_a_redis_crash_forgets_unfinished_uploads_with_a_clear_404() {
    let mut redis = RedisServer::start(false).await;
    let app =
        TestApp::builder(Deployment::Fleet).env("REDIS_URL", &redis.url()).env("PAN_CHUNK_SIZE", "4096").spawn().await;
    let token = app.user(&uname("noaof")).await;
    let finished = test_bytes(5000, 81);
    assert_eq!(app.upload(&token, "kept.bin", &finished).await["state"], "done");
    let data = test_bytes(3 * 4096, 82);
    let (_, init) = app.init(&token, "b.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    send(&app, &token, &id, &data, 4096, &[0]).await;
    redis.crash_and_restart().await;
    let (code, body) = eventually(30, "pan to reach the restarted Redis", || async {
        let (code, body) = app.status(&token, &id).await;
        (code != StatusCode::SERVICE_UNAVAILABLE).then_some((code, body))
    })
    .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "UPLOAD_NOT_FOUND");
    let (_, again) = app.init(&token, "b.bin", &data).await;
    assert_eq!(again["status"], "new", "{again}");
    let (code, _, bytes) = app.download(&token, &sha1_hex(&finished), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, finished, "finished files do not live in Redis");
}

both!(
    /// `api admin audit --deep` is clean after ordinary uploads, and names each
    /// kind of difference (missing bytes, changed bytes, unreferenced files)
    /// once one is made.
    the_audit_is_clean_after_normal_work_and_names_what_differs,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let token = app.user(&uname("audit")).await;
        let one = test_bytes(10_000, 90);
        let two = test_bytes(3000, 91);
        assert_eq!(app.upload(&token, "one.bin", &one).await["state"], "done");
        assert_eq!(app.upload(&token, "two.bin", &two).await["state"], "done");
        app.wait_staging_empty().await;
        let (code, out, err) = app.admin(&["audit", "--deep", "--grace", "0"], "");
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("2 stored files, 13000 bytes checked") && out.contains("consistent"), "{out}");

        let files_dir = app.data.path().join("files");
        let stored = app.stored();
        let path_of = |bytes: &[u8]| {
            let key = stored.iter().find(|(_, b)| b.as_slice() == bytes).map(|(k, _)| k.clone()).expect("stored");
            files_dir.join(key)
        };
        // One flipped byte: the size is right, only a deep audit sees it.
        let mut bad = one.clone();
        bad[5000] ^= 1;
        std::fs::write(path_of(&one), &bad).unwrap();
        let (code, out, _) = app.admin(&["audit"], "");
        assert_eq!(code, Some(0), "a quick audit checks existence and size: {out}");
        let (code, out, _) = app.admin(&["audit", "--deep"], "");
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("stored files whose bytes do not match their digests: 1"), "{out}");
        // Bytes gone, and bytes no row refers to.
        std::fs::remove_file(path_of(&two)).unwrap();
        std::fs::write(files_dir.join("stray"), b"left over").unwrap();
        let (code, out, err) = app.admin(&["audit", "--grace", "0"], "");
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("stored files missing their bytes: 1"), "{out}");
        assert!(out.contains("stored bytes no row refers to: 1") && out.contains("stray"), "{out}");
        assert!(err.contains("2 kind(s) of inconsistency"), "{err}");
    }
);
