//! The upload use case for front doors whose clients declare no hashes
//! (WebDAV, tus): driven here through `shared::Services` itself on the
//! embedded stores (SQLite and a local directory), since no REST route
//! makes such an upload.

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
    let new =
        NewUpload { filename: FileName::parse("a.bin").unwrap(), filesize: data.len() as u64, source: Source::Server };
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
    for index in 0..session.plan.chunk_count {
        let (start, len) = (session.plan.offset(index) as usize, session.plan.chunk_len(index) as usize);
        let chunk = ChunkRequest { index, content_length: Some(len as u64), checksum: None, min_rate: 0 };
        let mut body = futures::stream::iter([Ok(Bytes::copy_from_slice(&data[start..start + len]))]);
        services.uploads.put_chunk(&user, &id, chunk, &mut body).await.unwrap();
    }
    assert_eq!(services.uploads.complete(&user, &id).await.unwrap(), UploadState::Merging, "no declaration needed");
    services.uploads.merge(&MergeJob { upload_id: id.clone() }).await.unwrap();
    let (done, _, file) = services.uploads.status(&user, &id).await.unwrap();
    assert_eq!(done.state, UploadState::Done, "{:?}", done.reason);
    let file = file.expect("the entry");
    assert_eq!((file.filehash.as_str(), file.filesize), (sha1_hex(&data).as_str(), 3000));
    assert_eq!(file.sha256.as_deref(), Some(sha256_hex(&data).as_str()));

    // The same bytes again: hashes are unknown at init, so never instant.
    let again = init_server_hashed(&services, &user, &data).await;
    assert!(matches!(again, InitOutcome::New(_, None)), "{again:?}");
}
