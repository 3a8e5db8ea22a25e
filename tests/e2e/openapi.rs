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

/// The registry of error codes (listed in the spec's description) holds
/// every code the source answers with, and nothing it never uses.
#[test]
fn every_error_code_in_the_source_is_in_the_registry_and_the_spec() {
    use std::collections::BTreeSet;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    let mut stack = vec![root.join("api/src"), root.join("shared/src"), root.join("worker/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    // The registry's own definition does not count as a use.
    let start = sources.find("pub const ERROR_CODES").expect("the registry");
    let end = start + sources[start..].find("\n];").expect("the registry's end");
    sources.replace_range(start..end, "");
    let registry: BTreeSet<String> = api::error::ERROR_CODES.iter().map(|(c, _, _)| (*c).to_owned()).collect();
    // Every UPPER_SNAKE literal (with an underscore; one-word codes are in the
    // registry's check below) but settings' names and the start-up-only
    // INVALID_SETTING (it never reaches a client: the process exits 2).
    let mut used = BTreeSet::new();
    let bytes = sources.as_bytes();
    for (i, _) in sources.match_indices('"') {
        let word: String = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_uppercase() || **b == b'_' || b.is_ascii_digit())
            .map(|b| *b as char)
            .collect();
        if word.is_empty() || bytes.get(i + 1 + word.len()) != Some(&b'"') {
            continue;
        }
        let snake = word.contains('_') && word.as_bytes()[0].is_ascii_uppercase();
        let setting = word.starts_with("PAN_")
            || word.starts_with("AWS_")
            || word.starts_with("CARGO_")
            || ["DATABASE_URL", "REDIS_URL", "INVALID_SETTING"].contains(&word.as_str());
        if (snake && !setting) || registry.contains(&word) {
            used.insert(word);
        }
    }
    // A failed merge's reason codes are not error codes (status answers 200
    // with them); the status schema documents each one instead.
    let spec_text = api::spec_json();
    for code in shared::domain::FailureCode::ALL.map(|c| c.as_str()) {
        assert!(spec_text.contains(&format!("`{code}`")), "the spec does not document the failure code {code}");
        if !registry.contains(code) {
            used.remove(code);
        }
    }
    let missing: Vec<_> = used.difference(&registry).collect();
    assert!(missing.is_empty(), "codes used but not in api::error::ERROR_CODES: {missing:?}");
    let unused: Vec<_> = registry.difference(&used).collect();
    assert!(unused.is_empty(), "codes in the registry the source never uses: {unused:?}");
    let spec: serde_json::Value = serde_json::from_str(&api::spec_json()).unwrap();
    let description = spec["info"]["description"].as_str().unwrap();
    for code in &registry {
        assert!(description.contains(&format!("`{code}`")), "the spec does not list {code}");
    }
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
