//! SIGKILL at every named crash point (`shared::runtime::crash`), then a restart:
//! nothing acknowledged is lost, nothing is left stuck, and the consistency
//! audit is clean (or finds only unreferenced bytes, which the scrub
//! collects). The embedded deployment runs the merge in the api process,
//! so one kill stops both.

use pan_tests::*;

const CHUNK: usize = 4096;

/// An embedded app that SIGKILLs itself at `point`; quick to notice a lost
/// merge once restarted (the clean-up runs every second, a merge silent
/// for 10 s counts as lost).
async fn app_crashing_at(point: &str) -> TestApp {
    let app = TestApp::builder(Deployment::Embedded)
        .env("PAN_CHUNK_SIZE", &CHUNK.to_string())
        .env("PAN_CRASH_AT", point)
        .env("PAN_SWEEP_SCHEDULE", "* * * * * *")
        .env("PAN_MERGE_STALL_SECS", "10")
        .spawn()
        .await;
    assert_armed(&app);
    app
}

/// The api binary must be a test build (built with the tests, as
/// `scripts/test` does): a plain `cargo build --bin api` has no crash points.
fn assert_armed(app: &TestApp) {
    let log = app.api_log_tail(200);
    assert!(
        log.contains("crash points armed"),
        "this api has no crash points: build it with the tests (cargo build --workspace --bins --tests):\n{log}"
    );
}

/// Waits for the SIGKILL the crash point sends, then starts the api again
/// without the crash point.
async fn crashed_and_restarted(app: &mut TestApp, point: &str) {
    assert_eq!(app.wait_api_death(30).await, Some(libc::SIGKILL), "the api died at {point} by SIGKILL");
    app.set_env("PAN_CRASH_AT", None);
    app.start_api_again().await;
}

/// The bytes of chunk `i`.
fn chunk(data: &[u8], i: u64) -> Vec<u8> {
    data[i as usize * CHUNK..((i as usize + 1) * CHUNK).min(data.len())].to_vec()
}

/// The client's side of a crash during a chunk send: ask what the server
/// has, send the rest, complete, and get the file.
async fn resume_and_finish(app: &TestApp, token: &str, id: &str, data: &[u8]) {
    let (code, status) = app.status(token, id).await;
    assert_eq!(code, StatusCode::OK, "the upload survived the crash: {status}");
    let have: Vec<u64> = status["uploaded"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    for i in (0..data.len().div_ceil(CHUNK) as u64).filter(|i| !have.contains(i)) {
        let (code, body) = app.put_chunk_patiently(token, id, i, chunk(data, i)).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(token, id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(token, id).await;
    assert_eq!(done["state"], "done", "{done}");
}

/// The file is there, whole, under its hash.
async fn assert_stored(app: &TestApp, token: &str, data: &[u8]) {
    let (code, _, bytes) = app.download(token, &sha1_hex(data), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(bytes == data, "the stored bytes are the uploaded ones");
}

async fn crash_during_a_chunk(point: &str) {
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(CHUNK * 3 - 7, 41);
    let (_, init) = app.init(&token, "c.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // The answer never comes: the process dies first.
    let sent = app
        .http
        .post(app.url(&format!("/file/mupload/uppart?uploadID={id}&chkidx=1")))
        .bearer_auth(&token)
        .body(chunk(&data, 1))
        .send()
        .await;
    assert!(sent.is_err(), "no answer from a process that died: {sent:?}");
    crashed_and_restarted(&mut app, point).await;
    resume_and_finish(&app, &token, &id, &data).await;
    assert_stored(&app, &token, &data).await;
    app.assert_consistent().await;
}

/// A body of unknown length sent to a server-hashed upload of unknown size,
/// cut off by a crash at `point`: what counted before the crash is in
/// status's `ranges` (`kept` bytes), the client sends the rest from there,
/// gives the size at complete and gets the file whole.
async fn crash_during_a_streamed_body(point: &str, kept: usize) {
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(CHUNK * 3 - 7, 43);
    let body = serde_json::json!({"filename": "s.bin", "server_hashed": true});
    let (_, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // The answer never comes: the process dies first.
    let pieces: Vec<std::io::Result<bytes::Bytes>> =
        data.chunks(1000).map(|p| Ok(bytes::Bytes::copy_from_slice(p))).collect();
    let sent = app
        .http
        .put(app.url(&format!("/file/mupload/bytes?uploadID={id}&offset=0")))
        .bearer_auth(&token)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        .send()
        .await;
    assert!(sent.is_err(), "no answer from a process that died: {sent:?}");
    crashed_and_restarted(&mut app, point).await;
    let (_, status) = app.status(&token, &id).await;
    let ranges = if kept > 0 { serde_json::json!([{"start": 0, "end": kept}]) } else { serde_json::json!([]) };
    assert_eq!(status["ranges"], ranges, "{status}");
    if kept < data.len() {
        let (code, body) = app.put_bytes_patiently(&token, &id, kept as u64, data[kept..].to_vec(), true).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let (code, body) =
        app.call("POST", &format!("/file/mupload/complete?uploadID={id}&filesize={}", data.len()), Some(&token)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_stored(&app, &token, &data).await;
    app.assert_consistent().await;
}

async fn crash_during_the_merge(point: &str) {
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(CHUNK * 5 + 11, 42);
    let id = app.send_all_chunks(&token, "m.bin", &data).await;
    let (code, _) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    crashed_and_restarted(&mut app, point).await;
    // A client that only polls status gets its file: the merge is run again
    // (the clean-up finds it silent) and finishes exactly once.
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_stored(&app, &token, &data).await;
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 1, "one content row");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 1, "one entry");
    app.assert_consistent().await;
}

/// An api killed after writing a chunk but before marking it received: after a
/// restart the client resends it, the upload finishes with the exact bytes, and
/// the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_chunk_is_written_before_its_mark() {
    crash_during_a_chunk("uppart.after_write").await;
}

/// An api killed after marking a chunk received but before answering: after a
/// restart the upload resumes and finishes with the exact bytes, and the audit
/// is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_chunk_is_marked_before_the_answer() {
    crash_during_a_chunk("uppart.after_mark").await;
}

/// An api killed after a streamed body's bytes were written but before
/// they were marked: nothing of it counts, and the client sends it all again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_streamed_bytes_are_written_before_their_mark() {
    crash_during_a_streamed_body("uppart.after_write", 0).await;
}

/// An api killed after a streamed body's bytes were marked but before the
/// answer: they count, and the client only completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_streamed_bytes_are_marked_before_the_answer() {
    crash_during_a_streamed_body("uppart.after_mark", CHUNK * 3 - 7).await;
}

/// A process killed after the merge assembled the staged chunks: the merge runs
/// again after the restart and stores the file exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_merge_took_the_staged_file() {
    crash_during_the_merge("merge.after_assemble").await;
}

/// A process killed after the merged file is stored but before its rows: the
/// merge runs again and records exactly one content row and one entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_merged_file_is_stored_before_its_rows() {
    crash_during_the_merge("merge.after_store").await;
}

/// A process killed after the merge committed its rows but before `done`: the
/// rerun finishes without a second copy or entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_the_merge_committed_before_done() {
    crash_during_the_merge("merge.after_commit").await;
}

/// A replacing upload killed after its merge committed (the file has the
/// new content, the old one as a version) but before `done`: the rerun
/// finishes with the file's content the new one, exactly one version row
/// and one entry, and a clean audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_replacing_merge_committed_before_done() {
    let point = "merge.after_commit";
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let (old, new) = (test_bytes(CHUNK + 5, 44), test_bytes(CHUNK * 2 + 3, 45));
    // The first content by a single upload (no merge: the crash point waits).
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(old.clone()).file_name("r.bin"));
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body = serde_json::json!({"filename": "r.bin", "filehash": sha1_hex(&new), "sha256": sha256_hex(&new),
        "filesize": new.len(), "on_conflict": "replace"});
    let (code, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    for i in 0..new.len().div_ceil(CHUNK) as u64 {
        let (code, body) = app.put_chunk(&token, &id, i, chunk(&new, i)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let (code, _) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    crashed_and_restarted(&mut app, point).await;
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_stored(&app, &token, &new).await;
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 1, "one entry");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM file_versions").await, 1, "exactly one version");
    app.assert_consistent().await;
}

/// A process killed after `done` but before the staged chunks are deleted: the
/// client gets its file and the left-over chunks are cleaned up (the audit is
/// clean).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_done_before_the_chunks_are_deleted() {
    crash_during_the_merge("merge.after_done").await;
}

/// A single upload killed between storing its bytes and recording them:
/// no answer, so the client sends it again; the first copy is
/// unreferenced bytes, reported by the audit and left to the scrub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_single_upload_is_stored_before_its_rows() {
    let point = "upload.after_store";
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(50_000, 43);
    let form = || {
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(data.clone()).file_name("s.bin"))
    };
    let sent = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form()).send().await;
    assert!(sent.is_err(), "no answer from a process that died: {sent:?}");
    crashed_and_restarted(&mut app, point).await;
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
    assert_stored(&app, &token, &data).await;
    assert_eq!(app.stored().len(), 2, "the stored copy and the orphan of the killed request");
    assert_only_unreferenced_bytes(&app, 1);
}

/// A purge killed between its rows and its bytes: the entry is gone for
/// good, its bytes are unreferenced (audit) until the scrub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_purge_removed_its_rows_before_the_bytes() {
    let point = "purge.after_rows";
    let mut app = app_crashing_at(point).await;
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(20_000, 44);
    let done = app.upload(&token, "p.bin", &data).await;
    assert_eq!(done["state"], "done", "{done}");
    let id = done["file"]["id"].as_str().unwrap().to_owned();
    let sent =
        app.http.delete(app.url(&format!("/file/delete?id={id}&permanent=true"))).bearer_auth(&token).send().await;
    assert!(sent.is_err(), "no answer from a process that died: {sent:?}");
    crashed_and_restarted(&mut app, point).await;
    let (code, body) = app.call("GET", &format!("/file/download?id={id}"), Some(&token)).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "the purge took effect: {body}");
    assert_eq!(body["code"], "FILE_NOT_FOUND", "{body}");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 0);
    assert_only_unreferenced_bytes(&app, 1);
}

/// The audit with no grace finds exactly `n` stored objects without a row,
/// and nothing else; with its default grace (a merge may be between storing
/// and recording) it is clean.
fn assert_only_unreferenced_bytes(app: &TestApp, n: usize) {
    let (code, out, err) = app.admin(&["audit", "--deep", "--grace", "0"], "");
    assert_eq!(code, Some(1), "the audit reports the orphan:\n{out}{err}");
    let findings: Vec<&str> = out.lines().skip(1).filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(findings, [format!("stored bytes no row refers to: {n}")], "only the orphan:\n{out}");
    let (code, out, err) = app.admin(&["audit", "--deep"], "");
    assert_eq!(code, Some(0), "clean within the grace period:\n{out}{err}");
}

/// A backup killed between its copy and its record: the clean-up finds the
/// backup still pending and runs it again; the copy is recorded once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_a_backup_copy_before_its_record() {
    let point = "backup.after_copy";
    let g = GarageServer::start().await;
    let mut app = TestApp::builder(Deployment::Embedded)
        .s3(&g)
        .env("PAN_BACKUP_URL", "s3://pan-test/backup")
        // Only the file's copy: no metadata backup in the count.
        .env("PAN_METADATA_BACKUP_SECS", "0")
        .env("PAN_CHUNK_SIZE", &CHUNK.to_string())
        .env("PAN_CRASH_AT", point)
        .env("PAN_SWEEP_SCHEDULE", "* * * * * *")
        .env("PAN_MERGE_STALL_SECS", "10")
        .spawn()
        .await;
    assert_armed(&app);
    let token = app.user(&uname("crash")).await;
    let data = test_bytes(30_000, 45);
    let id = app.send_all_chunks(&token, "b.bin", &data).await;
    let (code, _) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    // The backup starts as soon as the merge has recorded the file; the
    // process dies once its copy is written.
    crashed_and_restarted(&mut app, point).await;
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    eventually(60, "the backup recorded", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 1).then_some(())
    })
    .await;
    let backups = g.objects("backup").await;
    assert_eq!(backups.len(), 1, "one backup object: {:?}", backups.keys());
    assert!(backups.values().all(|b| *b == data), "the backup holds the file's bytes");
    assert_stored(&app, &token, &data).await;
    app.assert_consistent().await;
}
