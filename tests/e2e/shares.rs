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

both!(a_file_link_downloads_with_range_counts_downloads_and_can_be_revoked, |app| {
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
    // Seeking (a Range not from byte 0) is not a download.
    let (code, headers, part) =
        public_get(&app, &format!("/public/share/download?link={link}"), Some("bytes=1000-1999")).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part, &data[1000..2000]);
    assert_eq!(headers["content-range"], "bytes 1000-1999/300000");
    for _ in 0..2 {
        let (code, _, all) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(all, data);
    }
    let (code, _, body) = public_get(&app, &format!("/public/share/download?link={link}"), None).await;
    assert_eq!((code, code_of(&body).as_str()), (StatusCode::GONE, "SHARE_EXHAUSTED"));
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}"), None).await;
    assert_eq!((code, body["code"].as_str()), (StatusCode::GONE, Some("SHARE_EXHAUSTED")), "the page says so at once");
    let (_, list) = app.call("GET", "/share/list", Some(&token)).await;
    assert_eq!(list["shares"][0]["downloads"], 2, "{list}");

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
        // Three attempts a minute: the third goes through, the fourth waits,
        // even with the right password.
        let (code, _) = app.post_json(&unlock, None, &json!({"password": "another guess"})).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        let (code, body) = app.post_json(&unlock, None, &json!({"password": "open sesame"})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::TOO_MANY_REQUESTS, Some("RATE_LIMITED")), "{body}");
        assert!(body["retry_after"].as_u64().unwrap() >= 1);
    }
);

both!(an_expired_link_is_gone_and_a_trashed_target_closes_its_link_until_restored, |app| {
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
        for bad in ["/..", "/../private.txt", "/./notes.txt"] {
            let (code, _, body) =
                public_get(&app, &format!("/public/share/download?link={link}&path={bad}"), None).await;
            assert_eq!((code, code_of(&body).as_str()), (StatusCode::BAD_REQUEST, "INVALID_PATH"), "{bad}");
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
