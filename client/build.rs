//! Generates the client from `openapi/openapi.json` at build time, so a spec
//! that client generators cannot use breaks the build.
//!
//! One operation is left out of the copy the generator reads: `POST
//! /file/upload` takes `multipart/form-data`, which progenitor 0.15 refuses
//! (the whole document fails with "unexpected content type"). The route stays
//! in the spec for curl and browsers; this crate covers it by hand
//! (`single_upload` in `lib.rs`).
//!
//! Nor does it read the bodiless 414 some operations document (hyper's
//! answer to a request line over 65,534 bytes): progenitor wants one type
//! for every error answer, and that one has no `{code, message}`. This
//! client meets it as an unexpected status.

use std::path::PathBuf;

fn main() {
    let spec_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let text = std::fs::read_to_string(&spec_path).expect("openapi/openapi.json");
    let mut spec: serde_json::Value = serde_json::from_str(&text).expect("the spec is JSON");
    let paths = spec["paths"].as_object_mut().expect("the spec has paths");
    if let Some(ops) = paths.get_mut("/file/upload").and_then(|p| p.as_object_mut()) {
        ops.remove("post");
        if ops.is_empty() {
            paths.remove("/file/upload");
        }
    }
    for ops in paths.values_mut().filter_map(|p| p.as_object_mut()) {
        for op in ops.values_mut() {
            if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) {
                responses.remove("414");
            }
        }
    }
    let spec: openapiv3::OpenAPI = serde_json::from_value(spec).expect("the spec is OpenAPI 3");
    let mut settings = progenitor_impl::GenerationSettings::default();
    settings.with_interface(progenitor_impl::InterfaceStyle::Builder).with_tag(progenitor_impl::TagStyle::Merged);
    let mut generator = progenitor_impl::Generator::new(&settings);
    let tokens = generator.generate_tokens(&spec).unwrap_or_else(|e| panic!("progenitor cannot use the spec: {e}"));
    let file: syn::File = syn::parse2(tokens).expect("generated code parses");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("codegen.rs");
    std::fs::write(out, prettyplease::unparse(&file)).expect("writing the generated client");
}
