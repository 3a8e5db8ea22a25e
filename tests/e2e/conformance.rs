//! One conformance suite per storage role, run against every implementation
//! on its real system: the upload-session store on SQLite, MariaDB and Redis,
//! the metadata repository and its quota ledger on SQLite and MariaDB, and the byte store on a
//! local directory and on Garage (S3). The same assertions hold for each, so
//! a caller never needs to know which one it got.

use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use pan_tests::*;
use shared::domain::{ChunkPlan, Segment, Sha1Hex, Sha256Hex, UploadId, UploadSession, UploadState, UserName};
use shared::domain::{NameRule, SortKey, TreeItem};
use shared::stores::locks::{Acquired, DavLock, LockStore};
use shared::stores::meta::{
    AppPassword, Destination, FileRepo, Hold, Limits, MetaRepo, NewUserFile, Refusal, TreeBounds, TreeRepo, UserRepo,
};
use shared::stores::objects::s3::Location;
use shared::stores::objects::{self, ByteStore, ChunkWriteError, LocalStore, S3Store, SegmentAt, TempFile};
use shared::stores::uploads::{
    CompleteOutcome, DeclareOutcome, HASH_LEASE, HashProgress, PendingProof, SEGMENT_LEASE_PREFIX, Staged, UploadStore,
    segment_lease,
};
use shared::upload::receive::{BodyRules, Expect, KeepBudget, compare_segment, stage_segment};

const TTL: u64 = 3600;

/// Who the suites' changes are by.
static AUTHOR: std::sync::LazyLock<shared::domain::Author> = std::sync::LazyLock::new(|| shared::domain::Author {
    kind: shared::domain::AuthorKind::Session,
    name: "conformance".into(),
});

/// [`FileRepo::commit_merged`], the entry and the content in effect.
async fn commit<R: FileRepo + ?Sized>(
    r: &R,
    f: &NewUserFile<'_>,
    key: &str,
) -> shared::Result<(shared::domain::UserFile, shared::domain::StoredFile)> {
    r.commit_merged(f, key).await.map(|(placed, stored)| (placed.entry, stored))
}

/// [`FileRepo::link_existing`], the entry.
async fn link<R: FileRepo + ?Sized>(r: &R, f: &NewUserFile<'_>) -> shared::Result<Option<shared::domain::UserFile>> {
    r.link_existing(f).await.map(|placed| placed.map(|p| p.entry))
}

/// [`TreeRepo::move_file`], the entry.
async fn move_entry<R: TreeRepo + ?Sized>(
    r: &R,
    user: i64,
    id: &str,
    dest: &Destination<'_>,
    now: i64,
) -> shared::Result<shared::domain::UserFile> {
    r.move_file(user, id, dest, now).await.map(|placed| placed.entry)
}

fn session(owner: i64, size: u64, sha256: Option<&str>) -> UploadSession {
    let now = shared::now();
    UploadSession {
        id: UploadId::generate(),
        owner,
        filename: "f.bin".into(),
        filehash: Some(Sha1Hex::parse(&"ab".repeat(20)).unwrap()),
        fingerprint: None,
        sha256: sha256.map(|h| Sha256Hex::parse(h).unwrap()),
        server_hashed: false,
        size: Some(size),
        chunk_size: 1024,
        received: 0,
        state: UploadState::Uploading,
        reason: None,
        reason_code: None,
        entry_id: None,
        folder: None,
        mtime: None,
        replace: false,
        if_match: None,
        author: AUTHOR.clone(),
        via_link: None,
        merge_started_at: None,
        hashed: 0,
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
    assert_eq!((got.owner, got.state, got.plan()), (owner, UploadState::Uploading, a.plan()));
    assert_eq!(got.sha256, a.sha256);
    assert_eq!(got.via_link, None, "an owner's own upload");
    let linked = UploadSession { via_link: Some("L".repeat(22)), ..session(owner, 10, None) };
    s.create(&linked).await.unwrap();
    assert_eq!(s.get(&linked.id).await.unwrap().unwrap().via_link, linked.via_link, "the link it came through");
    assert_eq!(s.delete_unless_merging(&linked.id).await.unwrap(), Some(UploadState::Uploading));
    assert!(s.get(&UploadId::generate()).await.unwrap().is_none());
    let resumable = s
        .find_resumable(owner, a.filehash.as_ref().unwrap().as_str(), &"cd".repeat(32), 3000)
        .await
        .unwrap()
        .expect("resumable");
    assert!(
        s.find_resumable(owner, a.filehash.as_ref().unwrap().as_str(), &"ef".repeat(32), 3000).await.unwrap().is_none(),
        "another content with the same SHA-1 and size is not this upload"
    );
    assert_eq!(resumable.id, a.id);

    // Segment marks: the last send of the same bytes wins and the
    // superseded key comes back; bytes received count once.
    let seg = |start: u64, len: u64| Segment { start, len };
    let staged = |start: u64, len: u64, key: &str| Staged { segment: seg(start, len), key: key.into() };
    assert_eq!(s.mark_segment(&a.id, seg(0, 1024), "k0", now, 10_000).await.unwrap(), None);
    assert_eq!(s.mark_segment(&a.id, seg(0, 1024), "k0b", now, 10_000).await.unwrap(), Some("k0".into()));
    assert_eq!(s.get(&a.id).await.unwrap().unwrap().received, 1024, "a send again adds nothing");
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::Missing);
    // Overlaps in other bounds are refused, whichever side they reach from;
    // adjacent segments are fine, and so is a gap (until complete).
    for bad in [seg(0, 10), seg(1000, 100), seg(0, 2048), seg(1023, 1)] {
        assert!(
            matches!(s.mark_segment(&a.id, bad, "x", now, 10_000).await, Err(shared::Error::RangeOverlap { .. })),
            "{bad:?} overlaps"
        );
    }
    s.mark_segment(&a.id, seg(2048, 952), "k2", now, 10_000).await.unwrap();
    assert!(matches!(
        s.mark_segment(&a.id, seg(2048, 953), "x", now, 10_000).await,
        Err(shared::Error::SizeConflict { .. })
    ));
    assert!(matches!(
        s.mark_segment(&a.id, seg(2999, 2), "x", now, 10_000).await,
        Err(shared::Error::SizeConflict { .. })
    ));
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::Missing, "a gap at 1024..2048");
    assert_eq!(
        s.overlapping(&a.id, seg(1000, 1100)).await.unwrap(),
        vec![staged(0, 1024, "k0b"), staged(2048, 952, "k2")]
    );
    assert!(s.overlapping(&a.id, seg(1024, 1024)).await.unwrap().is_empty(), "the gap overlaps nothing");
    s.mark_segment(&a.id, seg(1024, 1024), "k1", now, 10_000).await.unwrap();
    let all = s.segments(&a.id).await.unwrap();
    assert_eq!(all, vec![staged(0, 1024, "k0b"), staged(1024, 1024, "k1"), staged(2048, 952, "k2")]);
    assert_eq!(s.segment_at(&a.id, 1024).await.unwrap(), Some(staged(1024, 1024, "k1")));
    assert_eq!(s.segment_at(&a.id, 1000).await.unwrap(), None, "only where a segment starts");
    let (with, received) = s.get_with_segments(&a.id).await.unwrap().expect("the session and its segments");
    assert_eq!((with.id, with.received), (a.id.clone(), 3000));
    assert_eq!(received, vec![seg(0, 1024), seg(1024, 1024), seg(2048, 952)]);
    assert!(s.get_with_segments(&UploadId::generate()).await.unwrap().is_none());
    assert!(matches!(s.set_size(&a.id, 3001, now).await, Err(shared::Error::SizeConflict { .. })), "size known");
    s.set_size(&a.id, 3000, now).await.unwrap();

    // Leases: one holder at a time, renewable by it, free once released or
    // expired; segment leases also exclude every other holder's on any of
    // the same bytes.
    let ms = 1_000_000_000_000i64;
    let lease = segment_lease(seg(1024, 1024));
    assert!(s.acquire_lease(&a.id, &lease, "p1", ms, 1000).await.unwrap());
    assert!(!s.acquire_lease(&a.id, &lease, "p2", ms + 10, 1000).await.unwrap(), "held by p1");
    for (other, free) in [(seg(2047, 1), false), (seg(0, 1025), false), (seg(0, 1024), true), (seg(2048, 10), true)] {
        let taken = s.acquire_lease(&a.id, &segment_lease(other), "p3", ms + 20, 1000).await.unwrap();
        assert_eq!(taken, free, "{other:?} beside a lease on 1024..2048");
        s.release_lease(&a.id, &segment_lease(other), "p3").await.unwrap();
    }
    assert!(s.acquire_lease(&a.id, &lease, "p1", ms + 500, 1000).await.unwrap(), "renewed by p1");
    assert!(!s.acquire_lease(&a.id, &lease, "p2", ms + 1400, 1000).await.unwrap(), "the renewal counts");
    assert_eq!(s.leases_held(&a.id, SEGMENT_LEASE_PREFIX, ms + 1400).await.unwrap(), 1);
    assert_eq!(s.leases_held(&a.id, &segment_lease(seg(1024, 10)), ms).await.unwrap(), 0, "exact names");
    assert_eq!(s.leases_held(&a.id, SEGMENT_LEASE_PREFIX, ms + 1600).await.unwrap(), 0, "expired");
    assert!(s.acquire_lease(&a.id, &segment_lease(seg(1500, 1)), "p2", ms + 1600, 1000).await.unwrap());
    s.release_lease(&a.id, &segment_lease(seg(1500, 1)), "p2").await.unwrap();
    assert!(s.acquire_lease(&a.id, &lease, "p2", ms + 1600, 1000).await.unwrap(), "taken over once expired");
    s.release_lease(&a.id, &lease, "p1").await.unwrap();
    assert_eq!(s.leases_held(&a.id, SEGMENT_LEASE_PREFIX, ms + 1700).await.unwrap(), 1, "only the holder releases");
    s.release_lease(&a.id, &lease, "p2").await.unwrap();
    assert_eq!(s.leases_held(&a.id, SEGMENT_LEASE_PREFIX, ms + 1700).await.unwrap(), 0);

    // An upload whose size comes at the end: bytes anywhere below the
    // largest file, complete refused until the size is given, and a size
    // below received bytes refused.
    let u = UploadSession { size: None, server_hashed: true, filehash: None, sha256: None, ..session(owner, 0, None) };
    s.create(&u).await.unwrap();
    assert_eq!(s.get(&u.id).await.unwrap().unwrap().size, None);
    s.mark_segment(&u.id, seg(0, 5000), "u0", now, 10_000).await.unwrap();
    s.mark_segment(&u.id, seg(5000, 1 << 40), "u1", now, 10_000).await.unwrap();
    assert_eq!(s.start_merge(&u.id, now).await.unwrap(), CompleteOutcome::Missing, "no size yet");
    let past = s.set_size(&u.id, 5000 + (1 << 40) - 1, now).await;
    assert!(matches!(past, Err(shared::Error::SizeConflict { .. })), "{past:?}");
    s.set_size(&u.id, 5000 + (1 << 40), now).await.unwrap();
    s.set_size(&u.id, 5000 + (1 << 40), now).await.unwrap();
    assert!(matches!(s.set_size(&u.id, 6000, now).await, Err(shared::Error::SizeConflict { .. })));
    assert_eq!(s.get(&u.id).await.unwrap().unwrap().received, 5000 + (1 << 40), "exact past 2^32");
    // Its place, named late (WebDAV's chunked upload), and the SHA-1 the merge will check.
    let folder = "ab".repeat(16);
    let sha1 = "12".repeat(20);
    let dest = shared::stores::uploads::Destination {
        filename: "late.bin",
        folder: Some(&folder),
        mtime: Some(1_234),
        replace: true,
        filehash: Some(&sha1),
    };
    s.set_destination(&u.id, &dest, now).await.unwrap();
    let named = s.get(&u.id).await.unwrap().unwrap();
    assert_eq!(named.filename, "late.bin");
    assert_eq!(named.folder.as_ref().map(|f| f.to_string()), Some(folder.clone()));
    assert_eq!((named.mtime, named.replace), (Some(1_234), true));
    assert_eq!(named.filehash.as_ref().map(|h| h.to_string()), Some(sha1.clone()));
    let gone = s.set_destination(&UploadId::generate(), &dest, now).await;
    assert!(matches!(gone, Err(shared::Error::UploadNotFound)), "{gone:?}");
    assert_eq!(s.start_merge(&u.id, now).await.unwrap(), CompleteOutcome::Started);
    let late = s.set_destination(&u.id, &dest, now).await;
    assert!(matches!(late, Err(shared::Error::NotUploading { .. })), "{late:?}");
    assert!(matches!(s.set_size(&u.id, 1, now).await, Err(shared::Error::NotUploading { .. })));
    // At most so many segments: a new one past them is refused, a send
    // again of one received is not.
    let w = UploadSession { size: None, server_hashed: true, filehash: None, sha256: None, ..session(owner, 0, None) };
    s.create(&w).await.unwrap();
    s.mark_segment(&w.id, seg(0, 1), "w0", now, 2).await.unwrap();
    s.mark_segment(&w.id, seg(1, 1), "w1", now, 2).await.unwrap();
    let third = s.mark_segment(&w.id, seg(2, 1), "w2", now, 2).await;
    assert!(matches!(third, Err(shared::Error::TooManySegments { max: 2 })), "{third:?}");
    assert_eq!(s.mark_segment(&w.id, seg(0, 1), "w0b", now, 2).await.unwrap().as_deref(), Some("w0"));
    assert_eq!(s.get(&w.id).await.unwrap().unwrap().received, 2);

    // The running hash's progress: saved only under the hash lease.
    assert_eq!(s.hash_progress(&a.id).await.unwrap(), HashProgress::default());
    let progress = HashProgress { next: 2048, state: vec![1, 2, 3, 250] };
    assert!(!s.save_hash_progress(&a.id, "p1", &progress, ms).await.unwrap(), "no lease, no save");
    assert!(s.acquire_lease(&a.id, HASH_LEASE, "p1", ms, 1000).await.unwrap());
    assert!(!s.save_hash_progress(&a.id, "p2", &progress, ms).await.unwrap(), "another holder's lease");
    assert!(s.save_hash_progress(&a.id, "p1", &progress, ms + 10).await.unwrap());
    assert!(!s.save_hash_progress(&a.id, "p1", &progress, ms + 5000).await.unwrap(), "an expired lease");
    assert_eq!(s.hash_progress(&a.id).await.unwrap(), progress);
    assert_eq!(s.get(&a.id).await.unwrap().unwrap().hashed, 2048);

    // Complete is a compare-and-set; marks after it are refused.
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::Started);
    assert_eq!(s.start_merge(&a.id, now).await.unwrap(), CompleteOutcome::AlreadyIn(UploadState::Merging));
    assert!(matches!(
        s.mark_segment(&a.id, seg(0, 1024), "late", now, 10_000).await,
        Err(shared::Error::NotUploading { .. })
    ));
    assert_eq!(s.delete_unless_merging(&a.id).await.unwrap(), None, "a merging upload is not deleted");

    // Heartbeats: a merge without one for long enough is stale.
    assert!(s.touch_merge(&a.id, now - 1000).await.unwrap());
    assert!(s.stale_merges(now - 500, 100).await.unwrap().contains(&a.id));
    assert!(s.touch_merge(&a.id, now).await.unwrap());
    assert!(!s.stale_merges(now - 500, 100).await.unwrap().contains(&a.id));

    // Finishing is a compare-and-set too, and records the entry.
    assert!(s.finish_merge(&a.id, UploadState::Done, None, Some("e1"), now).await.unwrap());
    let late = Some((shared::domain::FailureCode::StoreFailed, "late"));
    assert!(!s.finish_merge(&a.id, UploadState::Failed, late, None, now).await.unwrap());
    let done = s.get(&a.id).await.unwrap().unwrap();
    assert_eq!((done.state, done.entry_id.as_deref()), (UploadState::Done, Some("e1")));
    assert!(!s.touch_merge(&a.id, now).await.unwrap(), "nothing to keep alive");
    assert!(!s.stale_merges(i64::MAX / 2, 100).await.unwrap().contains(&a.id));
    assert!(
        s.find_resumable(owner, a.filehash.as_ref().unwrap().as_str(), &"cd".repeat(32), 3000).await.unwrap().is_none()
    );
    assert_eq!(s.delete_unless_merging(&a.id).await.unwrap(), Some(UploadState::Done), "a finished one says so");
    assert_eq!(s.delete_unless_merging(&a.id).await.unwrap(), None, "and is gone");

    // Challenges: single use, and void once expired.
    let b = session(owner, 10, None);
    s.create(&b).await.unwrap();
    assert_eq!(s.get_with_segments(&b.id).await.unwrap().map(|(_, r)| r), Some(vec![]), "no bytes yet");
    let proof = PendingProof { file_id: 7, expected: "ee".repeat(32), expires_at: now + 60 };
    s.put_challenge(&b.id, &proof).await.unwrap();
    assert_eq!(s.take_challenge(&b.id, now).await.unwrap(), Some(proof.clone()));
    assert_eq!(s.take_challenge(&b.id, now).await.unwrap(), None, "single use");
    s.put_challenge(&b.id, &proof).await.unwrap();
    assert_eq!(s.take_challenge(&b.id, now + 61).await.unwrap(), None, "expired");

    // Abort: gone, chunks and all.
    s.mark_segment(&b.id, seg(0, 10), "kb", now, 10_000).await.unwrap();
    assert_eq!(s.delete_unless_merging(&b.id).await.unwrap(), Some(UploadState::Uploading), "deleted as it was");
    assert!(s.get(&b.id).await.unwrap().is_none());
    assert!(s.segments(&b.id).await.unwrap().is_empty());
    assert!(matches!(s.mark_segment(&b.id, seg(0, 10), "k", now, 10_000).await, Err(shared::Error::UploadNotFound)));

    // An upload begun without hashes: found by its fingerprint and size,
    // and its hashes declared once (the same again is fine, others are not).
    let c =
        UploadSession { filehash: None, sha256: None, fingerprint: Some("fp:1/a".into()), ..session(owner, 500, None) };
    s.create(&c).await.unwrap();
    let got = s.get(&c.id).await.unwrap().expect("created");
    assert_eq!((got.filehash, got.fingerprint.as_deref()), (None, Some("fp:1/a")));
    assert!(!got.server_hashed);
    // An upload nobody declares hashes for keeps saying so.
    let sh = UploadSession { filehash: None, sha256: None, server_hashed: true, ..session(owner, 800, None) };
    s.create(&sh).await.unwrap();
    assert!(s.get(&sh.id).await.unwrap().expect("created").server_hashed);
    assert_eq!(s.find_by_fingerprint(owner, "fp:1/a", 500).await.unwrap().map(|f| f.id), Some(c.id.clone()));
    assert!(s.find_by_fingerprint(owner, "fp:1/a", 501).await.unwrap().is_none(), "another size");
    assert!(s.find_by_fingerprint(owner, "fp:1/b", 500).await.unwrap().is_none(), "another fingerprint");
    let (h1, h256) = ("12".repeat(20), "34".repeat(32));
    assert_eq!(s.declare_hashes(&c, &h1, &h256).await.unwrap(), DeclareOutcome::Declared);
    assert_eq!(s.declare_hashes(&c, &h1, &h256).await.unwrap(), DeclareOutcome::Same);
    assert_eq!(s.declare_hashes(&c, &h1, &"56".repeat(32)).await.unwrap(), DeclareOutcome::Different);
    let got = s.get(&c.id).await.unwrap().expect("declared");
    assert_eq!(got.filehash.map(|h| h.to_string()), Some(h1.clone()));
    assert_eq!(got.sha256.map(|h| h.to_string()), Some(h256.clone()));
    assert!(matches!(
        s.declare_hashes(&session(owner, 500, None), &h1, &h256).await,
        Err(shared::Error::UploadNotFound)
    ));
    // Declared, it resumes by its hashes too (a client that kept them).
    let by_hashes = s.find_resumable(owner, &h1, &h256, 500).await.unwrap().map(|f| f.id);
    assert_eq!(by_hashes, Some(c.id.clone()), "declared hashes find the upload");
    assert_eq!(s.find_by_fingerprint(owner, "fp:1/a", 500).await.unwrap().map(|f| f.id), Some(c.id.clone()));
    s.mark_segment(&c.id, seg(0, 500), "kc", now, 10_000).await.unwrap();
    assert_eq!(s.start_merge(&c.id, now).await.unwrap(), CompleteOutcome::Started);
    assert!(matches!(s.declare_hashes(&c, &h1, &h256).await, Err(shared::Error::NotUploading { .. })));
    assert!(s.find_by_fingerprint(owner, "fp:1/a", 500).await.unwrap().is_none(), "merging is not resumable");
    assert!(s.find_resumable(owner, &h1, &h256, 500).await.unwrap().is_none(), "nor by its hashes");
    // Aborted, a declared upload is found by neither.
    let d =
        UploadSession { filehash: None, sha256: None, fingerprint: Some("fp:1/d".into()), ..session(owner, 600, None) };
    s.create(&d).await.unwrap();
    assert_eq!(s.declare_hashes(&d, &h1, &h256).await.unwrap(), DeclareOutcome::Declared);
    assert_eq!(s.delete_unless_merging(&d.id).await.unwrap(), Some(UploadState::Uploading));
    assert!(s.find_resumable(owner, &h1, &h256, 600).await.unwrap().is_none(), "aborted: not by its hashes");
    assert!(s.find_by_fingerprint(owner, "fp:1/d", 600).await.unwrap().is_none(), "aborted: not by fingerprint");
    // Two of the owner's uploads of the same content (one file sent to two
    // folders): whichever the hashes find, the other starting its merge
    // leaves it found.
    let e =
        UploadSession { filehash: None, sha256: None, fingerprint: Some("fp:1/e".into()), ..session(owner, 700, None) };
    let f =
        UploadSession { filehash: None, sha256: None, fingerprint: Some("fp:1/f".into()), ..session(owner, 700, None) };
    for u in [&e, &f] {
        s.create(u).await.unwrap();
        assert_eq!(s.declare_hashes(u, &h1, &h256).await.unwrap(), DeclareOutcome::Declared);
    }
    let found = s.find_resumable(owner, &h1, &h256, 700).await.unwrap().expect("declared twice").id;
    let other = if found == e.id { &f } else { &e };
    s.mark_segment(&other.id, seg(0, 700), "ko", now, 10_000).await.unwrap();
    assert_eq!(s.start_merge(&other.id, now).await.unwrap(), CompleteOutcome::Started);
    let still = s.find_resumable(owner, &h1, &h256, 700).await.unwrap().map(|u| u.id);
    assert_eq!(still, Some(found), "the other upload's merge left this one resumable");
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
        mtime: None,
        hold: None,
        if_match: None,
        author: &AUTHOR,
    };
    let (one, two) = ("a1".repeat(32).leak() as &str, "b2".repeat(32).leak() as &str);
    // Two contents with the same SHA-1 and size are two contents.
    let (e1, s1) = commit(r, &content(alice.id, one, "one"), "key1").await.unwrap();
    let (e2, s2) = commit(r, &content(alice.id, two, "two"), "key2").await.unwrap();
    assert_ne!(s1.id, s2.id);
    assert_ne!(e1.id, e2.id);
    let mut both: Vec<String> =
        r.entries_with_sha1(alice.id, &"12".repeat(20)).await.unwrap().into_iter().map(|(e, _)| e.id).collect();
    both.sort();
    let mut want = vec![e1.id.clone(), e2.id.clone()];
    want.sort();
    assert_eq!(both, want);
    // The same content again links to the stored copy.
    let (eb, sb) = commit(r, &content(bob.id, one, "bob's"), "key3").await.unwrap();
    assert_eq!((sb.id, sb.storage_key.as_str()), (s1.id, "key1"), "the first copy wins");
    let again = link(r, &content(bob.id, one, "bob's")).await.unwrap().unwrap();
    assert_eq!(again.id, eb.id, "the same name and content in the same folder is the same entry");
    let copy = link(r, &content(bob.id, one, "copy")).await.unwrap().unwrap();
    assert_ne!(copy.id, eb.id, "another name is another entry for the same content");
    assert!(r.user_file(bob.id, &e1.id).await.unwrap().is_none(), "alice's entry is not bob's");
    let usage =
        |files, bytes, trash_files, trash_bytes| shared::stores::meta::Usage { files, bytes, trash_files, trash_bytes };
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
        Err(shared::Error::Forbidden { code: shared::ErrorCode::InviteInvalid, .. })
    ));
    assert!(r.user_with_hash(dave.as_str()).await.unwrap().is_none(), "a refused invite makes no user");
    r.insert_session(&"0t".repeat(32), alice.id, None, now, now + 60).await.unwrap();
    assert!(r.user_by_token(&"0t".repeat(32), now).await.unwrap().is_some());
    sessions_suite(r, &alice, &carol, now).await;
    challenge_log_suite(r, now).await;
    signing_keys_suite(r, now).await;
    r.set_disabled(&alice.username, true).await.unwrap();
    assert!(r.user_by_token(&"0t".repeat(32), now).await.unwrap().is_none());
    assert!(r.app_passwords(alice.id).await.unwrap().is_empty(), "disabling revokes app passwords");
    assert!(r.user_with_hash(&alice.username).await.unwrap().is_none());
    r.set_quota(&bob.username, Some(1000), None).await.unwrap();
    assert_eq!(r.user_by_id(bob.id).await.unwrap().unwrap().quota_bytes, Some(1000));
    r.health_check().await.unwrap();
}

/// Sessions and app passwords: listed by owner, revoked all but one, a
/// password change keeps the caller's token, app passwords found by
/// (name, secret hash) and revoked one by one.
async fn sessions_suite(r: &dyn MetaRepo, alice: &shared::domain::User, carol_name: &UserName, now: i64) {
    let carol = r.user_with_hash(carol_name.as_str()).await.unwrap().unwrap().0;
    r.insert_session(&"1a".repeat(32), alice.id, Some("laptop"), now + 1, now + 60).await.unwrap();
    r.insert_session(&"2b".repeat(32), alice.id, None, now, now - 1).await.unwrap();
    r.insert_session(&"3c".repeat(32), carol.id, Some("phone"), now, now + 60).await.unwrap();
    let listed = r.sessions(alice.id, now).await.unwrap();
    let seen: Vec<(&str, Option<&str>)> = listed.iter().map(|s| (s.id.as_str(), s.device.as_deref())).collect();
    assert_eq!(seen, [("1a1a1a1a1a1a1a1a", Some("laptop")), ("0t0t0t0t0t0t0t0t", None)], "live ones, newest first");
    // A password change keeps only the caller's token; carol's are hers.
    r.set_password(alice.id, "new-hash", Some(&"0t".repeat(32))).await.unwrap();
    assert_eq!(r.user_with_hash(&alice.username).await.unwrap().unwrap().1, "new-hash");
    assert!(r.user_by_token(&"1a".repeat(32), now).await.unwrap().is_none());
    assert!(r.user_by_token(&"0t".repeat(32), now).await.unwrap().is_some());
    assert!(r.user_by_token(&"3c".repeat(32), now).await.unwrap().is_some());
    assert!(matches!(r.set_password(i64::MAX, "h", None).await, Err(shared::Error::UserNotFound)));
    // App passwords.
    let app =
        |id: &str, name: &str| AppPassword { id: id.into(), name: name.into(), created_at: now, last_used_at: None };
    r.add_app_password(alice.id, &app(&"a1".repeat(16), "rclone"), &"e1".repeat(32)).await.unwrap();
    r.add_app_password(alice.id, &app(&"a2".repeat(16), "finder"), &"e2".repeat(32)).await.unwrap();
    let found = r.user_by_app_password(&alice.username, &"e1".repeat(32)).await.unwrap().unwrap();
    assert_eq!((found.0.id, found.1.as_str(), found.2), (alice.id, "a1".repeat(16).as_str(), None));
    assert!(r.user_by_app_password(&carol.username, &"e1".repeat(32)).await.unwrap().is_none(), "another's name");
    r.touch_app_password(&"a1".repeat(16), now + 5).await.unwrap();
    let listed = r.app_passwords(alice.id).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| (a.name.as_str(), a.last_used_at)).collect::<Vec<_>>(),
        [("rclone", Some(now + 5)), ("finder", None)]
    );
    assert!(!r.revoke_app_password(carol.id, &"a1".repeat(16)).await.unwrap(), "not carol's to revoke");
    assert!(r.revoke_app_password(alice.id, &"a1".repeat(16)).await.unwrap());
    assert!(r.user_by_app_password(&alice.username, &"e1".repeat(32)).await.unwrap().is_none());
    // Signing out everywhere: every token and every app password.
    assert_eq!(r.revoke_sessions(alice.id, None, true).await.unwrap(), 1, "the one the change kept");
    assert!(r.sessions(alice.id, now).await.unwrap().is_empty());
    assert!(r.app_passwords(alice.id).await.unwrap().is_empty());
    assert!(r.user_by_token(&"3c".repeat(32), now).await.unwrap().is_some(), "carol is still in");
    r.insert_session(&"0t".repeat(32), alice.id, None, now, now + 60).await.unwrap();
}

/// The challenge log: wrong answers fail at once, unanswered ones once
/// they are past answering, right ones are forgotten; a re-issued challenge
/// replaces its upload's; old ones are forgotten by the clean-up.
async fn challenge_log_suite(r: &dyn MetaRepo, now: i64) {
    let (file, other) = (7_000_001, 7_000_002);
    r.challenge_issued(file, &"c1".repeat(16), now).await.unwrap();
    r.challenge_issued(file, &"c2".repeat(16), now).await.unwrap();
    r.challenge_issued(file, &"c3".repeat(16), now - 120).await.unwrap();
    r.challenge_issued(other, &"c4".repeat(16), now).await.unwrap();
    r.challenge_answered(&"c1".repeat(16), false).await.unwrap();
    r.challenge_answered(&"c2".repeat(16), true).await.unwrap();
    let since = now - 86_400;
    assert_eq!(r.failed_challenges(file, since, now - 60).await.unwrap(), 2, "c1 wrong, c3 unanswered");
    assert_eq!(r.failed_challenges(file, now - 100, now - 60).await.unwrap(), 1, "c3 is older than the window");
    assert_eq!(r.failed_challenges(other, since, now - 60).await.unwrap(), 0, "c4 may still be answered");
    r.challenge_issued(file, &"c1".repeat(16), now).await.unwrap();
    assert_eq!(r.failed_challenges(file, since, now - 60).await.unwrap(), 1, "re-issued: c1 starts over");
    assert_eq!(r.forget_challenges(now - 60).await.unwrap(), 1);
    assert_eq!(r.failed_challenges(file, since, now - 60).await.unwrap(), 0);
}

/// Signing keys: listed by purpose, oldest first; an id is unique within
/// its purpose only; a dropped key is gone (dropping it again is no error).
async fn signing_keys_suite(r: &dyn MetaRepo, now: i64) {
    use shared::stores::meta::StoredKey;
    let key = |purpose: &str, kid: &str, at: i64| StoredKey {
        purpose: purpose.into(),
        kid: kid.into(),
        secret: "ab".repeat(32),
        created_at: at,
    };
    let before = r.signing_keys().await.unwrap();
    assert!(r.add_signing_key(&key("test", "k2", now)).await.unwrap());
    assert!(r.add_signing_key(&key("test", "k1", now - 10)).await.unwrap());
    assert!(r.add_signing_key(&key("other", "k1", now)).await.unwrap(), "ids are per purpose");
    assert!(!r.add_signing_key(&key("test", "k1", now + 5)).await.unwrap(), "an id taken in its purpose");
    let ours = |all: Vec<StoredKey>| all.into_iter().filter(|k| !before.contains(k)).collect::<Vec<_>>();
    let listed = ours(r.signing_keys().await.unwrap());
    assert_eq!(listed, vec![key("other", "k1", now), key("test", "k1", now - 10), key("test", "k2", now)]);
    r.drop_signing_key("test", "k1").await.unwrap();
    r.drop_signing_key("test", "k1").await.unwrap();
    let listed = ours(r.signing_keys().await.unwrap());
    assert_eq!(listed, vec![key("other", "k1", now), key("test", "k2", now)]);
}

/// What every repository does with a user's tree: names, moves, the trash.
async fn tree_suite(r: &dyn MetaRepo, user: i64) {
    let now = shared::now();
    let (rename, refuse) = (NameRule::Rename, NameRule::Refuse);
    let open = &TreeBounds { max_depth: 64, max_entries: None };
    let docs = r.create_folder(user, "", "docs", refuse, open, now).await.unwrap();
    assert!(matches!(r.create_folder(user, "", "docs", refuse, open, now).await, Err(shared::Error::NameTaken { .. })));
    assert_eq!(r.create_folder(user, "", "docs", rename, open, now).await.unwrap().name, "docs (1)");
    let deep = r.create_folder(user, &docs.id, "deep", refuse, open, now).await.unwrap();
    assert!(matches!(
        r.create_folder(user, &"0".repeat(32), "x", refuse, open, now).await,
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
        mtime: None,
        hold: None,
        if_match: None,
        author: &AUTHOR,
    };
    let deep_id: &'static str = deep.id.clone().leak();
    let (a, _) = commit(r, &file("a.txt", Some(deep_id)), "tree-key").await.unwrap();
    assert_eq!(a.folder, deep.id);
    let contents = r.contents_of(user, &[a.id.clone(), "0".repeat(32)]).await.unwrap();
    assert_eq!(
        contents.iter().map(|(id, c)| (id.as_str(), c.storage_key.as_str())).collect::<Vec<_>>(),
        [(a.id.as_str(), "tree-key")]
    );
    let b = link(r, &file("a.txt", None)).await.unwrap().unwrap();
    assert_eq!((b.folder.as_str(), b.filename.as_str()), ("", "a.txt"));
    let c = link(r, &file("docs", None)).await.unwrap().unwrap();
    assert_eq!(c.filename, "docs (2)", "files and folders share a folder's names");
    // Moves: never into oneself; a taken name is refused or numbered.
    assert!(matches!(
        r.move_folder(user, &docs.id, &dest(Some(&deep.id), None, refuse), 64, now).await,
        Err(shared::Error::MoveIntoItself)
    ));
    assert!(matches!(
        r.move_folder(user, &docs.id, &dest(Some(&docs.id), None, refuse), 64, now).await,
        Err(shared::Error::MoveIntoItself)
    ));
    assert!(matches!(
        move_entry(r, user, &b.id, &dest(Some(&deep.id), None, refuse), now).await,
        Err(shared::Error::NameTaken { .. })
    ));
    let moved = move_entry(r, user, &b.id, &dest(Some(&deep.id), None, rename), now).await.unwrap();
    assert_eq!((moved.folder.as_str(), moved.filename.as_str()), (deep.id.as_str(), "a (1).txt"));
    let deep = r.move_folder(user, &deep.id, &dest(Some(""), Some("top"), refuse), 64, now).await.unwrap();
    assert_eq!((deep.parent.as_str(), deep.name.as_str()), ("", "top"));
    // Listing pages by cursor, folders first.
    let page = |limit, after| shared::stores::meta::PageRequest { sort: SortKey::Name, desc: false, limit, after };
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
    r.create_folder(user, "", "top", refuse, open, now).await.unwrap();
    let back = r.restore(user, &deep.id, rename, 64, now).await.unwrap();
    assert!(matches!(back, TreeItem::Folder(d) if d.name == "top (1)"));
    assert!(r.user_file(user, &a.id).await.unwrap().is_some(), "restored with its folder");
    // A restore whose old folder is gone lands in the root.
    r.trash(user, &a.id, now).await.unwrap();
    r.trash(user, &deep.id, now).await.unwrap();
    r.purge(user, &deep.id).await.unwrap();
    let back = r.restore(user, &a.id, rename, 64, now).await.unwrap();
    assert!(matches!(back, TreeItem::File(f) if f.folder.is_empty() && f.filename == "a.txt"));
    // Expiry: what was deleted before the cut-off, whoever's it is.
    r.trash(user, &c.id, now - 100).await.unwrap();
    let expired = r.trash_expired(now - 50, 1000).await.unwrap();
    assert!(expired.contains(&(user, c.id.clone())), "{expired:?}");
    assert!(!expired.iter().any(|(_, id)| *id == a.id), "restored items are not expired");
    bounds_suite(r).await;
}

fn dest<'a>(to: Option<&'a str>, name: Option<&'a str>, rule: NameRule) -> Destination<'a> {
    Destination { to, name, rule, if_match: None, author: &AUTHOR }
}

/// The tree's bounds, checked in the transaction that adds a folder or a
/// level: depth on create, move and restore; files and folders on create.
async fn bounds_suite(r: &dyn MetaRepo) {
    let now = shared::now();
    let user = r.create_user(&UserName::parse(&uname("bounds")).unwrap(), "h", now, None).await.unwrap().id;
    let refuse = NameRule::Refuse;
    let three = &TreeBounds { max_depth: 3, max_entries: None };
    let too_deep = |r: shared::Result<_>| matches!(r, Err(shared::Error::FolderTooDeep { max: 3 }));
    let a = r.create_folder(user, "", "bound-a", refuse, three, now).await.unwrap();
    let b = r.create_folder(user, &a.id, "b", refuse, three, now).await.unwrap();
    let c = r.create_folder(user, &b.id, "c", refuse, three, now).await.unwrap();
    assert!(too_deep(r.create_folder(user, &c.id, "d", refuse, three, now).await.map(|_| ())), "depth 4");
    // x with a child is two levels: it fits below a (depth 1), not below b.
    let x = r.create_folder(user, "", "bound-x", refuse, three, now).await.unwrap();
    r.create_folder(user, &x.id, "y", refuse, three, now).await.unwrap();
    assert!(too_deep(r.move_folder(user, &x.id, &dest(Some(&b.id), None, refuse), 3, now).await.map(|_| ())));
    assert!(r.folder(user, &x.id).await.unwrap().unwrap().parent.is_empty(), "the refused move changed nothing");
    let moved = r.move_folder(user, &x.id, &dest(Some(&a.id), None, refuse), 3, now).await.unwrap();
    assert_eq!(moved.parent, a.id);
    // A rename in place adds no level, even where the tree is at the bound.
    r.move_folder(user, &c.id, &dest(None, Some("c2"), refuse), 3, now).await.unwrap();
    // A restore brings back the levels it took away.
    r.trash(user, &x.id, now).await.unwrap();
    let restored = r.restore(user, &x.id, refuse, 2, now).await;
    assert!(matches!(restored, Err(shared::Error::FolderTooDeep { max: 2 })), "{restored:?}");
    assert!(r.folder(user, &x.id).await.unwrap().is_none(), "the refused restore left it in the trash");
    r.restore(user, &x.id, refuse, 3, now).await.unwrap();
    // Files and folders, live and trashed, count against the entries limit.
    r.trash(user, &c.id, now).await.unwrap();
    let (items, _) = r.list_trash(user, 100, None).await.unwrap();
    assert_eq!(items.len(), 1);
    // bound-a, b, c (trashed), bound-x, y: five.
    let have = 5;
    let full = &TreeBounds { max_depth: 64, max_entries: Some(have + 1) };
    r.create_folder(user, "", "bound-last", refuse, full, now).await.unwrap();
    let over = r.create_folder(user, "", "bound-over", refuse, full, now).await;
    assert!(matches!(over, Err(shared::Error::QuotaExceeded { .. })), "{over:?}");
}

async fn sqlite_repo() -> (tempfile::TempDir, shared::stores::meta::SqlRepo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = shared::stores::meta::open(&format!("sqlite://{}?mode=rwc", dir.path().join("pan.db").display()))
        .await
        .unwrap();
    (dir, repo)
}

/// A fresh MariaDB database (scripts/test drops leftover `pan_test_` databases
/// at the start of each run).
async fn mariadb_repo() -> (String, shared::stores::meta::SqlRepo) {
    let db = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    create_mysql_db(&db).await;
    let repo = shared::stores::meta::open(&format!("{}/{db}", mysql_url())).await.unwrap();
    (db, repo)
}

/// The SQL upload-session store on SQLite does what every upload-session store
/// must (`upload_store_suite`).
#[tokio::test]
async fn upload_store_on_sqlite() {
    let (_dir, repo) = sqlite_repo().await;
    let owner = repo.create_user(&UserName::parse("owner").unwrap(), "h", 0, None).await.unwrap().id;
    upload_store_suite(&shared::stores::uploads::sql::SqlUploads::new(repo, TTL), owner).await;
}

/// The SQL upload-session store on MariaDB does what every upload-session store
/// must (`upload_store_suite`).
#[tokio::test]
async fn upload_store_on_mariadb() {
    let (_db, repo) = mariadb_repo().await;
    let owner = repo.create_user(&UserName::parse("owner").unwrap(), "h", 0, None).await.unwrap().id;
    upload_store_suite(&shared::stores::uploads::sql::SqlUploads::new(repo, TTL), owner).await;
}

/// The Redis upload-session store does what every upload-session store must
/// (`upload_store_suite`).
#[tokio::test]
async fn upload_store_on_redis() {
    let con =
        shared::stores::connection::connect(&redis_url()).await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    upload_store_suite(&shared::stores::uploads::redis::RedisUploads::new(con, &prefix, TTL), 1).await;
}

/// The Redis upload-session store on a Redis Cluster of three masters does
/// what every upload-session store must: every script touches the keys of
/// one upload, which share a slot; many uploads spread over the masters.
#[tokio::test]
async fn upload_store_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let con = shared::stores::connection::connect(&cluster.url()).await.expect("the cluster");
    let store = shared::stores::uploads::redis::RedisUploads::new(con, "pan", TTL);
    upload_store_suite(&store, 1).await;
    let per_master = cluster.keys_per_master().await;
    assert!(per_master.iter().filter(|n| **n > 0).count() >= 2, "keys spread over the masters: {per_master:?}");
}

/// Upload keys of the release before hash tags (`p:upload:<id>`) are renamed
/// at start-up, so an upload in flight across the upgrade goes on.
#[tokio::test]
async fn redis_upload_keys_of_the_previous_release_are_renamed() {
    use shared::stores::uploads::{SegmentMap, UploadSessions};
    let seg = |start, len| Segment { start, len };
    let con =
        shared::stores::connection::connect(&redis_url()).await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    let store = shared::stores::uploads::redis::RedisUploads::new(con.clone(), &prefix, TTL);
    let s = session(1, 3000, None);
    store.create(&s).await.unwrap();
    store.mark_segment(&s.id, seg(0, 1024), "k0", shared::now(), 100).await.unwrap();
    let mut raw = con.clone();
    for suffix in ["", ":segments"] {
        let tagged = format!("{prefix}:upload:{{{}}}{suffix}", s.id);
        let old = format!("{prefix}:upload:{}{suffix}", s.id);
        let _: () = redis::cmd("RENAME").arg(&tagged).arg(&old).query_async(&mut raw).await.unwrap();
    }
    assert!(store.get(&s.id).await.unwrap().is_none(), "under its old name the store does not see it");
    assert_eq!(store.tag_old_keys().await.unwrap(), 2);
    let (back, segments) = store.get_with_segments(&s.id).await.unwrap().expect("the upload is back");
    assert_eq!((back.received, segments), (1024, vec![seg(0, 1024)]));
}

/// The metadata repository on SQLite does what every metadata repository must
/// (`repo_suite`).
#[tokio::test]
async fn metadata_repository_on_sqlite() {
    let (_dir, repo) = sqlite_repo().await;
    repo_suite(&repo).await;
}

/// The metadata repository on MariaDB does what every metadata repository must
/// (`repo_suite`).
#[tokio::test]
async fn metadata_repository_on_mariadb() {
    let (_db, repo) = mariadb_repo().await;
    repo_suite(&repo).await;
}

/// The quota ledger through two repositories on one database, each with its
/// own pool (as two api processes hold them): 60 concurrent reservations of
/// one user never overshoot; a release gives the room back and a resize
/// replaces the hold's own size; the cap on open uploads counts upload holds
/// only; the file limit counts stored files and holds; recording the entry
/// takes its hold's place, so a finished upload reserves nothing.
async fn quota_ledger_suite(a: &dyn MetaRepo, b: &dyn MetaRepo) {
    let user = a.create_user(&UserName::parse("ledger").unwrap(), "h", 0, None).await.unwrap().id;
    let hold = |id: &'static str, bytes: u64, upload: bool| Hold { id, user_id: user, bytes, upload, now: 1 };
    let bytes_only = Limits { bytes: Some(2500), files: None, uploads: None, entries: None };
    let ids: Vec<&'static str> = (0..60).map(|i| &*format!("hold{i:02}").leak()).collect();
    let results = futures::future::join_all(ids.iter().enumerate().map(|(i, id)| {
        let repo = if i % 2 == 0 { a } else { b };
        let h = hold(id, 100, true);
        async move { repo.reserve(&h, &bytes_only).await.unwrap() }
    }))
    .await;
    let granted: Vec<&str> = ids.iter().zip(&results).filter(|(_, r)| r.is_none()).map(|(id, _)| *id).collect();
    assert_eq!(granted.len(), 25, "exactly the room there is, never more: {results:?}");
    assert!(results.iter().flatten().all(|r| matches!(r, Refusal::Bytes { quota: 2500, .. })), "{results:?}");
    assert_eq!(a.holds(user).await.unwrap(), (25, 2500));
    assert_eq!(b.holds(user).await.unwrap(), (25, 2500), "both processes see one ledger");

    // A release gives the room back (releasing nothing is fine); a hold
    // that is not an upload takes room but is no open upload.
    a.release(granted[0]).await.unwrap();
    a.release("no such hold").await.unwrap();
    assert_eq!(b.reserve(&hold("single", 100, false), &bytes_only).await.unwrap(), None);
    assert_eq!(a.holds(user).await.unwrap(), (24, 2500));
    // A resize replaces the hold's own size.
    assert_eq!(
        a.reserve(&hold("single", 101, false), &bytes_only).await.unwrap(),
        Some(Refusal::Bytes { used: 0, held: 2400, quota: 2500 })
    );
    assert_eq!(a.reserve(&hold("single", 50, false), &bytes_only).await.unwrap(), None);
    assert_eq!(a.holds(user).await.unwrap(), (24, 2450));

    // The cap on open uploads counts upload holds only.
    let capped = Limits { bytes: None, files: None, uploads: Some(24), entries: None };
    assert_eq!(a.reserve(&hold("upload", 1, true), &capped).await.unwrap(), Some(Refusal::Uploads { open: 24 }));
    assert_eq!(a.reserve(&hold("other", 1, false), &capped).await.unwrap(), None);
    // The file limit counts stored files and holds (26 now, with one more: 27).
    let files = Limits { bytes: None, files: Some(26), uploads: None, entries: None };
    assert_eq!(
        a.reserve(&hold("file", 1, false), &files).await.unwrap(),
        Some(Refusal::Files { files: 0, held: 26, quota: 26 })
    );
    // So does the limit on files and folders (a resize is not one more).
    let entries = Limits { bytes: None, files: None, uploads: None, entries: Some(26) };
    assert_eq!(
        a.reserve(&hold("file", 1, false), &entries).await.unwrap(),
        Some(Refusal::Entries { entries: 26, quota: 26 })
    );
    assert_eq!(a.reserve(&hold("other", 1, false), &entries).await.unwrap(), None);

    // Recording the entry takes its hold's place, in the same transaction.
    let entry = NewUserFile {
        user_id: user,
        filehash: "56".repeat(20).leak(),
        sha256: "78".repeat(32).leak(),
        filesize: 50,
        filename: "done.bin",
        folder: None,
        rule: NameRule::Rename,
        now: 1,
        mtime: None,
        hold: Some("single"),
        if_match: None,
        author: &AUTHOR,
    };
    commit(b, &entry, "ledger-key").await.unwrap();
    assert_eq!(a.holds(user).await.unwrap(), (24, 2401), "the finished upload reserves nothing");
    assert_eq!(
        a.reserve(&hold("late", 50, false), &bytes_only).await.unwrap(),
        Some(Refusal::Bytes { used: 50, held: 2401, quota: 2500 }),
        "its entry counts instead"
    );
    let mut old = a.holds_before(2, 1000).await.unwrap();
    old.sort();
    assert_eq!(old.len(), 25, "{old:?}");
    assert!(a.holds_before(1, 1000).await.unwrap().is_empty());
}

/// The quota ledger on SQLite, through two pools, keeps its promises under
/// concurrency (`quota_ledger_suite`).
#[tokio::test]
async fn quota_ledger_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pan.db").display());
    let a = shared::stores::meta::open(&url).await.unwrap();
    let b = shared::stores::meta::open(&url).await.unwrap();
    quota_ledger_suite(&a, &b).await;
}

/// The quota ledger on MariaDB, through two pools, keeps its promises under
/// concurrency (`quota_ledger_suite`).
#[tokio::test]
async fn quota_ledger_on_mariadb() {
    let (db, a) = mariadb_repo().await;
    let b = shared::stores::meta::open(&format!("{}/{db}", mysql_url())).await.unwrap();
    quota_ledger_suite(&a, &b).await;
}

/// A share link's byte budget through two repositories on one database (as
/// two api processes hold it): 40 concurrent reservations of 100 bytes
/// against a budget of 1,000 let exactly 10 through; a reservation that does
/// not fit records nothing; an unlimited link counts all; a revoked link
/// takes none. An older link is sized once; a folder's size is the total of
/// the live files below it.
async fn share_budget_suite(a: &dyn MetaRepo, b: &dyn MetaRepo) {
    use shared::domain::{Share, ShareTarget};
    let now = shared::now();
    let user = a.create_user(&UserName::parse(&uname("sb")).unwrap(), "hash", now, None).await.unwrap();
    let share = |link: &str, max: Option<i64>, size: Option<i64>| Share {
        link: link.to_owned(),
        owner: user.id,
        target: ShareTarget::Folder("0".repeat(32)),
        password_hash: None,
        expires_at: None,
        max_downloads: max,
        size,
        bytes_sent: 0,
        legacy_downloads: 0,
        created_at: now,
    };
    let limited = share(&"A".repeat(22), Some(10), Some(100));
    a.create_share(&limited).await.unwrap();
    let tries = (0..40).map(|i| {
        let r = if i % 2 == 0 { a } else { b };
        let link = limited.link.clone();
        async move { r.reserve_share_bytes(&link, 100, Some(1000)).await.unwrap() }
    });
    let granted = futures::future::join_all(tries).await.into_iter().filter(|ok| *ok).count();
    assert_eq!(granted, 10, "the budget is never overshot");
    assert!(!a.reserve_share_bytes(&limited.link, 1, Some(1000)).await.unwrap());
    assert_eq!(b.share(&limited.link).await.unwrap().unwrap().bytes_sent, 1000);

    let open = share(&"B".repeat(22), None, Some(5));
    a.create_share(&open).await.unwrap();
    assert!(b.reserve_share_bytes(&open.link, 7, Some(10)).await.unwrap());
    assert!(!b.reserve_share_bytes(&open.link, 4, Some(10)).await.unwrap(), "7 + 4 > 10: nothing recorded");
    assert!(b.reserve_share_bytes(&open.link, 1 << 40, None).await.unwrap(), "no budget: no limit");
    assert_eq!(a.share(&open.link).await.unwrap().unwrap().bytes_sent, 7 + (1 << 40));
    a.revoke_share(user.id, &open.link, now).await.unwrap();
    assert!(!a.reserve_share_bytes(&open.link, 1, None).await.unwrap(), "a revoked link sends nothing");

    let old = share(&"C".repeat(22), Some(3), None);
    a.create_share(&old).await.unwrap();
    a.set_share_size(&old.link, 50, 100).await.unwrap();
    b.set_share_size(&old.link, 70, 140).await.unwrap();
    let sized = a.share(&old.link).await.unwrap().unwrap();
    assert_eq!((sized.size, sized.bytes_sent), (Some(50), 100), "sized once, by the first");

    let top = a
        .create_folder(user.id, "", "top", NameRule::Refuse, &TreeBounds { max_depth: 64, max_entries: None }, now)
        .await
        .unwrap();
    let sub = a
        .create_folder(user.id, &top.id, "sub", NameRule::Refuse, &TreeBounds { max_depth: 64, max_entries: None }, now)
        .await
        .unwrap();
    let put = |folder: &'static str, sha256: &'static str, filesize: i64| NewUserFile {
        user_id: user.id,
        filehash: "34".repeat(20).leak(),
        sha256,
        filesize,
        filename: sha256,
        folder: Some(folder),
        rule: NameRule::Rename,
        now,
        mtime: None,
        hold: None,
        if_match: None,
        author: &AUTHOR,
    };
    let (top_id, sub_id) = (top.id.clone().leak() as &str, sub.id.clone().leak() as &str);
    commit(a, &put(top_id, "c1".repeat(32).leak(), 10), "k1").await.unwrap();
    commit(a, &put(sub_id, "c2".repeat(32).leak(), 20), "k2").await.unwrap();
    let (gone, _) = commit(a, &put(sub_id, "c3".repeat(32).leak(), 400), "k3").await.unwrap();
    a.trash(user.id, &gone.id, now).await.unwrap();
    assert_eq!(b.folder_bytes(user.id, &top.id).await.unwrap(), 30, "the trash is not counted");
    assert_eq!(b.folder_bytes(user.id, &sub.id).await.unwrap(), 20);
    assert!(matches!(b.folder_bytes(user.id, &"9".repeat(32)).await, Err(shared::Error::FolderNotFound)));
}

/// A share link's byte budget on SQLite, through two pools, lets exactly what
/// fits through (`share_budget_suite`).
#[tokio::test]
async fn share_budget_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pan.db").display());
    let a = shared::stores::meta::open(&url).await.unwrap();
    let b = shared::stores::meta::open(&url).await.unwrap();
    share_budget_suite(&a, &b).await;
}

/// A share link's byte budget on MariaDB, through two pools, lets exactly what
/// fits through (`share_budget_suite`).
#[tokio::test]
async fn share_budget_on_mariadb() {
    let (db, a) = mariadb_repo().await;
    let b = shared::stores::meta::open(&format!("{}/{db}", mysql_url())).await.unwrap();
    share_budget_suite(&a, &b).await;
}

/// A request body arriving in `pieces`.
fn body(pieces: &[&[u8]]) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + Unpin + use<> {
    let pieces: Vec<std::io::Result<Bytes>> = pieces.iter().map(|p| Ok(Bytes::copy_from_slice(p))).collect();
    futures::stream::iter(pieces)
}

/// Stores `data` at `key` (through a temporary file, as a merge does).
async fn put_bytes(s: &dyn ByteStore, key: &str, data: &[u8]) {
    let mut tmp = TempFile::new(s, "conformance-put").unwrap();
    std::fs::write(&tmp.path, data).unwrap();
    s.put_file(&mut tmp, &Path::from(key)).await.unwrap();
}

/// Sends `data` as chunk `index` of upload `id` (`again`: replacing an
/// earlier send), in pieces of 1000 bytes; returns the key it is staged
/// under. The pieces kept for the running hash are the bytes sent, and a
/// budget too small keeps none (and holds nothing once they are dropped).
async fn put_chunk(
    s: &dyn ByteStore,
    (id, plan): (&UploadId, &ChunkPlan),
    index: u64,
    again: bool,
    data: &[u8],
    checksum: Option<[u8; 20]>,
) -> Path {
    let pieces: Vec<&[u8]> = data.chunks(1000).collect();
    let rules = BodyRules { checksum, min_rate: 0 };
    let budget = KeepBudget::new(data.len().max(1));
    let (at, expect, what) =
        (SegmentAt { id, segment: plan.segment(index) }, Expect::exactly(data.len() as u64), "chunk");
    let (key, _, kept) =
        stage_segment(s, at, what, again, expect, rules, Some(&budget), &mut body(&pieces)).await.unwrap();
    let kept = kept.expect("a budget of the chunk's size keeps it");
    assert_eq!(budget.held(), data.len());
    assert_eq!(kept.into_pieces().concat(), data);
    assert_eq!(budget.held(), 0);
    if !data.is_empty() {
        let small = KeepBudget::new(data.len() - 1);
        let again_key =
            stage_segment(s, at, what, true, expect, rules, Some(&small), &mut body(&pieces)).await.unwrap();
        assert!(again_key.2.is_none(), "a budget one byte short keeps nothing");
        assert_eq!(small.held(), 0);
        return again_key.0;
    }
    key
}

/// All the bytes of chunk `index` staged under `key`.
async fn read_chunk(s: &dyn ByteStore, key: &Path, plan: &ChunkPlan, index: u64) -> Option<Vec<u8>> {
    let stream = s.read_segment(key, plan.segment(index)).await.unwrap()?;
    let pieces: Vec<Bytes> = stream.try_collect().await.unwrap();
    Some(pieces.concat())
}

/// All the bytes of `key` (or of `range`), `None` when there is no such object.
async fn read(s: &dyn ByteStore, key: &str, range: Option<std::ops::Range<u64>>) -> Option<Vec<u8>> {
    let stream = s.read(&Path::from(key), range).await.unwrap()?;
    let pieces: Vec<Bytes> = stream.try_collect().await.unwrap();
    Some(pieces.concat())
}

/// Every key under `prefix` (all when `None`).
async fn keys(s: &dyn ByteStore, prefix: Option<&str>) -> Vec<String> {
    let prefix = prefix.map(Path::from);
    let mut keys: Vec<String> = s.list(prefix.as_ref()).map_ok(|o| o.key.to_string()).try_collect().await.unwrap();
    keys.sort();
    keys
}

fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

/// What every byte store must do. `presigns`: whether it hands out URLs of
/// its own (an S3 bucket does, a directory does not).
async fn byte_store_suite(s: &dyn ByteStore, presigns: bool) {
    let data = test_bytes(300_000, 90);
    let now = shared::now();
    // A directory says how much room its file system has; an object store
    // does not (the same stores that presign are the ones that cannot say).
    let free = s.free_space().await.unwrap();
    assert_eq!(free.is_some(), !presigns, "{free:?}");
    assert!(free.is_none_or(|n| n > 0));

    // A finished temporary file moves in; reading gives it back, whole or in part.
    let mut tmp = TempFile::new(s, "conformance").unwrap();
    std::fs::write(&tmp.path, &data).unwrap();
    let tmp_path = tmp.path.clone();
    s.put_file(&mut tmp, &Path::from("ab/cd/file")).await.unwrap();
    drop(tmp);
    assert!(!tmp_path.exists(), "the temporary file is gone once stored");
    assert_eq!(read(s, "ab/cd/file", None).await.as_deref(), Some(&data[..]));
    assert_eq!(read(s, "ab/cd/file", Some(10..20)).await.as_deref(), Some(&data[10..20]));
    assert_eq!(read(s, "ab/cd/file", Some(299_990..300_000)).await.as_deref(), Some(&data[299_990..]));
    assert_eq!(read(s, "ab/cd/file", Some(0..1)).await.as_deref(), Some(&data[..1]));
    assert_eq!(read(s, "ab/cd/missing", None).await, None, "a missing object is None, not an error");
    let head = s.head(&Path::from("ab/cd/file")).await.unwrap().expect("head of a stored file");
    assert_eq!(head.size, data.len() as u64);
    assert!((now - 60..now + 60).contains(&head.last_modified), "{head:?}");
    assert!(s.head(&Path::from("ab/cd/missing")).await.unwrap().is_none());
    let mut empty = TempFile::new(s, "conformance-empty").unwrap();
    std::fs::write(&empty.path, b"").unwrap();
    s.put_file(&mut empty, &Path::from("ab/cd/empty")).await.unwrap();
    drop(empty);
    assert_eq!(read(s, "ab/cd/empty", None).await.as_deref(), Some(&b""[..]), "an empty file is an object");

    // The chunk writer: chunks arrive in any order, each whole, checksum
    // and all, and read back by the key they were staged under.
    let up = UploadId::generate();
    let file = test_bytes(30_000, 91);
    let plan = ChunkPlan::with_chunk_size(30_000, 12_345);
    let part = |i: u64| &file[plan.offset(i) as usize..(plan.offset(i) + plan.chunk_len(i)) as usize];
    let k2 = put_chunk(s, (&up, &plan), 2, false, part(2), Some(sha1(part(2)))).await;
    let k0 = put_chunk(s, (&up, &plan), 0, false, part(0), None).await;
    let k1 = put_chunk(s, (&up, &plan), 1, false, part(1), None).await;
    for (i, k) in [(0, &k0), (1, &k1), (2, &k2)] {
        assert_eq!(read_chunk(s, k, &plan, i).await.as_deref(), Some(part(i)), "chunk {i}");
    }

    // …and a send again that it refuses leaves every chunk as it was.
    let at2 = SegmentAt { id: &up, segment: plan.segment(2) };
    let exact = Expect::exactly(5310);
    let no_rules = BodyRules::default();
    let outcome =
        stage_segment(s, at2, "chunk 2", true, exact, no_rules, None, &mut body(&[&part(2)[..10], part(2)])).await;
    assert!(matches!(outcome, Err(ChunkWriteError::TooLong { expected: 5310, .. })), "{outcome:?}");
    let outcome = stage_segment(s, at2, "chunk 2", true, exact, no_rules, None, &mut body(&[&part(2)[..5]])).await;
    assert!(matches!(outcome, Err(ChunkWriteError::TooShort { expected: 5310, got: 5, .. })), "{outcome:?}");
    let wrong_sum = BodyRules { checksum: Some(sha1(b"something else")), min_rate: 0 };
    let outcome = stage_segment(s, at2, "chunk 2", true, exact, wrong_sum, None, &mut body(&[part(2)])).await;
    match &outcome {
        Err(ChunkWriteError::ChecksumMismatch { actual, .. }) => assert_eq!(*actual, hex::encode(sha1(part(2)))),
        other => panic!("expected a checksum mismatch: {other:?}"),
    }
    let failed = futures::stream::iter(vec![Ok(Bytes::from_static(b"01")), Err(std::io::Error::other("client gone"))]);
    let outcome = stage_segment(s, at2, "chunk 2", true, exact, no_rules, None, &mut Box::pin(failed)).await;
    assert!(matches!(outcome, Err(ChunkWriteError::Body(_))), "{outcome:?}");
    for (i, k) in [(0, &k0), (1, &k1), (2, &k2)] {
        assert_eq!(read_chunk(s, k, &plan, i).await.as_deref(), Some(part(i)), "chunk {i} after refusals");
    }
    // A send again that arrives whole replaces the chunk.
    let mut wrong = part(2).to_vec();
    wrong[7] ^= 0xff;
    let k2 = put_chunk(s, (&up, &plan), 2, false, &wrong, None).await;
    assert_eq!(read_chunk(s, &k2, &plan, 2).await.as_deref(), Some(&wrong[..]));
    let k2 = put_chunk(s, (&up, &plan), 2, true, part(2), None).await;
    assert_eq!(read_chunk(s, &k2, &plan, 2).await.as_deref(), Some(part(2)));

    // The merge's view: the whole file, synced, in the destination's
    // scratch directory; the staged chunks stay (a retried merge needs them).
    let staged: Vec<Staged> = [&k0, &k1, &k2]
        .iter()
        .enumerate()
        .map(|(i, k)| Staged { segment: plan.segment(i as u64), key: k.to_string() })
        .collect();
    let whole = s.staged_file(&up, 30_000, &staged, s.scratch_dir(), 2).await.unwrap();
    assert_eq!(std::fs::read(&whole.path).unwrap(), file);
    drop(whole);
    assert_eq!(read_chunk(s, &k1, &plan, 1).await.as_deref(), Some(part(1)), "staged chunks stay");
    let again = s.staged_file(&up, 30_000, &staged, s.scratch_dir(), 2).await.unwrap();
    assert_eq!(std::fs::read(&again.path).unwrap(), file, "a second merge gets the file again");
    drop(again);
    let empty = s.staged_file(&UploadId::generate(), 0, &[], s.scratch_dir(), 2).await.unwrap();
    assert_eq!(std::fs::read(&empty.path).unwrap(), b"", "an upload of no bytes is an empty file");
    drop(empty);
    let scratch: Vec<_> = std::fs::read_dir(s.scratch_dir()).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(scratch.is_empty(), "nothing left in the scratch directory once dropped: {scratch:?}");

    // Sent again, a chunk compares equal only to its own bytes.
    let stored = s.read_segment(&k1, plan.segment(1)).await.unwrap().unwrap();
    assert!(compare_segment(stored, "chunk 1", 12_345, BodyRules::default(), &mut body(&[part(1)])).await.unwrap());
    let stored = s.read_segment(&k1, plan.segment(1)).await.unwrap().unwrap();
    let mut other = part(1).to_vec();
    other[12_000] ^= 1;
    assert!(!compare_segment(stored, "chunk 1", 12_345, BodyRules::default(), &mut body(&[&other])).await.unwrap());

    // Segments in any bounds: a body of unknown length stops where it
    // ends (within the room it was given), and the file is still whole,
    // cut to its size however far the room reached.
    let up2 = UploadId::generate();
    let file2 = test_bytes(7_001, 95);
    let mut staged2 = Vec::new();
    for (start, end) in [(4_000u64, 7_001u64), (0, 1), (1, 4_000)] {
        let room = Segment { start, len: 50_000 };
        let at = SegmentAt { id: &up2, segment: room };
        let pieces: Vec<&[u8]> = file2[start as usize..end as usize].chunks(700).collect();
        let open = Expect { min: 0, max: room.len };
        let (key, got, _) =
            stage_segment(s, at, "bytes", false, open, no_rules, None, &mut body(&pieces)).await.unwrap();
        assert_eq!(got, end - start);
        staged2.push(Staged { segment: Segment { start, len: got }, key: key.to_string() });
    }
    staged2.sort_by_key(|s| s.segment.start);
    let whole = s.staged_file(&up2, 7_001, &staged2, s.scratch_dir(), 2).await.unwrap();
    assert_eq!(std::fs::read(&whole.path).unwrap(), file2, "segments of any bounds make the file");
    drop(whole);
    let gap = s.staged_file(&up2, 7_001, &staged2[1..], s.scratch_dir(), 2).await;
    assert!(gap.is_err(), "segments that leave a gap make no file");
    s.delete_prefix(&objects::upload_prefix(&up2)).await.unwrap();

    // Listings: every object with its size and age, and nothing temporary.
    let lingering = TempFile::new(s, "lingering").unwrap();
    std::fs::write(&lingering.path, b"half a merge").unwrap();
    assert_eq!(keys(s, Some("ab")).await, ["ab/cd/empty", "ab/cd/file"]);
    assert!(keys(s, Some("nothing")).await.is_empty());
    let listed: Vec<_> = s.list(Some(&Path::from("ab"))).try_collect().await.unwrap();
    assert!(listed.iter().all(|o| (now - 60..now + 60).contains(&o.last_modified)), "{listed:?}");
    let mut prefixes: Vec<String> = s.list_prefixes().await.unwrap().iter().map(|p| p.to_string()).collect();
    prefixes.sort();
    let mut want = vec!["ab".to_owned(), up.to_string()];
    want.sort();
    assert_eq!(prefixes, want);
    drop(lingering);

    // Presigned downloads, where the store offers them.
    let disposition = "attachment; filename=\"f.bin\"";
    match s.presign_get(&Path::from("ab/cd/file"), Duration::from_secs(60), disposition).await.unwrap() {
        Some(url) => {
            assert!(presigns, "this store was not expected to sign URLs: {url}");
            let resp = reqwest::get(url.as_str()).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            let cd = resp.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(cd.as_deref(), Some(disposition));
            assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
        }
        None => assert!(!presigns, "this store should sign URLs"),
    }

    // Staged bytes of two uploads copied into a third (tus's concatenation)
    // on the store's side: the third's file is theirs in order, theirs stay.
    let joined_data = test_bytes(40_000, 93);
    let first = stage_at(s, &joined_data[..25_000], &[10_000]).await;
    let second = stage_at(s, &joined_data[25_000..], &[]).await;
    let joined = UploadId::generate();
    let mut copies = Vec::new();
    for (base, staged) in [(0u64, &first), (25_000, &second)] {
        for from in staged {
            let segment = Segment { start: base + from.segment.start, len: from.segment.len };
            let at = SegmentAt { id: &joined, segment };
            let key = s.copy_segment(&Path::from(from.key.as_str()), from.segment, at).await.unwrap();
            copies.push(Staged { segment, key: key.expect("a copy on the store's side").to_string() });
        }
    }
    let whole = s.staged_file(&joined, 40_000, &copies, s.scratch_dir(), 2).await.unwrap();
    assert!(std::fs::read(&whole.path).unwrap() == joined_data, "the copies make the file, in order");
    drop(whole);
    let source = s.read_segment(&Path::from(second[0].key.as_str()), second[0].segment).await.unwrap().unwrap();
    let source: Vec<Bytes> = source.try_collect().await.unwrap();
    let source = source.concat();
    assert!(source == joined_data[25_000..], "the source stays as it was");
    for key in [&first[0].key, &second[0].key, &copies[0].key] {
        let prefix = key.split('/').next().unwrap();
        assert!(s.delete_prefix(&Path::from(prefix)).await.unwrap() > 0);
    }

    // Deleting: twice is fine; a prefix goes whole, and nothing else does.
    s.delete(&Path::from("ab/cd/file")).await.unwrap();
    s.delete(&Path::from("ab/cd/file")).await.unwrap();
    s.delete(&Path::from("ab/cd/empty")).await.unwrap();
    assert_eq!(read(s, "ab/cd/file", None).await, None);
    assert!(s.delete_prefix(&objects::upload_prefix(&up)).await.unwrap() > 0);
    assert_eq!(s.delete_prefix(&objects::upload_prefix(&up)).await.unwrap(), 0, "an empty prefix deletes nothing");
    assert_eq!(read_chunk(s, &k0, &plan, 0).await, None, "deleted chunks are gone");
    assert!(keys(s, None).await.is_empty());
    assert!(s.list_prefixes().await.unwrap().is_empty());
}

/// Copies each way between `a` and `b` give back the same bytes.
async fn copy_suite(a: &dyn ByteStore, b: &dyn ByteStore) {
    let data = test_bytes(9 << 20, 92); // more than one 8 MiB part
    put_bytes(a, "src/one", &data).await;
    assert_eq!(b.copy_from(a, &Path::from("src/one"), &Path::from("copy/one")).await.unwrap(), data.len() as u64);
    assert_eq!(read(b, "copy/one", None).await.as_deref(), Some(&data[..]));
    assert_eq!(a.copy_from(b, &Path::from("copy/one"), &Path::from("back/one")).await.unwrap(), data.len() as u64);
    assert_eq!(read(a, "back/one", None).await.as_deref(), Some(&data[..]));
    put_bytes(b, "src/empty", b"").await;
    assert_eq!(a.copy_from(b, &Path::from("src/empty"), &Path::from("back/empty")).await.unwrap(), 0);
    assert_eq!(read(a, "back/empty", None).await.as_deref(), Some(&b""[..]));
    assert_eq!(b.copy_from(a, &Path::from("back/empty"), &Path::from("copy/empty")).await.unwrap(), 0);
    assert_eq!(b.head(&Path::from("copy/empty")).await.unwrap().map(|o| o.size), Some(0));
    assert!(a.copy_from(b, &Path::from("src/missing"), &Path::from("back/missing")).await.is_err());
    assert!(a.head(&Path::from("back/missing")).await.unwrap().is_none(), "a failed copy leaves nothing");
}

fn local_store(dir: &tempfile::TempDir) -> LocalStore {
    LocalStore::open(&dir.path().join("store")).unwrap()
}

fn garage_store(g: &GarageServer, prefix: &str, dir: &tempfile::TempDir) -> S3Store {
    let location = Location {
        service: Some(g.endpoint.clone()),
        own_requests: true,
        bucket: g.bucket.clone(),
        prefix: prefix.to_owned(),
    };
    S3Store::new(g.client(), location, dir.path().join("tmp"))
}

/// The local-directory byte store does what every byte store must
/// (`byte_store_suite`) and leaves no temporary or refused file on disk.
#[tokio::test]
async fn byte_store_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    byte_store_suite(&local_store(&dir), false).await;
    // Nothing on disk either: no temporary file of a refused chunk (object_store's
    // `#N` files, which no listing shows), no leftover of an assembled file.
    let left = files_under(&dir.path().join("store"));
    assert!(left.is_empty(), "files left in the store's directory: {:?}", left.keys());
}

/// The S3 byte store on Garage does what every byte store must
/// (`byte_store_suite`) and deletes every object it made, none outside its
/// prefix.
#[tokio::test]
async fn byte_store_on_garage() {
    let g = GarageServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    byte_store_suite(&garage_store(&g, "conformance", &dir), true).await;
    assert!(g.objects("").await.is_empty(), "every object went, and none outside the prefix");
}

/// Copies from a local directory to Garage and back give back the same bytes
/// (`copy_suite`).
#[tokio::test]
async fn byte_stores_copy_between_a_local_directory_and_garage() {
    let g = GarageServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    copy_suite(&local_store(&dir), &garage_store(&g, "copies", &dir)).await;
}

/// Stages `data` as the chunks of a new upload laid out with `chunk_size`;
/// returns the staged segments.
async fn stage(s: &dyn ByteStore, data: &[u8], chunk_size: u64) -> Vec<Staged> {
    let (up, plan) = (UploadId::generate(), ChunkPlan::with_chunk_size(data.len() as u64, chunk_size));
    let mut staged = Vec::new();
    for i in 0..plan.chunk_count {
        let range = plan.offset(i) as usize..(plan.offset(i) + plan.chunk_len(i)) as usize;
        let key = put_chunk(s, (&up, &plan), i, false, &data[range], None).await.to_string();
        staged.push(Staged { segment: plan.segment(i), key });
    }
    staged
}

/// Stages `data` as segments ending at `ends` (the last at its end).
async fn stage_at(s: &dyn ByteStore, data: &[u8], ends: &[u64]) -> Vec<Staged> {
    let up = UploadId::generate();
    let mut staged = Vec::new();
    let mut start = 0u64;
    for &end in ends.iter().chain([data.len() as u64].iter()) {
        let segment = Segment { start, len: end - start };
        let pieces: Vec<&[u8]> = data[start as usize..end as usize].chunks(1 << 20).collect();
        let at = SegmentAt { id: &up, segment };
        let expect = Expect::exactly(segment.len);
        let (key, _, _) =
            stage_segment(s, at, "bytes", false, expect, BodyRules::default(), None, &mut body(&pieces)).await.unwrap();
        staged.push(Staged { segment, key: key.to_string() });
        start = end;
    }
    staged
}

/// A merge between buckets of one service makes the file from the staged
/// chunk objects on the service's side: the bytes come out whole, and none
/// of them lands on the local disk. Where it cannot (chunks below S3's
/// 5 MiB part minimum, another service, a directory on either side) it
/// says so and writes nothing, and the merge assembles the file instead.
#[tokio::test]
async fn merge_composes_the_file_from_chunk_objects_on_garage() {
    let g = GarageServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (staging, files) = (garage_store(&g, "staging", &dir), garage_store(&g, "files", &dir));
    let data = test_bytes((12 << 20) + 4321, 91);
    let staged = stage(&staging, &data, 5 << 20).await;
    assert_eq!(staged.len(), 3);
    let key = Path::from("fi/le/composed");
    assert!(objects::compose_staged(&staging, &files, &staged, &key, 2).await.unwrap());
    assert_eq!(read(&files, "fi/le/composed", None).await.as_deref(), Some(&data[..]));
    assert!(files_under(dir.path()).is_empty(), "no byte on the local disk: {:?}", files_under(dir.path()).keys());
    // Again (a retried merge): the same object.
    assert!(objects::compose_staged(&staging, &files, &staged, &key, 2).await.unwrap());
    assert_eq!(read(&files, "fi/le/composed", None).await.as_deref(), Some(&data[..]));
    // Segments of other sizes too, as long as all but the last make parts.
    let uneven = stage_at(&staging, &data, &[6 << 20, 11 << 20]).await;
    assert!(objects::compose_staged(&staging, &files, &uneven, &Path::from("uneven"), 2).await.unwrap());
    assert_eq!(read(&files, "uneven", None).await.as_deref(), Some(&data[..]));
    let short_middle = stage_at(&staging, &data, &[6 << 20, 7 << 20]).await;
    assert!(!objects::compose_staged(&staging, &files, &short_middle, &Path::from("short"), 2).await.unwrap());

    // One chunk of any size is one part.
    let small = test_bytes(777, 92);
    let staged_one = stage(&staging, &small, 5 << 20).await;
    assert!(objects::compose_staged(&staging, &files, &staged_one, &Path::from("one"), 1).await.unwrap());
    assert_eq!(read(&files, "one", None).await.as_deref(), Some(&small[..]));

    // Parts below 5 MiB, no chunks at all, another service, a directory: not composed, nothing written.
    let staged_tiny = stage(&staging, &data[..3 << 20], 1 << 20).await;
    assert!(!objects::compose_staged(&staging, &files, &staged_tiny, &Path::from("tiny"), 2).await.unwrap());
    assert!(!objects::compose_staged(&staging, &files, &[], &Path::from("empty"), 2).await.unwrap());
    let location = Location {
        service: Some("http://elsewhere".into()),
        own_requests: true,
        bucket: g.bucket.clone(),
        prefix: "files".into(),
    };
    let elsewhere = S3Store::new(g.client(), location, dir.path().join("tmp"));
    assert!(!objects::compose_staged(&staging, &elsewhere, &staged, &Path::from("far"), 2).await.unwrap());
    let local = local_store(&dir);
    assert!(!objects::compose_staged(&staging, &local, &staged, &Path::from("local"), 2).await.unwrap());
    let local_staged = stage(&local, &data, 5 << 20).await;
    let composed = objects::compose_staged(&local, &files, &local_staged, &Path::from("l"), 2).await;
    assert!(!composed.unwrap());
    for key in ["tiny", "empty", "far", "local", "l", "short"] {
        assert!(files.head(&Path::from(key)).await.unwrap().is_none(), "{key} was not written");
    }

    // A store set up to make no server-side copies (SSE-C, part checksums,
    // a proxy) neither offers its chunks nor composes.
    let location = Location { service: None, own_requests: true, bucket: g.bucket.clone(), prefix: "staging".into() };
    let plain = S3Store::new(g.client(), location, dir.path().join("tmp"));
    assert!(plain.copy_source(&Path::from(staged[0].key.as_str())).is_none());
    let location = Location { service: None, own_requests: true, bucket: g.bucket.clone(), prefix: "files".into() };
    let plain = S3Store::new(g.client(), location, dir.path().join("tmp"));
    assert!(!objects::compose_staged(&staging, &plain, &staged, &Path::from("plain"), 2).await.unwrap());

    // A copy the service refuses (here: a chunk object gone, 404) is not
    // composed either (the merge assembles the file instead, or reports
    // the missing chunk): no object at the key.
    let mut broken = staged.clone();
    broken[1].key = format!("{}x", broken[1].key);
    let key = Path::from("fi/le/broken");
    assert!(!objects::compose_staged(&staging, &files, &broken, &key, 2).await.unwrap());
    assert!(files.head(&key).await.unwrap().is_none(), "a refused compose leaves nothing");
    assert!(files.head(&Path::from("plain")).await.unwrap().is_none());
}

/// Multipart uploads a killed process left unfinished are found under the
/// store's prefix and aborted once older than the cutoff; younger ones and
/// those outside the prefix stay. A directory has none.
#[tokio::test]
async fn unfinished_multipart_uploads_are_aborted_by_age_on_garage() {
    use object_store::multipart::MultipartStore;
    let g = GarageServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let store = garage_store(&g, "stale", &dir);
    let raw = g.client();
    let (inside, outside) = (Path::from("stale/fi/le"), Path::from("elsewhere/fi/le"));
    let begun = raw.create_multipart(&inside).await.unwrap();
    let other = raw.create_multipart(&outside).await.unwrap();
    let part = || object_store::PutPayload::from_static(b"some bytes");

    assert_eq!(store.abort_stale_uploads(std::time::Duration::from_secs(3600)).await.unwrap(), 0, "too young");
    assert_eq!(store.abort_stale_uploads(std::time::Duration::ZERO).await.unwrap(), 1);
    assert!(raw.put_part(&inside, &begun, 0, part()).await.is_err(), "aborted: no part goes in");
    assert!(raw.put_part(&outside, &other, 0, part()).await.is_ok(), "outside the prefix: untouched");
    assert_eq!(store.abort_stale_uploads(std::time::Duration::ZERO).await.unwrap(), 0, "nothing left");
    raw.abort_multipart(&outside, &other).await.unwrap();

    // At the bucket's root a store may share the bucket: it aborts nothing.
    let begun = raw.create_multipart(&inside).await.unwrap();
    assert_eq!(garage_store(&g, "", &dir).abort_stale_uploads(std::time::Duration::ZERO).await.unwrap(), 0);
    raw.abort_multipart(&inside, &begun).await.unwrap();
    assert_eq!(local_store(&dir).abort_stale_uploads(std::time::Duration::ZERO).await.unwrap(), 0);
}

/// What every rate-bucket store must do: a limit of N a minute takes N at
/// once and refuses the next with the wait until a cell is back (at most
/// 60/N s); a cell given back can be taken again; keys are independent.
async fn rate_buckets_suite(b: &dyn shared::stores::limits::RateBuckets) {
    let key = format!("k{}", hex::encode(rand::random::<[u8; 6]>()));
    for i in 0..3 {
        assert_eq!(b.take(&key, 3).await.unwrap(), Ok(()), "cell {i} of 3");
    }
    let wait = b.take(&key, 3).await.unwrap().expect_err("a fourth cell in a minute");
    assert!(wait > std::time::Duration::ZERO && wait <= std::time::Duration::from_secs(20), "{wait:?}");
    b.give_back(&key, 3).await.unwrap();
    assert_eq!(b.take(&key, 3).await.unwrap(), Ok(()), "the cell given back");
    assert!(b.take(&key, 3).await.unwrap().is_err());
    assert_eq!(b.take(&format!("{key}-other"), 3).await.unwrap(), Ok(()), "another key has its own bucket");
    // A limit past 60,000 a minute (under a millisecond a cell) still works.
    for _ in 0..3 {
        assert_eq!(b.take(&format!("{key}-fast"), 100_000).await.unwrap(), Ok(()));
    }
    // Giving back to a bucket never taken from is harmless.
    b.give_back(&format!("{key}-never"), 3).await.unwrap();
    assert_eq!(b.take(&format!("{key}-never"), 1).await.unwrap(), Ok(()));
    assert!(b.take(&format!("{key}-never"), 1).await.unwrap().is_err());
}

/// The in-process rate buckets do what every rate-bucket store must.
#[tokio::test]
async fn rate_buckets_in_memory() {
    rate_buckets_suite(&shared::stores::limits::MemoryBuckets::default()).await;
}

/// The Redis rate buckets do what every rate-bucket store must, and two
/// stores on one Redis share their buckets (as two api processes do).
#[tokio::test]
async fn rate_buckets_on_redis() {
    let con =
        shared::stores::connection::connect(&redis_url()).await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    let one = shared::stores::limits::redis::RedisBuckets::new(con.clone(), &prefix);
    rate_buckets_suite(&one).await;
    let two = shared::stores::limits::redis::RedisBuckets::new(con, &prefix);
    use shared::stores::limits::RateBuckets;
    assert_eq!(one.take("shared", 2).await.unwrap(), Ok(()));
    assert_eq!(two.take("shared", 2).await.unwrap(), Ok(()));
    assert!(one.take("shared", 2).await.unwrap().is_err(), "the second store took the other cell");
}

/// What every slot table must do: at most `limit` holders of a key; a slot
/// given back can be taken again; keys are independent; a slot not renewed
/// runs out by itself (a process that died holding it), and one renewed
/// does not.
async fn slot_table_suite(t: &dyn shared::stores::limits::SlotTable) {
    use std::time::Duration;
    let key = format!("u{}", hex::encode(rand::random::<[u8; 6]>()));
    let long = Duration::from_secs(60);
    assert!(t.take_slot(&key, "a", 2, long).await.unwrap());
    assert!(t.take_slot(&key, "b", 2, long).await.unwrap());
    assert!(!t.take_slot(&key, "c", 2, long).await.unwrap(), "two of two are held");
    assert!(t.take_slot(&format!("{key}-other"), "c", 2, long).await.unwrap(), "another key has its own");
    t.give_slot_back(&key, "a").await.unwrap();
    assert!(t.take_slot(&key, "c", 2, long).await.unwrap(), "the slot given back");
    t.give_slot_back(&key, "never held").await.unwrap();
    // Slots that run out: one renewed stays, one left alone goes.
    let short = format!("{key}-short");
    let ttl = Duration::from_millis(600);
    assert!(t.take_slot(&short, "kept", 2, ttl).await.unwrap());
    assert!(t.take_slot(&short, "left", 2, ttl).await.unwrap());
    let renewing = async {
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(200)).await; // the renewal period is the behaviour
            t.renew_slot(&short, "kept", ttl).await.unwrap();
        }
    };
    let freed = eventually(5, "the slot not renewed to run out", || async {
        t.take_slot(&short, "new", 2, long).await.unwrap().then_some(())
    });
    tokio::join!(renewing, freed);
    assert!(!t.take_slot(&short, "third", 2, ttl).await.unwrap(), "the renewed slot is still held");
}

/// The Redis rate buckets and slot table on a Redis Cluster do what every
/// rate-bucket store and slot table must (each bucket and each user's slots
/// are one key).
#[tokio::test]
async fn rate_buckets_and_slots_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let con = shared::stores::connection::connect(&cluster.url()).await.expect("the cluster");
    rate_buckets_suite(&shared::stores::limits::redis::RedisBuckets::new(con.clone(), "pan")).await;
    slot_table_suite(&shared::stores::limits::redis::RedisSlots::new(con, "pan")).await;
}

/// The in-process slot table does what every slot table must.
#[tokio::test]
async fn slot_table_in_memory() {
    slot_table_suite(&shared::stores::limits::MemorySlots::default()).await;
}

/// The Redis slot table does what every slot table must.
#[tokio::test]
async fn slot_table_on_redis() {
    let con =
        shared::stores::connection::connect(&redis_url()).await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    slot_table_suite(&shared::stores::limits::redis::RedisSlots::new(con, &prefix)).await;
}

/// A WebDAV lock for the lock suite.
fn dav_lock(user_id: i64, token: &str, path: &str, infinite: bool, exclusive: bool, expires_at: i64) -> DavLock {
    DavLock {
        token: token.into(),
        user_id,
        path: path.into(),
        infinite,
        exclusive,
        owner: "<href xmlns=\"DAV:\">me</href>".into(),
        expires_at,
    }
}

/// What every WebDAV lock store must do: a conflicting lock of the same
/// user is refused (exclusive against anything overlapping, depth infinity
/// covering what is below), shared locks stack, other users never see or
/// meet each other's locks, refresh moves a live lock's expiry only,
/// release frees it, expired locks count for nothing, and the cap holds.
async fn lock_store_suite(s: &dyn LockStore) {
    let now = shared::now();
    let (a, b) = (7001, 7002);
    let take = |l: DavLock| async move { s.acquire(&l, now, 3).await.unwrap() };
    assert_eq!(take(dav_lock(a, "t1", "/docs", true, true, now + 60)).await, Acquired::Taken);
    assert_eq!(take(dav_lock(a, "t2", "/docs/x.txt", false, false, now + 60)).await, Acquired::Conflict, "below");
    assert_eq!(take(dav_lock(a, "t2", "/", true, false, now + 60)).await, Acquired::Conflict, "above, infinite");
    assert_eq!(take(dav_lock(a, "t2", "/docsx", false, true, now + 60)).await, Acquired::Taken, "a sibling");
    assert_eq!(take(dav_lock(b, "t3", "/docs", true, true, now + 60)).await, Acquired::Taken, "another user");
    let listed = s.list(a, now).await.unwrap();
    assert_eq!(listed.len(), 2);
    let t1 = listed.iter().find(|l| l.token == "t1").expect("t1 listed");
    assert_eq!(*t1, dav_lock(a, "t1", "/docs", true, true, now + 60), "kept as taken");
    assert!(s.list(b, now).await.unwrap().iter().all(|l| l.user_id == b && l.token == "t3"));

    // Shared locks stack; an exclusive one then conflicts.
    assert_eq!(take(dav_lock(b, "s1", "/shared", false, false, now + 60)).await, Acquired::Taken);
    assert_eq!(take(dav_lock(b, "s2", "/shared", false, false, now + 60)).await, Acquired::Taken);
    assert_eq!(take(dav_lock(b, "s3", "/shared", false, true, now + 60)).await, Acquired::Conflict);
    assert_eq!(take(dav_lock(b, "s4", "/other", false, false, now + 60)).await, Acquired::TooMany, "3 at most");

    // Refresh, release, expiry.
    let refreshed = s.refresh(a, "t1", now + 600, now).await.unwrap().expect("a live lock");
    assert_eq!(refreshed.expires_at, now + 600);
    assert!(s.refresh(b, "t1", now + 600, now).await.unwrap().is_none(), "another user's token");
    assert!(s.release(a, "t1").await.unwrap());
    assert!(!s.release(a, "t1").await.unwrap());
    assert_eq!(take(dav_lock(a, "t4", "/docs/x.txt", false, true, now + 60)).await, Acquired::Taken);
    assert_eq!(take(dav_lock(a, "old", "/gone", false, true, now - 1)).await, Acquired::Taken);
    assert!(s.list(a, now).await.unwrap().iter().all(|l| l.token != "old"), "expired");
    assert!(s.refresh(a, "old", now + 60, now).await.unwrap().is_none(), "an expired lock stays gone");
    assert_eq!(take(dav_lock(a, "t5", "/gone", false, true, now + 60)).await, Acquired::Taken, "no conflict");
}

/// WebDAV locks on SQLite do what every lock store must (`lock_store_suite`).
#[tokio::test]
async fn lock_store_on_sqlite() {
    let (_dir, repo) = sqlite_repo().await;
    lock_store_suite(&repo).await;
}

/// WebDAV locks on MariaDB do what every lock store must (`lock_store_suite`).
#[tokio::test]
async fn lock_store_on_mariadb() {
    let (_db, repo) = mariadb_repo().await;
    lock_store_suite(&repo).await;
}

/// WebDAV locks in Redis do what every lock store must (`lock_store_suite`).
#[tokio::test]
async fn lock_store_on_redis() {
    let con =
        shared::stores::connection::connect(&redis_url()).await.expect("Redis is unreachable; scripts/test starts it");
    let prefix = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    lock_store_suite(&shared::stores::locks::redis::RedisLocks::new(con, &prefix)).await;
}

/// WebDAV locks on a Redis Cluster do what every lock store must (a user's
/// locks are one key).
#[tokio::test]
async fn lock_store_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let con = shared::stores::connection::connect(&cluster.url()).await.expect("the cluster");
    lock_store_suite(&shared::stores::locks::redis::RedisLocks::new(con, "pan")).await;
}
