//! Clustered object storage: the fleet on a 3-node Garage cluster on
//! loopback (replication factor 3, each node its own zone) as staging, file
//! store and backup target keeps working while one storage node is down,
//! and the audit is clean once it is back.

use pan_tests::*;

/// Sends `data` as a chunked upload, killing `victim` once half the chunks
/// are in when given; returns the upload id once merged.
async fn upload_through(
    app: &TestApp,
    token: &str,
    name: &str,
    data: &[u8],
    mut victim: Option<&mut GarageServer>,
) -> String {
    let (code, init) = app.init(token, name, data).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let size = init["chunksize"].as_u64().unwrap() as usize;
    let count = init["chunkcount"].as_u64().unwrap();
    for i in 0..count {
        if i == count / 2
            && let Some(node) = victim.take()
        {
            node.stop();
        }
        let part = data[i as usize * size..((i as usize + 1) * size).min(data.len())].to_vec();
        let (code, body) = app.put_chunk(token, &id, i, part).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let done = app.wait_merged(token, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    id
}

async fn download(app: &TestApp, token: &str, name: &str, data: &[u8]) {
    let (code, _, body) = app.download(token, &sha1_hex(data), None).await;
    assert_eq!(code, StatusCode::OK, "download {name}");
    assert!(body == data, "{name} downloads byte-exact");
    let (code, _, part) = app.download(token, &sha1_hex(data), Some("bytes=1000-1999")).await;
    assert_eq!(code, StatusCode::PARTIAL_CONTENT);
    assert!(part == data[1000..2000], "{name}: a Range of it");
}

/// With one of three storage nodes killed half-way through an upload,
/// the fleet (its staging, file store and backup all on the cluster) goes
/// on: the upload finishes and is backed up, uploads and downloads (Range
/// too) work while the node is down; when it is back the deep audit is
/// clean. The node killed is not the one pan's endpoint names (an S3
/// client reaches a cluster through one gateway or a load balancer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_keeps_working_with_one_of_three_storage_nodes_down() {
    let mut nodes = GarageServer::start_cluster(3).await;
    let app = TestApp::builder(Deployment::Fleet)
        .s3(&nodes[0])
        .env("PAN_STAGING_URL", "s3://pan-test/staging")
        .env("PAN_STORE_URL", "s3://pan-test/files")
        .env("PAN_BACKUP_URL", "s3://pan-test/backup")
        .env("PAN_CHUNK_SIZE", &(5u64 << 20).to_string())
        .workers(2)
        .spawn()
        .await;
    let token = app.user(&uname("cluster")).await;
    let before = test_bytes(6 << 20, 91);
    upload_through(&app, &token, "before.bin", &before, None).await;

    let during = test_bytes(16 << 20, 92);
    upload_through(&app, &token, "during.bin", &during, Some(&mut nodes[2])).await;
    let after = test_bytes(7 << 20, 93);
    upload_through(&app, &token, "after.bin", &after, None).await;
    for (name, data) in [("before", &before), ("during", &during), ("after", &after)] {
        download(&app, &token, name, data).await;
    }
    eventually(60, "every content backed up with a node down", || async {
        (app.sql_count("SELECT COUNT(*) FROM files WHERE backup_state <> 'done'").await == 0).then_some(())
    })
    .await;

    nodes[2].restart().await;
    for (name, data) in [("before", &before), ("during", &during), ("after", &after)] {
        download(&app, &token, name, data).await;
    }
    app.assert_consistent().await;
}

/// Upload state and the shared limits on a Redis Cluster of three masters
/// (the job queue on a plain Redis, `PAN_QUEUE_URL`): two api processes
/// take one upload's chunks in turns, an init again finds it (resume), it
/// completes and downloads byte-exact, and the audit is clean. Without
/// `PAN_QUEUE_URL` a cluster is a bad setting (exit 2, naming it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_keeps_upload_state_on_a_redis_cluster() {
    let cluster = RedisCluster::start().await;
    let mut app = TestApp::builder(Deployment::Fleet)
        .env("REDIS_URL", &cluster.url())
        .env("PAN_QUEUE_URL", &redis_url())
        .env("PAN_CHUNK_SIZE", "65536")
        .spawn()
        .await;
    let other = app.spawn_another_api().await;
    let token = app.user(&uname("rc")).await;
    let data = test_bytes(300_000, 94);
    let (code, init) = app.init(&token, "c.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "{init}");
    let id = init["uploadID"].as_str().unwrap().to_owned();
    let size = init["chunksize"].as_u64().unwrap() as usize;
    for (i, part) in data.chunks(size).enumerate().take(2) {
        let url = if i % 2 == 0 { app.url("") } else { other.clone() };
        let resp = app
            .http
            .post(format!("{url}/file/mupload/uppart?uploadID={id}&chkidx={i}"))
            .bearer_auth(&token)
            .header("content-type", "application/octet-stream")
            .body(part.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "chunk {i} on {url}");
    }
    let (code, again) = app.init(&token, "c.bin", &data).await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!((again["uploadID"].as_str(), &again["uploaded"]), (Some(id.as_str()), &serde_json::json!([0, 1])));
    for (i, part) in data.chunks(size).enumerate().skip(2) {
        let (code, body) = app.put_chunk(&token, &id, i as u64, part.to_vec()).await;
        assert_eq!(code, StatusCode::OK, "chunk {i}: {body}");
    }
    let (code, body) = app.complete(&token, &id).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert_eq!(app.wait_merged(&token, &id).await["state"], "done");
    let (code, _, bytes) = app.download(&token, &sha1_hex(&data), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(bytes == data, "byte-exact");
    assert!(cluster.keys_per_master().await.iter().sum::<u64>() > 0, "the upload state lived on the cluster");
    app.assert_consistent().await;

    app.set_env("PAN_QUEUE_URL", None);
    let (code, out) = app.run_api_once(&[], &[]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("PAN_QUEUE_URL"), "{out}");
}
