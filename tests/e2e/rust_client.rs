//! pan driven through its own Rust client, generated from the checked-in
//! spec at build time (`client/`): the spec is good enough for a generator
//! of a typed language, and its error bodies come back typed.

use pan_client::types;
use pan_tests::*;

both!(
    /// The Rust client generated from the spec signs up, signs in, uploads,
    /// resumes, answers a possession challenge and downloads against a live
    /// api.
    the_generated_rust_client_uploads_resumes_proves_and_downloads,
    |b: TestAppBuilder| b.env("PAN_CHUNK_SIZE", "4096"),
    |app| {
        let anon = pan_client::Client::new(&app.base);
        let name = uname("rust");
        let account = types::NewAccount::builder().username(name.parse::<types::NewAccountUsername>().unwrap());
        let account = account.password("correct horse".parse::<types::NewAccountPassword>().unwrap()).invite(None);
        anon.signup().body(account).send().await.expect("signup");
        let creds = types::Credentials::builder()
            .username(name.parse::<types::CredentialsUsername>().unwrap())
            .password("correct horse".parse::<types::CredentialsPassword>().unwrap());
        let token = anon.signin().body(creds).send().await.expect("signin").into_inner().token;
        let client = pan_client::authenticated(&app.base, &token).unwrap();
        assert_eq!(client.user_info().send().await.unwrap().into_inner().username, name);

        // A chunked upload: init, every chunk, complete, status until done.
        let data = test_bytes(10_000, 95);
        let init = |name: &str| {
            types::InitRequest::builder()
                .filename(name.parse::<types::InitRequestFilename>().unwrap())
                .filehash(sha1_hex(&data).parse::<types::InitRequestFilehash>().unwrap())
                .sha256(Some(sha256_hex(&data).parse::<types::InitRequestSha256>().unwrap()))
                .filesize(data.len() as i64)
        };
        let started = client.upload_init().body(init("r.bin")).send().await.unwrap().into_inner();
        assert!(matches!(started.status, types::InitStatus::New));
        let id = started.upload_id.clone().expect("uploadID");
        let size = started.chunksize as usize;
        for i in 0..started.chunkcount {
            let part = data[i as usize * size..((i as usize + 1) * size).min(data.len())].to_vec();
            client.upload_part().upload_id(id.clone()).chkidx(i).body(part).send().await.expect("chunk");
        }
        client.upload_complete().upload_id(id.clone()).send().await.expect("complete");
        let file = eventually(120, "the upload to be merged", || async {
            let s = client.upload_status().upload_id(id.clone()).send().await.unwrap().into_inner();
            match s.state {
                types::UploadState::Merging => None,
                types::UploadState::Done => Some(s.file.expect("the stored file")),
                other => panic!("upload ended {other:?}: {:?}", s.reason),
            }
        })
        .await;
        let got = client.file_download().id(file.id.parse::<types::FileDownloadId>().unwrap()).send().await.unwrap();
        let mut stream = got.into_inner().into_inner();
        let mut bytes = Vec::new();
        while let Some(piece) = futures::StreamExt::next(&mut stream).await {
            bytes.extend_from_slice(&piece.unwrap());
        }
        assert_eq!(bytes, data);

        // Errors come back typed, with their code.
        let err = client.upload_status().upload_id("0".repeat(32)).send().await.unwrap_err();
        match err {
            pan_client::Error::ErrorResponse(body) => {
                assert_eq!(body.status(), reqwest::StatusCode::NOT_FOUND);
                assert_eq!(body.into_inner().code, "UPLOAD_NOT_FOUND");
            }
            other => panic!("not a typed error: {other:?}"),
        }

        // Another user proves possession through the generated prove call.
        let other = pan_client::authenticated(&app.base, &app.user(&uname("rust2")).await).unwrap();
        let offered = other.upload_init().body(init("mine.bin")).send().await.unwrap().into_inner();
        let challenge = offered.challenge.expect("a challenge: the content is stored");
        let challenge_json = serde_json::to_value(&challenge).unwrap();
        let proof = types::ProveRequest::builder()
            .proof(answer_challenge(&challenge_json, &data).parse::<types::ProveRequestProof>().unwrap());
        let proved =
            other.upload_prove().upload_id(offered.upload_id.unwrap()).body(proof).send().await.unwrap().into_inner();
        assert!(matches!(proved.status, types::InitStatus::Instant), "{proved:?}");

        // The multipart upload, covered by hand beside the generated calls.
        let single = pan_client::single_upload(&client, "one.bin", test_bytes(500, 96)).await.expect("single upload");
        assert_eq!(single.filename, "one.bin");
    }
);

/// The fleet driven through pan-client's upload engine (what `pan put`
/// uses): files of 0 B, 1 B, one chunk, one chunk + 1 B and 20 chunks, five
/// at once, while a worker is SIGKILLed and replaced; every file is stored
/// whole and the audit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_upload_engine_stores_every_size_on_a_fleet_while_a_worker_is_killed_and_replaced() {
    use pan_client::upload::{Event, Observer, Uploader};
    use std::sync::Arc;
    const CHUNK: usize = 65536;
    let mut app = TestApp::builder(Deployment::Fleet).env("PAN_CHUNK_SIZE", "65536").workers(2).spawn().await;
    let token = app.user(&uname("engine")).await;
    let session = pan_client::http::Session::new(&app.base, Some(token.clone()), None).unwrap();
    let state = tempfile::tempdir().unwrap();
    let uploader = Arc::new(Uploader::new(Arc::new(session), 4, state.path().to_path_buf()));
    let local = tempfile::tempdir().unwrap();
    let sizes = [0, 1, CHUNK, CHUNK + 1, 20 * CHUNK];
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = test_bytes(*size, 700 + i as u64);
        let path = local.path().join(format!("f{i}.bin"));
        std::fs::write(&path, &data).unwrap();
        files.push((path, data));
    }
    let quiet: Observer = Arc::new(|_: Event| {});
    let uploads: Vec<_> = files
        .iter()
        .enumerate()
        .map(|(i, (path, _))| {
            let (uploader, path, quiet) = (uploader.clone(), path.clone(), quiet.clone());
            tokio::spawn(async move { uploader.upload(&path, &format!("f{i}.bin"), None, None, quiet).await })
        })
        .collect();
    app.kill_worker(0);
    app.spawn_worker();
    for (i, u) in uploads.into_iter().enumerate() {
        let outcome = u.await.unwrap().unwrap_or_else(|e| panic!("upload {i}: {e}"));
        assert_eq!(outcome.file.filesize, sizes[i] as i64);
        assert_eq!(outcome.file.sha256.as_deref(), Some(sha256_hex(&files[i].1).as_str()));
    }
    for (i, (_, data)) in files.iter().enumerate() {
        let (_, f) = app.call("GET", &format!("/folder/stat?path=/f{i}.bin"), Some(&token)).await;
        let resp = app
            .http
            .get(app.url(&format!("/file/download?id={}", f["id"].as_str().unwrap())))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(resp.bytes().await.unwrap() == *data, "file {i} comes back whole");
    }
    app.assert_consistent().await;
}
