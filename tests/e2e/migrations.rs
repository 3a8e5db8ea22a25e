//! Migrations start from a database the previous release made (schema
//! 0013): names the rules now refuse, twins in Unicode form, a trashed tree.
//! After opening it with this release, the repository's audit checks are
//! clean, names follow today's rules, the trash still restores, old
//! entries' modification times are their upload times, and an unfinished
//! upload's chunks are its byte segments (0022).

use pan_tests::*;
use shared::domain::{FileName, NameRule, TreeItem};
use shared::stores::meta::{AuditRepo, MetaRepo, SqlRepo, TreeRepo};
use sqlx::AnyPool;

/// The previous release's last migration.
const PREVIOUS: u32 = 13;

/// A directory holding the migrations of `dialect` up to [`PREVIOUS`].
fn previous_migrations(dialect: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(dialect);
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name[..4].parse::<u32>().unwrap() <= PREVIOUS {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

/// The unfinished upload the previous release left.
const UPLOAD: &str = "0123456789abcdef0123456789abcdef";

const NFC: &str = "caf\u{e9}";
const NFD: &str = "cafe\u{301}";

/// What the previous release could hold, written with its schema.
async fn fill_previous(pool: &AnyPool) {
    let q = |sql: &'static str| sqlx::query(sql);
    q("INSERT INTO users (username, password_hash, created_at) VALUES ('old', 'x', 1)").execute(pool).await.unwrap();
    q("INSERT INTO files (filehash, sha256, filesize, storage_key, refcount, created_at) VALUES (?, ?, 3, 'k1', 3, 1)")
        .bind("a".repeat(40))
        .bind("b".repeat(64))
        .execute(pool)
        .await
        .unwrap();
    let folder = |id: &str, parent: &str, name: &str, trashed: Option<&str>| {
        let (id, parent, name, trashed) =
            (id.to_owned(), parent.to_owned(), name.to_owned(), trashed.map(str::to_owned));
        async move {
            q("INSERT INTO folders (folder_id, user_id, parent, name, created_at, updated_at, trashed_at, trashed_by) \
               VALUES (?, 1, ?, ?, 1, 1, ?, ?)")
            .bind(id.clone())
            .bind(parent)
            .bind(name)
            .bind(trashed.as_ref().filter(|t| **t == id).map(|_| 5i64))
            .bind(trashed)
            .execute(pool)
            .await
            .unwrap();
        }
    };
    folder(&"f1".repeat(16), "", "a\\b", None).await;
    folder(&"f2".repeat(16), "", NFC, None).await;
    folder(&"f3".repeat(16), "", NFD, None).await;
    let top = "f4".repeat(16);
    folder(&top, "", "trash-top", Some(&top)).await;
    folder(&"f5".repeat(16), &top, "inside", Some(&top)).await;
    let entry = |id: &str, folder: &str, name: &str, trashed: Option<&str>| {
        let (id, folder, name, trashed) =
            (id.to_owned(), folder.to_owned(), name.to_owned(), trashed.map(str::to_owned));
        async move {
            q("INSERT INTO user_files (entry_id, user_id, file_id, folder, filename, filesize, created_at, updated_at, \
               trashed_by) VALUES (?, 1, 1, ?, ?, 3, 7, 1, ?)")
            .bind(id)
            .bind(folder)
            .bind(name)
            .bind(trashed)
            .execute(pool)
            .await
            .unwrap();
        }
    };
    entry(&"e1".repeat(16), "", "x\\y.txt", None).await;
    // An unfinished upload of 2500 bytes in chunks of 1024: chunks 0 and 2
    // in, chunk 0 hashed.
    q("INSERT INTO upload_sessions (id, owner_id, filename, filehash, filesize, chunksize, chunkcount, state, \
       created_at, updated_at, hash_next) VALUES (?, 1, 'u.bin', ?, 2500, 1024, 3, 'uploading', 1, ?, 1)")
    .bind(UPLOAD)
    .bind("c".repeat(40))
    .bind(shared::now())
    .execute(pool)
    .await
    .unwrap();
    for (index, key) in [(0i64, "up/k0"), (2, "up/k2")] {
        q("INSERT INTO upload_chunks (upload_id, chkidx, object_key) VALUES (?, ?, ?)")
            .bind(UPLOAD)
            .bind(index)
            .bind(key)
            .execute(pool)
            .await
            .unwrap();
    }
    entry(&"e2".repeat(16), &"f5".repeat(16), "deep.txt", Some(&top)).await;
    entry(&"e3".repeat(16), "", NFD, None).await;
}

/// Opens the filled database with this release and checks what it made of it.
async fn check_current(repo: &SqlRepo) {
    assert!(repo.entries_without_content().await.unwrap().is_empty());
    assert!(repo.refcount_mismatches().await.unwrap().is_empty());
    assert!(repo.entries_outside_tree().await.unwrap().is_empty());
    assert!(repo.stale_name_index().await.unwrap().is_empty());
    assert!(repo.nfc_twins().await.unwrap().is_empty(), "twins were renamed");
    let names = repo.entry_names().await.unwrap();
    for (id, name) in &names {
        assert!(FileName::parse(name).is_ok(), "{id}: {name:?} breaks today's rule");
    }
    let name_of = |id: String| names.iter().find(|(i, _)| *i == id).map(|(_, n)| n.clone()).unwrap();
    assert_eq!(name_of("f1".repeat(16)), "a_b");
    assert_eq!(name_of("e1".repeat(16)), "x_y.txt");
    assert_eq!(name_of("f2".repeat(16)), NFC, "the older twin keeps its name");
    assert_eq!(name_of("f3".repeat(16)), format!("{NFD} (1)"));
    assert_eq!(name_of("e3".repeat(16)), format!("{NFD} (2)"), "a file is a folder's twin too");
    // The trashed tree comes back whole.
    let back = repo.restore(1, &"f4".repeat(16), NameRule::Rename, 64, shared::now()).await.unwrap();
    assert!(matches!(back, TreeItem::Folder(d) if d.name == "trash-top"));
    let inside = repo.children_named(1, &"f4".repeat(16), "inside").await.unwrap();
    assert_eq!(inside.len(), 1);
    // Entries from before modification times (0021) take their upload time.
    let old = repo.children_named(1, "", "x_y.txt").await.unwrap();
    assert!(matches!(&old[..], [TreeItem::File(f)] if f.mtime == 7 && f.uploaded_at == 7), "{old:?}");
    // Paths resolve by either form.
    assert_eq!(repo.children_named(1, "", NFD).await.unwrap().len(), 1);
    // The upload's chunks are segments, its running hash counts bytes.
    use shared::stores::uploads::{SegmentMap, Staged, UploadSessions};
    let uploads = shared::stores::uploads::sql::SqlUploads::new(repo.clone(), 86_400);
    let id = shared::domain::UploadId::parse(UPLOAD).unwrap();
    let session = uploads.get(&id).await.unwrap().expect("the unfinished upload");
    assert_eq!((session.size, session.received, session.hashed), (Some(2500), 1024 + 452, 1024));
    let segment = |start, len| shared::domain::Segment { start, len };
    assert_eq!(
        uploads.segments(&id).await.unwrap(),
        vec![
            Staged { segment: segment(0, 1024), key: "up/k0".into() },
            Staged { segment: segment(2048, 452), key: "up/k2".into() }
        ]
    );
}

/// SQLite: the previous release's schema, filled, then opened by this one.
#[tokio::test]
async fn an_embedded_database_of_the_previous_release_migrates_clean() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("pan.db").display());
    {
        let pool = AnyPool::connect(&url).await.unwrap();
        let migrations = previous_migrations("sqlite");
        sqlx::migrate::Migrator::new(migrations.path()).await.unwrap().run(&pool).await.unwrap();
        fill_previous(&pool).await;
        pool.close().await;
    }
    let repo = shared::stores::meta::open(&url).await.unwrap();
    check_current(&repo).await;
    repo.health_check().await.unwrap();
}

/// MariaDB: the same, on the fleet's database.
#[tokio::test]
async fn a_fleet_database_of_the_previous_release_migrates_clean() {
    sqlx::any::install_default_drivers();
    let db = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    create_mysql_db(&db).await;
    let url = format!("{}/{db}", mysql_url());
    {
        let pool = AnyPool::connect(&url).await.unwrap();
        let migrations = previous_migrations("mysql");
        sqlx::migrate::Migrator::new(migrations.path()).await.unwrap().run(&pool).await.unwrap();
        fill_previous(&pool).await;
        pool.close().await;
    }
    let repo = shared::stores::meta::open(&url).await.unwrap();
    check_current(&repo).await;
}

/// A fleet's api processes start together: three on a fresh database at
/// once all come up, and the schema is migrated once, whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_processes_started_together_on_a_fresh_database_all_come_up() {
    let db = format!("pan_test_{}", hex::encode(rand::random::<[u8; 6]>()));
    create_mysql_db(&db).await;
    let data = tempfile::tempdir().unwrap();
    let mut children: Vec<std::process::Child> = (0..3)
        .map(|i| {
            std::process::Command::new(binary("api"))
                .arg("--no-worker")
                .env("DATABASE_URL", format!("{}/{db}", mysql_url()))
                .env("REDIS_URL", redis_url())
                .env("PAN_REDIS_PREFIX", format!("{db}_{i}"))
                .env("PAN_DATA_DIR", data.path().join(i.to_string()))
                .env("PAN_LISTEN", "127.0.0.1:0")
                .env("PAN_LOG", "warn")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn api")
        })
        .collect();
    for child in &mut children {
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let banner = std::io::BufRead::lines(stdout).map_while(Result::ok).find(|l| l.starts_with("pan is listening"));
        if banner.is_none() {
            let _ = child.kill();
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
            panic!("an api did not start: {err}");
        }
    }
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    use sqlx::Connection;
    let mut con = sqlx::MySqlConnection::connect(&format!("{}/{db}", mysql_url())).await.unwrap();
    let (applied, failed): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), CAST(COALESCE(SUM(success = 0), 0) AS SIGNED) FROM _sqlx_migrations")
            .fetch_one(&mut con)
            .await
            .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/mysql")).unwrap().count();
    assert_eq!((applied, failed), (files as i64, 0), "every migration applied once, none half");
}
