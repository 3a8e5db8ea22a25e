//! A fleet under faults: the database unreachable for a while. Requests
//! that need it answer 503 `BACKEND_UNAVAILABLE` with `Retry-After`, within
//! seconds (never a 500, a hang or a dropped connection), and everything
//! works again once it is back, with nothing lost.

use std::time::{Duration, Instant};

use pan_tests::*;

/// While the database connection is cut, requests answer 503
/// `BACKEND_UNAVAILABLE` (never 500); once it is back, the api and worker
/// recover and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_answers_503_and_recovers_with_nothing_lost() {
    // MariaDB behind a proxy the test can cut.
    let url = url::Url::parse(&mysql_url()).expect("the MariaDB URL");
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(3306));
    let proxy = CuttableProxy::start(target.parse().expect("a loopback address")).await;
    let db = format!("pan_test_cut_{}", hex::encode(rand::random::<[u8; 4]>()));
    create_mysql_db(&db).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.addr.port())).unwrap();
    proxied.set_path(&db);
    let mut app = TestApp::builder(Deployment::Fleet)
        .env("DATABASE_URL", proxied.as_str())
        .env("PAN_CHUNK_SIZE", "4096")
        .workers(2)
        .spawn()
        .await;
    app.spawn_worker();
    let token = app.user(&uname("cut")).await;
    let before = test_bytes(20_000, 61);
    assert_eq!(app.upload(&token, "before.bin", &before).await["state"], "done");

    proxy.cut();
    let started = Instant::now();
    let (code, body) = app.call("GET", "/file/query", Some(&token)).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "BACKEND_UNAVAILABLE", "{body}");
    assert!(body["retry_after"].as_u64().is_some_and(|s| s > 0), "{body}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered within seconds: {:?}", started.elapsed());
    let (code, body) =
        app.post_json("/usr/signin", None, &serde_json::json!({"username": "x", "password": "y y y y"})).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "signin without a database: {body}");

    proxy.restore();
    eventually(30, "the database back", || async {
        let (code, _) = app.call("GET", "/file/query", Some(&token)).await;
        (code == StatusCode::OK).then_some(())
    })
    .await;
    let after = test_bytes(30_000, 62);
    assert_eq!(app.upload(&token, "after.bin", &after).await["state"], "done", "uploads work again");
    for data in [&before, &after] {
        let (code, _, bytes) = app.download(&token, &sha1_hex(data), None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(bytes == *data, "nothing lost");
    }
    app.assert_consistent().await;
}
