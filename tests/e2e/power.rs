//! A power cut, simulated: pan's data directory lives on an ext4 file
//! system on a loop device whose writeback is held back for an hour (and
//! whose journal commits only when asked), so what pan did not sync exists
//! only in the page cache. Right after pan's 2xx answers, pan is SIGKILLed
//! and the loop device's backing file is copied: the copy holds exactly
//! what reached the "disk". pan starts on the mounted copy (the journal
//! replays) and every acknowledged thing must be there. A negative control
//! (a file written without a sync) must be gone, or the rig proves nothing.
//!
//! It changes kernel-wide writeback settings (restored on drop), so it is
//! ignored in the main run and run alone by `scripts/test`.

use std::path::{Path, PathBuf};
use std::process::Command;

use pan_tests::*;

/// Runs a command that must succeed; returns its stdout, trimmed.
fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const WRITEBACK: [&str; 2] = ["/proc/sys/vm/dirty_expire_centisecs", "/proc/sys/vm/dirty_writeback_centisecs"];

/// The loop-device rig; everything it changed is undone on drop.
struct Rig {
    root: tempfile::TempDir,
    loops: Vec<String>,
    mounts: Vec<PathBuf>,
    saved: Vec<(&'static str, String)>,
}

impl Rig {
    fn new() -> Rig {
        let root = tempfile::Builder::new().prefix("pan-power").tempdir_in("/var/tmp").expect("temp dir");
        let mut rig = Rig { root, loops: Vec::new(), mounts: Vec::new(), saved: Vec::new() };
        let disk = rig.root.path().join("disk.img");
        sh(&["truncate", "-s", "512M", disk.to_str().unwrap()]);
        sh(&["mkfs.ext4", "-q", "-F", disk.to_str().unwrap()]);
        for knob in WRITEBACK {
            rig.saved.push((knob, std::fs::read_to_string(knob).expect("read a writeback knob").trim().to_owned()));
            std::fs::write(knob, "360000").expect("hold writeback back (needs root)");
        }
        rig.mount(&disk, "before");
        rig
    }

    fn mount(&mut self, image: &Path, name: &str) -> PathBuf {
        let dev = sh(&["losetup", "--find", "--show", image.to_str().unwrap()]);
        self.loops.push(dev.clone());
        let at = self.root.path().join(name);
        std::fs::create_dir_all(&at).unwrap();
        sh(&["mount", "-o", "commit=3600", &dev, at.to_str().unwrap()]);
        self.mounts.push(at.clone());
        at
    }

    /// Where pan's data goes before the cut.
    fn before(&self) -> PathBuf {
        self.root.path().join("before")
    }

    /// The power cut: the disk as it is now (what was synced), mounted.
    fn cut(&mut self) -> PathBuf {
        let copy = self.root.path().join("after.img");
        sh(&["cp", "--sparse=always", self.root.path().join("disk.img").to_str().unwrap(), copy.to_str().unwrap()]);
        self.mount(&copy, "after")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
        for dev in self.loops.iter().rev() {
            let _ = Command::new("losetup").args(["-d", dev]).status();
        }
        for (knob, value) in &self.saved {
            let _ = std::fs::write(knob, value);
        }
    }
}

/// Every write pan acknowledged survives a simulated power cut of its file
/// system (dirty pages dropped), and the audit after the restart is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "changes kernel writeback settings; scripts/test runs it alone"]
async fn every_acknowledged_write_survives_a_power_cut() {
    let mut rig = Rig::new();
    let data_dir = rig.before().join("data");
    let mut app = TestApp::builder(Deployment::Embedded)
        .env("PAN_DATA_DIR", data_dir.to_str().unwrap())
        .env("PAN_CHUNK_SIZE", "65536")
        // The rig's file system is a few hundred MiB: keep none of it back.
        .env("PAN_DISK_RESERVE", "0")
        .spawn()
        .await;
    let token = app.user(&uname("power")).await;
    // A chunked upload merged, a single upload stored, an unfinished
    // upload with two chunks acknowledged, and (below) a streamed one.
    let merged = test_bytes(300_000, 51);
    let done = app.upload(&token, "merged.bin", &merged).await;
    assert_eq!(done["state"], "done", "{done}");
    let single = test_bytes(70_000, 52);
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(single.clone()).file_name("single.bin"));
    let resp = app.http.post(app.url("/file/upload")).bearer_auth(&token).multipart(form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let partial = test_bytes(65536 * 3, 53);
    let (_, init) = app.init(&token, "partial.bin", &partial).await;
    let id = init["uploadID"].as_str().unwrap().to_owned();
    for i in 0..2usize {
        let (code, body) = app.put_chunk(&token, &id, i as u64, partial[i * 65536..(i + 1) * 65536].to_vec()).await;
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    // A server-hashed upload of unknown size, a streamed body acknowledged.
    let streamed = test_bytes(100_000, 54);
    let body = serde_json::json!({"filename": "streamed.bin", "server_hashed": true});
    let (_, init) = app.post_json("/file/mupload/init", Some(&token), &body).await;
    let streamed_id = init["uploadID"].as_str().unwrap().to_owned();
    let (code, body) = app.put_bytes(&token, &streamed_id, 0, streamed[..60_000].to_vec(), true, None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    // The negative control: written, never synced.
    std::fs::write(rig.before().join("control.txt"), b"never synced").unwrap();

    app.kill_api();
    let after = rig.cut();
    let control = std::fs::read(after.join("control.txt")).unwrap_or_default();
    assert!(control.is_empty(), "an unsynced write survived the cut: the rig simulates nothing");

    app.set_env("PAN_DATA_DIR", Some(after.join("data").to_str().unwrap()));
    app.start_api_again().await;
    // The account, its token, both files and the unfinished upload are there.
    let (_, bytes) = download(&app, &token, &merged).await;
    assert!(bytes == merged, "the merged file survived");
    let (_, bytes) = download(&app, &token, &single).await;
    assert!(bytes == single, "the single upload survived");
    let (code, status) = app.status(&token, &id).await;
    assert_eq!(code, StatusCode::OK, "{status}");
    assert_eq!(status["uploaded"], serde_json::json!([0, 1]), "acknowledged chunks survived: {status}");
    let (code, body) = app.put_chunk(&token, &id, 2, partial[2 * 65536..].to_vec()).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    app.complete(&token, &id).await;
    let done = app.wait_merged(&token, &id).await;
    assert_eq!(done["state"], "done", "the unfinished upload finishes on the survived chunks: {done}");
    let (_, bytes) = download(&app, &token, &partial).await;
    assert!(bytes == partial);
    // The streamed upload's acknowledged bytes are there; the rest follows.
    let (_, status) = app.status(&token, &streamed_id).await;
    assert_eq!(status["ranges"], serde_json::json!([{"start": 0, "end": 60_000}]), "{status}");
    let rest = streamed[60_000..].to_vec();
    let (code, body) = app.put_bytes_patiently(&token, &streamed_id, 60_000, rest, true).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let path = format!("/file/mupload/complete?uploadID={streamed_id}&filesize={}", streamed.len());
    let (code, body) = app.call("POST", &path, Some(&token)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(&token, &streamed_id).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, bytes) = download(&app, &token, &streamed).await;
    assert!(bytes == streamed, "the streamed upload finishes on the survived bytes");
    let (code, out, err) = app.admin(&["audit", "--deep"], "");
    assert_eq!(code, Some(0), "the audit after the cut:\n{out}{err}");
    app.kill_api();
    drop(rig);
}

async fn download(app: &TestApp, token: &str, data: &[u8]) -> (StatusCode, Vec<u8>) {
    let (code, _, bytes) = app.download(token, &sha1_hex(data), None).await;
    assert_eq!(code, StatusCode::OK);
    (code, bytes)
}
