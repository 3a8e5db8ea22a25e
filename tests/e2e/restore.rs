//! The metadata backed up and an installation restored from the backup
//! store: `api admin backup` writes one consistent copy of the database's
//! lasting tables beside the files' backups; `api admin restore` brings a
//! new, empty installation back from it (the bytes from the files' backup
//! copies), on either system, and refuses what would mix or lose data.

use pan_tests::*;
use serde_json::{Value, json};

/// A single upload of `data` as `name` into `folder` (an id; `None`: the root).
async fn put(app: &TestApp, token: &str, folder: Option<&str>, name: &str, data: &[u8], rule: &str) -> Value {
    let mut form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(data.to_vec()).file_name(name.to_owned()))
        .text("on_conflict", rule.to_owned());
    if let Some(f) = folder {
        form = form.text("folder", f.to_owned());
    }
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(token).multipart(form).send().await.unwrap();
    let code = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert!(code == StatusCode::CREATED || code == StatusCode::OK, "upload {name}: {code} {body}");
    body
}

async fn get_ok(app: &TestApp, token: &str, path: &str) -> Value {
    let (code, body) = app.call("GET", path, Some(token)).await;
    assert_eq!(code, StatusCode::OK, "GET {path}: {body}");
    // Links name the installation's address, which differs between the two.
    serde_json::from_str(&body.to_string().replace(&app.base, "<base>")).unwrap()
}

async fn download(app: &TestApp, token: &str, id: &str) -> Vec<u8> {
    let resp = app.http.get(app.url(&format!("/file/download?id={id}"))).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "download {id}");
    resp.bytes().await.unwrap().to_vec()
}

/// What a user sees: both folders' listings, the trash, the shares, a
/// file's versions, and every live file's bytes.
async fn what_they_see(app: &TestApp, token: &str, folder: &str, versioned: &str) -> (Vec<Value>, Vec<Vec<u8>>) {
    let mut seen = Vec::new();
    for path in [
        "/folder/list?limit=100&sort=name".to_owned(),
        format!("/folder/list?limit=100&sort=name&id={folder}"),
        "/trash/list".to_owned(),
        "/share/list".to_owned(),
        format!("/file/versions?id={versioned}"),
    ] {
        seen.push(get_ok(app, token, &path).await);
    }
    let mut bytes = Vec::new();
    for listing in &seen[..2] {
        for item in listing["entries"].as_array().expect("entries") {
            if item["kind"] == "file" {
                bytes.push(download(app, token, item["id"].as_str().unwrap()).await);
            }
        }
    }
    (seen, bytes)
}

/// Fills an installation: two users, a folder, content both of them hold
/// (one stored copy), a replaced file (a version), a trashed file and a
/// share link; waits until every content has its backup copy. Returns
/// alice's token, her folder's id and her versioned file's id.
async fn fill(app: &TestApp, alice: &str, bob: &str) -> (String, String, String) {
    let a = app.user(alice).await;
    let b = app.user(bob).await;
    let (code, folder) = app.post_json("/folder/create", Some(&a), &json!({"name": "docs"})).await;
    assert_eq!(code, StatusCode::CREATED, "{folder}");
    let folder = folder["id"].as_str().unwrap().to_owned();
    let shared = test_bytes(300_000, 71);
    let chunked = app.upload(&a, "big.bin", &test_bytes(700_000, 72)).await;
    assert_eq!(chunked["state"], "done", "{chunked}");
    put(app, &a, Some(&folder), "shared.bin", &shared, "rename").await;
    put(app, &b, None, "mine-too.bin", &shared, "rename").await;
    let first = put(app, &a, None, "notes.txt", b"first draft", "rename").await;
    put(app, &a, None, "notes.txt", b"second draft, longer", "replace").await;
    let gone = put(app, &a, None, "old.bin", &test_bytes(5_000, 73), "rename").await;
    let (code, body) = app.call("DELETE", &format!("/file/delete?id={}", gone["id"].as_str().unwrap()), Some(&a)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let (code, share) = app.post_json("/share/create", Some(&a), &json!({"id": first["id"]})).await;
    assert_eq!(code, StatusCode::CREATED, "{share}");
    eventually(60, "every content backed up", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state <> 'done'").await == 0).then_some(())
    })
    .await;
    (a, folder, first["id"].as_str().unwrap().to_owned())
}

/// Backs `from` up, restores a new installation of `to` from the same
/// backup store, and checks it is the same installation.
async fn drill(from: TestAppBuilder, to: TestAppBuilder) {
    // The backup taken here is the only one: no scheduled one beside it.
    let old = from.env("PAN_METADATA_BACKUP_SECS", "0").spawn().await;
    let (alice, bob) = (uname("alice"), uname("bob"));
    let (token, folder, versioned) = fill(&old, &alice, &bob).await;
    let before = what_they_see(&old, &token, &folder, &versioned).await;
    let count = |i: usize, key: &str| before.0[i][key].as_array().map(Vec::len);
    assert_eq!(
        (before.1.len(), count(2, "entries"), count(3, "shares"), count(4, "versions")),
        (3, Some(1), Some(1), Some(1))
    );

    let (code, out, err) = old.admin(&["backup"], "");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("backed up "), "{out}");
    let (code, listed, err) = old.admin(&["backups"], "");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listed.lines().filter(|l| l.starts_with("metadata/")).count(), 1, "{listed}");

    // The new installation: nothing in its database or file store, and no
    // api on it while the restore runs.
    let mut new = to.spawn().await;
    new.terminate_api(30).await;
    let (code, out, err) = new.admin(&["restore"], "");
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("copied from the backup store"), "{out}");
    new.start_api_again().await;

    // Her session was restored with the rest: the same token works.
    assert_eq!(what_they_see(&new, &token, &folder, &versioned).await, before);
    let b = new.signin(&bob, "correct horse").await;
    let mine = get_ok(&new, &b, "/folder/list?limit=100").await;
    assert_eq!(mine["entries"].as_array().map(Vec::len), Some(1), "{mine}");
    new.assert_consistent().await;
    // And it keeps working: a new upload dedups against restored content.
    let again = put(&new, &b, None, "again.bin", &test_bytes(300_000, 71), "rename").await;
    assert!(download(&new, &b, again["id"].as_str().unwrap()).await == test_bytes(300_000, 71));
    new.assert_consistent().await;
}

/// A backup store on each deployment: a directory on the embedded one, a
/// Garage bucket on the fleet.
async fn drill_body(d: Deployment) {
    match d {
        Deployment::Embedded => {
            let store = tempfile::tempdir().unwrap();
            let url = format!("file://{}", store.path().display());
            drill(TestApp::builder(d).env("PAN_BACKUP_URL", &url), TestApp::builder(d).env("PAN_BACKUP_URL", &url))
                .await;
        }
        Deployment::Fleet => {
            let g = GarageServer::start().await;
            let url = "s3://pan-test/backup";
            drill(
                TestApp::builder(d).s3(&g).env("PAN_BACKUP_URL", url),
                TestApp::builder(d).s3(&g).env("PAN_BACKUP_URL", url),
            )
            .await;
        }
    }
}

on_both!(
    /// A restore drill: an installation with two users, folders, shared
    /// content, a version, the trash and a share link is backed up (`api
    /// admin backup`) and a new, empty installation restored from the same
    /// backup store (`api admin restore`): every listing, version, trash
    /// item and share is the same, every file downloads byte-exact, the old
    /// sessions still sign in, the audit is clean, and uploads go on.
    a_new_installation_restored_from_the_backups_is_the_same, drill_body);

/// The embedded deployment's backup restores into the fleet: one format for
/// both systems, so a restore is also the way from one to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_backup_restores_into_the_fleet() {
    let store = tempfile::tempdir().unwrap();
    let url = format!("file://{}", store.path().display());
    drill(
        TestApp::builder(Deployment::Embedded).env("PAN_BACKUP_URL", &url),
        TestApp::builder(Deployment::Fleet).env("PAN_BACKUP_URL", &url),
    )
    .await;
}

both!(
    /// A restore goes only into an empty installation, and only from a whole
    /// backup: into a database with users it is refused; a backup cut off
    /// (its end line missing) is refused with nothing loaded; without a
    /// backup store it says which setting is missing.
    a_restore_refuses_a_database_in_use_and_a_cut_off_backup,
    // Only the backup taken here: no scheduled one beside it.
    |b: TestAppBuilder| b.env_in_data("PAN_BACKUP_URL", "file://{data}/backup").env("PAN_METADATA_BACKUP_SECS", "0"),
    |app| {
        let token = app.user(&uname("occupant")).await;
        put(&app, &token, None, "a.txt", b"hello", "rename").await;
        let (code, out, err) = app.admin(&["backup"], "");
        assert_eq!(code, Some(0), "{out}{err}");
        let (code, out, err) = app.admin(&["restore"], "");
        assert_eq!(code, Some(1), "{out}");
        assert!(err.contains("already holds users or files"), "{err}");

        // Cut the backup off before its end line, and restore it elsewhere.
        let dir = app.data.path().join("backup/metadata");
        let path = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let cut: String = text.lines().filter(|l| !l.starts_with("{\"end\"")).map(|l| format!("{l}\n")).collect();
        std::fs::write(&path, cut).unwrap();
        let url = format!("file://{}", app.data.path().join("backup").display());
        let mut empty = TestApp::builder(app.deployment).env("PAN_BACKUP_URL", &url).spawn().await;
        empty.terminate_api(30).await;
        let (code, out, err) = empty.admin(&["restore"], "");
        assert_eq!(code, Some(1), "{out}");
        assert!(err.contains("cut off"), "{err}");
        empty.start_api_again().await;
        assert_eq!(empty.sql_count("SELECT COUNT(*) FROM users").await, 0, "nothing was loaded");

        empty.set_env("PAN_BACKUP_URL", None);
        let (code, _, err) = empty.admin(&["restore"], "");
        assert_eq!(code, Some(1));
        assert!(err.contains("PAN_BACKUP_URL is not set"), "{err}");
    }
);

both!(
    /// The clean-up takes a metadata backup when one is due (one process of
    /// the fleet at a time claims it) and keeps only the newest
    /// `PAN_METADATA_BACKUPS_KEPT`.
    the_clean_up_takes_metadata_backups_on_schedule_and_keeps_the_newest,
    |b: TestAppBuilder| b
        .env_in_data("PAN_BACKUP_URL", "file://{data}/backup")
        .env("PAN_SWEEP_SCHEDULE", "* * * * * *")
        .env("PAN_METADATA_BACKUP_SECS", "1")
        .env("PAN_METADATA_BACKUPS_KEPT", "2"),
    |app| {
        app.user(&uname("sched")).await;
        let dir = app.data.path().join("backup/metadata");
        let names = || -> Vec<String> {
            std::fs::read_dir(&dir)
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
                .unwrap_or_default()
        };
        // Three backups taken means one was pruned: the names move on while
        // never more than two stay.
        let first = eventually(30, "a scheduled metadata backup", || async {
            let mut n = names();
            n.sort();
            n.first().cloned()
        })
        .await;
        eventually(30, "the first backup pruned by later ones", || async {
            let n = names();
            assert!(n.len() <= 2, "kept {n:?}");
            (n.len() == 2 && !n.contains(&first)).then_some(())
        })
        .await;
    }
);

both!(
    /// A restore that cannot bring every file back stays unfinished: it
    /// says which, no api or worker starts on the database (exit 2, saying
    /// why), and running it again once the copy is back loads nothing twice,
    /// brings the rest back and lets the api start.
    an_unfinished_restore_keeps_the_installation_down_until_run_again,
    |b: TestAppBuilder| b.env_in_data("PAN_BACKUP_URL", "file://{data}/backup").env("PAN_METADATA_BACKUP_SECS", "0"),
    |app| {
        let token = app.user(&uname("half")).await;
        let (one, two) = (test_bytes(20_000, 81), test_bytes(30_000, 82));
        put(&app, &token, None, "one.bin", &one, "rename").await;
        let second = put(&app, &token, None, "two.bin", &two, "rename").await;
        eventually(30, "both files backed up", || async {
            (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state = 'done'").await == 2).then_some(())
        })
        .await;
        let (code, out, err) = app.admin(&["backup"], "");
        assert_eq!(code, Some(0), "{out}{err}");
        // One file's backup copy goes away for a while.
        let backup = app.data.path().join("backup");
        let copy = files_under(&backup)
            .into_iter()
            .find(|(k, v)| !k.starts_with("metadata/") && *v == two)
            .map(|(k, _)| backup.join(k))
            .expect("the second file's backup copy");
        let aside = app.data.path().join("aside");
        std::fs::rename(&copy, &aside).unwrap();

        let url = format!("file://{}", backup.display());
        let mut new = TestApp::builder(app.deployment).env("PAN_BACKUP_URL", &url).spawn().await;
        new.terminate_api(30).await;
        let (code, out, err) = new.admin(&["restore"], "");
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(out.contains("missing: content") && err.contains("unfinished"), "{out}{err}");
        let (code, why) = new.run_api_once(&[], &[("PAN_LISTEN", "127.0.0.1:0")]);
        assert_eq!(code, Some(2), "{why}");
        assert!(why.contains("restore into this database is unfinished"), "{why}");

        std::fs::rename(&aside, &copy).unwrap();
        let (code, out, err) = new.admin(&["restore"], "");
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("restored by an earlier run") && out.contains("1 copied"), "{out}");
        new.start_api_again().await;
        let resp = new
            .http
            .get(new.url(&format!("/file/download?id={}", second["id"].as_str().unwrap())))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.bytes().await.unwrap() == two, "the file brought back by the second run");
        new.assert_consistent().await;
    }
);
