//! The spec is a product: the checked-in file is what the server serves, and
//! every operation is documented well enough for client generators.

use pan_tests::*;

const REGENERATE: &str = "cargo run -q -p pan-api --bin api -- --print-openapi > openapi/openapi.json";

#[test]
fn the_checked_in_spec_is_what_the_server_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        file.trim_end() == api::spec_json().trim_end(),
        "openapi/openapi.json differs from the spec the code serves; regenerate it with:\n    {REGENERATE}"
    );
}

#[test]
fn every_operation_has_an_id_a_summary_security_and_error_responses() {
    let spec: serde_json::Value = serde_json::from_str(&api::spec_json()).unwrap();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{name}: no operationId");
            assert!(op["summary"].is_string(), "{name}: no summary");
            let public = ["/usr/signup", "/usr/signin", "/healthz", "/readyz", "/file/signed"].contains(&path.as_str());
            assert_eq!(op["security"].is_array(), !public, "{name}: security");
            let responses = op["responses"].as_object().unwrap();
            if path != "/healthz" && path != "/metrics" {
                assert!(
                    responses.keys().any(|k| k.starts_with('4') || k.starts_with('5')),
                    "{name}: no error responses"
                );
            }
        }
    }
}

both!(
    the_served_spec_equals_the_code_and_docs_are_up,
    |b: TestAppBuilder| b.env("PAN_METRICS_TOKEN", "scrape-me"),
    |app| {
        let served = app.http.get(app.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
        assert_eq!(served.trim_end(), api::spec_json().trim_end());
        let docs = app.http.get(app.url("/docs")).send().await.unwrap();
        assert_eq!(docs.status(), StatusCode::OK);
        assert!(docs.text().await.unwrap().contains("swagger"), "/docs serves Swagger UI");
        let (code, _) = app.call("GET", "/healthz", None).await;
        assert_eq!(code, StatusCode::OK);
        let (code, body) = app.call("GET", "/readyz", None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let token = app.user(&uname("m")).await;
        app.upload(&token, "m.bin", b"metrics").await;
        // Metrics tell how many users and bytes there are: only with the token.
        let (code, body) = app.call("GET", "/metrics", None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
        let (code, body) = app.call("GET", "/metrics", Some("guess")).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["code"], "UNAUTHENTICATED");
        let resp = app.http.get(app.url("/metrics")).bearer_auth("scrape-me").send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let metrics = resp.text().await.unwrap();
        for line in ["pan_users 1", "pan_stored_files 1", "pan_stored_bytes 7", "pan_up 1"] {
            assert!(metrics.lines().any(|l| l == line), "/metrics lacks {line:?}:\n{metrics}");
        }
        assert!(metrics.contains("# TYPE pan_chunks_received_total counter"));
    }
);
