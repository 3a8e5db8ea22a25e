//! Versions: replacing a file's content (`on_conflict=replace`, through a
//! chunked upload, a single upload, a move and a copy) keeps the old content
//! as a version, which its owner lists, downloads, restores, pins and
//! deletes; `if_match` turns a concurrent change into 412; versions follow
//! their file into the trash and go when it is purged; usage counts the
//! contents only versions hold.

use pan_tests::*;
use serde_json::{Value, json};

/// A single upload of `data` as `name` with `on_conflict` (and `if_match`).
async fn single(
    app: &TestApp,
    token: &str,
    name: &str,
    data: &[u8],
    rule: &str,
    if_match: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_owned()))
        .text("on_conflict", rule.to_owned());
    if let Some(h) = if_match {
        form = form.text("if_match", h.to_owned());
    }
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    let code = resp.status();
    (code, resp.json().await.unwrap())
}

/// A chunked upload of `data` as `name` that replaces the file of that name.
async fn replacing_upload(app: &TestApp, token: &str, name: &str, data: &[u8], if_match: Option<&str>) -> Value {
    let mut body = json!({"filename": name, "filehash": sha1_hex(data), "sha256": sha256_hex(data),
        "filesize": data.len(), "on_conflict": "replace"});
    if let Some(h) = if_match {
        body["if_match"] = json!(h);
    }
    let (code, init) = app.post_json("/file/mupload/init", Some(token), &body).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    if init["status"] == "instant" {
        return init;
    }
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let size = init["chunksize"].as_u64().unwrap() as usize;
    for (i, part) in data.chunks(size.max(1)).enumerate() {
        let (code, r) = app.put_chunk(token, &id, i as u64, part.to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{r}");
    }
    let (code, r) = app.complete(token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{r}");
    app.wait_merged(token, &id).await
}

async fn versions(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let (code, body) = app.call("GET", &format!("/file/versions?id={id}"), Some(token)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["versions"].as_array().unwrap().clone()
}

async fn download_current(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

both!(
    /// A chunked upload and a single upload with `replace` give the file of
    /// that name their content: the file keeps its id, the old content is a
    /// version (with its size, SHA-256, time and author) that downloads
    /// byte-exact (Range too), restores (the current content becoming a
    /// version in turn), pins with a label, and deletes. The same content
    /// again, and replacing an empty file, make no version.
    replacing_a_file_keeps_its_old_content_as_a_version,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("ver")).await;
        let (v1, v2, v3) = (test_bytes(3000, 61), test_bytes(2500, 62), test_bytes(100, 63));
        let (code, first) = single(&app, &token, "doc.bin", &v1, "rename", None).await;
        assert_eq!(code, StatusCode::CREATED, "{first}");
        let id = first["id"].as_str().unwrap().to_owned();

        let done = replacing_upload(&app, &token, "doc.bin", &v2, None).await;
        assert_eq!(done["state"], "done", "{done}");
        assert_eq!(done["file"]["id"], id.as_str(), "the file keeps its id");
        assert!(download_current(&app, &token, &id).await == v2);
        let list = versions(&app, &token, &id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!((&list[0]["size"], &list[0]["sha256"]), (&json!(3000), &json!(sha256_hex(&v1))));
        assert_eq!((&list[0]["pinned"], &list[0]["author"]["kind"]), (&json!(false), &json!("session")));
        let version = list[0]["version"].as_str().unwrap().to_owned();

        let url = format!("/file/version/download?id={id}&version={version}");
        let resp = app.http.get(app.url(&url)).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.bytes().await.unwrap() == v1, "the version downloads byte-exact");
        let resp = app.http.get(app.url(&url)).bearer_auth(&token).header("range", "bytes=10-19").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert!(resp.bytes().await.unwrap() == v1[10..20]);

        // The same content again: no version. A single upload replaces too.
        let (code, again) = single(&app, &token, "doc.bin", &v2, "replace", None).await;
        assert_eq!((code, again["id"].as_str()), (StatusCode::CREATED, Some(id.as_str())), "{again}");
        assert_eq!(versions(&app, &token, &id).await.len(), 1, "the same content makes no version");
        let (code, third) = single(&app, &token, "doc.bin", &v3, "replace", Some(&sha256_hex(&v2))).await;
        assert_eq!((code, third["id"].as_str()), (StatusCode::CREATED, Some(id.as_str())), "{third}");
        assert_eq!(versions(&app, &token, &id).await.len(), 2);

        // Restore v1: v3 becomes a version in turn.
        let (code, restored) =
            app.post_json("/file/version/restore", Some(&token), &json!({"id": id, "version": version})).await;
        assert_eq!(code, StatusCode::OK, "{restored}");
        assert_eq!(restored["sha256"], sha256_hex(&v1));
        assert!(download_current(&app, &token, &id).await == v1);
        let list = versions(&app, &token, &id).await;
        let shas: Vec<&str> = list.iter().map(|v| v["sha256"].as_str().unwrap()).collect();
        assert_eq!(shas, [sha256_hex(&v3), sha256_hex(&v2)], "newest first, the restored one gone from the list");

        // Pin with a label; delete the other.
        let pin = json!({"id": id, "version": list[1]["version"], "pinned": true, "label": "draft 2"});
        let (code, pinned) = app.post_json("/file/version/pin", Some(&token), &pin).await;
        assert_eq!(code, StatusCode::OK, "{pinned}");
        assert_eq!((&pinned["pinned"], &pinned["label"]), (&json!(true), &json!("draft 2")));
        let path = format!("/file/version/delete?id={id}&version={}", list[0]["version"].as_str().unwrap());
        let (code, _) = app.call("DELETE", &path, Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, body) = app.call("DELETE", &path, Some(&token)).await;
        assert_eq!((code, &body["code"]), (StatusCode::NOT_FOUND, &json!("VERSION_NOT_FOUND")));
        assert_eq!(versions(&app, &token, &id).await.len(), 1);

        // An empty file replaced leaves no version.
        let (_, empty) = single(&app, &token, "empty.txt", b"", "rename", None).await;
        let empty_id = empty["id"].as_str().unwrap().to_owned();
        let (code, _) = single(&app, &token, "empty.txt", &v3, "replace", None).await;
        assert_eq!(code, StatusCode::CREATED);
        assert!(versions(&app, &token, &empty_id).await.is_empty(), "empty content makes no version");

        // Someone else's file's versions are nobody else's business.
        let other = app.user(&uname("other")).await;
        let (code, body) = app.call("GET", &format!("/file/versions?id={id}"), Some(&other)).await;
        assert_eq!((code, &body["code"]), (StatusCode::NOT_FOUND, &json!("FILE_NOT_FOUND")));
        app.assert_consistent().await;
    }
);

both!(
    /// `if_match` names the content a replacement expects: another is 412
    /// `CONTENT_CHANGED` at init and on a single upload, and nothing
    /// changes; a folder of the name is 409 `NAME_TAKEN`, never replaced;
    /// `replace` on a folder operation is 400.
    a_replacement_of_other_content_than_expected_is_refused,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("ifm")).await;
        let (v1, v2) = (test_bytes(2000, 64), test_bytes(2100, 65));
        let (_, first) = single(&app, &token, "f.bin", &v1, "rename", None).await;
        let id = first["id"].as_str().unwrap().to_owned();
        let wrong = sha256_hex(b"something else");
        let (code, body) = single(&app, &token, "f.bin", &v2, "replace", Some(&wrong)).await;
        assert_eq!((code, &body["code"]), (StatusCode::PRECONDITION_FAILED, &json!("CONTENT_CHANGED")), "{body}");
        let body = json!({"filename": "f.bin", "filehash": sha1_hex(&v2), "sha256": sha256_hex(&v2),
            "filesize": v2.len(), "on_conflict": "replace", "if_match": wrong});
        let (code, body) = app.post_json("/file/mupload/init", Some(&token), &body).await;
        assert_eq!((code, &body["code"]), (StatusCode::PRECONDITION_FAILED, &json!("CONTENT_CHANGED")), "{body}");
        assert!(download_current(&app, &token, &id).await == v1, "nothing changed");
        assert!(versions(&app, &token, &id).await.is_empty());

        let (code, folder) = app.post_json("/folder/create", Some(&token), &json!({"name": "dir"})).await;
        assert_eq!(code, StatusCode::CREATED, "{folder}");
        let (code, body) = single(&app, &token, "dir", &v2, "replace", None).await;
        assert_eq!((code, &body["code"]), (StatusCode::CONFLICT, &json!("NAME_TAKEN")), "a folder is never replaced");
        let (code, body) =
            app.post_json("/folder/create", Some(&token), &json!({"name": "dir", "on_conflict": "replace"})).await;
        assert_eq!((code, &body["code"]), (StatusCode::BAD_REQUEST, &json!("INVALID_REQUEST")), "{body}");
    }
);

both!(
    /// A move onto a file's name with `replace` gives that file the moved
    /// content and versions (the moved entry is gone); a copy with
    /// `replace` gives it the content and leaves the original; both keep
    /// the replaced content as a version.
    moves_and_copies_onto_a_file_replace_its_content,
    |app| {
        let token = app.user(&uname("mv")).await;
        let (a1, a2, b1, c1) = (test_bytes(500, 66), test_bytes(600, 67), test_bytes(700, 68), test_bytes(800, 69));
        let (_, a) = single(&app, &token, "a.txt", &a1, "rename", None).await;
        single(&app, &token, "a.txt", &a2, "replace", None).await;
        let (_, b) = single(&app, &token, "b.txt", &b1, "rename", None).await;
        let (a_id, b_id) = (a["id"].as_str().unwrap().to_owned(), b["id"].as_str().unwrap().to_owned());
        assert_eq!(versions(&app, &token, &a_id).await.len(), 1);

        let mv = json!({"id": a_id, "name": "b.txt", "on_conflict": "replace", "if_match": sha256_hex(&b1)});
        let (code, moved) = app.post_json("/file/move", Some(&token), &mv).await;
        assert_eq!(code, StatusCode::OK, "{moved}");
        assert_eq!((moved["id"].as_str(), &moved["filename"]), (Some(b_id.as_str()), &json!("b.txt")));
        assert!(download_current(&app, &token, &b_id).await == a2);
        let shas: Vec<String> =
            versions(&app, &token, &b_id).await.iter().map(|v| v["sha256"].as_str().unwrap().to_owned()).collect();
        assert_eq!(shas.len(), 2, "b's old content and a's version: {shas:?}");
        assert!(shas.contains(&sha256_hex(&b1)) && shas.contains(&sha256_hex(&a1)));
        let (code, _) = app.call("GET", &format!("/file/versions?id={a_id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "the moved entry is gone");

        let (_, c) = single(&app, &token, "c.txt", &c1, "rename", None).await;
        let c_id = c["id"].as_str().unwrap().to_owned();
        let cp = json!({"id": c_id, "name": "b.txt", "on_conflict": "replace"});
        let (code, copied) = app.post_json("/file/copy", Some(&token), &cp).await;
        assert_eq!(code, StatusCode::CREATED, "{copied}");
        assert_eq!(copied["id"].as_str(), Some(b_id.as_str()));
        assert!(download_current(&app, &token, &b_id).await == c1);
        assert!(download_current(&app, &token, &c_id).await == c1, "the original stays");
        assert_eq!(versions(&app, &token, &b_id).await.len(), 3);
        // A plain copy is a new file.
        let (code, copy) = app.post_json("/file/copy", Some(&token), &json!({"id": c_id, "on_conflict": "rename"})).await;
        assert_eq!((code, &copy["filename"]), (StatusCode::CREATED, &json!("c (1).txt")), "{copy}");
        app.assert_consistent().await;
    }
);

both!(
    /// Versions follow their file into the trash and back, and go with it
    /// when it is purged (their bytes too, once nothing holds them); usage
    /// counts the contents only versions hold, once.
    versions_follow_their_file_and_count_in_usage,
    |app| {
        let token = app.user(&uname("trash")).await;
        let (v1, v2) = (test_bytes(4000, 70), test_bytes(1000, 71));
        let (_, f) = single(&app, &token, "t.bin", &v1, "rename", None).await;
        single(&app, &token, "t.bin", &v2, "replace", None).await;
        let id = f["id"].as_str().unwrap().to_owned();
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((&info["bytes_used"], &info["version_count"], &info["version_bytes"]), (&json!(1000), &json!(1), &json!(4000)));
        // A file of the same content as the version: it counts there, once.
        single(&app, &token, "same.bin", &v1, "rename", None).await;
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((&info["bytes_used"], &info["version_bytes"]), (&json!(5000), &json!(0)));

        let (code, _) = app.call("DELETE", &format!("/file/delete?id={id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        assert_eq!(versions(&app, &token, &id).await.len(), 1, "a trashed file keeps its versions");
        let (code, body) = app.post_json("/trash/restore", Some(&token), &json!({"id": id})).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(versions(&app, &token, &id).await.len(), 1);
        let (code, _) = app.call("DELETE", &format!("/file/delete?id={id}&permanent=true"), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _) = app.call("GET", &format!("/file/versions?id={id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "purged, versions and all");
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((&info["version_count"], &info["version_bytes"]), (&json!(0), &json!(0)));
        app.assert_consistent().await;
    }
);

both!(
    /// A download URL is bound to the content it was made for, on every
    /// store: after the file's content is replaced it still serves the old
    /// content (now a version), byte-exact, and once that version is
    /// deleted it serves nothing (404), never the new content.
    a_download_url_serves_the_content_it_was_made_for,
    |app| {
        let token = app.user(&uname("url")).await;
        let (v1, v2) = (test_bytes(3000, 72), test_bytes(3100, 73));
        let (_, f) = single(&app, &token, "u.bin", &v1, "rename", None).await;
        let id = f["id"].as_str().unwrap().to_owned();
        let (code, link) = app.call("POST", &format!("/file/downloadurl?id={id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::OK, "{link}");
        let url = link["url"].as_str().unwrap().to_owned();
        single(&app, &token, "u.bin", &v2, "replace", None).await;
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.bytes().await.unwrap() == v1, "the URL serves the content it was made for");
        let version = versions(&app, &token, &id).await[0]["version"].as_str().unwrap().to_owned();
        let (code, _) = app.call("DELETE", &format!("/file/version/delete?id={id}&version={version}"), Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "its content is gone: nothing, never the new content");
    }
);

both!(
    /// A replacement that would pass the byte quota first lets the user's
    /// oldest unpinned versions go, and answers 507 `QUOTA_EXCEEDED` when
    /// letting them all go would not make room (then none goes) or none is
    /// left to let go (pinned ones stay).
    a_replacement_over_quota_lets_old_versions_go_first,
    |b: TestAppBuilder| b.env("PAN_QUOTA_BYTES", "10000"),
    |app| {
        let token = app.user(&uname("quota")).await;
        let (v1, v2, v3, v4) = (test_bytes(4000, 74), test_bytes(4000, 75), test_bytes(4000, 76), test_bytes(4000, 77));
        let (_, f) = single(&app, &token, "q.bin", &v1, "rename", None).await;
        let id = f["id"].as_str().unwrap().to_owned();
        let (code, _) = single(&app, &token, "q.bin", &v2, "replace", None).await;
        assert_eq!(code, StatusCode::CREATED);
        // 4000 stored + 4000 held by a version + 4000 new > 10000: v1 goes.
        let (code, body) = single(&app, &token, "q.bin", &v3, "replace", None).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        let list = versions(&app, &token, &id).await;
        let shas: Vec<&str> = list.iter().map(|v| v["sha256"].as_str().unwrap()).collect();
        assert_eq!(shas, [sha256_hex(&v2)], "the oldest version went to make room");
        // Too big even with every unpinned version gone: none goes.
        let (code, body) = single(&app, &token, "q.bin", &test_bytes(9000, 78), "replace", None).await;
        assert_eq!((code, &body["code"]), (StatusCode::INSUFFICIENT_STORAGE, &json!("QUOTA_EXCEEDED")), "{body}");
        assert_eq!(versions(&app, &token, &id).await.len(), 1, "nothing is let go for a replacement that cannot fit");
        let pin = json!({"id": id, "version": list[0]["version"], "pinned": true});
        let (code, _) = app.post_json("/file/version/pin", Some(&token), &pin).await;
        assert_eq!(code, StatusCode::OK);
        let (code, body) = single(&app, &token, "q.bin", &v4, "replace", None).await;
        assert_eq!((code, &body["code"]), (StatusCode::INSUFFICIENT_STORAGE, &json!("QUOTA_EXCEEDED")), "{body}");
        assert_eq!(versions(&app, &token, &id).await.len(), 1, "a pinned version stays");
        assert!(download_current(&app, &token, &id).await == v3);
    }
);

both!(
    /// `If-Range` on a download: a `Range` counts while it names the file's
    /// `ETag` or its `Last-Modified` exactly (206), and the whole current
    /// content comes back when it names anything else (200).
    a_range_counts_only_while_if_range_still_matches,
    |app| {
        let token = app.user(&uname("ifr")).await;
        let data = test_bytes(5000, 79);
        let (_, f) = single(&app, &token, "r.bin", &data, "rename", None).await;
        let url = app.url(&format!("/file/download?id={}", f["id"].as_str().unwrap()));
        let full = app.http.get(&url).bearer_auth(&token).send().await.unwrap();
        let etag = full.headers()["etag"].to_str().unwrap().to_owned();
        let modified = full.headers()["last-modified"].to_str().unwrap().to_owned();
        for validator in [etag.as_str(), modified.as_str()] {
            let resp = app.http.get(&url).bearer_auth(&token).header("range", "bytes=100-199")
                .header("if-range", validator).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "If-Range: {validator}");
            assert!(resp.bytes().await.unwrap() == data[100..200]);
        }
        for stale in ["\"0000\"", "Thu, 01 Jan 1970 00:00:00 GMT", "W/\"0000\""] {
            let resp = app.http.get(&url).bearer_auth(&token).header("range", "bytes=100-199")
                .header("if-range", stale).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK, "If-Range: {stale}");
            assert!(resp.bytes().await.unwrap() == data, "the whole content");
        }
    }
);
