//! Modification times: the `mtime` a client declares at init or in a single
//! upload becomes the entry's, next to its upload time; it is validated,
//! shown by every listing, sent as `Last-Modified`, kept by moves and
//! renames, and what `sort=time` orders files by.

use pan_tests::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// 2001-09-09T01:46:40Z.
const BILLENNIUM: i64 = 1_000_000_000;

/// A single-request upload of `data` as `name` with extra form fields.
async fn single(app: &TestApp, token: &str, name: &str, data: &[u8], fields: &[(&str, String)]) -> (StatusCode, Value) {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_owned()));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    let code = resp.status();
    (code, resp.json().await.unwrap_or(Value::Null))
}

/// init with hashes and an `mtime`, every chunk, complete: the final status.
async fn upload_with_mtime(app: &TestApp, token: &str, name: &str, data: &[u8], mtime: i64) -> Value {
    let body = json!({"filename": name, "filehash": sha1_hex(data), "sha256": sha256_hex(data),
                      "filesize": data.len(), "mtime": mtime});
    let (code, init) = app.post_json("/file/mupload/init", Some(token), &body).await;
    assert_eq!(code, StatusCode::OK, "init: {init}");
    assert_eq!(init["status"], "new", "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let size = init["chunksize"].as_u64().unwrap() as usize;
    for (i, part) in data.chunks(size).enumerate() {
        let (code, body) = app.put_chunk(token, &id, i as u64, part.to_vec()).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "complete: {body}");
    app.wait_merged(token, &id).await
}

/// The caller's files in the root, as `/folder/list` gives them with `query`.
async fn list(app: &TestApp, token: &str, query: &str) -> Value {
    let (code, page) = app.call("GET", &format!("/folder/list?path=/&{query}"), Some(token)).await;
    assert_eq!(code, StatusCode::OK, "list: {page}");
    page
}

both!(
    /// A chunked upload whose init declared `mtime` ends with an entry of
    /// that time (distinct from its upload time) in the status, `/file/query`,
    /// `/folder/list`, `/folder/stat`, search, and as the download's
    /// `Last-Modified`; an instant upload of the same content takes the time
    /// its own init declared, also when the instant comes at `declare` (the
    /// session kept it).
    init_with_mtime_gives_the_entry_that_time,
    |app| {
        let token = app.user("mt").await;
        let data = test_bytes(300_000, 1);
        let done = upload_with_mtime(&app, &token, "old.bin", &data, BILLENNIUM).await;
        assert_eq!(done["state"], "done", "{done}");
        let file = &done["file"];
        assert_eq!(file["mtime"], BILLENNIUM, "{done}");
        assert!(file["uploaded_at"].as_i64().unwrap() > BILLENNIUM, "{done}");

        let (_, q) = app.call("GET", "/file/query", Some(&token)).await;
        assert_eq!(q["files"][0]["mtime"], BILLENNIUM, "{q}");
        let page = list(&app, &token, "").await;
        assert_eq!(page["entries"][0]["mtime"], BILLENNIUM, "{page}");
        let (code, stat) = app.call("GET", "/folder/stat?path=/old.bin", Some(&token)).await;
        assert_eq!((code, &stat["mtime"]), (StatusCode::OK, &json!(BILLENNIUM)), "{stat}");
        let (_, found) = app.call("GET", "/folder/search?q=old", Some(&token)).await;
        assert_eq!(found["entries"][0]["mtime"], BILLENNIUM, "{found}");

        let resp = app
            .http
            .get(app.url(&format!("/file/download?id={}", file["id"].as_str().unwrap())))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["last-modified"], "Sun, 09 Sep 2001 01:46:40 GMT");

        // The same content again under another name: instant, with its own time.
        let body = json!({"filename": "again.bin", "filehash": sha1_hex(&data), "sha256": sha256_hex(&data),
                          "filesize": data.len(), "mtime": BILLENNIUM + 7});
        let (code, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
        assert_eq!((code, init["status"].as_str()), (StatusCode::OK, Some("instant")), "{init}");
        assert_eq!(init["file"]["mtime"], BILLENNIUM + 7, "{init}");

        // Begun without hashes, kept in the session: declare finds it instant.
        let body = json!({"filename": "third.bin", "filesize": data.len(), "mtime": BILLENNIUM + 9});
        let (code, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
        assert_eq!((code, init["status"].as_str()), (StatusCode::OK, Some("new")), "{init}");
        let id = init["uploadID"].as_str().unwrap();
        let hashes = json!({"filehash": sha1_hex(&data), "sha256": sha256_hex(&data)});
        let (code, declared) = app.post_json(&format!("/file/mupload/declare?uploadID={id}"), Some(&token), &hashes).await;
        assert_eq!((code, declared["status"].as_str()), (StatusCode::OK, Some("instant")), "{declared}");
        assert_eq!(declared["file"]["mtime"], BILLENNIUM + 9, "{declared}");
    }
);

both!(
    /// A single-request upload takes the `mtime` form field; without one
    /// (single or chunked) the entry's mtime is its upload time.
    single_upload_takes_mtime_and_none_means_upload_time,
    |app| {
        let token = app.user("ms").await;
        let (code, f) = single(&app, &token, "a.txt", b"alpha", &[("mtime", "1234567890".into())]).await;
        assert_eq!(code, StatusCode::CREATED, "{f}");
        assert_eq!(f["mtime"], 1_234_567_890, "{f}");
        let (code, f) = single(&app, &token, "max.txt", b"max", &[("mtime", "253402300799".into())]).await;
        assert_eq!((code, &f["mtime"]), (StatusCode::CREATED, &json!(253_402_300_799i64)), "{f}");

        let (code, f) = single(&app, &token, "b.txt", b"beta", &[]).await;
        assert_eq!(code, StatusCode::CREATED, "{f}");
        assert_eq!(f["mtime"], f["uploaded_at"], "{f}");
        let done = app.upload(&token, "c.bin", &test_bytes(5000, 2)).await;
        assert_eq!(done["file"]["mtime"], done["file"]["uploaded_at"], "{done}");
    }
);

both!(
    /// An `mtime` outside 0 ..= 253402300799 is 400 `INVALID_MTIME` at init
    /// and in a single upload (nothing is stored); one that is not an
    /// integer is 400 `INVALID_REQUEST`.
    invalid_mtime_is_refused,
    |app| {
        let token = app.user("mi").await;
        for bad in [json!(-1), json!(253_402_300_800i64)] {
            let body = json!({"filename": "x.bin", "filesize": 3, "mtime": bad});
            let (code, err) = app.post_json("/file/mupload/init", Some(&token), &body).await;
            assert_eq!((code, err["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_MTIME")), "{bad}: {err}");
        }
        let body = json!({"filename": "x.bin", "filesize": 3, "mtime": "yesterday"});
        let (code, err) = app.post_json("/file/mupload/init", Some(&token), &body).await;
        assert_eq!((code, err["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{err}");

        let (code, err) = single(&app, &token, "y.txt", b"y", &[("mtime", "-5".into())]).await;
        assert_eq!((code, err["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_MTIME")), "{err}");
        let (code, err) = single(&app, &token, "y.txt", b"y", &[("mtime", "soon".into())]).await;
        assert_eq!((code, err["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{err}");
        let (_, q) = app.call("GET", "/file/query", Some(&token)).await;
        assert_eq!(q["total"], 0, "{q}");
    }
);

both!(
    /// `sort=time` orders files by their mtime, not by upload order, both
    /// ways, equal times in the order the entries were made; paging by
    /// cursor one entry at a time gives the same order.
    sort_by_time_uses_mtime,
    |app| {
        let token = app.user("mo").await;
        for (name, mtime) in [("c", 300), ("a", 100), ("b", 200), ("b2", 200)] {
            let (code, f) = single(&app, &token, name, name.as_bytes(), &[("mtime", mtime.to_string())]).await;
            assert_eq!(code, StatusCode::CREATED, "{f}");
        }
        let names = |page: &Value| -> Vec<String> {
            page["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
        };
        assert_eq!(names(&list(&app, &token, "sort=time").await), ["a", "b", "b2", "c"]);
        assert_eq!(names(&list(&app, &token, "sort=time&order=desc").await), ["c", "b2", "b", "a"]);

        let mut paged = Vec::new();
        let mut query = "sort=time&limit=1".to_owned();
        loop {
            let page = list(&app, &token, &query).await;
            paged.extend(names(&page));
            match page["next_cursor"].as_str() {
                Some(c) => query = format!("sort=time&limit=1&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(paged, ["a", "b", "b2", "c"]);
    }
);

both!(
    /// A move into a folder and a rename keep the file's mtime.
    moves_and_renames_keep_mtime,
    |app| {
        let token = app.user("mm").await;
        let (_, f) = single(&app, &token, "doc.txt", b"doc", &[("mtime", BILLENNIUM.to_string())]).await;
        let (code, dir) = app.post_json("/folder/create", Some(&token), &json!({"name": "docs"})).await;
        assert_eq!(code, StatusCode::CREATED, "{dir}");
        let (code, moved) = app.post_json("/file/move", Some(&token), &json!({"id": f["id"], "to": dir["id"]})).await;
        assert_eq!((code, &moved["mtime"]), (StatusCode::OK, &json!(BILLENNIUM)), "{moved}");
        let (code, renamed) =
            app.post_json("/file/rename", Some(&token), &json!({"id": f["id"], "filename": "paper.txt"})).await;
        assert_eq!((code, &renamed["mtime"]), (StatusCode::OK, &json!(BILLENNIUM)), "{renamed}");
        let (_, stat) = app.call("GET", "/folder/stat?path=/docs/paper.txt", Some(&token)).await;
        assert_eq!(stat["mtime"], BILLENNIUM, "{stat}");
    }
);

both!(
    /// A shared folder's public listing shows its files' mtime, and its zip
    /// gives each member the file's mtime (not its upload time).
    shared_folders_show_mtime_in_listing_and_zip,
    |app| {
        let token = app.user("mz").await;
        let (_, dir) = app.post_json("/folder/create", Some(&token), &json!({"name": "pub"})).await;
        let folder = dir["id"].as_str().unwrap().to_owned();
        let fields = [("mtime", BILLENNIUM.to_string()), ("folder", folder.clone())];
        let (code, f) = single(&app, &token, "p.txt", b"public", &fields).await;
        assert_eq!(code, StatusCode::CREATED, "{f}");
        let (code, share) = app.post_json("/share/create", Some(&token), &json!({"id": folder})).await;
        assert!(code.is_success(), "{share}");
        let link = share["link"].as_str().unwrap();

        let (code, page) = app.call("GET", &format!("/public/share/list?link={link}&path=/"), None).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        assert_eq!(page["entries"][0]["mtime"], BILLENNIUM, "{page}");

        let zip = app.http.get(app.url(&format!("/public/share/zip?link={link}"))).send().await.unwrap();
        assert_eq!(zip.status(), StatusCode::OK);
        let zip = zip.bytes().await.unwrap().to_vec();
        let reader = async_zip::base::read::mem::ZipFileReader::new(zip).await.expect("a readable zip");
        let entry = reader.file().entries().iter().find(|e| e.filename().as_str().unwrap() == "p.txt").unwrap();
        let t = entry.last_modification_date();
        // 2001-09-09 01:46:40 UTC (zip times have two-second steps).
        assert_eq!((t.year(), t.month(), t.day(), t.hour(), t.minute(), t.second()), (2001, 9, 9, 1, 46, 40));
    }
);
