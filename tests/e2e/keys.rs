//! Signing keys: per purpose, named by every artefact, rotated on demand
//! and on time, kept until what they signed can have expired; and the
//! security headers of Swagger UI.

use pan_tests::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The value of query parameter `name` in `url`.
fn param(url: &str, name: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// `url` with query parameter `name` set to `value` (added if absent).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name { value.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    let mut q = u.query_pairs_mut();
    q.clear();
    for (k, v) in &pairs {
        q.append_pair(k, v);
    }
    if !pairs.iter().any(|(k, _)| k == name) {
        q.append_pair(name, value);
    }
    drop(q);
    u.to_string()
}

/// A signed URL for the file `id`, made by the api.
async fn signed_url(app: &TestApp, token: &str, id: &str) -> String {
    let (code, body) = app.call("POST", &format!("/file/downloadurl?id={id}"), Some(token)).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let url = body["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&app.base), "signed by the api: {url}");
    url
}

/// The status and error code of a GET without a token.
async fn get(url: &str) -> (StatusCode, Option<String>) {
    let resp = reqwest::get(url).await.unwrap();
    let code = resp.status();
    let body: Value = if code.is_success() { Value::Null } else { resp.json().await.unwrap_or(Value::Null) };
    (code, body["code"].as_str().map(str::to_owned))
}

/// An access token for a password link.
async fn unlock(app: &TestApp, link: &str) -> String {
    let (code, ok) =
        app.post_json(&format!("/public/share/unlock?link={link}"), None, &json!({"password": "open sesame"})).await;
    assert_eq!(code, StatusCode::OK, "{ok}");
    ok["access"].as_str().unwrap().to_owned()
}

/// What `/public/share/info` answers with this access token: the status and
/// the error code.
async fn share_info(app: &TestApp, link: &str, access: &str) -> (StatusCode, Option<String>) {
    let (code, body) = app.call("GET", &format!("/public/share/info?link={link}&access={access}"), None).await;
    (code, body["code"].as_str().map(str::to_owned))
}

fn kid_of_token(access: &str) -> &str {
    let parts: Vec<&str> = access.split('.').collect();
    assert_eq!(parts.len(), 3, "kid.expiry.signature: {access}");
    parts[0]
}

both!(
    /// A signed URL and a share access token made before `api admin
    /// rotate-keys` still work after it; new ones name the new key (once
    /// the api re-reads its keys); a tampered or unknown key id is refused
    /// like a bad signature; and once the replaced keys are past the longest
    /// lifetime they could have signed (time moved on in the keys table),
    /// what they signed is refused while what the newer keys signed works.
    signed_urls_and_share_tokens_outlive_a_rotation_until_their_key_is_retired,
    |app| {
        let token = app.user(&uname("keys")).await;
        let data = test_bytes(3000, 81);
        let done = app.upload(&token, "k.bin", &data).await;
        let id = done["file"]["id"].as_str().unwrap().to_owned();
        let old_url = signed_url(&app, &token, &id).await;
        let old_kid = param(&old_url, "kid");
        assert!(!old_kid.is_empty(), "the URL names its key: {old_url}");
        let (code, s) =
            app.post_json("/share/create", Some(&token), &json!({"id": id, "password": "open sesame"})).await;
        assert_eq!(code, StatusCode::CREATED, "{s}");
        let link = s["link"].as_str().unwrap().to_owned();
        let old_access = unlock(&app, &link).await;
        let old_share_kid = kid_of_token(&old_access).to_owned();

        let (code, out, err) = app.admin(&["rotate-keys"], "");
        assert_eq!(code, Some(0), "{out}{err}");
        assert!(out.contains("url: key") && out.contains("share: key"), "{out}");

        assert_eq!(get(&old_url).await, (StatusCode::OK, None), "a URL signed before the rotation still works");
        assert_eq!(share_info(&app, &link, &old_access).await.0, StatusCode::OK, "so does an access token");
        let new_url = eventually(30, "the api to sign URLs with the new key", || async {
            let url = signed_url(&app, &token, &id).await;
            (param(&url, "kid") != old_kid).then_some(url)
        })
        .await;
        let new_access = eventually(30, "the api to sign access tokens with the new key", || async {
            let access = unlock(&app, &link).await;
            (kid_of_token(&access) != old_share_kid).then_some(access)
        })
        .await;
        assert_eq!(get(&new_url).await, (StatusCode::OK, None));

        // Another key's id, an unknown one, or none (the pre-upgrade key, not
        // in this installation) verify nothing: the same answer as a bad
        // signature.
        let new_kid = param(&new_url, "kid");
        let bad_sig = with_param(&old_url, "sig", &"0".repeat(64));
        for tampered in [
            with_param(&old_url, "kid", &new_kid),
            with_param(&old_url, "kid", "ffffffffffff"),
            with_param(&old_url, "kid", "0"),
            with_param(&old_url, "kid", ""),
            bad_sig,
        ] {
            assert_eq!(get(&tampered).await, (StatusCode::FORBIDDEN, Some("URL_INVALID".into())), "{tampered}");
        }
        let new_share_kid = kid_of_token(&new_access);
        let rest = old_access.split_once('.').unwrap().1;
        for forged in [format!("{new_share_kid}.{rest}"), format!("ffffffffffff.{rest}"), rest.to_owned()] {
            assert_eq!(
                share_info(&app, &link, &forged).await,
                (StatusCode::UNAUTHORIZED, Some("SHARE_PASSWORD_REQUIRED".into())),
                "{forged}"
            );
        }

        // Forty days pass: the keys the rotation replaced are past 7 days
        // (URLs) and 1 hour (tokens) since; the ones that replaced them are
        // past PAN_KEY_DAYS, so a fresh key replaces them in turn.
        app.sql_exec("UPDATE signing_keys SET created_at = created_at - 3456000").await;
        eventually(30, "the replaced URL key to be retired", || async {
            (get(&old_url).await == (StatusCode::FORBIDDEN, Some("URL_INVALID".into()))).then_some(())
        })
        .await;
        assert_eq!(
            share_info(&app, &link, &old_access).await,
            (StatusCode::UNAUTHORIZED, Some("SHARE_PASSWORD_REQUIRED".into()))
        );
        assert_eq!(get(&new_url).await, (StatusCode::OK, None), "the newer key verifies until its own time is up");
        assert_eq!(share_info(&app, &link, &new_access).await.0, StatusCode::OK);
        let newest = signed_url(&app, &token, &id).await;
        assert_ne!(param(&newest, "kid"), new_kid, "the key older than PAN_KEY_DAYS was replaced");
        assert_eq!(get(&newest).await, (StatusCode::OK, None));
    }
);

both!(
    /// A URL signed before keys had ids (no `kid`, signed with the old
    /// single key, which the upgrade made key `0`) keeps working until that
    /// key is retired like any other.
    a_url_made_before_the_upgrade_works_until_the_old_key_is_retired,
    |app| {
        let token = app.user(&uname("legacy")).await;
        let done = app.upload(&token, "l.bin", &test_bytes(2000, 82)).await;
        let id = done["file"]["id"].as_str().unwrap().to_owned();
        let url = signed_url(&app, &token, &id).await;
        // The old key, as migration 0019 copies it from `secrets`.
        app.sql_exec(
            "INSERT INTO signing_keys (purpose, kid, secret, created_at) VALUES \
             ('url', '0', '6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b', 0)",
        )
        .await;
        let (uid, expires) = (param(&url, "uid").parse().unwrap(), param(&url, "expires").parse().unwrap());
        let sig = shared::files::links::sign(&[0x6b; 32], &id, uid, expires);
        let legacy = format!("{}/file/signed?id={id}&uid={uid}&expires={expires}&sig={sig}", app.base);
        assert_eq!(get(&legacy).await, (StatusCode::OK, None), "{legacy}");
        // Key 0 made "at 0" is replaced by the current key; once that is
        // more than 7 days ago, key 0 is gone.
        app.sql_exec("UPDATE signing_keys SET created_at = created_at - 700000 WHERE kid <> '0'").await;
        eventually(30, "the old key to be retired", || async {
            (get(&legacy).await == (StatusCode::FORBIDDEN, Some("URL_INVALID".into()))).then_some(())
        })
        .await;
    }
);

both!(
    /// Swagger UI at `/docs` runs only its own inline scripts (the policy
    /// lists each one's SHA-256) and may not be framed.
    the_docs_page_has_a_content_security_policy_that_forbids_framing,
    |app| {
        use base64::Engine;
        use sha2::Digest;
        let resp = app.http.get(app.url("/docs")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert_eq!(resp.headers()["x-frame-options"], "DENY");
        let html = resp.text().await.unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("script-src 'unsafe-inline'") && !csp.contains("unsafe-eval"), "{csp}");
        // Each script runs from its tag to the first `</script>`, as a
        // browser reads it (the bundle mentions `<script` inside).
        let (mut scripts, mut rest) = (0, html.as_str());
        while let Some(open) = rest.find("<script") {
            let start = open + rest[open..].find('>').unwrap() + 1;
            let end = start + rest[start..].find("</script>").unwrap();
            let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&rest[start..end]));
            assert!(csp.contains(&format!("'sha256-{hash}'")), "script {scripts} is not allowed by {csp}");
            scripts += 1;
            rest = &rest[end..];
        }
        assert_eq!(scripts, 2, "Swagger UI's bundle and its start-up");
    }
);
