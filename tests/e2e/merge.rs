//! Merging: byte-exact files of every awkward size, hash verification,
//! dedup, crashes and full disks.

use pan_tests::*;

const CHUNK: usize = 64 * 1024;

both!(
    /// Files of awkward sizes (0, 1, one chunk, one chunk plus a byte, many
    /// chunks) download byte-exact with their SHA-256 ETag, and are counted in
    /// the user's info.
    uploaded_files_download_with_the_same_sha1_for_awkward_sizes,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "65536"),
    |app| {
        let token = app.user(&uname("sizes")).await;
        for (n, size) in [0, 1, CHUNK, CHUNK + 1, 20 * CHUNK].into_iter().enumerate() {
            let data = test_bytes(size, 100 + n as u64);
            let done = app.upload(&token, &format!("f{size}.bin"), &data).await;
            assert_eq!(done["state"], "done", "{size}: {done}");
            assert_eq!(done["file"]["filesize"], size as u64);
            let (code, headers, bytes) = app.download(&token, &sha1_hex(&data), None).await;
            assert_eq!(code, StatusCode::OK);
            assert_eq!(bytes.len(), size);
            assert_eq!(sha1_hex(&bytes), sha1_hex(&data), "size {size}");
            assert_eq!(headers["etag"], format!("\"{}\"", sha256_hex(&data)).as_str());
        }
        app.wait_staging_empty().await;
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["file_count"], 5);
        assert_eq!(info["bytes_used"], (1 + CHUNK + CHUNK + 1 + 20 * CHUNK) as u64);
    }
);

both!(
    /// An upload whose declared SHA-1 is not the bytes' fails the merge with
    /// `SHA1_MISMATCH` naming both hashes, stores nothing, and stays failed.
    a_declared_hash_that_does_not_match_fails_with_the_reason,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "65536"),
    |app| {
        let token = app.user(&uname("liar")).await;
        let data = test_bytes(3 * CHUNK, 11);
        let claimed = sha1_hex(b"something else");
        let (code, init) = app
            .post_json(
                "/file/mupload/init",
                Some(&token),
                &serde_json::json!({"filename": "x", "filehash": claimed, "filesize": data.len()}),
            )
            .await;
        assert_eq!(code, StatusCode::OK);
        let id = init["uploadID"].as_str().unwrap().to_owned();
        for i in 0..3 {
            let (code, body) =
                app.put_chunk(&token, &id, i, data[i as usize * CHUNK..(i as usize + 1) * CHUNK].to_vec()).await;
            assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
        }
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let end = app.wait_merged(&token, &id).await;
        assert_eq!(end["state"], "failed", "{end}");
        let reason = end["reason"].as_str().unwrap();
        assert!(reason.contains(&claimed) && reason.contains(&sha1_hex(&data)), "{reason}");
        assert_eq!(end["reason_code"], "SHA1_MISMATCH", "{end}");
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 0);
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 0);
        app.wait_staging_empty().await;
        assert!(app.stored().is_empty());
        let (code, again) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::OK, "a failed hash check is final: {again}");
        assert_eq!(again["state"], "failed");
    }
);

both!(
    /// Two users uploading the same content share one stored copy; it stays
    /// while either still references it (also from the trash) and goes with the
    /// last reference.
    two_users_share_one_stored_copy_until_both_delete_it,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "65536"),
    |app| {
        let (a, b) = (app.user(&uname("a")).await, app.user(&uname("b")).await);
        let data = test_bytes(2 * CHUNK + 5, 12);
        let hash = sha1_hex(&data);
        // Both upload the whole file (the second init is instant only once the first is done).
        let (ra, rb) = tokio::join!(app.upload(&a, "a.bin", &data), app.upload(&b, "b.bin", &data));
        assert!(["done", "instant"].contains(&ra["state"].as_str().or(ra["status"].as_str()).unwrap()));
        assert!(["done", "instant"].contains(&rb["state"].as_str().or(rb["status"].as_str()).unwrap()));
        assert_eq!(app.stored().len(), 1, "one stored object");
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 2);
        assert_eq!(app.sql_count("SELECT refcount FROM files").await, 2);

        let (code, _) = app.call("DELETE", &format!("/file/delete?filehash={hash}&permanent=true"), Some(&a)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _, bytes) = app.download(&a, &hash, None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let body: serde_json::Value = serde_json::from_slice(&bytes).expect("a JSON error");
        assert_eq!(body["code"], "FILE_NOT_FOUND");
        let (code, _, bytes) = app.download(&b, &hash, None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data);
        assert_eq!(app.stored().len(), 1);

        // Into the trash first: the trash still holds the bytes.
        let (code, _) = app.call("DELETE", &format!("/file/delete?filehash={hash}"), Some(&b)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(app.stored().len(), 1, "a file in the trash keeps its bytes");
        let (_, trash) = app.call("GET", "/trash/list", Some(&b)).await;
        let id = trash["entries"][0]["entry"]["id"].as_str().expect("the file is in the trash").to_owned();
        let (code, _) = app.call("DELETE", &format!("/trash/purge?id={id}"), Some(&b)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert!(app.stored().is_empty(), "the bytes go with the last reference");
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 0);
    }
);

/// A fleet with no worker yet, a big upload completed, and one worker
/// process caught in the middle of merging it: (app, token, upload id,
/// the file's bytes, the worker's index, the Garage holding the chunks).
async fn merge_in_flight(size: usize, seed: u64) -> (TestApp, String, String, Vec<u8>, usize, GarageServer) {
    // Chunks staged on S3: the merge fetches them into one file, which takes
    // long enough to be caught in flight (a local staging store's merge is
    // a link and a commit).
    let g = GarageServer::start().await;
    let mut app = TestApp::builder(Deployment::Fleet)
        .s3(&g)
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_CHUNK_SIZE", "8388608")
        .env("PAN_MERGE_THREADS", "1")
        .workers(0)
        .spawn()
        .await;
    let token = app.user(&uname("inflight")).await;
    let data = test_bytes(size, seed);
    let id = app.send_all_chunks(&token, "big.bin", &data).await;
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    app.wait_past_merge_start(&token, &id).await;
    let worker = app.spawn_worker();
    app.wait_for_merge_start(&token, &id).await;
    (app, token, id, data, worker, g)
}

/// A worker killed with SIGKILL in the middle of a merge: another worker
/// process picks the orphaned job up and finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_killed_mid_way_is_finished_by_another_worker() {
    let (mut app, token, id, data, first, _garage) = merge_in_flight(160 << 20, 13).await;
    app.kill_worker(first);
    let (_, status) = app.status(&token, &id).await;
    assert_eq!(status["state"], "merging", "the kill came before the merge finished");
    let started = status["merge_started_at"].as_i64().expect("status says when the merge started");
    assert!(started >= status["created_at"].as_i64().unwrap(), "{status}");
    assert!(status["merging_seconds"].as_i64().unwrap() >= 0, "{status}");

    app.spawn_worker();
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 1);
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 1);
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));
    app.assert_consistent().await;
}

/// SIGTERM stops a worker gracefully: the merge in flight finishes first,
/// then what it started in the background (its heartbeat), then the process
/// exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_merge_in_flight_finish() {
    let (mut app, token, id, data, worker, _garage) = merge_in_flight(96 << 20, 15).await;
    let code = app.terminate_worker(worker, 120).await;
    assert_eq!(code, Some(0), "a graceful stop exits 0");
    let log = std::fs::read_to_string(app.data.path().join("worker.log")).unwrap();
    assert!(log.contains("background tasks finished"), "the worker waited for its background tasks:\n{log}");
    let (_, status) = app.status(&token, &id).await;
    assert_eq!(status["state"], "done", "the merge in flight finished before the exit: {status}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));
}

/// A merge on a nearly full filesystem fails cleanly (no crash, the reason in
/// the status, the chunks kept) and succeeds when complete is called again
/// after space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_on_a_full_disk_fails_cleanly_and_can_be_retried() {
    let store = tempfile::tempdir().unwrap();
    let mount = TmpfsMount::new(store.path(), "4m");
    let url = format!("file://{}", store.path().display());
    let app = TestApp::builder(Deployment::Embedded)
        .env("PAN_STORE_URL", &url)
        .env("PAN_CHUNK_SIZE", "1048576")
        .spawn()
        .await;
    let token = app.user(&uname("full")).await;
    let data = test_bytes(6 << 20, 14);
    let (_, init) = app.init(&token, "big.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    for i in 0..6usize {
        let (code, body) = app.put_chunk(&token, &id, i as u64, data[i << 20..(i + 1) << 20].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let end = app.wait_merged(&token, &id).await;
    assert_eq!(end["state"], "failed", "{end}");
    assert!(end["reason"].as_str().unwrap().contains("space"), "{end}");
    assert_eq!(end["reason_code"], "ASSEMBLY_FAILED", "a full disk while assembling: {end}");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 0);
    let kept = app.staged_chunks(&id, 1 << 20, &(0..6).collect::<Vec<_>>());
    assert!(
        kept.iter().all(|(&i, b)| b[..] == data[(i as usize) << 20..(i as usize + 1) << 20]),
        "chunks are kept for a retry"
    );

    mount.resize("64m");
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(done.get("reason_code").is_none(), "the retried merge dropped the old failure: {done}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));
    drop(app);
}

both!(
    /// A merge whose job was lost (merging, no job, silent heartbeat) is
    /// enqueued again by the clean-up, and a client that only polls status gets
    /// its file.
    a_merge_whose_job_was_lost_is_enqueued_again_by_the_clean_up,
    |b: TestAppBuilder| b
        .env("PAN_CHUNK_SIZE", "4096")
        .env("PAN_SWEEP_SCHEDULE", "*/2 * * * * *")
        .env("PAN_MERGE_STALL_SECS", "10"),
    |app| {
        let token = app.user(&uname("lost")).await;
        let data = test_bytes(10_000, 70);
        let id = app.send_all_chunks(&token, "lost.bin", &data).await;
        // A crash between complete's state change and its push: merging, no job.
        app.lose_merge_job(&id, 3600).await;
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["state"], "merging");
        // A client that only polls status still gets its file.
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data);
        app.assert_consistent().await;
    }
);
