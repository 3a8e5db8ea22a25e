//! Collision-safe content identity and proof of possession: content is
//! (SHA-256, size), entries have their own ids, and knowing a file's hashes
//! is never enough to get it.

use pan_tests::*;
use serde_json::json;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(name)).expect("test data")
}

/// Downloads by entry id; returns the bytes (asserting 200).
async fn download_by_id(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.bytes().await.unwrap().to_vec()
}

/// GET `path` as `token`: the status and the body's bytes.
async fn get_bytes(app: &TestApp, token: &str, path: &str) -> (StatusCode, Vec<u8>) {
    let resp = app.http.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    (resp.status(), resp.bytes().await.unwrap().to_vec())
}

both!(
    /// Two users whose files collide on SHA-1 (the SHAttered PDFs) each store
    /// and download their own bytes: identity is SHA-256, not SHA-1.
    two_users_with_colliding_sha1_files_each_download_their_own_bytes, |app| {
    let (one, two) = (data("shattered-1.pdf"), data("shattered-2.pdf"));
    assert_eq!(sha1_hex(&one), sha1_hex(&two), "the SHAttered pair collides");
    let mallory = app.user(&uname("mallory")).await;
    let victim = app.user(&uname("victim")).await;
    let stored = app.upload(&mallory, "shattered-1.pdf", &one).await;
    assert_eq!(stored["state"], "done", "{stored}");
    // The victim sends every byte of the other PDF in one request.
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(two.clone()).file_name("shattered-2.pdf"));
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(&victim).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let entry: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(entry["sha256"], sha256_hex(&two).as_str());
    assert_eq!(download_by_id(&app, &victim, entry["id"].as_str().unwrap()).await, two);
    let (code, _, bytes) = app.download(&victim, &sha1_hex(&two), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, two, "the victim's filehash names the victim's own bytes");
    let (code, _, bytes) = app.download(&mallory, &sha1_hex(&one), None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, one);
    assert_eq!(app.stored().len(), 2, "two contents, two stored files");
    // Through the chunked protocol too: a third user's upload of the second PDF is its own.
    let third = app.user(&uname("third")).await;
    let done = app.upload(&third, "2.pdf", &two).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["file"]["sha256"], sha256_hex(&two).as_str());
    assert_eq!(download_by_id(&app, &third, done["file"]["id"].as_str().unwrap()).await, two);
    assert_eq!(app.stored().len(), 2, "the second PDF is stored once for both of its owners");
});

both!(
    /// One user can hold both SHA-1-colliding files; naming one by the shared
    /// `filehash` answers 409 with both entry ids, and each id downloads its
    /// own bytes.
    one_user_holds_both_colliding_files_and_an_ambiguous_filehash_is_409_with_their_ids, |app| {
    let (one, two) = (data("sha-mbles-1.bin"), data("sha-mbles-2.bin"));
    assert_eq!(sha1_hex(&one), sha1_hex(&two), "the SHAmbles pair collides");
    let token = app.user(&uname("both")).await;
    let first = app.upload(&token, "one.bin", &one).await;
    assert_eq!(first["state"], "done", "{first}");
    let second = app.upload(&token, "two.bin", &two).await;
    assert_eq!(second["state"], "done", "{second}");
    let (id1, id2) = (first["file"]["id"].as_str().unwrap(), second["file"]["id"].as_str().unwrap());
    assert_ne!(id1, id2);
    let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
    assert_eq!(list["total"], 2, "{list}");

    let hash = sha1_hex(&one);
    let (code, body) = app.call("GET", &format!("/file/download?filehash={hash}"), Some(&token)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["code"], "FILEHASH_AMBIGUOUS");
    let mut ids: Vec<&str> = body["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    ids.sort();
    let mut want = vec![id1, id2];
    want.sort();
    assert_eq!(ids, want);
    let (code, body) = app.call("DELETE", &format!("/file/delete?filehash={hash}"), Some(&token)).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert_eq!(app.stored().len(), 2, "an ambiguous delete deletes nothing");
    // With `id` beside it, the SHA-1 names that entry alone.
    let (code, bytes) = get_bytes(&app, &token, &format!("/file/download?id={id2}&filehash={hash}")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, two);

    assert_eq!(download_by_id(&app, &token, id1).await, one);
    assert_eq!(download_by_id(&app, &token, id2).await, two);
    let (code, body) =
        app.post_json("/file/rename", Some(&token), &json!({"id": id2, "filename": "renamed.bin"})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["filename"], "renamed.bin");
    let (code, _) = app.call("DELETE", &format!("/file/delete?id={id1}"), Some(&token)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    // Now the SHA-1 names one entry again.
    let (code, _, bytes) = app.download(&token, &hash, None).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(bytes, two);
});

both!(
    /// A file named by neither `id` nor `filehash`, or by an `id` whose
    /// content has another SHA-1, is no file: 404 `FILE_NOT_FOUND` on every
    /// route that names one (a request the spec allows is never a 400).
    a_file_named_by_neither_or_by_an_id_and_another_sha1_is_404,
    |app| {
        let token = app.user(&uname("ref")).await;
        let done = app.upload(&token, "a.txt", b"named twice").await;
        let id = done["file"]["id"].as_str().unwrap();
        let hash = sha1_hex(b"named twice");
        let other = sha1_hex(b"something else");
        let (code, bytes) = get_bytes(&app, &token, &format!("/file/download?id={id}&filehash={hash}")).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, b"named twice");
        for query in ["".to_owned(), format!("?id={id}&filehash={other}")] {
            let (code, body) = app.call("GET", &format!("/file/download{query}"), Some(&token)).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{query}: {body}");
            assert_eq!(body["code"], "FILE_NOT_FOUND");
            let (code, body) = app.call("POST", &format!("/file/downloadurl{query}"), Some(&token)).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{query}: {body}");
            assert_eq!(body["code"], "FILE_NOT_FOUND");
            let (code, body) = app.call("DELETE", &format!("/file/delete{query}"), Some(&token)).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{query}: {body}");
            assert_eq!(body["code"], "FILE_NOT_FOUND");
        }
        let (code, body) = app.post_json("/file/rename", Some(&token), &json!({"filename": "b.txt"})).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(body["code"], "FILE_NOT_FOUND");
        let (code, body) =
            app.post_json("/file/rename", Some(&token), &json!({"id": id, "filehash": other, "filename": "b.txt"})).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
        let (code, body) =
            app.post_json("/file/rename", Some(&token), &json!({"id": id, "filehash": hash, "filename": "b.txt"})).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert_eq!(body["filename"], "b.txt");
    }
);

both!(
    /// Content another user stored is instant for a second user only after a
    /// right answer to the possession challenge; a wrong proof is refused.
    known_content_is_instant_for_a_second_user_who_proves_possession,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let alice = app.user(&uname("alice")).await;
        let bob = app.user(&uname("bob")).await;
        let data = test_bytes(200_000, 9);
        let done = app.upload(&alice, "mine.bin", &data).await;
        assert_eq!(done["state"], "done");
        app.wait_staging_empty().await;
        let (code, init) = app.init(&bob, "yours.bin", &data).await;
        assert_eq!(code, StatusCode::OK, "{init}");
        assert_eq!(init["status"], "new", "someone else's content is not instant without a proof");
        let challenge = &init["challenge"];
        assert_eq!(challenge["ranges"].as_array().unwrap().len(), 3, "{init}");
        let id = init["uploadID"].as_str().unwrap();
        let (code, proved) = app.prove(&bob, id, &answer_challenge(challenge, &data)).await;
        assert_eq!(code, StatusCode::OK, "{proved}");
        assert_eq!(proved["status"], "instant", "{proved}");
        assert_eq!(proved["file"]["filename"], "yours.bin");
        assert_eq!(proved["file"]["sha256"], sha256_hex(&data).as_str());
        assert!(app.staging().is_empty(), "no bytes were sent");
        let (code, _) = app.status(&bob, id).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "the upload is spent");
        let (_, list) = app.call("GET", "/file/query", Some(&bob)).await;
        assert_eq!(list["total"], 1);
        let (code, _, bytes) = app.download(&bob, &sha1_hex(&data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(bytes, data);
        assert_eq!(app.stored().len(), 1, "the content is stored once");
        // The owner's own content needs no proof: init is instant, and renames the entry.
        let (_, again) = app.init(&alice, "renamed.bin", &data).await;
        assert_eq!(again["status"], "instant", "{again}");
        assert_eq!(again["file"]["filename"], "renamed.bin");
    }
);

both!(
    /// Knowing a file's hashes, its size and one of its owner's signed links
    /// gets another user no file: no instant without the bytes, and the link
    /// serves only its own entry.
    knowing_the_hashes_the_size_and_a_signed_link_gets_no_file, |app| {
    let alice = app.user(&uname("alice")).await;
    let mallory = app.user(&uname("mallory")).await;
    let data = test_bytes(100_000, 10);
    let done = app.upload(&alice, "secret.bin", &data).await;
    assert_eq!(done["state"], "done");
    let path = format!("/file/downloadurl?id={}", done["file"]["id"].as_str().unwrap());
    let (code, link) = app.call("POST", &path, Some(&alice)).await;
    assert_eq!(code, StatusCode::OK, "{link}");
    let url = link["url"].as_str().unwrap();
    assert!(!url.contains(&sha1_hex(&data)) && !url.contains(&sha256_hex(&data)), "the link names no hash: {url}");

    let (code, first) = app.init(&mallory, "stolen.bin", &data).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(first["status"], "new");
    // Starting over does not draw new ranges (someone who knows part of the
    // file could otherwise re-draw until they fall in that part).
    let first_id = first["uploadID"].as_str().unwrap();
    let (code, _) = app.call("DELETE", &format!("/file/mupload/abort?uploadID={first_id}"), Some(&mallory)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (_, init) = app.init(&mallory, "stolen.bin", &data).await;
    assert_eq!(init["challenge"]["ranges"], first["challenge"]["ranges"], "the same ranges, always");
    assert_ne!(init["challenge"]["nonce"], first["challenge"]["nonce"], "a fresh nonce: no answer serves twice");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    // Without the bytes, the best guess is a digest of the nonce alone: refused,
    // and the answer looks like any new upload.
    let guess = sha256_hex(&hex::decode(init["challenge"]["nonce"].as_str().unwrap()).unwrap());
    let (code, answer) = app.prove(&mallory, &id, &guess).await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], "new");
    assert_eq!(answer["uploadID"], id.as_str());
    assert!(answer.get("file").is_none() && answer.get("challenge").is_none(), "{answer}");
    // A challenge takes one answer: the right one, sent second, is too late.
    let (_, answer) = app.prove(&mallory, &id, &answer_challenge(&init["challenge"], &data)).await;
    assert_eq!(answer["status"], "new", "{answer}");
    // Another user cannot answer (or see) mallory's upload.
    let (code, _) = app.prove(&alice, &id, &guess).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    // SHA-1 and size alone: a plain new upload, no challenge.
    let (code, init) = app
        .post_json(
            "/file/mupload/init",
            Some(&mallory),
            &json!({"filename": "s.bin", "filehash": sha1_hex(&data), "filesize": data.len()}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(init["status"], "new");
    assert!(init.get("challenge").is_none(), "{init}");
    let (_, list) = app.call("GET", "/file/query", Some(&mallory)).await;
    assert_eq!(list["total"], 0, "mallory got nothing");
});

both!(
    /// With `PAN_INSTANT_ACROSS_USERS` off, a second user gets no challenge and
    /// uploads every byte, and the merge still stores the content only once.
    with_instant_across_users_off_no_challenge_is_offered_and_the_merge_still_stores_once,
    |b: TestAppBuilder| b.env("PAN_INSTANT_ACROSS_USERS", "false").env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let alice = app.user(&uname("alice")).await;
        let bob = app.user(&uname("bob")).await;
        let data = test_bytes(20_000, 11);
        assert_eq!(app.upload(&alice, "a.bin", &data).await["state"], "done");
        let (_, init) = app.init(&bob, "b.bin", &data).await;
        assert_eq!(init["status"], "new");
        assert!(init.get("challenge").is_none(), "{init}");
        let done = app.upload(&bob, "b.bin", &data).await;
        assert_eq!(done["state"], "done", "{done}");
        app.wait_staging_empty().await;
        assert_eq!(app.stored().len(), 1, "bob's copy was dropped for the stored one");
        let (_, _, bytes) = app.download(&bob, &sha1_hex(&data), None).await;
        assert_eq!(bytes, data);
    }
);

both!(
    /// Resuming an upload by its hashes needs the declared SHA-256, and the merge
/// checks the bytes against it.
    resume_needs_the_declared_sha256_and_the_merge_checks_it,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "1024"),
    |app| {
        let token = app.user(&uname("resume")).await;
        let data = test_bytes(4096, 12);
        let sha1_only = json!({"filename": "r.bin", "filehash": sha1_hex(&data), "filesize": data.len()});
        let (_, first) = app.post_json("/file/mupload/init", Some(&token), &sha1_only).await;
        let (_, second) = app.post_json("/file/mupload/init", Some(&token), &sha1_only).await;
        assert_eq!(second["status"], "new", "no resume on SHA-1 alone");
        assert_ne!(first["uploadID"], second["uploadID"]);

        // A declared SHA-256 that the bytes do not have ends the upload failed.
        let wrong = json!({"filename": "w.bin", "filehash": sha1_hex(&data), "sha256": sha256_hex(b"other"),
                       "filesize": data.len()});
        let (_, init) = app.post_json("/file/mupload/init", Some(&token), &wrong).await;
        let id = init["uploadID"].as_str().unwrap();
        for i in 0..4u64 {
            let (code, _) =
                app.put_chunk(&token, id, i, data[i as usize * 1024..(i as usize + 1) * 1024].to_vec()).await;
            assert_eq!(code, StatusCode::OK);
        }
        let (code, _) = app.complete(&token, id).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        let end = app.wait_merged(&token, id).await;
        assert_eq!(end["state"], "failed", "{end}");
        assert!(end["reason"].as_str().unwrap().contains("SHA-256 mismatch"), "{end}");
        assert_eq!(end["reason_code"], "SHA256_MISMATCH", "{end}");
        let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
        assert_eq!(list["total"], 0);
    }
);

both!(
    /// The audit's M3: holding most of a file and its hashes, new accounts
    /// try their luck with new challenges. The ranges depend on the content
    /// alone, so every account gets the same ones (with a fresh nonce), and
    /// after 3 failed answers the content offers no challenge, hence no
    /// cross-user instant upload, to anyone for a day.
    partial_knowledge_cannot_pass_a_challenge_by_drawing_new_accounts,
    |app| {
        let alice = app.user(&uname("alice")).await;
        let data = test_bytes(3 << 20, 33);
        assert_eq!(app.upload(&alice, "film.bin", &data).await["state"], "done");
        let mut first_ranges = None;
        for i in 0..6 {
            let mallory = app.user(&uname(&format!("m{i}"))).await;
            let (code, init) = app.init(&mallory, "film.bin", &data).await;
            assert_eq!((code, init["status"].as_str()), (StatusCode::OK, Some("new")), "{init}");
            if i >= 3 {
                assert!(init.get("challenge").is_none(), "account {i}: 3 failures closed the content: {init}");
                continue;
            }
            let challenge = &init["challenge"];
            let ranges = challenge["ranges"].clone();
            assert_eq!(&ranges, first_ranges.get_or_insert_with(|| ranges.clone()), "account {i}: the same ranges");
            // What mallory knows: everything but the bytes of the last range.
            let mut known = data.clone();
            let last = ranges.as_array().unwrap().last().unwrap();
            known[last["first"].as_u64().unwrap() as usize] ^= 0xff;
            let id = init["uploadID"].as_str().unwrap();
            let (code, answer) = app.prove(&mallory, id, &answer_challenge(challenge, &known)).await;
            assert_eq!((code, answer["status"].as_str()), (StatusCode::OK, Some("new")), "{answer}");
            let (_, list) = app.call("GET", "/file/query", Some(&mallory)).await;
            assert_eq!(list["total"], 0, "account {i} got nothing");
        }
        // The owner's own uploads of it stay instant: nothing changed for them.
        let (_, again) = app.init(&alice, "copy.bin", &data).await;
        assert_eq!(again["status"], "instant", "{again}");
    }
);
