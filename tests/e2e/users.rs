//! The user module: signup, signin, tokens, profile.

use pan_tests::*;
use serde_json::json;

both!(signup_signin_and_info_work, |app| {
    let name = uname("alice");
    let (code, body) = app.post_json("/usr/signup", None, &json!({"username": name, "password": "s3cret pass"})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], name.as_str());
    let (code, body) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "s3cret pass"})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_at"].as_i64().unwrap() > body["expires_at"].as_i64().unwrap() - 1);
    let token = body["token"].as_str().unwrap();
    let (code, info) = app.call("GET", "/usr/info", Some(token)).await;
    assert_eq!(code, StatusCode::OK, "{info}");
    assert_eq!(info["username"], name.as_str());
    assert_eq!(info["file_count"], 0);
    assert_eq!(info["bytes_used"], 0);
});

both!(a_taken_username_gets_409, |app| {
    let name = uname("dup");
    app.user(&name).await;
    let (code, body) = app.post_json("/usr/signup", None, &json!({"username": name, "password": "another one"})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(body["code"], "USERNAME_TAKEN");
});

both!(wrong_password_and_unknown_user_get_the_same_401, |app| {
    let name = uname("carol");
    app.user(&name).await;
    let (c1, wrong) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "not the one"})).await;
    let (c2, unknown) =
        app.post_json("/usr/signin", None, &json!({"username": uname("ghost"), "password": "not the one"})).await;
    assert_eq!(c1, StatusCode::UNAUTHORIZED);
    assert_eq!(c2, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown, "the two failures must be indistinguishable");
    // Credentials that break the signup rules are just as wrong, not malformed.
    for (username, password) in
        [(name.as_str(), "short"), ("not a valid name!", "long enough pw"), ("", ""), (&name, "a\u{0}b c d e f")]
    {
        let (code, body) =
            app.post_json("/usr/signin", None, &json!({"username": username, "password": password})).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{username:?}/{password:?}: {body}");
        assert_eq!(body, wrong, "{username:?}/{password:?}");
    }
});

both!(missing_garbage_and_revoked_tokens_get_401_json, |app| {
    let (code, body) = app.call("GET", "/usr/info", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "UNAUTHENTICATED");
    for garbage in ["x", "' OR 1=1 --", &"f".repeat(64), &"0".repeat(5000)] {
        let (code, body) = app.call("GET", "/usr/info", Some(garbage)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{garbage}: {body}");
        assert!(body["message"].is_string());
    }
    let token = app.user(&uname("dave")).await;
    let (code, _) = app.call("POST", "/usr/signout", Some(&token)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = app.call("GET", "/usr/info", Some(&token)).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a signed-out token must stop working");
});

both!(expired_tokens_get_401, |b: TestAppBuilder| b.env("PAN_TOKEN_TTL", "1"), |app| {
    let token = app.user(&uname("erin")).await;
    // The token lives one second; poll until the server says it expired.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (code, body) = app.call("GET", "/usr/info", Some(&token)).await;
        if code == StatusCode::UNAUTHORIZED {
            assert_eq!(body["code"], "UNAUTHENTICATED");
            break;
        }
        assert_eq!(code, StatusCode::OK);
        assert!(std::time::Instant::now() < deadline, "token still valid 10 s after a 1 s TTL");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
});

both!(injection_looking_strings_are_stored_literally, |app| {
    // Usernames are restricted; passwords and file names are free text.
    let name = uname("mallory");
    let password = "pw' OR '1'='1'; DROP TABLE users; --";
    let (code, _) = app.post_json("/usr/signup", None, &json!({"username": name, "password": password})).await;
    assert_eq!(code, StatusCode::CREATED);
    let token = app.signin(&name, password).await;
    let (code, _) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "pw' OR '1'='1"})).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let filename = "x'); DELETE FROM user_files; -- ../../etc/passwd";
    let data = b"literal".to_vec();
    let done = app.upload(&token, filename, &data).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
    assert_eq!(list["files"][0]["filename"], filename);
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM users").await, 1);
});
