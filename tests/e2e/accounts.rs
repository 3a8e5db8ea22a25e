//! Accounts a stranger cannot abuse: quotas checked before any byte moves, a
//! cap on open uploads, a signup policy, and the operator's `api admin`.

use pan_tests::*;
use serde_json::json;

both!(
    /// An init whose size would take the user past `PAN_QUOTA_BYTES` answers
    /// 507 `QUOTA_EXCEEDED` before any chunk is sent, and what is stored stays
    /// counted.
    an_init_past_the_byte_quota_is_refused_before_any_chunk_is_stored,
    |b: TestAppBuilder| b.env("PAN_QUOTA_BYTES", "10000").env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("quota")).await;
        let stored = test_bytes(6000, 1);
        assert_eq!(app.upload(&token, "a.bin", &stored).await["state"], "done");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["quota_bytes"], 10000, "{info}");
        assert_eq!(info["bytes_used"], 6000);

        let (code, body) = app.init(&token, "big.bin", &test_bytes(5000, 2)).await;
        assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE, "{body}");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");

        // An open upload reserves its declared size until it is aborted.
        let (code, open) = app.init(&token, "open.bin", &test_bytes(3000, 3)).await;
        assert_eq!(code, StatusCode::OK, "{open}");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["bytes_reserved"], 3000, "{info}");
        assert_eq!(info["open_uploads"], 1);
        let small = test_bytes(2000, 4);
        let (code, body) = app.init(&token, "small.bin", &small).await;
        assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE, "6000 + 3000 + 2000 > 10000: {body}");
        let (code, _) = app
            .call(
                "DELETE",
                &format!("/file/mupload/abort?uploadID={}", open["uploadID"].as_str().unwrap()),
                Some(&token),
            )
            .await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, body) = app.init(&token, "small.bin", &small).await;
        assert_eq!(code, StatusCode::OK, "the aborted upload's reservation is released: {body}");
        assert!(app.staging().is_empty(), "no chunk was stored for a refused upload");

        // The single-request upload counts too.
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(test_bytes(3000, 5)).file_name("one.bin"));
        let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::INSUFFICIENT_STORAGE);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
    }
);

both!(
    /// An instant upload of content the user already has counts its size again
    /// under a new name (507 when full), but the same content under the same
    /// name adds nothing and is instant however full the quota.
    an_instant_upload_takes_room_in_the_quota_unless_it_adds_nothing,
    |b: TestAppBuilder| b.env("PAN_QUOTA_BYTES", "6000"),
    |app| {
        let token = app.user(&uname("instant")).await;
        let data = test_bytes(6000, 11);
        assert_eq!(app.upload(&token, "a.bin", &data).await["state"], "done");
        // Another entry for content the user has counts its size again: no room.
        let (code, body) = app.init(&token, "copy.bin", &data).await;
        assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE, "{body}");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
        // The same content under the same name adds nothing: instant, however full.
        let (code, body) = app.init(&token, "a.bin", &data).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "instant");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((info["file_count"].as_i64(), info["bytes_reserved"].as_u64()), (Some(1), Some(0)), "{info}");
    }
);

both!(
    /// `PAN_QUOTA_FILES` counts stored files and open uploads alike: with one
    /// file stored and one upload open, a third init answers 507
    /// `QUOTA_EXCEEDED`.
    a_file_count_limit_counts_stored_files_and_open_uploads,
    |b: TestAppBuilder| b.env("PAN_QUOTA_FILES", "2"),
    |app| {
        let token = app.user(&uname("files")).await;
        assert_eq!(app.upload(&token, "1.bin", &test_bytes(10, 6)).await["state"], "done");
        let (code, _) = app.init(&token, "2.bin", &test_bytes(10, 7)).await;
        assert_eq!(code, StatusCode::OK);
        let (code, body) = app.init(&token, "3.bin", &test_bytes(10, 8)).await;
        assert_eq!(code, StatusCode::INSUFFICIENT_STORAGE, "{body}");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
    }
);

/// Sixty inits of one user at once, half through each of two api processes
/// on the same MariaDB and Redis: the quota ledger grants exactly the room
/// there is, never more (per-process locks could not).
#[tokio::test]
async fn concurrent_inits_through_two_api_processes_never_pass_the_quota() {
    let mut app = TestApp::builder(Deployment::Fleet).env("PAN_QUOTA_BYTES", "2500").spawn().await;
    let second = app.spawn_another_api().await;
    let token = app.user(&uname("race")).await;
    let inits = (0..60u64).map(|i| {
        let base = if i % 2 == 0 { app.base.clone() } else { second.clone() };
        let body = json!({"filename": format!("{i}.bin"), "filehash": sha1_hex(&i.to_le_bytes()), "filesize": 100});
        let (http, token) = (app.http.clone(), token.clone());
        async move {
            let resp = http.post(format!("{base}/file/mupload/init")).bearer_auth(&token).json(&body).send().await;
            let resp = resp.unwrap();
            let status = resp.status();
            let body: serde_json::Value = resp.json().await.unwrap();
            (status, body)
        }
    });
    let answers = futures::future::join_all(inits).await;
    let granted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    assert_eq!(granted, 25, "2500 bytes hold 25 uploads of 100: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
        assert_eq!(body["code"], "QUOTA_EXCEEDED");
    }
    let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!((info["open_uploads"].as_u64(), info["bytes_reserved"].as_u64()), (Some(25), Some(2500)), "{info}");
}

both!(
    /// Past `PAN_MAX_OPEN_UPLOADS` open uploads a user's inits answer 429 with
    /// `Retry-After`, and an abort frees a place again.
    inits_past_the_open_upload_cap_get_429_with_retry_after,
    |b: TestAppBuilder| b.env("PAN_MAX_OPEN_UPLOADS", "16"),
    |app| {
        let token = app.user(&uname("flood")).await;
        let mut first = None;
        for i in 0..16u64 {
            let (code, body) = app.init(&token, "f.bin", &test_bytes(100, 1000 + i)).await;
            assert_eq!(code, StatusCode::OK, "upload {i}: {body}");
            first.get_or_insert(body["uploadID"].as_str().unwrap().to_owned());
        }
        for i in 0..200u64 {
            let body = json!({"filename": "f.bin", "filehash": sha1_hex(&i.to_le_bytes()), "filesize": 1u64 << 40});
            let resp =
                app.http.post(app.url("/file/mupload/init")).bearer_auth(&token).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS, "init {i}");
            assert_eq!(resp.headers()["retry-after"], "60");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["code"], "TOO_MANY_UPLOADS");
        }
        let (code, _) =
            app.call("DELETE", &format!("/file/mupload/abort?uploadID={}", first.unwrap()), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, body) = app.init(&token, "g.bin", &test_bytes(100, 9)).await;
        assert_eq!(code, StatusCode::OK, "room again after an abort: {body}");
        // Another user is not affected.
        let other = app.user(&uname("calm")).await;
        let (code, _) = app.init(&other, "h.bin", &test_bytes(100, 10)).await;
        assert_eq!(code, StatusCode::OK);
    }
);

both!(
    /// With `PAN_SIGNUP=invite` a signup without an invite, or with an unknown
    /// one, is 403 `INVITE_REQUIRED`; an operator's invite works exactly once.
    signup_can_be_closed_or_need_a_one_time_invite, |b: TestAppBuilder| b.env("PAN_SIGNUP", "invite"), |app| {
    let name = uname("invited");
    let signup = |invite: Option<&str>| {
        let mut body = json!({"username": name, "password": "correct horse"});
        if let Some(code) = invite {
            body["invite"] = json!(code);
        }
        body
    };
    let (code, body) = app.post_json("/usr/signup", None, &signup(None)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "INVITE_REQUIRED");
    let (code, body) = app.post_json("/usr/signup", None, &signup(Some("0123456789abcdef"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "INVITE_INVALID");
    let (status, out, err) = app.admin(&["invite"], "");
    assert_eq!(status, Some(0), "{err}");
    let code_str = out.trim().to_owned();
    assert_eq!(code_str.len(), 32, "{out}");
    let (code, body) = app.post_json("/usr/signup", None, &signup(Some(&code_str))).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let again = json!({"username": uname("second"), "password": "correct horse", "invite": code_str});
    let (code, body) = app.post_json("/usr/signup", None, &again).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "an invite makes one account: {body}");
    assert_eq!(body["code"], "INVITE_INVALID");
});

both!(
    /// With `PAN_SIGNUP=closed` signup is 403 `SIGNUP_CLOSED`; the operator
    /// creates users, sets quotas, lists, disables and enables them with `api
    /// admin`.
    signup_closed_leaves_account_making_to_the_operator, |b: TestAppBuilder| b.env("PAN_SIGNUP", "closed"), |app| {
    let name = uname("closed");
    let (code, body) =
        app.post_json("/usr/signup", None, &json!({"username": name, "password": "correct horse"})).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "SIGNUP_CLOSED");
    let (status, out, err) = app.admin(&["create-user", &name], "correct horse\n");
    assert_eq!(status, Some(0), "{err}");
    assert!(out.contains(&name), "{out}");
    let token = app.signin(&name, "correct horse").await;

    // The operator's quota, list, disable and enable.
    let (status, _, err) = app.admin(&["set-quota", &name, "--bytes", "5K", "--files", "unlimited"], "");
    assert_eq!(status, Some(0), "{err}");
    let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!(info["quota_bytes"], 5120, "{info}");
    assert!(info.get("quota_files").is_none(), "unlimited: {info}");
    let (status, out, _) = app.admin(&["users"], "");
    assert_eq!(status, Some(0));
    let line = out.lines().find(|l| l.starts_with(&name)).unwrap_or_else(|| panic!("{out}"));
    assert!(line.contains("5120") && line.ends_with("active"), "{line}");
    let (status, _, err) = app.admin(&["disable", &name], "");
    assert_eq!(status, Some(0), "{err}");
    let (code, _) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a disabled user's tokens stop working");
    let (code, _) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "correct horse"})).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app.admin(&["enable", &name], "");
    assert_eq!(status, Some(0));
    app.signin(&name, "correct horse").await;
    let (status, _, err) = app.admin(&["disable", "nobody-here"], "");
    assert_eq!(status, Some(1));
    assert!(err.contains("no such user"), "{err}");
});
