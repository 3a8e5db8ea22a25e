//! The chunked upload protocol: order, concurrency, resume, instant, complete.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pan_tests::*;
use serde_json::{Value, json};

/// Chunks staged as objects of their own (sends again), by index; the
/// upload's data file (first sends, in place) is left out.
fn staged_by_index(app: &TestApp, id: &str) -> BTreeMap<u64, Vec<Vec<u8>>> {
    let mut out: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for (path, bytes) in app.staging() {
        let rest = path.strip_prefix(&format!("{id}/")).unwrap_or_else(|| panic!("foreign staged file {path}"));
        if rest == "data" {
            continue;
        }
        let index: u64 = rest.split('.').next().unwrap().parse().unwrap_or_else(|_| panic!("odd staged name {path}"));
        out.entry(index).or_default().push(bytes);
    }
    out
}

both!(
    /// While an upload is `merging`, a chunk sent again (another sender's, with
    /// other bytes even) is read and answered 200 with state `merging`: nothing
    /// is staged or compared, the upload's chunks stay as they were, and
    /// `complete` still reports `merging`.
    a_chunk_sent_while_merging_is_answered_merging_and_changes_nothing,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096").env("PAN_EMBEDDED_WORKERS", "false").workers(0),
    |app| {
        let token = app.user(&uname("merging")).await;
        let data = test_bytes(4096 * 2 + 10, 8);
        let (_, init) = app.init(&token, "m.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        for i in 0..3u64 {
            let (code, body) = app
                .put_chunk(&token, &id, i, data[i as usize * 4096..((i as usize + 1) * 4096).min(data.len())].to_vec())
                .await;
            assert_eq!(code, StatusCode::OK, "{body}");
            assert_eq!(body["state"], "uploading", "{body}");
        }
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        let staged = app.staging();

        let (code, body) = app.put_chunk(&token, &id, 1, test_bytes(4096, 77)).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body, serde_json::json!({"uploadID": id, "chkidx": 1, "size": 4096, "state": "merging"}));
        let (code, body) = app.put_chunk(&token, &id, 2, data[8192..].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "merging");
        assert!(app.staging() == staged, "nothing staged or replaced");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["state"], "merging");
        assert_eq!(status["uploaded"], serde_json::json!([0, 1, 2]));
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!((code, &body["state"]), (StatusCode::ACCEPTED, &serde_json::json!("merging")), "{body}");
    }
);

both!(
    /// Chunks sent in random order from four concurrent tasks, some twice,
    /// stage exactly the right bytes for every index.
    chunks_in_random_order_from_four_tasks_with_repeats_stage_exactly_the_right_bytes,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096").env("PAN_EMBEDDED_WORKERS", "false").workers(0),
    |app| {
        let token = app.user(&uname("par")).await;
        let data = test_bytes(4096 * 23 + 100, 7);
        let (code, init) = app.init(&token, "par.bin", &data).await;
        assert_eq!(code, StatusCode::OK, "{init}");
        assert_eq!(init["status"], "new");
        assert_eq!(init["chunkcount"], 24);
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let chunk = |i: u64| data[i as usize * 4096..((i as usize + 1) * 4096).min(data.len())].to_vec();

        // A shuffled order, chunk 5 twice in a row, chunk 9 twice at once.
        let mut order: Vec<u64> = (0..24).collect();
        let mut seed = 12345u64;
        for i in (1..order.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            order.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let pos = order.iter().position(|&i| i == 5).unwrap();
        order.insert(pos, 5);
        let queues: Vec<Vec<u64>> = (0..4).map(|t| order.iter().copied().skip(t).step_by(4).collect()).collect();
        let (app_ref, token_ref, id_ref) = (&app, &token, &id);
        let tasks = queues.into_iter().map(|q| async move {
            for i in q {
                // As a client does: a send of a chunk another request is
                // sending right now is retried.
                loop {
                    let (code, body) = app_ref.put_chunk(token_ref, id_ref, i, chunk(i)).await;
                    if code == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "CHUNK_BUSY" {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
                    break;
                }
            }
        });
        // Two sends of one chunk at once: one at a time is received, the
        // other (if they overlapped) is told to retry.
        let twice = async {
            let (a, b) = tokio::join!(app.put_chunk(&token, &id, 9, chunk(9)), app.put_chunk(&token, &id, 9, chunk(9)));
            for (code, body) in [&a, &b] {
                assert!(
                    *code == StatusCode::OK
                        || (*code == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "CHUNK_BUSY"),
                    "{code} {body}"
                );
            }
            assert!(a.0 == StatusCode::OK || b.0 == StatusCode::OK, "one of them is received: {} / {}", a.1, b.1);
        };
        tokio::join!(futures::future::join_all(tasks), twice);

        let (code, done) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{done}");
        assert_eq!(done["state"], "merging");
        let staged = app.staged_chunks(&id, 4096, &(0..24).collect::<Vec<_>>());
        for (i, bytes) in staged {
            assert_eq!(bytes, chunk(i), "chunk {i} bytes");
        }
        for (i, copies) in staged_by_index(&app, &id) {
            assert!(copies.len() <= 1, "chunk {i} staged {} times on its own", copies.len());
        }
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["state"], "merging");
        assert_eq!(status["uploaded_count"], 24);
    }
);

both!(
    /// An upload whose api process is killed resumes after the restart: status
    /// lists the chunks received before, and sending the rest completes it
    /// byte-exact.
    an_upload_resumes_after_the_api_process_is_killed, |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "2048"), |app| {
    let token = app.user(&uname("resume")).await;
    let data = test_bytes(2048 * 10, 8);
    let (_, init) = app.init(&token, "r.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    for i in [0u64, 3, 4, 9] {
        let (code, _) = app.put_chunk(&token, &id, i, data[i as usize * 2048..(i as usize + 1) * 2048].to_vec()).await;
        assert_eq!(code, StatusCode::OK);
    }
    app.restart_api().await;
    let (code, again) = app.init(&token, "r.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "resume");
    assert_eq!(again["uploadID"], id.as_str());
    assert_eq!(again["uploaded"], json!([0, 3, 4, 9]));
    for i in [1u64, 2, 5, 6, 7, 8] {
        let (code, _) = app.put_chunk(&token, &id, i, data[i as usize * 2048..(i as usize + 1) * 2048].to_vec()).await;
        assert_eq!(code, StatusCode::OK);
    }
    let (code, _) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));
    app.assert_consistent().await;
});

both!(
    /// `complete` with chunks missing answers 409 `CHUNKS_MISSING` listing
    /// them; once all are there, concurrent completes move the upload to
    /// `merging` exactly once.
    complete_lists_missing_chunks_then_moves_to_merging_exactly_once,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("cmp")).await;
        let data = test_bytes(1024 * 150, 10);
        let (_, init) = app.init(&token, "c.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        let (code, body) = app.put_chunk(&token, &id, 1, data[1024..2048].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let (code, body) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "CHUNKS_MISSING");
        assert_eq!(body["missing_count"], 149);
        let missing = body["missing"].as_array().unwrap();
        assert_eq!(missing.len(), 100);
        assert_eq!(missing[0], 0);
        assert_eq!(missing[1], 2);
        for i in (0..150u64).filter(|&i| i != 1) {
            let (code, body) =
                app.put_chunk(&token, &id, i, data[i as usize * 1024..(i as usize + 1) * 1024].to_vec()).await;
            assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
        }
        let calls = (0..5).map(|_| app.complete(&token, &id));
        for (code, body) in futures::future::join_all(calls).await {
            assert!(code == StatusCode::ACCEPTED || code == StatusCode::OK, "{code} {body}");
            assert!(["merging", "done"].contains(&body["state"].as_str().unwrap()), "{body}");
        }
        let done = app.wait_merged(&token, &id).await;
        assert_eq!(done["state"], "done");
        let (code, again) = app.complete(&token, &id).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(again["state"], "done");
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM files").await, 1);
        assert_eq!(app.sql_count("SELECT COUNT(*) FROM user_files").await, 1);
        assert_eq!(app.sql_count("SELECT CAST(SUM(refcount) AS SIGNED) FROM files").await, 1);
    }
);

/// Sends a chunk's head and then `trickle` (bytes, pause) over a raw socket;
/// returns the status line and body the server answered with, and when.
async fn trickled_chunk(app: &TestApp, token: &str, id: &str, len: usize, trickle: Duration) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sock = app.raw_chunk_head(token, id, len).await;
    let started = Instant::now();
    let (mut rd, mut wr) = sock.into_split();
    let writer = tokio::spawn(async move {
        loop {
            if wr.write_all(b"x").await.is_err() {
                return;
            }
            // The trickle is the behaviour under test.
            tokio::time::sleep(trickle).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Duration::from_secs(50);
    while !String::from_utf8_lossy(&answer).contains("}") {
        match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer within {deadline:?}"),
        }
    }
    writer.abort();
    (String::from_utf8_lossy(&answer).into_owned(), started.elapsed())
}

both!(
    /// A chunk body trickling below `PAN_MIN_CHUNK_RATE` is cut off after 30 s
    /// with a JSON error, not held until the idle timeout.
    a_trickling_chunk_is_cut_off_after_30_s_below_the_rate_floor,
    |b: TestAppBuilder| b.env("PAN_MIN_CHUNK_RATE", "1024"),
    |app| {
        let token = app.user(&uname("slow")).await;
        let data = test_bytes(1 << 20, 60);
        let (_, init) = app.init(&token, "slow.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        // One byte every 200 ms: 5 bytes/s, far below 1 KiB/s.
        let (answer, took) = trickled_chunk(&app, &token, &id, 1 << 20, Duration::from_millis(200)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains("\"CHUNK_TOO_SLOW\""), "{answer}");
        assert!(took >= Duration::from_secs(30) && took < Duration::from_secs(40), "cut off after {took:?}");
        let (_, status) = app.status(&token, &id).await;
        assert_eq!(status["uploaded_count"], 0, "nothing of it counts");
    }
);

/// Starts chunk 0 of upload `id` (`data` long) on `app`'s api and sends its
/// first 1000 bytes, then waits until they land in the staging store (so the
/// body holds its slots): the open connection.
async fn hold_a_chunk_open(app: &TestApp, token: &str, id: &str, data: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut held = app.raw_chunk_head(token, id, data.len()).await;
    held.write_all(&data[..1000]).await.unwrap();
    let upload_dir = app.data.path().join("staging").join(id);
    eventually(10, "the held chunk to start streaming", || async {
        std::fs::read_dir(&upload_dir).is_ok_and(|mut d| d.next().is_some()).then_some(())
    })
    .await;
    held
}

both!(
    /// Past `PAN_USER_CHUNKS` chunks in flight for one user, another chunk answers
/// 429 with `Retry-After`.
    chunks_past_a_users_in_flight_cap_get_429_with_retry_after,
    |b: TestAppBuilder| b.env("PAN_USER_CHUNKS", "1"),
    |app| {
        let token = app.user(&uname("busy")).await;
        let data = test_bytes(2 << 20, 61);
        let (_, init) = app.init(&token, "busy.bin", &data).await;
        let id = init["uploadID"].as_str().unwrap().to_owned();
        // One chunk body that has started and not finished holds the user's only slot.
        let held = hold_a_chunk_open(&app, &token, &id, &data).await;
        let (code, refused) = app.put_chunk(&token, &id, 0, data.clone()).await;
        assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{refused}");
        assert_eq!(refused["code"], "TOO_MANY_CHUNKS");
        assert_eq!(refused["retry_after"], 1);
        drop(held);
        let sent = eventually(10, "the slot to come back", || async {
            let (code, body) = app.put_chunk(&token, &id, 0, data.clone()).await;
            (code == StatusCode::OK).then_some(body)
        })
        .await;
        assert_eq!(sent["chkidx"], 0);
    }
);

both!(
    /// A chunk body that stalls after one byte is cut off by the default rate
    /// floor at 30 s, before the idle timeout.
    a_stalled_chunk_is_cut_off_after_30_s, |app| {
    let token = app.user(&uname("stall")).await;
    let data = test_bytes(1 << 20, 62);
    let (_, init) = app.init(&token, "stall.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // One byte, then nothing: the default floor (16 KiB/s) cuts it off at 30 s,
    // before the 60 s idle timeout would.
    let (answer, took) = trickled_chunk(&app, &token, &id, 1 << 20, Duration::from_secs(3600)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"CHUNK_TOO_SLOW\""), "{answer}");
    assert!(took >= Duration::from_secs(30) && took < Duration::from_secs(40), "cut off after {took:?}");
});

both!(
    /// One user holds at most one single-request upload slot at once: while
    /// a slow body of theirs is arriving, their next single upload gets 429
    /// `TOO_MANY_REQUESTS`, another user's is stored, and the slot comes
    /// back when the slow one goes away.
    a_slow_single_upload_holds_one_slot_of_its_user_not_everyone_s,
    |b: TestAppBuilder| b.env("PAN_METRICS_TOKEN", "scrape-me"),
    |app| {
        use tokio::io::AsyncWriteExt;
        let (slow, other) = (app.user(&uname("slow")).await, app.user(&uname("other")).await);
        let in_flight = || app.metric("pan_single_uploads_in_flight");
        let single = |token: &str, name: &str| {
            let form = reqwest::multipart::Form::new()
                .part("file", reqwest::multipart::Part::bytes(b"quick".to_vec()).file_name(name.to_owned()));
            app.http.post(app.url("/file/upload")).bearer_auth(token).multipart(form).send()
        };
        let mut held = app.raw().await;
        let head = format!(
            "POST /file/upload HTTP/1.1\r\nHost: pan\r\nAuthorization: Bearer {slow}\r\n\
             Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n--xyz\r\n"
        );
        held.write_all(head.as_bytes()).await.unwrap();
        eventually(10, "the slow upload to take its slot", || async { (in_flight().await == 1).then_some(()) }).await;

        let refused = single(&slow, "second.txt").await.unwrap();
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "TOO_MANY_REQUESTS", "{body}");
        let stored = single(&other, "theirs.txt").await.unwrap();
        assert_eq!(stored.status(), StatusCode::CREATED, "another user is not held up");

        drop(held);
        eventually(10, "the slot to come back", || async { (in_flight().await == 0).then_some(()) }).await;
        let stored = single(&slow, "second.txt").await.unwrap();
        assert_eq!(stored.status(), StatusCode::CREATED);
    }
);

/// SIGTERM while the running hash of an upload is at work in the background:
/// the api waits for that task (it stops at a chunk boundary, its progress
/// saved) instead of exiting under it, says so in its log, and exits 0;
/// started again, the upload completes with the right file and a clean audit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_waits_for_the_running_hash_in_flight() {
    use futures::StreamExt;
    const CHUNK: usize = 16 << 10;
    const CHUNKS: usize = 400;
    let mut app = TestApp::builder(Deployment::Embedded).env("PAN_CHUNK_SIZE", &CHUNK.to_string()).spawn().await;
    let token = app.user(&uname("bg")).await;
    let data = test_bytes(CHUNK * CHUNKS, 23);
    let (code, init) = app.init(&token, "big.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "init: {init}");
    assert_eq!(init["chunkcount"], CHUNKS as u64, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let chunk = |i: usize| data[i * CHUNK..(i + 1) * CHUNK].to_vec();
    // Every chunk but the first: the running hash cannot start yet.
    let sends = futures::stream::iter(1..CHUNKS)
        .map(|i| {
            let (app, token, id, bytes) = (&app, &token, &id, chunk(i));
            async move { (i, app.put_chunk(token, id, i as u64, bytes).await) }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for (i, (code, body)) in sends {
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    // The first chunk lets it run over all 400, in the background.
    let (code, body) = app.put_chunk(&token, &id, 0, chunk(0)).await;
    assert_eq!(code, StatusCode::OK, "chunk 0: {body}");

    let started = Instant::now();
    assert_eq!(app.terminate_api(20).await, Some(0), "a graceful stop exits 0:\n{}", app.api_log_tail(20));
    let log = strip_ansi(&app.api_log_tail(10_000));
    let finished = log
        .lines()
        .find(|l| l.contains("background tasks finished"))
        .unwrap_or_else(|| panic!("no word of the background tasks at shutdown:\n{}", app.api_log_tail(20)));
    assert!(!finished.contains("waited_for=0"), "the running hash was still at work at shutdown: {finished}");
    let stopped = log.find("the running hash stops here").expect("the running hash stopped at a chunk boundary");
    assert!(stopped < log.find("background tasks finished").unwrap(), "it stopped before the process said it was done");
    assert!(started.elapsed() < Duration::from_secs(10), "shutdown took {:?}", started.elapsed());

    app.start_api_again().await;
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "complete: {body}");
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(sha1_hex(&bytes), sha1_hex(&data));
    app.assert_consistent().await;
}

/// `text` without the terminal colour codes the log is written with.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An escape runs to its final letter: `ESC [ … m`.
            chars.by_ref().find(|c| c.is_ascii_alphabetic());
        } else {
            out.push(c);
        }
    }
    out
}

/// An init whose declared size does not fit in staging's free space, less
/// what open uploads still reserve and `PAN_DISK_RESERVE`, gets 507
/// `SERVER_DISK_FULL` before any byte; the room comes back when an upload
/// is aborted. (Embedded: a local staging directory. S3 staging does not
/// say how full it is and is not checked.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_that_cannot_fit_in_staging_is_refused_before_any_byte() {
    const GIB: u64 = 1 << 30;
    // Leave a 10 GiB window above the reserve (other tests write far less).
    let free = shared::stores::objects::local::free_bytes(&std::env::temp_dir()).unwrap();
    assert!(free > 12 * GIB, "this test needs 12 GiB free in {:?}", std::env::temp_dir());
    let reserve = (free - 10 * GIB).to_string();
    let app = TestApp::builder(Deployment::Embedded).env("PAN_DISK_RESERVE", &reserve).spawn().await;
    let token = app.user(&uname("full")).await;
    let init = |size: u64| {
        let body = json!({"filename": "big.bin", "filehash": sha1_hex(&size.to_le_bytes()), "filesize": size});
        let app = &app;
        let token = token.clone();
        async move { app.post_json("/file/mupload/init", Some(&token), &body).await }
    };
    let (code, first) = init(6 * GIB).await;
    assert_eq!(code, StatusCode::OK, "{first}");
    let (code, body) = init(6 * GIB + 1).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::INSUFFICIENT_STORAGE, Some("SERVER_DISK_FULL")), "{body}");
    assert!(body["retry_after"].as_u64().is_some(), "{body}");
    let (code, small) = init(GIB).await;
    assert_eq!(code, StatusCode::OK, "what fits is taken: {small}");
    let abort = format!("/file/mupload/abort?uploadID={}", first["uploadID"].as_str().unwrap());
    let (code, _) = app.call("DELETE", &abort, Some(&token)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, body) = init(6 * GIB + 1).await;
    assert_eq!(code, StatusCode::OK, "the aborted upload's room came back: {body}");
}

/// A user's cap on chunks in flight (`PAN_USER_CHUNKS`) counts every api
/// process of a fleet together: with a cap of 1, a chunk held open on one
/// process makes another process answer 429 `TOO_MANY_CHUNKS` for that
/// user, and once it ends the other process takes the chunk.
#[tokio::test]
async fn a_users_chunk_cap_is_shared_by_the_fleets_api_processes() {
    let mut app = TestApp::builder(Deployment::Fleet).env("PAN_USER_CHUNKS", "1").spawn().await;
    let second = app.spawn_another_api().await;
    let token = app.user(&uname("fleetcap")).await;
    let data = test_bytes(2 << 20, 63);
    let (_, init) = app.init(&token, "fleetcap.bin", &data).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // A chunk body that has started on the first process holds the user's only slot.
    let held = hold_a_chunk_open(&app, &token, &id, &data).await;
    let send = || {
        app.http
            .post(format!("{second}/file/mupload/uppart?uploadID={id}&chkidx=0"))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(data.clone())
            .send()
    };
    let refused = send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "TOO_MANY_CHUNKS", "{body}");
    drop(held);
    let sent = eventually(20, "the slot to come back", || async {
        let resp = send().await.unwrap();
        (resp.status() == StatusCode::OK).then_some(resp)
    })
    .await;
    let receipt: Value = sent.json().await.unwrap();
    assert_eq!(receipt["chkidx"], 0);
}
