//! One conformance suite per storage role, run against every implementation
//! on its real system: the upload-session store on SQLite, MariaDB and Redis,
//! and the metadata repository on SQLite and MariaDB. The same assertions
//! hold for each, so a caller never needs to know which one it got.

use pan_tests::*;
use shared::db::{MetaRepo, NewUserFile, UserRepo};
use shared::domain::{ChunkPlan, Sha1Hex, Sha256Hex, UploadId, UploadSession, UploadState, UserName};
use shared::uploads::{CompleteOutcome, PendingProof, UploadStore};

const TTL: u64 = 3600;

fn session(owner: i64, size: u64, sha256: Option<&str>) -> UploadSession {
    let now = shared::now();
    UploadSession {
        id: UploadId::generate(),
        owner,
        filename: "f.bin".into(),
        filehash: Sha1Hex::parse(&"ab".repeat(20)).unwrap(),
        sha256: sha256.map(|h| Sha256Hex::parse(h).unwrap()),
        plan: ChunkPlan::with_chunk_size(size, 1024),
        state: UploadState::Uploading,
        reason: None,
        entry_id: None,
        created_at: now,
        updated_at: now,
    }
}

/// What every upload-session store must do; `owner` is a user id the store accepts.
async fn upload_store_suite(s: &dyn UploadStore, owner: i64) {
    let now = shared::now();
    let a = session(owner, 3000, Some(&"cd".repeat(32)));
    s.create(&a).await.unwrap();
    let got = s.get(&a.id).await.unwrap().expect("created session");
    assert_eq!((got.owner, got.state, got.plan), (owner, UploadState::Uploading, a.plan));
    assert_eq!(got.sha256, a.sha256);
    assert!(s.get(&UploadId::generate()).await.unwrap().is_none());
    let resumable =
        s.find_resumable(owner, a.filehash.as_str(), &"cd".repeat(32), 3000).await.unwrap().expect("resumable");
    assert!(
        s.find_resumable(owner, a.filehash.as_str(), &"ef".repeat(32), 3000).await.unwrap().is_none(),
        "another content with the same SHA-1 and size is not this upload"
    );
    assert_eq!(resumable.id, a.id);
    assert_eq!(s.open_uploads(owner).await.unwrap(), (1, 3000));

    // Chunk marks: the last send wins and the superseded key comes back.
    assert_eq!(s.mark_chunk(&a.id, 0, "k0", now).await.unwrap(), None);
    assert_eq!(s.mark_chunk(&a.id, 0, "k0b", now).await.unwrap(), Some("k0".into()));
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::Missing);
    s.mark_chunk(&a.id, 1, "k1", now).await.unwrap();
    s.mark_chunk(&a.id, 2, "k2", now).await.unwrap();
    let chunks = s.chunks(&a.id).await.unwrap();
    assert_eq!(chunks.into_iter().collect::<Vec<_>>(), vec![(0, "k0b".into()), (1, "k1".into()), (2, "k2".into())]);

    // Complete is a compare-and-set; marks after it are refused.
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::Started);
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::AlreadyIn(UploadState::Merging));
    assert!(matches!(s.mark_chunk(&a.id, 0, "late", now).await, Err(shared::Error::NotUploading { .. })));
    assert!(!s.delete_unless_merging(&a.id).await.unwrap(), "a merging upload is not deleted");

    // Heartbeats: a merge without one for long enough is stale.
    assert!(s.touch_merge(&a.id, now - 1000).await.unwrap());
    assert!(s.stale_merges(now - 500, 100).await.unwrap().contains(&a.id));
    assert!(s.touch_merge(&a.id, now).await.unwrap());
    assert!(!s.stale_merges(now - 500, 100).await.unwrap().contains(&a.id));

    // Finishing is a compare-and-set too, and records the entry.
    assert!(s.finish_merge(&a.id, UploadState::Done, None, Some("e1"), now).await.unwrap());
    assert!(!s.finish_merge(&a.id, UploadState::Failed, Some("late"), None, now).await.unwrap());
    let done = s.get(&a.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.entry_id.as_deref()), (UploadState::Done, Some("e1")));
    assert!(!s.touch_merge(&a.id, now).await.unwrap(), "nothing to keep alive");
    assert!(!s.stale_merges(i64::MAX / 2, 100).await.unwrap().contains(&a.id));
    assert_eq!(s.open_uploads(owner).await.unwrap(), (0, 0), "a finished upload reserves nothing");
    assert!(s.find_resumable(owner, a.filehash.as_str(), &"cd".repeat(32), 3000).await.unwrap().is_none());

    // Challenges: single use, and void once expired.
    let b = session(owner, 10, None);
    s.create(&b).await.unwrap();
    let proof = PendingProof { file_id: 7, expected: "ee".repeat(32), expires_at: now + 60 };
    s.put_challenge(&b.id, &proof).await.unwrap();
    assert_eq!(s.take_challenge(&b.id, now).await.unwrap(), Some(proof.clone()));
    assert_eq!(s.take_challenge(&b.id, now).await.unwrap(), None, "single use");
    s.put_challenge(&b.id, &proof).await.unwrap();
    assert_eq!(s.take_challenge(&b.id, now + 61).await.unwrap(), None, "expired");

    // Abort: gone, chunks and all.
    s.mark_chunk(&b.id, 0, "kb", now).await.unwrap();
    assert!(s.delete_unless_merging(&b.id).await.unwrap());
    assert!(s.get(&b.id).await.unwrap().is_none());
    assert!(s.chunks(&b.id).await.unwrap().is_empty());
    assert!(matches!(s.mark_chunk(&b.id, 0, "k", now).await, Err(shared::Error::UploadNotFound)));
    s.health_check().await.unwrap();
}

/// What every metadata repository must do.
async fn repo_suite(r: &dyn MetaRepo) {
    let now = shared::now();
    let name = UserName::parse(&uname("c")).unwrap();
    let alice = r.create_user(&name, "hash", now, None).await.unwrap();
    assert!(matches!(r.create_user(&name, "hash", now, None).await, Err(shared::Error::UsernameTaken)));
    let bob = r.create_user(&UserName::parse(&uname("d")).unwrap(), "hash", now, None).await.unwrap();
    let content = |user_id, sha256: &'static str, filename: &'static str| NewUserFile {
        user_id,
        filehash: "12".repeat(20).leak(),
        sha256,
        filesize: 100,
        filename,
        now,
    };
    let (one, two) = ("a1".repeat(32).leak() as &str, "b2".repeat(32).leak() as &str);
    // Two contents with the same SHA-1 and size are two contents.
    let (e1, s1) = r.commit_merged(&content(alice.id, one, "one"), "key1").await.unwrap();
    let (e2, s2) = r.commit_merged(&content(alice.id, two, "two"), "key2").await.unwrap();
    assert_ne!(s1.id, s2.id);
    assert_ne!(e1.id, e2.id);
    let mut both: Vec<String> =
        r.entries_with_sha1(alice.id, &"12".repeat(20)).await.unwrap().into_iter().map(|(e, _)| e.id).collect();
    both.sort();
    let mut want = vec![e1.id.clone(), e2.id.clone()];
    want.sort();
    assert_eq!(both, want);
    // The same content again links to the stored copy.
    let (eb, sb) = r.commit_merged(&content(bob.id, one, "bob's"), "key3").await.unwrap();
    assert_eq!((sb.id, sb.storage_key.as_str()), (s1.id, "key1"), "the first copy wins");
    assert!(r.link_existing(&content(bob.id, one, "renamed")).await.unwrap().is_some());
    assert_eq!(r.user_file(bob.id, &eb.id).await.unwrap().unwrap().0.filename, "renamed", "one entry per content");
    assert!(r.user_file(bob.id, &e1.id).await.unwrap().is_none(), "alice's entry is not bob's");
    assert_eq!(r.usage(alice.id).await.unwrap(), (2, 200));
    // Deleting: the bytes are the caller's to delete with the last reference.
    assert!(r.delete_file(alice.id, &e1.id).await.unwrap().is_none(), "bob still has it");
    let orphan = r.delete_file(bob.id, &eb.id).await.unwrap().expect("last reference");
    assert_eq!(orphan.storage_key, "key1");
    assert!(r.stored_file(one, 100).await.unwrap().is_none());
    assert!(matches!(r.delete_file(bob.id, &eb.id).await, Err(shared::Error::FileNotFound)));
    // Accounts: invites are single use, a disabled user has no tokens.
    r.add_invite(&"f0".repeat(32), now).await.unwrap();
    let carol = UserName::parse(&uname("e")).unwrap();
    r.create_user(&carol, "h", now, Some(&"f0".repeat(32))).await.unwrap();
    let dave = UserName::parse(&uname("f")).unwrap();
    assert!(matches!(
        r.create_user(&dave, "h", now, Some(&"f0".repeat(32))).await,
        Err(shared::Error::Forbidden { code: "INVITE_INVALID", .. })
    ));
    assert!(r.user_with_hash(dave.as_str()).await.unwrap().is_none(), "a refused invite makes no user");
    r.insert_token(&"0t".repeat(32), alice.id, now, now + 60).await.unwrap();
    assert!(r.user_by_token(&"0t".repeat(32), now).await.unwrap().is_some());
    r.set_disabled(&alice.username, true).await.unwrap();
    assert!(r.user_by_token(&"0t".repeat(32), now).await.unwrap().is_none());
    assert!(r.user_with_hash(&alice.username).await.unwrap().is_none());
    r.set_quota(&bob.username, Some(1000), None).await.unwrap();
    assert_eq!(r.user_by_id(bob.id).await.unwrap().unwrap().quota_bytes, Some(1000));
    r.health_check().await.unwrap();
}

async fn sqlite_repo() -> (tempfile::TempDir, shared::db::SqlRepo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = shared::db::open(&format!("sqlite://{}?mode=rwc", dir.path().join("pan.db").display())).await.unwrap();
    (dir, repo)
}

/// A fresh MariaDB database (scripts/test drops leftover `pan_test_` databases
/// at the start of each run).
async fn mariadb_repo() -> (String, shared::db::SqlRepo) {
    let db = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    create_mysql_db(&db).await;
    let repo = shared::db::open(&format!("{}/{db}", mysql_url())).await.unwrap();
    (db, repo)
}

#[tokio::test]
async fn upload_store_on_sqlite() {
    let (_dir, repo) = sqlite_repo().await;
    let owner = repo.create_user(&UserName::parse("owner").unwrap(), "h", 0, None).await.unwrap().id;
    upload_store_suite(&shared::uploads::sql::SqlUploads::new(repo, TTL), owner).await;
}

#[tokio::test]
async fn upload_store_on_mariadb() {
    let (_db, repo) = mariadb_repo().await;
    let owner = repo.create_user(&UserName::parse("owner").unwrap(), "h", 0, None).await.unwrap().id;
    upload_store_suite(&shared::uploads::sql::SqlUploads::new(repo, TTL), owner).await;
}

#[tokio::test]
async fn upload_store_on_redis() {
    let client = redis::Client::open(redis_url()).unwrap();
    let con = client.get_connection_manager().await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    upload_store_suite(&shared::uploads::redis::RedisUploads::new(con, &prefix, TTL), 1).await;
}

#[tokio::test]
async fn metadata_repository_on_sqlite() {
    let (_dir, repo) = sqlite_repo().await;
    repo_suite(&repo).await;
}

#[tokio::test]
async fn metadata_repository_on_mariadb() {
    let (_db, repo) = mariadb_repo().await;
    repo_suite(&repo).await;
}
