//! Use cases for the front doors to come (WebDAV, tus), driven through
//! `shared::Services` itself on the embedded stores (SQLite and a local
//! directory): an upload whose client declares no hashes, sent as chunks
//! (over HTTP, `bytes.rs` sends them as byte ranges), and the app passwords
//! those clients sign in with.

use bytes::Bytes;
use clap::Parser;
use pan_tests::*;
use shared::domain::{FileName, Placement, UploadState};
use shared::stores::queue::MergeJob;
use shared::upload::{ChunkRequest, InitOutcome, NewUpload, Source};
use shared::{Services, ShareRules};

#[derive(Parser)]
struct Embedded {
    #[command(flatten)]
    settings: shared::runtime::config::Settings,
}

/// Starts an upload of `data` named `a.bin` with no declared hash.
async fn init_server_hashed(services: &Services, user: &shared::domain::User, data: &[u8]) -> InitOutcome {
    let new = NewUpload {
        filename: FileName::parse("a.bin").unwrap(),
        filesize: Some(data.len() as u64),
        mtime: None,
        source: Source::Server,
        via_link: None,
    };
    services.uploads.init(user, new, &Placement::default()).await.unwrap()
}

/// Nobody vouches for the content: the server's running hash is its
/// identity. `complete` needs no declaration, the merge stores exactly what
/// arrived, and the same content again is a new upload, never instant.
#[tokio::test]
async fn a_server_hashed_upload_is_stored_as_received_and_never_instant() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let settings = Embedded::parse_from(["pan", "--data-dir", &data_dir, "--chunk-size", "1024"]).settings;
    let services = Services::open(&settings, ShareRules::default()).await.unwrap();
    let user = services.accounts.signup("hasher", "long enough", None).await.unwrap();
    let data = test_bytes(3000, 21);

    let InitOutcome::New(session, None) = init_server_hashed(&services, &user, &data).await else {
        panic!("a server-hashed upload starts new, with no challenge");
    };
    assert!(session.server_hashed && session.filehash.is_none());
    let id = session.id.to_string();
    let plan = session.plan().expect("a size was given");
    for index in 0..plan.chunk_count {
        let (start, len) = (plan.offset(index) as usize, plan.chunk_len(index) as usize);
        let chunk = ChunkRequest { index, content_length: Some(len as u64), checksum: None, min_rate: 0 };
        let mut body = futures::stream::iter([Ok(Bytes::copy_from_slice(&data[start..start + len]))]);
        services.uploads.put_chunk(&user, &id, chunk, &mut body).await.unwrap();
    }
    assert_eq!(
        services.uploads.complete(&user, &id, None).await.unwrap(),
        UploadState::Merging,
        "no declaration needed"
    );
    services.uploads.merge(&MergeJob { upload_id: session.id.clone() }).await.unwrap();
    let (done, _, file) = services.uploads.status(&user, &id).await.unwrap();
    assert_eq!(done.state, UploadState::Done, "{:?}", done.reason);
    let file = file.expect("the entry");
    assert_eq!((file.filehash.as_str(), file.filesize), (sha1_hex(&data).as_str(), 3000));
    assert_eq!(file.sha256.as_deref(), Some(sha256_hex(&data).as_str()));

    // The same bytes again: hashes are unknown at init, so never instant.
    let again = init_server_hashed(&services, &user, &data).await;
    assert!(matches!(again, InitOutcome::New(_, None)), "{again:?}");
}

/// The way in WebDAV and tus will use: a user's name with one of their app
/// passwords (a SHA-256 lookup), never their password or another's name;
/// the last use is written once a minute at most; a revoked one, or any
/// after signing out everywhere, lets nobody in.
#[tokio::test]
async fn an_app_password_lets_its_owner_in_by_name_until_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let settings = Embedded::parse_from(["pan", "--data-dir", &data_dir]).settings;
    let services = Services::open(&settings, ShareRules::default()).await.unwrap();
    let accounts = &services.accounts;
    let user = accounts.signup("davuser", "long enough", None).await.unwrap();
    accounts.signup("someone", "long enough", None).await.unwrap();
    let (app, secret) = accounts.create_app_password(&user, "rclone").await.unwrap();

    let found = accounts.authenticate_app_password("davuser", &secret).await.unwrap();
    let author = found.as_ref().map(|u| (u.author.kind, u.author.name.as_str()));
    assert_eq!(author, Some((shared::domain::AuthorKind::AppPassword, "rclone")), "its changes are the app password's");
    assert_eq!(found.map(|u| u.id), Some(user.id));
    assert_eq!(
        accounts.authenticate_app_password("davuser", &secret.to_uppercase()).await.unwrap().map(|u| u.id),
        Some(user.id)
    );
    assert!(accounts.authenticate_app_password("someone", &secret).await.unwrap().is_none(), "another's name");
    assert!(accounts.authenticate_app_password("davuser", "long enough").await.unwrap().is_none(), "the password");
    assert!(accounts.authenticate_app_password("davuser", &"0".repeat(64)).await.unwrap().is_none());
    let listed = accounts.app_passwords(&user).await.unwrap();
    let first_use = listed[0].last_used_at.expect("the use is noted");
    assert!(first_use <= shared::now());

    accounts.revoke_app_password(&user, &app.id).await.unwrap();
    assert!(accounts.authenticate_app_password("davuser", &secret).await.unwrap().is_none(), "revoked");
    let (_, second) = accounts.create_app_password(&user, "finder").await.unwrap();
    assert!(accounts.authenticate_app_password("davuser", &second).await.unwrap().is_some());
    accounts.sign_out_everywhere(&user).await.unwrap();
    assert!(accounts.authenticate_app_password("davuser", &second).await.unwrap().is_none(), "signed out everywhere");
}
