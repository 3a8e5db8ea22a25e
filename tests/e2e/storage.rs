//! Object storage against a real S3-compatible server (Garage): backups,
//! the download fallback and repair, signed URLs, clean-up, outages.

use pan_tests::*;

async fn backup_body(d: Deployment) {
    let g = GarageServer::start().await;
    // Only the files' copies: no metadata backup in the count.
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_BACKUP_URL", "s3://pan-test/backup")
        .env("PAN_METADATA_BACKUP_SECS", "0")
        .spawn()
        .await;
    let token = app.user(&uname("bk")).await;
    let data = test_bytes(300_000, 50);
    let done = app.upload(&token, "b.bin", &data).await;
    assert_eq!(done["state"], "done");
    let objects = eventually(30, "the backup object", || async {
        let o = g.objects("backup").await;
        (!o.is_empty()).then_some(o)
    })
    .await;
    assert_eq!(objects.len(), 1);
    assert_eq!(objects.values().next().unwrap(), &data, "the backup has the same bytes");
    eventually(30, "backup_state done", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
    })
    .await;
}
on_both!(
    /// Every stored file is copied to the S3 backup with identical bytes.
    uploads_are_backed_up_to_s3_with_identical_bytes, backup_body);

async fn fallback_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d).s3(&g).env("PAN_BACKUP_URL", "s3://pan-test/backup").spawn().await;
    let token = app.user(&uname("fb")).await;
    let data = test_bytes(200_000, 51);
    let hash = sha1_hex(&data);
    app.upload(&token, "f.bin", &data).await;
    eventually(30, "backup done", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
    })
    .await;
    let stored = app.stored();
    let (path, _) = stored.iter().next().unwrap();
    let full = app.data.path().join("files").join(path);
    std::fs::remove_file(&full).unwrap();

    let (code, _, bytes) = app.download(&token, &hash, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, data, "served from the backup");
    let (code, _, bytes) = app.download(&token, &hash, Some("bytes=100-199")).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, &data[100..200]);
    let restored = eventually(30, "the primary copy restored", || async {
        std::fs::read(&full).ok().filter(|b| b.len() == data.len())
    })
    .await;
    assert_eq!(restored, data);
}
on_both!(
    /// A file whose primary copy is missing is served from the backup and put back
/// in the primary store.
    a_missing_primary_is_served_from_the_backup_and_restored, fallback_body);

async fn empty_file_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_STORE_URL", "s3://pan-test/files")
        .env("PAN_BACKUP_URL", "s3://pan-test/backup")
        .spawn()
        .await;
    let token = app.user(&uname("e0")).await;
    let done = app.upload(&token, "empty.bin", b"").await;
    assert_eq!(done["state"], "done", "an empty file is merged into S3: {done}");
    let (code, _, bytes) = app.download(&token, &sha1_hex(b""), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(bytes.is_empty());
    eventually(30, "the empty file's backup", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
    })
    .await;
    let objects = g.objects("").await;
    assert_eq!(objects.len(), 2, "the file and its backup: {:?}", objects.keys());
    assert!(objects.values().all(|b| b.is_empty()));
}
on_both!(
    /// An empty file is stored on an S3 store and backed up, and downloads as zero
/// bytes.
    an_empty_file_is_stored_and_backed_up_on_s3, empty_file_body);

async fn presigned_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_STORE_URL", "s3://pan-test/files")
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_CHUNK_SIZE", "65536")
        .spawn()
        .await;
    let token = app.user(&uname("ps")).await;
    let data = test_bytes(200_000, 52);
    let hash = sha1_hex(&data);
    let done = app.upload(&token, "p.bin", &data).await;
    assert_eq!(done["state"], "done", "merge through S3 staging and store: {done}");
    eventually(30, "the staged chunks to be deleted", || async { g.objects("staging").await.is_empty().then_some(()) })
        .await;
    let (code, _, bytes) = app.download(&token, &hash, Some("bytes=-10")).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, &data[data.len() - 10..]);

    let (code, body) = app.call("POST", &format!("/file/downloadurl?filehash={hash}&expires_in=2"), Some(&token)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&g.endpoint), "presigned by the store: {url}");
    let plain = reqwest::Client::new();
    let resp = plain.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let cd = resp.headers().get("content-disposition").map(|v| v.to_str().unwrap_or("").to_owned());
    assert!(cd.as_deref().is_some_and(|cd| cd.contains("p.bin")), "the store names the file: {cd:?}");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
    let resp = plain.get(&url).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), &data[10..20]);
    // Garage answers an expired presigned URL with 400 (AWS says 403).
    eventually(10, "the presigned URL to expire (Garage's 400)", || async {
        let code = plain.get(&url).send().await.unwrap().status();
        (code == StatusCode::BAD_REQUEST).then_some(())
    })
    .await;
}
on_both!(
    /// Download URLs from an S3 store are presigned by the store, serve ranges, and
/// stop working when they expire.
    presigned_urls_from_an_s3_store_serve_ranges_and_expire, presigned_body);

both!(
    /// Download URLs signed by the api serve ranges without a token, and refuse
    /// a tampered or expired signature with 403.
    signed_urls_from_the_api_serve_ranges_and_refuse_tampering_and_expiry, |app| {
    let token = app.user(&uname("su")).await;
    let data = test_bytes(5000, 53);
    let hash = sha1_hex(&data);
    app.upload(&token, "s.bin", &data).await;
    let (code, body) = app.call("POST", &format!("/file/downloadurl?filehash={hash}&expires_in=2"), Some(&token)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base), "{url}");
    assert!(!url.contains(&hash), "the link names the entry, not the content: {url}");
    // The host of the link is pan's own, whatever Host the request claims.
    let forged = app
        .http
        .post(app.url(&format!("/file/downloadurl?filehash={hash}")))
        .bearer_auth(&token)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    let forged: serde_json::Value = forged.json().await.unwrap();
    assert!(forged["url"].as_str().unwrap().starts_with(&app.base), "{forged}");
    let plain = reqwest::Client::new();
    let resp = plain.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().contains("s.bin"));
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
    let resp = plain.get(&url).header("range", "bytes=4990-").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), &data[4990..]);
    let entry = url.split("id=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    for tampered in [url.replace("uid=", "uid=9"), format!("{}0", url), url.replace(&entry, &"0".repeat(32))] {
        let resp = plain.get(&tampered).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{tampered}");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "URL_INVALID");
    }
    let other = app.user(&uname("other")).await;
    let (code, _) = app.call("POST", &format!("/file/downloadurl?filehash={hash}"), Some(&other)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "only the owner gets a URL");
    let expired = eventually(10, "the URL to expire", || async {
        let resp = plain.get(&url).send().await.unwrap();
        (resp.status() == StatusCode::FORBIDDEN).then_some(resp)
    })
    .await;
    let body: serde_json::Value = expired.json().await.unwrap();
    assert_eq!(body["code"], "URL_EXPIRED");
});

both!(
    /// The clean-up deletes an upload left past `PAN_UPLOAD_TTL`: its staged chunks
/// go and its status answers 404.
    an_abandoned_upload_loses_its_chunks_and_its_status,
    |b: TestAppBuilder| b
        .env("PAN_UPLOAD_TTL", "1")
        .env("PAN_SWEEP_SCHEDULE", "* * * * * *")
        .env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("ab")).await;
        let data = test_bytes(3000, 54);
        let (_, init) = app.init(&token, "a.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, _) = app.put_chunk(&token, &id, 0, data[..1024].to_vec()).await;
        assert_eq!(code, StatusCode::OK);
        eventually(20, "the staged chunks to be swept", || async { app.staging().is_empty().then_some(()) }).await;
        let (code, body) = app.status(&token, &id).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    }
);

async fn outage_body(d: Deployment) {
    let mut g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_BACKUP_URL", "s3://pan-test/backup")
        .env("PAN_METADATA_BACKUP_SECS", "0")
        .env("PAN_SWEEP_SCHEDULE", "*/2 * * * * *")
        .spawn()
        .await;
    let token = app.user(&uname("out")).await;
    g.stop();
    let data = test_bytes(100_000, 55);
    let done = app.upload(&token, "o.bin", &data).await;
    assert_eq!(done["state"], "done", "uploads do not depend on the backup store");
    eventually(60, "a failed backup attempt", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'failed' AND backup_attempts >= 1").await == 1)
            .then_some(())
    })
    .await;
    g.restart().await;
    eventually(90, "the backup to complete after the store is back", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
    })
    .await;
    let objects = g.objects("backup").await;
    assert_eq!(objects.values().next(), Some(&data));
}
on_both!(
    /// Backups fail (and are retried) while the backup store is down, and complete
/// once it is back.
    backups_fail_while_the_store_is_down_and_complete_after, outage_body);

both!(
    /// The scrub deletes stored and backup files that no row references once
    /// they are old enough, and never a referenced or a young one, nor a
    /// metadata backup.
    the_scrub_deletes_old_unreferenced_stored_and_backup_files_only,
    |b: TestAppBuilder| b
        .env("PAN_SWEEP_SCHEDULE", "* * * * * *")
        .env("PAN_SCRUB_ALWAYS", "true")
        .env_in_data("PAN_BACKUP_URL", "file://{data}/backup"),
    |app| {
        let token = app.user(&uname("scrub")).await;
        let data = test_bytes(1000, 56);
        app.upload(&token, "kept.bin", &data).await;
        // A backup copy of a file deleted while it was being copied.
        let backup = app.data.path().join("backup");
        eventually(20, "the kept file's backup", || async {
            (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
        })
        .await;
        // The metadata's own backup, two days old: no file row names it,
        // and the scrub leaves it alone all the same.
        let metadata = eventually(20, "a metadata backup", || async {
            std::fs::read_dir(backup.join("metadata")).ok()?.flatten().next().map(|e| e.path())
        })
        .await;
        assert!(std::process::Command::new("touch").args(["-d", "2 days ago"]).arg(&metadata).status().unwrap().success());
        std::fs::create_dir_all(backup.join("ef/01")).unwrap();
        let stray = backup.join("ef/01/deleted-during-backup");
        std::fs::write(&stray, b"z").unwrap();
        assert!(std::process::Command::new("touch").args(["-d", "2 days ago"]).arg(&stray).status().unwrap().success());
        // What a merge killed between storing and recording leaves behind,
        // two days old, beside a fresh one that a merge may still record.
        let files = app.data.path().join("files");
        std::fs::create_dir_all(files.join("ab/cd")).unwrap();
        let old = files.join("ab/cd/old-orphan");
        let fresh = files.join("ab/cd/fresh-orphan");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&fresh, b"y").unwrap();
        let aged = std::process::Command::new("touch").args(["-d", "2 days ago"]).arg(&old).status().unwrap();
        assert!(aged.success());
        eventually(20, "the old orphan to be scrubbed", || async { (!old.exists()).then_some(()) }).await;
        assert!(fresh.exists(), "a file younger than a day is left alone");
        eventually(20, "the old backup orphan to be scrubbed", || async { (!stray.exists()).then_some(()) }).await;
        let kept: Vec<String> = files_under(&backup).into_keys().collect();
        assert_eq!(kept.iter().filter(|k| !k.starts_with("metadata/")).count(), 1, "the kept file's backup stays: {kept:?}");
        assert!(metadata.exists(), "the metadata backup is not the scrub's: {kept:?}");
        let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data, "referenced files are kept");
    }
);

/// With S3 staging and an S3 file store, a merge needs no local disk: the
/// store composes the file from the staged chunk objects (chunks of 5 MiB
/// and more are parts it can copy). The data directory's scratch is made
/// unusable (a plain file where the directory would be), so any byte the
/// merge tried to assemble locally would fail it (as it does with 1 MiB
/// chunks: `ASSEMBLY_FAILED`).
async fn no_scratch_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_STORE_URL", "s3://pan-test/files")
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_CHUNK_SIZE", &(5u64 << 20).to_string())
        .spawn()
        .await;
    let scratch = app.data.path().join("tmp");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::write(&scratch, b"not a directory").unwrap();
    let token = app.user(&uname("ns")).await;
    let data = test_bytes((11 << 20) + 123, 58);
    let done = app.upload(&token, "big.bin", &data).await;
    assert_eq!(done["state"], "done", "merged without local scratch: {done}");
    let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, data);
    eventually(30, "the staged chunks to be deleted", || async { g.objects("staging").await.is_empty().then_some(()) })
        .await;
    let files = g.objects("files").await;
    assert_eq!(files.len(), 1, "one stored object: {:?}", files.keys());
    assert!(files.values().all(|b| *b == data));
    assert!(std::fs::metadata(&scratch).unwrap().is_file(), "the scratch was never needed");

    // Bytes other than the declared ones: stored while they were hashed,
    // then deleted; the upload fails and the store holds what it held.
    let other = test_bytes((5 << 20) + 1, 59);
    let claimed = sha1_hex(b"something else");
    let body = serde_json::json!({"filename": "liar.bin", "filehash": claimed, "filesize": other.len()});
    let (code, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    for (i, part) in [(0, &other[..5 << 20]), (1, &other[5 << 20..])] {
        let (code, body) = app.put_chunk(&token, &id, i, part.to_vec()).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let end = app.wait_merged(&token, &id).await;
    assert_eq!(end["reason_code"], "SHA1_MISMATCH", "{end}");
    let files = g.objects("files").await;
    assert_eq!(files.len(), 1, "the unverified copy went: {:?}", files.keys());
}
on_both!(
    /// A merge from S3 staging to an S3 store writes nothing to local disk.
    a_merge_from_s3_staging_to_an_s3_store_uses_no_local_disk, no_scratch_body);

async fn s3_outage_body(d: Deployment) {
    let mut g = GarageServer::start().await;
    let app = TestApp::builder(d)
        .s3(&g)
        .env("PAN_STORE_URL", "s3://pan-test/files")
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_CHUNK_SIZE", "65536")
        .spawn()
        .await;
    let token = app.user(&uname("s3out")).await;
    let stored = test_bytes(70_000, 56);
    assert_eq!(app.upload(&token, "stored.bin", &stored).await["state"], "done");
    let data = test_bytes(65_536, 57);
    let (_, init) = app.init(&token, "later.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    g.stop();
    // The store is away: the client is told to retry, not that pan broke.
    let req = app.http.post(app.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx=0")));
    let resp = req.bearer_auth(&token).header("content-type", "application/octet-stream").body(data.clone());
    let resp = resp.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "BACKEND_UNAVAILABLE", "{body}");
    let (code, headers, body) = app.download(&token, &sha1_hex(&stored), None).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{}", String::from_utf8_lossy(&body));
    assert!(headers.contains_key("retry-after"));
    g.restart().await;
    let sent = eventually(60, "the chunk to be taken once the store is back", || async {
        let (code, body) = app.put_chunk(&token, &id, 0, data.clone()).await;
        (code == StatusCode::OK).then_some(body)
    })
    .await;
    assert_eq!(sent["chkidx"], 0);
    let (code, _, bytes) = app.download(&token, &sha1_hex(&stored), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, stored);
}
on_both!(
    /// While the S3 store is down, requests that need it answer 503
    /// `BACKEND_UNAVAILABLE` (never 500), and everything works again once it is
    /// back.
    an_s3_outage_answers_503_backend_unavailable_and_recovers, s3_outage_body);

/// Previews: a same-origin URL signed by pan also when the store is S3, the
/// media type for what a browser can show, attachment and octet-stream for
/// anything that could carry script, and no script either way.
async fn preview_body(d: Deployment) {
    let g = GarageServer::start().await;
    let app = TestApp::builder(d).s3(&g).env("PAN_STORE_URL", "s3://pan-test/files").spawn().await;
    let token = app.user(&uname("pv")).await;
    let video = test_bytes(200_000, 61);
    for (name, data) in [("clip.mp4", video.clone()), ("page.html", b"<script>alert(1)</script>".to_vec())] {
        let done = app.upload(&token, name, &data).await;
        assert_eq!(done["state"], "done");
    }
    let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
    let id_of = |name: &str| {
        list["files"].as_array().unwrap().iter().find(|f| f["filename"] == name).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (code, url) =
        app.call("POST", &format!("/file/downloadurl?id={}&inline=true", id_of("clip.mp4")), Some(&token)).await;
    assert_eq!(code, StatusCode::OK, "{url}");
    let url = url["url"].as_str().unwrap();
    assert!(url.starts_with(&app.url("/file/signed?")), "same origin, whatever the store: {url}");
    let resp = app.http.get(url).header("range", "bytes=100000-100999").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "seeking works");
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "video/mp4");
    assert!(h["content-disposition"].to_str().unwrap().starts_with("inline;"));
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    assert_eq!(resp.bytes().await.unwrap(), &video[100_000..101_000]);
    // HTML never shows in place, even when asked.
    let (_, url) =
        app.call("POST", &format!("/file/downloadurl?id={}&inline=true", id_of("page.html")), Some(&token)).await;
    let resp = app.http.get(url["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    // A plain download URL still comes from the store itself.
    let (_, url) = app.call("POST", &format!("/file/downloadurl?id={}", id_of("clip.mp4")), Some(&token)).await;
    assert!(!url["url"].as_str().unwrap().starts_with(&app.url("/")), "presigned by the store: {url}");
}
on_both!(
    /// Previews are same-origin URLs signed by pan (also on S3), typed for what
    /// a browser can show, and attachment/octet-stream for anything that could
    /// carry script.
    previews_are_same_origin_typed_and_never_run_script, preview_body);
