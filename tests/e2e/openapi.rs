//! The spec is a product: the checked-in file is what the server serves, and
//! every operation is documented well enough for client generators.

use pan_tests::*;

const REGENERATE: &str = "cargo run -q -p pan-api --bin api -- --print-openapi > openapi/openapi.json";

/// `openapi/openapi.json` is exactly the spec the code serves.
#[test]
fn the_checked_in_spec_is_what_the_server_serves() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let file = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        file.trim_end() == api::spec_json().trim_end(),
        "openapi/openapi.json differs from the spec the code serves; regenerate it with:\n    {REGENERATE}"
    );
}

/// Every operation has what client generators need: an id, a summary,
/// security unless public, and its error responses.
#[test]
fn every_operation_has_an_id_a_summary_security_and_error_responses() {
    let spec: serde_json::Value = serde_json::from_str(&api::spec_json()).unwrap();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let name = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{name}: no operationId");
            assert!(op["summary"].is_string(), "{name}: no summary");
            // Share links are opened by anyone holding one: the link (and its
            // access token) is the credential, like a signed URL's signature.
            let public = ["/usr/signup", "/usr/signin", "/healthz", "/readyz", "/file/signed"].contains(&path.as_str())
                || path.starts_with("/public/");
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
    /// The spec the api serves at `/openapi.json` is the code's (and so the
    /// checked-in file's); `/docs`, health and readiness answer, and
    /// `/metrics` answers only with its token.
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

/// The one registry of error codes (`shared::ErrorCode`; every error body
/// is made from it, so no other code can be answered) is what the spec
/// lists: its description's table says each code's status and meaning, and
/// its `ErrorCode` schema enumerates them for generated clients. A failed
/// merge's reason codes (status answers 200 with them) are documented too.
#[test]
fn the_spec_lists_every_error_code_of_the_registry() {
    let spec: serde_json::Value = serde_json::from_str(&api::spec_json()).unwrap();
    let description = spec["info"]["description"].as_str().unwrap();
    assert!(description.contains(&shared::ErrorCode::markdown_table()), "the spec's table is not the registry's");
    let listed: Vec<&str> = spec["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let registry: Vec<&str> = shared::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, registry);
    let spec_text = api::spec_json();
    for code in shared::domain::FailureCode::ALL.map(|c| c.as_str()) {
        assert!(spec_text.contains(&format!("`{code}`")), "the spec does not document the failure code {code}");
    }
}

/// The README's table of error codes is the registry's, word for word.
#[test]
fn the_readme_lists_every_error_code_of_the_registry() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let table = shared::ErrorCode::markdown_table();
    assert!(
        readme.contains(&table),
        "README.md's error-code table differs from shared::ErrorCode; print it with:\n    \
         cargo run -q -p pan-api --bin api -- --print-error-codes"
    );
}

/// Every optional field of a JSON request body is marked `nullable` in the
/// spec: the server reads `null` there as "absent", and a fuzzer reading
/// the spec must not be told that `null` is refused.
#[test]
fn optional_request_fields_are_nullable_as_the_server_reads_them() {
    let spec: serde_json::Value = serde_json::from_str(&api::spec_json()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let mut bodies = Vec::new();
    for ops in spec["paths"].as_object().unwrap().values() {
        for op in ops.as_object().unwrap().values() {
            let schema = &op["requestBody"]["content"]["application/json; charset=utf-8"]["schema"]["$ref"];
            if let Some(name) = schema.as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
                bodies.push(name.to_owned());
            }
        }
    }
    assert!(bodies.iter().any(|b| b == "CreateFolderRequest"), "{bodies:?}");
    for name in bodies {
        let schema = &schemas[&name];
        let required: Vec<&str> =
            schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
        for (field, prop) in schema["properties"].as_object().unwrap() {
            // An enum (`on_conflict`) is a `$ref`: `nullable` beside it needs an
            // `allOf`, which openapi-python-client cannot read; null stays
            // accepted there as absent (README: the fuzzer's findings left).
            if !required.contains(&field.as_str()) && prop.get("$ref").is_none() {
                assert_eq!(prop["nullable"], true, "{name}.{field}: optional but not nullable");
            }
        }
    }
}
