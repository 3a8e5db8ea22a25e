//! Chunks landing in place and the running hash that follows them in:
//! hashed chunks never change, received ones not yet hashed may be
//! replaced, the hash survives the process that computed it, and the merge
//! has only the rest to hash.

use pan_tests::*;

const CHUNK: usize = 4096;

/// The bytes of chunk `i` of `data`.
fn chunk(data: &[u8], i: u64) -> Vec<u8> {
    data[i as usize * CHUNK..((i as usize + 1) * CHUNK).min(data.len())].to_vec()
}

/// Waits until the upload's running hash has passed `n` chunks.
async fn wait_hashed(app: &TestApp, token: &str, id: &str, n: u64) {
    eventually(30, &format!("{n} chunks hashed"), || async {
        let (_, status) = app.status(token, id).await;
        (status["hashed_count"] == n).then_some(())
    })
    .await;
}

both!(
    /// A chunk the running hash has already taken, sent again with other bytes,
    /// is refused with 409 `CHUNK_CONFLICT`, and the stored file keeps the
    /// first bytes' hashes.
    a_hashed_chunk_sent_again_with_other_bytes_is_refused_and_the_file_keeps_its_hashes,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let token = app.user(&uname("hashed")).await;
        let data = test_bytes(CHUNK * 3 - 100, 31);
        let (_, init) = app.init(&token, "h.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        for i in 0..3 {
            let (code, body) = app.put_chunk(&token, &id, i, chunk(&data, i)).await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
        wait_hashed(&app, &token, &id, 3).await;

        // The same bytes again are fine (a client retrying a lost answer)…
        let (code, body) = app.put_chunk(&token, &id, 1, chunk(&data, 1)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        // …other bytes are refused: what the hash has passed never changes.
        let mut other = chunk(&data, 1);
        other[10] ^= 0x55;
        let (code, body) = app.put_chunk(&token, &id, 1, other).await;
        assert_eq!(code, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "CHUNK_CONFLICT", "{body}");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["uploaded_count"], 3, "the chunk still counts: {status}");

        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["hashed_count"], 3, "{done}");
        assert_eq!(done["file"]["sha256"], sha256_hex(&data), "{done}");
        let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data, "the stored bytes are the hashed ones");
        app.assert_consistent().await;
    }
);

both!(
    /// The running hash stops at the first missing chunk and catches up once it
    /// arrives (`hashed_count` in the status shows both).
    the_running_hash_waits_for_the_first_gap_then_catches_up,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096").env("PAN_EMBEDDED_WORKERS", "false").workers(0),
    |app| {
        let token = app.user(&uname("gap")).await;
        let data = test_bytes(CHUNK * 6 + 1, 32);
        let (_, init) = app.init(&token, "g.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        // Everything but chunks 0 and 3, last first.
        for i in [6, 5, 4, 2, 1] {
            let (code, body) = app.put_chunk(&token, &id, i, chunk(&data, i)).await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["hashed_count"], 0, "nothing can be hashed before chunk 0: {status}");
        app.put_chunk(&token, &id, 0, chunk(&data, 0)).await;
        wait_hashed(&app, &token, &id, 3).await;
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["hashed_count"], 3, "the hash stops at the gap (chunk 3): {status}");
        app.put_chunk(&token, &id, 3, chunk(&data, 3)).await;
        wait_hashed(&app, &token, &id, 7).await;
    }
);

both!(
    /// A received chunk the running hash has not reached yet may be sent again
    /// with other bytes, and the last send is what is stored.
    a_received_chunk_not_yet_hashed_may_be_replaced, |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"), |app| {
    let token = app.user(&uname("replace")).await;
    let data = test_bytes(CHUNK * 3, 33);
    let (_, init) = app.init(&token, "r.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // Chunk 1 first, with wrong bytes; chunk 0 is missing, so nothing is hashed.
    let mut wrong = chunk(&data, 1);
    wrong[0] ^= 1;
    assert_eq!(app.put_chunk(&token, &id, 1, wrong).await.0, StatusCode::OK);
    let (_, status) = app.status(&token, &id).await;
    assert_eq!(status["hashed_count"], 0, "{status}");
    // A send again replaces it; a refused send again leaves it whole.
    assert_eq!(app.put_chunk(&token, &id, 1, chunk(&data, 1)).await.0, StatusCode::OK);
    let (code, body) = app.put_chunk(&token, &id, 1, chunk(&data, 1)[..100].to_vec()).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "CHUNK_SIZE_MISMATCH", "{body}");
    assert_eq!(app.put_chunk(&token, &id, 0, chunk(&data, 0)).await.0, StatusCode::OK);
    assert_eq!(app.put_chunk(&token, &id, 2, chunk(&data, 2)).await.0, StatusCode::OK);
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "the replacement is what was stored: {done}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(bytes, data);
    app.assert_consistent().await;
});

both!(
    /// The running hash's saved state outlives the api process that computed
    /// it: after a kill, hashing resumes where it was saved and the file's
    /// hashes are right.
    the_saved_hash_outlives_the_process_that_computed_it,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "65536"),
    |app| {
        let token = app.user(&uname("outlive")).await;
        let data = test_bytes(65536 * 40 + 7, 34);
        let (_, init) = app.init(&token, "o.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        for i in 0..20u64 {
            let piece = data[i as usize * 65536..(i as usize + 1) * 65536].to_vec();
            assert_eq!(app.put_chunk(&token, &id, i, piece).await.0, StatusCode::OK);
        }
        // Killed while (or right after) hashing: whatever it saved stands.
        app.kill_api();
        app.restart_api().await;
        for i in 20..41u64 {
            let piece = data[i as usize * 65536..((i as usize + 1) * 65536).min(data.len())].to_vec();
            let (code, body) = app.put_chunk(&token, &id, i, piece).await;
            assert_eq!(code, StatusCode::OK, "{body}");
        }
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["file"]["sha256"], sha256_hex(&data), "{done}");
        let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert_eq!(bytes, data);
    }
);

/// The same rules with chunks staged on S3 (one object per send): the
/// running hash reads them back, the merge fetches them into one file.
async fn s3_staging_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_CHUNK_SIZE", "65536")
        .spawn()
        .await;
    let token = app.user(&uname("s3h")).await;
    let data = test_bytes(65536 * 3 + 5, 35);
    let (_, init) = app.init(&token, "s.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let part = |i: usize| data[i * 65536..((i + 1) * 65536).min(data.len())].to_vec();
    for i in [1usize, 0, 2, 3] {
        assert_eq!(app.put_chunk(&token, &id, i as u64, part(i)).await.0, StatusCode::OK);
    }
    wait_hashed(&app, &token, &id, 4).await;
    let mut other = part(2);
    other[0] ^= 1;
    let (code, body) = app.put_chunk(&token, &id, 2, other).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "CHUNK_CONFLICT");
    app.complete(&token, &id).await;
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(bytes, data);
    eventually(30, "the staged chunks gone", || async { g.objects("staging").await.is_empty().then_some(()) }).await;
}
on_both!(
    /// With chunks staged on S3 the running hash and the merge follow the same
    /// rules as with a local staging directory.
    chunks_staged_on_s3_follow_the_same_rules, s3_staging_body);

both!(
    /// A process killed between writing a chunk and marking it leaves the chunk
    /// unreceived: the status does not list it and a resend completes the
    /// upload.
    a_process_killed_between_writing_a_chunk_and_marking_it_leaves_it_unreceived,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4194304"),
    |app| {
        use tokio::io::AsyncWriteExt;
        let token = app.user(&uname("torn")).await;
        let data = test_bytes(3 << 22, 36);
        let (_, init) = app.init(&token, "t.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        for i in [1usize, 2] {
            let piece = data[i << 22..(i + 1) << 22].to_vec();
            assert_eq!(app.put_chunk(&token, &id, i as u64, piece).await.0, StatusCode::OK);
        }
        // Three quarters of chunk 0, wrong bytes, land in place; then the process dies.
        let mut torn = app.raw_chunk_head(&token, &id, 1 << 22).await;
        torn.write_all(&vec![0xee; 3 << 20]).await.unwrap();
        let data_file = app.data.path().join("staging").join(&id).join("data");
        eventually(10, "the torn chunk's bytes in the data file", || async {
            let bytes = std::fs::read(&data_file).ok()?;
            (bytes.len() == data.len() && bytes[..1 << 20].iter().all(|&b| b == 0xee)).then_some(())
        })
        .await;
        app.kill_api();
        drop(torn);
        app.restart_api().await;

        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["uploaded"], serde_json::json!([1, 2]), "written but never marked: not received: {status}");
        assert_eq!(status["hashed_count"], 0, "{status}");
        // The dead process's claim on chunk 0 runs out (15 s); then it is sent again.
        let (code, body) = app.put_chunk_patiently(&token, &id, 0, data[..1 << 22].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        app.complete(&token, &id).await;
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done", "{done}");
        let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert!(bytes == data, "the stored file holds the chunk sent again, not the torn one");
        app.assert_consistent().await;
    }
);
