//! Share links over HTTP: every option (password, expiry, download limit,
//! revoke), a shared folder browsed and zipped, and what a stranger cannot do.

use pan_tests::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put_file(app: &TestApp, token: &str, folder: &str, name: &str, data: &[u8]) -> Value {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(data.to_vec()).file_name("x"))
        .text("filename", name.to_owned());
    if !folder.is_empty() {
        form = form.text("folder", folder.to_owned());
    }
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.json().await.unwrap()
}

async fn mkdir(app: &TestApp, token: &str, parent: &str, name: &str) -> String {
    let mut body = json!({"name": name});
    if !parent.is_empty() {
        body["parent"] = json!(parent);
    }
    let (code, f) = app.post_json("/folder/create", Some(token), &body).await;
    assert_eq!(code, StatusCode::CREATED, "{f}");
    f["id"].as_str().unwrap().to_owned()
}

/// A public GET (no token): status, headers and bytes.
async fn public_get(
    app: &TestApp,
    path: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.http.get(app.url(path));
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let (code, headers) = (resp.status(), resp.headers().clone());
    (code, headers, resp.bytes().await.unwrap().to_vec())
}

fn code_of(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes).map(|v| v["code"].as_str().unwrap_or("").to_owned()).unwrap_or_default()
}

both!(
    /// A file's share link downloads without an account (ranges too), counts
    /// its downloads up to `max_downloads`, and answers 404 once its owner
    /// revokes it.
    a_file_link_downloads_with_range_counts_downloads_and_can_be_revoked, |app| {
    let token = app.user(&uname("sharer")).await;
    let data = test_bytes(300_000, 3);
    let f = put_file(&app, &token, "", "report.pdf", &data).await;
    let (code, s) = app
        .post_json("/share/create", Some(&token), &json!({"id": f["id"], "max_downloads": 2, "expires_in": 0}))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{s}");
    let link = s["link"].as_str().unwrap().to_owned();
    assert_eq!(link.len(), 22);
    assert!(s["url"].as_str().unwrap().ends_with(&format!("/s/{link}")));
    assert!(!s["url"].as_str().unwrap().contains(&sha1_hex(&data)), "the link says nothing of the content");
    assert_eq!(
        (s["kind"].as_str(), s["path"].as_str(), s["downloads"].as_i64()),
        (Some("file"), Some("/report.pdf"), Some(0))
    );
    assert!(s.get("expires_at").is_none(), "expires_in 0: never");

    let (code, info) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!(code, StatusCode::OK, "{info}");
    assert_eq!(
        (info["name"].as_str(), info["size"].as_i64(), info["downloads_left"].as_i64()),
        (Some("report.pdf"), Some(300_000), Some(2))
    );
    // A range spends its length of the link's 2 x 300,000 bytes.
    let (code, headers, part) =
        public_get(&app, &format!("/public/share/download?link={link}"), Some("bytes=1000-1999")).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, &data[1000..2000]);
    assert_eq!(headers["content-range"], "bytes 1000-1999/300000");
    let (code, _, all) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
    assert_eq!((code, all == data), (StatusCode::OK, true));
    // 299,000 bytes left: not a whole file, but the rest of one.
    let (code, _, body) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
    let (code, info) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, info["downloads_left"].as_i64()), (StatusCode::OK, Some(0)), "{info}");
    let (code, _, rest) = public_get(&app, &format!("/public/share/download?link={link}"), Some("bytes=1000-")).await;
    assert_eq!((code, rest == data[1000..]), (StatusCode::PARTIAL_CONTENT, true));
    let (code, _, body) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXHAUSTED")), "the page says so at once");
    let (_, list) = app.call("GET", "/share/list", Some(&token)).await;
    assert_eq!(
        (&list["shares"][0]["downloads"], &list["shares"][0]["bytes_sent"], &list["shares"][0]["size"]),
        (&json!(2), &json!(600_000), &json!(300_000)),
        "{list}"
    );

    // A stranger can neither share nor revoke what is not theirs.
    let other = app.user(&uname("stranger")).await;
    let (code, body) = app.post_json("/share/create", Some(&other), &json!({"id": f["id"]})).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("FILE_NOT_FOUND")));
    let (code, body) = app.call("DELETE", &format!("/share/revoke?link={link}"), Some(&other)).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("SHARE_NOT_FOUND")));
    let (_, list) = app.call("GET", "/share/list", Some(&other)).await;
    assert_eq!(list["shares"], json!([]));

    // Revoked, and unknown or malformed links, are all simply not found.
    let (code, _) = app.call("DELETE", &format!("/share/revoke?link={link}"), Some(&token)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    for l in [link.as_str(), "AAAAAAAAAAAAAAAAAAAAAA", "../../etc/passwd", ""] {
        let (code, body) = app.call("GET", &format!("/public/share/info?link={l}"), None).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("SHARE_NOT_FOUND")), "{l:?}");
    }
});

both!(
    /// A password-protected link serves nothing without its password, unlocks
    /// with it, and answers 429 with `Retry-After` after
    /// `PAN_SHARE_PASSWORD_RATE` wrong guesses.
    a_password_link_needs_its_password_and_guessing_is_rate_limited,
    |b: TestAppBuilder| b.env("PAN_SHARE_PASSWORD_RATE", "3"),
    |app| {
        let token = app.user(&uname("pw")).await;
        let data = test_bytes(1000, 4);
        let f = put_file(&app, &token, "", "secret.txt", &data).await;
        let (code, s) =
            app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "password": "open sesame"})).await;
        assert_eq!(code, StatusCode::CREATED, "{s}");
        assert_eq!(s["has_password"], true);
        assert!(s["expires_at"].as_i64().unwrap() > shared::now() + 29 * 86_400, "the default lifetime: {s}");
        let link = s["link"].as_str().unwrap();
        let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("SHARE_PASSWORD_REQUIRED")));
        let (code, _, body) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
        assert_eq!((code, code_of(&body).as_str()), (StatusCode::UNAUTHORIZED, "SHARE_PASSWORD_REQUIRED"));
        let unlock = format!("/public/share/unlock?link={link}");
        let (code, body) = app.post_json(&unlock, None, &json!({"password": "wrong guess"})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("SHARE_PASSWORD_WRONG")));
        let (code, ok) = app.post_json(&unlock, None, &json!({"password": "open sesame"})).await;
        assert_eq!(code, StatusCode::OK, "{ok}");
        let access = ok["access"].as_str().unwrap();
        let (code, _, bytes) =
            public_get(&app, &format!("/public/share/download?link={link}&access={access}"), None).await;
        assert_eq!((code, bytes == data), (StatusCode::OK, true));
        let forged = format!("{}x", &access[..access.len() - 1]);
        let (code, body) = app.call("GET", &format!("/public/share/info?link={link}&access={forged}"), None).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("SHARE_PASSWORD_REQUIRED")));
        // Three wrong passwords a minute (the right one does not count): the
        // third goes through, then even the right one waits.
        for guess in ["another guess", "a third guess"] {
            let (code, _) = app.post_json(&unlock, None, &json!({"password": guess})).await;
            assert_eq!(code, StatusCode::FORBIDDEN);
        }
        let (code, body) = app.post_json(&unlock, None, &json!({"password": "open sesame"})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED")), "{body}");
        assert!(body["retry_after"].as_u64().unwrap() >= 1);
    }
);

both!(
    /// An expired link answers 410; a link whose target is in the trash serves
    /// nothing until the target is restored, then works again.
    an_expired_link_is_gone_and_a_trashed_target_closes_its_link_until_restored, |app| {
    let token = app.user(&uname("exp")).await;
    let f = put_file(&app, &token, "", "a.txt", b"hello").await;
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "expires_in": 1})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    eventually(10, "the link to expire", || async {
        let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
        (code == StatusCode::GONE).then_some(body)
    })
    .await;
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXPIRED")));

    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": f["id"]})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    app.call("DELETE", &format!("/file/delete?id={}", f["id"].as_str().unwrap()), Some(&token)).await;
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("SHARE_NOT_FOUND")));
    let (_, list) = app.call("GET", "/share/list", Some(&token)).await;
    assert!(list["shares"][0].get("path").is_none(), "a link to a trashed file has no path: {list}");
    app.post_json("/trash/restore", Some(&token), &json!({"id": f["id"]})).await;
    let (code, _) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!(code, StatusCode::OK);
});

both!(
    /// A shared folder is browsed by path and downloaded as one zip holding
    /// every name and byte, and a folder past `PAN_ZIP_MAX_ENTRIES` is refused
    /// as a zip.
    a_shared_folder_is_browsed_by_path_and_zipped_whole_with_its_names_and_bytes,
    |b: TestAppBuilder| b.env("PAN_ZIP_MAX_ENTRIES", "6"),
    |app| {
        let token = app.user(&uname("folder")).await;
        let top = mkdir(&app, &token, "", "trip").await;
        let sub = mkdir(&app, &token, &top, "día 1").await;
        let big = test_bytes(3 << 20, 8);
        let small = b"notes".to_vec();
        put_file(&app, &token, &top, "notes.txt", &small).await;
        put_file(&app, &token, &sub, "photo ñ.jpg", &big).await;
        // Outside the shared folder: never reachable through the link.
        put_file(&app, &token, "", "private.txt", b"private").await;
        let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": top})).await;
        let link = s["link"].as_str().unwrap().to_owned();

        let (code, info) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
        assert_eq!(
            (code, info["kind"].as_str(), info["name"].as_str()),
            (StatusCode::OK, Some("folder"), Some("trip"))
        );
        let (code, root) = app.call("GET", &format!("/public/share/list?link={link}"), None).await;
        assert_eq!(code, StatusCode::OK, "{root}");
        let names: Vec<&str> =
            root["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["día 1", "notes.txt"]);
        assert!(root["entries"][0].get("id").is_none(), "no owner ids leak through a link");
        let (code, _, bytes) = public_get(
            &app,
            &format!("/public/share/download?link={link}&path=/d%C3%ADa%201/photo%20%C3%B1.jpg"),
            None,
        )
        .await;
        assert_eq!((code, bytes == big), (StatusCode::OK, true));
        // `.` and `..` break the spec's path pattern: nothing outside is reachable.
        for bad in ["/..", "/../private.txt", "/./notes.txt"] {
            let (code, _, body) =
                public_get(&app, &format!("/public/share/download?link={link}&path={bad}"), None).await;
            assert_eq!((code, code_of(&body).as_str()), (StatusCode::BAD_REQUEST, "INVALID_REQUEST"), "{bad}");
        }
        let (code, _, body) =
            public_get(&app, &format!("/public/share/download?link={link}&path=/private.txt"), None).await;
        assert_eq!((code, code_of(&body).as_str()), (StatusCode::NOT_FOUND, "FILE_NOT_FOUND"));

        let (code, headers, zip) = public_get(&app, &format!("/public/share/zip?link={link}"), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/zip");
        assert!(headers["content-disposition"].to_str().unwrap().contains("trip.zip"));
        let mut got = unzip(&zip).await;
        got.sort();
        assert_eq!(
            got,
            vec![
                ("día 1/".to_owned(), Vec::new()),
                ("día 1/photo ñ.jpg".to_owned(), big.clone()),
                ("notes.txt".to_owned(), small.clone())
            ]
        );
        // An independent reader agrees (CRCs, central directory, zip64 fields).
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.zip"), &zip).unwrap();
        let out = std::process::Command::new("python3")
            .args(["-m", "zipfile", "-t"])
            .arg(dir.path().join("t.zip"))
            .output()
            .expect("python3 runs");
        assert!(out.status.success(), "python's zipfile rejects the zip: {}", String::from_utf8_lossy(&out.stderr));

        // Past the cap: a clear 413, and no download counted.
        for i in 0..4 {
            put_file(&app, &token, &sub, &format!("more{i}"), &[i as u8]).await;
        }
        let (code, _, body) = public_get(&app, &format!("/public/share/zip?link={link}"), None).await;
        assert_eq!((code, code_of(&body).as_str()), (StatusCode::PAYLOAD_TOO_LARGE, "ZIP_TOO_MANY_ENTRIES"));
        let (_, list) = app.call("GET", "/share/list", Some(&token)).await;
        assert_eq!(list["shares"][0]["downloads"], 2, "the zip and the file download: {list}");
    }
);

/// (name, bytes) of every member of a zip, read with async_zip.
async fn unzip(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    use futures::AsyncReadExt;
    let reader = async_zip::base::read::mem::ZipFileReader::new(zip.to_vec()).await.expect("a readable zip");
    let mut out = Vec::new();
    for i in 0..reader.file().entries().len() {
        let name = reader.file().entries()[i].filename().as_str().unwrap().to_owned();
        let mut r = reader.reader_with_entry(i).await.unwrap();
        let mut bytes = Vec::new();
        r.read_to_end_checked(&mut bytes).await.expect("CRC and size match");
        let _ = r.read_to_end(&mut Vec::new()).await;
        out.push((name, bytes));
    }
    out
}

/// A GET with extra headers (no token): status, headers and bytes.
async fn public_get_with(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = app.http.request(method, app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (code, headers) = (resp.status(), resp.headers().clone());
    (code, headers, resp.bytes().await.unwrap().to_vec())
}

/// The owner's view of a link: (downloads, bytes_sent).
async fn sent(app: &TestApp, token: &str, link: &str) -> (i64, i64) {
    let (_, list) = app.call("GET", "/share/list", Some(token)).await;
    let s = list["shares"].as_array().unwrap().iter().find(|s| s["link"] == link).expect("the link is listed");
    (s["downloads"].as_i64().unwrap(), s["bytes_sent"].as_i64().unwrap())
}

both!(
    /// H1: a limited link counts every byte it sends, however the Range is
    /// written: a suffix range, a start of `00`, several ranges (answered whole)
    /// all spend the budget, and once it is spent every form gets 410
    /// `SHARE_EXHAUSTED` (info too) without a byte.
    a_download_limit_counts_the_bytes_of_every_range_and_refuses_them_all_once_spent, |app| {
    let token = app.user(&uname("ranges")).await;
    let data = test_bytes(1000, 5);
    let f = put_file(&app, &token, "", "r.bin", &data).await;
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "max_downloads": 2})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    let dl = format!("/public/share/download?link={link}");
    let (code, _, got) = public_get(&app, &dl, Some("bytes=-1000")).await;
    assert_eq!((code, got == data), (StatusCode::PARTIAL_CONTENT, true));
    assert_eq!(sent(&app, &token, &link).await, (1, 1000), "a suffix range is a download");
    let (code, _, got) = public_get(&app, &dl, Some("bytes=00-")).await;
    assert_eq!((code, got == data), (StatusCode::PARTIAL_CONTENT, true));
    assert_eq!(sent(&app, &token, &link).await, (2, 2000), "so is a range from 00");
    for range in [None, Some("bytes=-1000"), Some("bytes=00-"), Some("bytes=5-6,0-"), Some("bytes=0-0")] {
        let (code, _, body) = public_get(&app, &dl, range).await;
        assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"), "{range:?}");
    }
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXHAUSTED")));
    assert_eq!(sent(&app, &token, &link).await, (2, 2000), "nothing more was sent");

    // Several ranges are answered with the whole file, and reserve its size.
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "max_downloads": 1})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    let dl = format!("/public/share/download?link={link}");
    let (code, _, got) = public_get(&app, &dl, Some("bytes=5-6,0-")).await;
    assert_eq!((code, got == data), (StatusCode::OK, true));
    assert_eq!(sent(&app, &token, &link).await, (1, 1000));
    let (code, _, body) = public_get(&app, &dl, Some("bytes=5-6")).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
});

both!(
    /// L2 and the 304 rule: HEAD and a 304 send no content and spend nothing of
    /// a link's budget; an unfurler's HEADs leave the one download to its holder.
    head_and_not_modified_answers_spend_nothing_of_a_download_limit, |app| {
    let token = app.user(&uname("head")).await;
    let data = test_bytes(2000, 6);
    let f = put_file(&app, &token, "", "h.bin", &data).await;
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "max_downloads": 1})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    let dl = format!("/public/share/download?link={link}");
    let mut etag = String::new();
    for _ in 0..3 {
        let (code, headers, body) = public_get_with(&app, reqwest::Method::HEAD, &dl, &[]).await;
        assert_eq!((code, body.len()), (StatusCode::OK, 0));
        etag = headers["etag"].to_str().unwrap().to_owned();
    }
    let (code, _, _) = public_get_with(&app, reqwest::Method::GET, &dl, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(code, StatusCode::NOT_MODIFIED);
    assert_eq!(sent(&app, &token, &link).await, (0, 0), "HEAD and 304 sent nothing");
    let (code, _, got) = public_get(&app, &dl, None).await;
    assert_eq!((code, got == data), (StatusCode::OK, true));
    assert_eq!(sent(&app, &token, &link).await, (1, 2000));
    let (code, _, body) = public_get(&app, &dl, None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
});

both!(
    /// H1 on a folder link: its size is its files' total when the link was
    /// made; every file sent and every zip (the sum of its members) spends that
    /// budget, a zip the rest cannot cover is refused whole, and a used-up
    /// folder link answers 410 to info, list, download (any range) and zip.
    a_folder_links_limit_counts_its_files_and_zips_and_a_used_up_one_serves_nothing, |app| {
    let token = app.user(&uname("fold")).await;
    let top = mkdir(&app, &token, "", "box").await;
    let (a, b) = (test_bytes(100, 7), test_bytes(200, 8));
    put_file(&app, &token, &top, "a.bin", &a).await;
    put_file(&app, &token, &top, "b.bin", &b).await;
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": top, "max_downloads": 1})).await;
    assert_eq!(s["size"], 300, "{s}");
    let link = s["link"].as_str().unwrap().to_owned();
    let base = format!("/public/share/download?link={link}&path=");
    let (code, _, got) = public_get(&app, &format!("{base}/a.bin"), None).await;
    assert_eq!((code, got == a), (StatusCode::OK, true));
    // 200 bytes left: a zip of 300 does not fit, and is not started.
    let (code, _, body) = public_get(&app, &format!("/public/share/zip?link={link}"), None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
    assert_eq!(sent(&app, &token, &link).await, (1, 100));
    let (code, _, got) = public_get(&app, &format!("{base}/b.bin"), Some("bytes=-1000")).await;
    assert_eq!((code, got == b), (StatusCode::PARTIAL_CONTENT, true));
    assert_eq!(sent(&app, &token, &link).await, (1, 300));
    for range in [None, Some("bytes=-10"), Some("bytes=00-"), Some("bytes=5-6,0-")] {
        let (code, _, body) = public_get(&app, &format!("{base}/a.bin"), range).await;
        assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"), "{range:?}");
    }
    for path in [format!("/public/share/info?link={link}"), format!("/public/share/list?link={link}")] {
        let (code, body) = app.call("GET", &path, None).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXHAUSTED")), "{path}");
    }
    let (code, _, body) = public_get(&app, &format!("/public/share/zip?link={link}"), None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));

    // A zip reserves the sum of its members, and a second one no longer fits.
    let (_, s) = app.post_json("/share/create", Some(&token), &json!({"id": top, "max_downloads": 1})).await;
    let link = s["link"].as_str().unwrap().to_owned();
    let (code, _, zip) = public_get(&app, &format!("/public/share/zip?link={link}"), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(unzip(&zip).await.len(), 2);
    assert_eq!(sent(&app, &token, &link).await, (1, 300));
    let (code, body) = app.call("GET", &format!("/public/share/list?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXHAUSTED")));
});

both!(
    /// L1: wrong passwords are limited per (link, address), and per link at ten
    /// times that; the right password costs nothing. A guesser at one address
    /// does not lock out a holder at another; a guesser spread over many
    /// addresses closes the link to everyone who has not unlocked it (429 with
    /// `Retry-After`), while holders who did keep their access.
    wrong_passwords_are_limited_per_link_and_address_and_a_distributed_guesser_closes_only_new_unlocks,
    |b: TestAppBuilder| b
        .env("PAN_SHARE_PASSWORD_RATE", "2")
        .env("PAN_TRUSTED_PROXIES", "127.0.0.1")
        .env("PAN_SIGNUP", "open"),
    |app| {
        let token = app.user(&uname("guess")).await;
        let f = put_file(&app, &token, "", "s.txt", b"secret").await;
        let (_, s) =
            app.post_json("/share/create", Some(&token), &json!({"id": f["id"], "password": "right horse"})).await;
        let link = s["link"].as_str().unwrap().to_owned();
        let unlock = |from: String, password: &'static str| {
            let req = app
                .http
                .post(app.url(&format!("/public/share/unlock?link={link}")))
                .header("x-forwarded-for", from)
                .json(&json!({"password": password}));
            async move {
                let resp = req.send().await.unwrap();
                let (code, headers) = (resp.status(), resp.headers().clone());
                let body: Value = resp.json().await.unwrap();
                (code, headers, body)
            }
        };
        // The holder unlocks early, and again: right passwords count for nothing.
        for _ in 0..5 {
            let (code, _, _) = unlock("192.0.2.1".into(), "right horse").await;
            assert_eq!(code, StatusCode::OK);
        }
        let (_, _, ok) = unlock("192.0.2.1".into(), "right horse").await;
        let access = ok["access"].as_str().unwrap().to_owned();
        // One guesser: two wrong, then 429 there, even with the right password...
        let first_wrong = std::time::Instant::now();
        for _ in 0..2 {
            let (code, _, body) = unlock("198.51.100.1".into(), "wrong").await;
            assert_eq!((code, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("SHARE_PASSWORD_WRONG")));
        }
        let (code, headers, body) = unlock("198.51.100.1".into(), "right horse").await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED")), "{body}");
        assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        // ...while a holder elsewhere unlocks.
        let (code, _, body) = unlock("203.0.113.1".into(), "right horse").await;
        assert_eq!(code, StatusCode::OK, "{body}");
        // Twenty wrong ones (nine more addresses) close the link to new unlocks.
        for i in 2..=10 {
            for _ in 0..2 {
                let (code, _, _) = unlock(format!("198.51.100.{i}"), "wrong").await;
                assert_eq!(code, StatusCode::FORBIDDEN);
            }
        }
        // The link's bucket (20 a minute) gives a cell back every 3 s: on a
        // slow machine the twenty took that long, and exactly that many more
        // wrong ones get through. A right password from a fresh address is
        // refused once the bucket is empty (while a cell is there it unlocks,
        // and gives the cell back: a wrong one from another address spends it).
        let mut more = 0;
        loop {
            let (code, headers, body) = unlock(format!("203.0.113.{}", 2 + more), "right horse").await;
            if code == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(body["code"].as_str(), Some("RATE_LIMITED"), "{body}");
                assert!(headers["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
                break;
            }
            assert_eq!(code, StatusCode::OK, "{body}");
            let (code, _, body) = unlock(format!("198.51.101.{more}"), "wrong").await;
            assert!([StatusCode::FORBIDDEN, StatusCode::TOO_MANY_REQUESTS].contains(&code), "{body}");
            more += 1;
            let regained = first_wrong.elapsed().as_secs() / 3 + 1;
            assert!(more <= regained, "{more} wrong passwords past the link's 20 after {:?}", first_wrong.elapsed());
        }
        // The early holder still downloads.
        let (code, _, got) =
            public_get(&app, &format!("/public/share/download?link={link}&access={access}"), None).await;
        assert_eq!((code, got.as_slice()), (StatusCode::OK, b"secret".as_slice()));
    }
);
