//! One conformance suite per storage role, run against every implementation
//! on its real system: the upload-session store on SQLite, MariaDB and Redis,
//! and the metadata repository on SQLite and MariaDB. The same assertions
//! hold for each, so a caller never needs to know which one it got.

use pan_tests::*;
use shared::db::{MetaRepo, NewUserFile, UserRepo};
use shared::domain::{ChunkPlan, Sha1Hex, Sha256Hex, UploadId, UploadSession, UploadState, UserName};
use shared::domain::{NameRule, SortKey, TreeItem};
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
        folder: None,
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
        folder: None,
        rule: NameRule::Rename,
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
    let again = r.link_existing(&content(bob.id, one, "bob's")).await.unwrap().unwrap();
    assert_eq!(again.id, eb.id, "the same name and content in the same folder is the same entry");
    let copy = r.link_existing(&content(bob.id, one, "copy")).await.unwrap().unwrap();
    assert_ne!(copy.id, eb.id, "another name is another entry for the same content");
    assert!(r.user_file(bob.id, &e1.id).await.unwrap().is_none(), "alice's entry is not bob's");
    let usage = |files, bytes, trash_files, trash_bytes| shared::db::Usage { files, bytes, trash_files, trash_bytes };
    assert_eq!(r.usage(alice.id).await.unwrap(), usage(2, 200, 0, 0));
    assert_eq!(r.usage(bob.id).await.unwrap(), usage(2, 200, 0, 0));
    // Deleting goes through the trash; the bytes are the caller's to delete
    // with the last reference, trashed ones included.
    r.trash(alice.id, &e1.id, now).await.unwrap();
    assert!(r.user_file(alice.id, &e1.id).await.unwrap().is_none(), "a trashed entry is not live");
    assert_eq!(r.usage(alice.id).await.unwrap(), usage(1, 100, 1, 100), "the trash is counted apart");
    assert!(r.purge(alice.id, &e1.id).await.unwrap().is_empty(), "bob still has it");
    r.trash(bob.id, &eb.id, now).await.unwrap();
    assert!(r.purge(bob.id, &eb.id).await.unwrap().is_empty(), "bob's copy still has it");
    r.trash(bob.id, &copy.id, now).await.unwrap();
    let orphans = r.purge(bob.id, &copy.id).await.unwrap();
    assert_eq!(orphans.iter().map(|o| o.storage_key.as_str()).collect::<Vec<_>>(), ["key1"]);
    assert!(r.stored_file(one, 100).await.unwrap().is_none());
    assert!(matches!(r.trash(bob.id, &eb.id, now).await, Err(shared::Error::FileNotFound)));
    assert!(matches!(r.purge(bob.id, &eb.id).await, Err(shared::Error::TrashItemNotFound)));
    tree_suite(r, bob.id).await;
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

/// What every repository does with a user's tree: names, moves, the trash.
async fn tree_suite(r: &dyn MetaRepo, user: i64) {
    let now = shared::now();
    let (rename, refuse) = (NameRule::Rename, NameRule::Refuse);
    let docs = r.create_folder(user, "", "docs", refuse, now).await.unwrap();
    assert!(matches!(r.create_folder(user, "", "docs", refuse, now).await, Err(shared::Error::NameTaken { .. })));
    assert_eq!(r.create_folder(user, "", "docs", rename, now).await.unwrap().name, "docs (1)");
    let deep = r.create_folder(user, &docs.id, "deep", refuse, now).await.unwrap();
    assert!(matches!(
        r.create_folder(user, &"0".repeat(32), "x", refuse, now).await,
        Err(shared::Error::FolderNotFound)
    ));
    // A file in a folder takes a name there; the same name in another folder is free.
    let sha = "c3".repeat(32);
    let file = |name: &'static str, folder: Option<&'static str>| NewUserFile {
        user_id: user,
        filehash: "34".repeat(20).leak(),
        sha256: sha.clone().leak(),
        filesize: 7,
        filename: name,
        folder,
        rule: NameRule::Rename,
        now,
    };
    let deep_id: &'static str = deep.id.clone().leak();
    let (a, _) = r.commit_merged(&file("a.txt", Some(deep_id)), "tree-key").await.unwrap();
    assert_eq!(a.folder, deep.id);
    let b = r.link_existing(&file("a.txt", None)).await.unwrap().unwrap();
    assert_eq!((b.folder.as_str(), b.filename.as_str()), ("", "a.txt"));
    let c = r.link_existing(&file("docs", None)).await.unwrap().unwrap();
    assert_eq!(c.filename, "docs (2)", "files and folders share a folder's names");
    // Moves: never into oneself; a taken name is refused or numbered.
    assert!(matches!(
        r.move_folder(user, &docs.id, Some(&deep.id), None, refuse, now).await,
        Err(shared::Error::MoveIntoItself)
    ));
    assert!(matches!(
        r.move_folder(user, &docs.id, Some(&docs.id), None, refuse, now).await,
        Err(shared::Error::MoveIntoItself)
    ));
    assert!(matches!(
        r.move_file(user, &b.id, Some(&deep.id), None, refuse, now).await,
        Err(shared::Error::NameTaken { .. })
    ));
    let moved = r.move_file(user, &b.id, Some(&deep.id), None, rename, now).await.unwrap();
    assert_eq!((moved.folder.as_str(), moved.filename.as_str()), (deep.id.as_str(), "a (1).txt"));
    let deep = r.move_folder(user, &deep.id, Some(""), Some("top"), refuse, now).await.unwrap();
    assert_eq!((deep.parent.as_str(), deep.name.as_str()), ("", "top"));
    // Listing pages by cursor, folders first.
    let page = |limit, after| shared::db::PageRequest { sort: SortKey::Name, desc: false, limit, after };
    let mut names = Vec::new();
    let mut after = None;
    loop {
        let (items, next) = r.list_children(user, "", &page(2, after)).await.unwrap();
        names.extend(items.into_iter().map(|i| match i {
            TreeItem::Folder(d) => format!("{}/", d.name),
            TreeItem::File(f) => f.filename,
        }));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(names, ["docs/", "docs (1)/", "top/", "docs (2)"], "folders first, each kind by name");
    // Trash: a folder goes with everything below it and comes back whole.
    r.trash(user, &deep.id, now).await.unwrap();
    assert!(r.folder(user, &deep.id).await.unwrap().is_none());
    assert!(r.user_file(user, &a.id).await.unwrap().is_none(), "a file below a trashed folder is not live");
    let (trash, _) = r.list_trash(user, 10, None).await.unwrap();
    assert_eq!(trash.len(), 1, "one trash item for the folder and all below it");
    r.create_folder(user, "", "top", refuse, now).await.unwrap();
    let back = r.restore(user, &deep.id, rename, now).await.unwrap();
    assert!(matches!(back, TreeItem::Folder(d) if d.name == "top (1)"));
    assert!(r.user_file(user, &a.id).await.unwrap().is_some(), "restored with its folder");
    // A restore whose old folder is gone lands in the root.
    r.trash(user, &a.id, now).await.unwrap();
    r.trash(user, &deep.id, now).await.unwrap();
    r.purge(user, &deep.id).await.unwrap();
    let back = r.restore(user, &a.id, rename, now).await.unwrap();
    assert!(matches!(back, TreeItem::File(f) if f.folder.is_empty() && f.filename == "a.txt"));
    // Expiry: what was deleted before the cut-off, whoever's it is.
    r.trash(user, &c.id, now - 100).await.unwrap();
    let expired = r.trash_expired(now - 50, 1000).await.unwrap();
    assert!(expired.contains(&(user, c.id.clone())), "{expired:?}");
    assert!(!expired.iter().any(|(_, id)| *id == a.id), "restored items are not expired");
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
