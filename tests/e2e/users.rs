//! The user module: signup, signin, tokens, profile.

use pan_tests::*;
use serde_json::{Value, json};

both!(
    /// Signup (201), signin (a token with its expiry) and `/usr/info` work for a
/// new user.
    signup_signin_and_info_work, |app| {
    let name = uname("alice");
    let (code, body) = app.post_json("/usr/signup", None, &json!({"username": name, "password": "s3cret pass"})).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    assert_eq!(body["username"], name.as_str());
    let (code, body) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "s3cret pass"})).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    // Tokens live PAN_TOKEN_TTL (7 days by default) from now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let lifetime = body["expires_at"].as_i64().unwrap() - now;
    assert!((7 * 86_400 - 60..=7 * 86_400 + 1).contains(&lifetime), "token lifetime {lifetime} s");
    let token = body["token"].as_str().unwrap();
    let (code, info) = app.call("GET", "/usr/info", Some(token)).await;
    assert_eq!(code, StatusCode::OK, "{info}");
    assert_eq!(info["username"], name.as_str());
    assert_eq!(info["file_count"], 0);
    assert_eq!(info["bytes_used"], 0);
});

both!(
    /// A signup with a taken username answers 409 with its code.
    a_taken_username_gets_409, |app| {
    let name = uname("dup");
    app.user(&name).await;
    let (code, body) = app.post_json("/usr/signup", None, &json!({"username": name, "password": "another one"})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(body["code"], "USERNAME_TAKEN");
});

both!(
    /// A wrong password and an unknown user get the same 401 body, so signin does
/// not tell which names exist.
    wrong_password_and_unknown_user_get_the_same_401, |app| {
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

both!(
    /// Missing, garbage and revoked tokens each get a JSON 401
    /// `UNAUTHENTICATED`.
    missing_garbage_and_revoked_tokens_get_401_json, |app| {
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

both!(
    /// A token past `PAN_TOKEN_TTL` gets 401 `UNAUTHENTICATED`.
    expired_tokens_get_401, |b: TestAppBuilder| b.env("PAN_TOKEN_TTL", "1"), |app| {
    let token = app.user(&uname("erin")).await;
    // The token lives one second; poll until the server says it expired.
    let body = eventually(10, "a token with a 1 s TTL to expire", || async {
        let (code, body) = app.call("GET", "/usr/info", Some(&token)).await;
        if code == StatusCode::UNAUTHORIZED {
            return Some(body);
        }
        assert_eq!(code, StatusCode::OK, "{body}");
        None
    })
    .await;
    assert_eq!(body["code"], "UNAUTHENTICATED");
});

both!(
    /// SQL-looking passwords and file names are stored and matched literally:
    /// the right string signs in, a prefix does not, and names come back
    /// unchanged.
    injection_looking_strings_are_stored_literally, |app| {
    // Usernames are restricted; passwords and file names are free text.
    let name = uname("mallory");
    let password = "pw' OR '1'='1'; DROP TABLE users; --";
    let (code, _) = app.post_json("/usr/signup", None, &json!({"username": name, "password": password})).await;
    assert_eq!(code, StatusCode::CREATED);
    let token = app.signin(&name, password).await;
    let (code, _) = app.post_json("/usr/signin", None, &json!({"username": name, "password": "pw' OR '1'='1"})).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    // (`\` is refused in names: a separator to Windows zip extractors.)
    let filename = "x'); DELETE FROM user_files; -- ..%2F..%2Fetc \"quoted\" %s %n";
    let data = b"literal".to_vec();
    let done = app.upload(&token, filename, &data).await;
    assert_eq!(done["state"], "done", "{done}");
    let (_, list) = app.call("GET", "/file/query", Some(&token)).await;
    assert_eq!(list["files"][0]["filename"], filename);
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM users").await, 1);
});

/// Signs in as `name` (with an `X-Forwarded-For` header when given):
/// status, the `Retry-After` header as seconds, and the JSON body.
async fn signin_from(app: &TestApp, name: &str, password: &str, xff: Option<&str>) -> (StatusCode, Option<u64>, Value) {
    let mut req = app.http.post(app.url("/usr/signin")).json(&json!({"username": name, "password": password}));
    if let Some(xff) = xff {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (code, retry_after, resp.json().await.unwrap())
}

/// A 429 as the rate limits answer it: `RATE_LIMITED`, and the same whole
/// number of seconds (at most one replenish interval) in the header and the body.
fn assert_rate_limited((code, retry_after, body): &(StatusCode, Option<u64>, Value), most: u64, ctx: &str) {
    assert_eq!(*code, StatusCode::TOO_MANY_REQUESTS, "{ctx}: {body}");
    assert_eq!(body["code"], "RATE_LIMITED", "{ctx}: {body}");
    let secs = retry_after.unwrap_or_else(|| panic!("{ctx}: no Retry-After header"));
    assert!((1..=most).contains(&secs), "{ctx}: Retry-After {secs}");
    assert_eq!(body["retry_after"], secs, "{ctx}: body and header disagree");
}

async fn signup(app: &TestApp, name: &str) -> StatusCode {
    app.post_json("/usr/signup", None, &json!({"username": name, "password": "correct horse"})).await.0
}

// 3 per minute: one attempt back every 20 s, far longer than the test takes.
both!(
    /// Past `PAN_SIGNIN_RATE` signin attempts from one address answer 429 with
    /// `Retry-After`, whatever usernames they name.
    a_signin_flood_from_one_address_gets_429_with_retry_after,
    |b: TestAppBuilder| b.env("PAN_SIGNIN_RATE", "3").env("PAN_SIGNIN_USER_RATE", "100"),
    |app| {
        let name = uname("flood");
        assert_eq!(signup(&app, &name).await, StatusCode::CREATED);
        for i in 0..3 {
            let (code, _, body) = signin_from(&app, &uname("nobody"), "not the one", None).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
        }
        // Any name, even with the right password: the address has spent its budget.
        let limited = signin_from(&app, &name, "correct horse", None).await;
        assert_rate_limited(&limited, 20, "4th signin from one address");
        assert!(limited.2["message"].as_str().unwrap().contains("address"), "{}", limited.2);
    }
);

both!(
    /// `PAN_SIGNIN_USER_RATE` limits guesses at one username (429) without
    /// locking out another user from the same address.
    the_per_username_limit_locks_out_no_other_user,
    |b: TestAppBuilder| b.env("PAN_SIGNIN_RATE", "1000").env("PAN_SIGNIN_USER_RATE", "3"),
    |app| {
        let (a, b) = (uname("target"), uname("bystander"));
        assert_eq!(signup(&app, &a).await, StatusCode::CREATED);
        assert_eq!(signup(&app, &b).await, StatusCode::CREATED);
        for i in 0..3 {
            let (code, _, body) = signin_from(&app, &a, &format!("guess {i}"), None).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "guess {i}: {body}");
        }
        assert_rate_limited(&signin_from(&app, &a, "guess 4", None).await, 20, "4th guess");
        // Attempts count, not failures: the right password waits too.
        assert_rate_limited(&signin_from(&app, &a, "correct horse", None).await, 20, "right password after the flood");
        // Another user at the same address signs in.
        let (code, _, body) = signin_from(&app, &b, "correct horse", None).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        assert!(body["token"].is_string());
    }
);

both!(
    /// Past `PAN_SIGNUP_RATE` signups from one address answer 429 with
/// `Retry-After`.
    a_signup_flood_gets_429, |b: TestAppBuilder| b.env("PAN_SIGNUP_RATE", "3"), |app| {
    for i in 0..3 {
        assert_eq!(signup(&app, &uname("bulk")).await, StatusCode::CREATED, "signup {i}");
    }
    let resp = app
        .http
        .post(app.url("/usr/signup"))
        .json(&json!({"username": uname("bulk"), "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    let code = resp.status();
    let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let limited = (code, retry_after, resp.json::<Value>().await.unwrap());
    assert_rate_limited(&limited, 20, "4th signup");
    assert_eq!(app.sql_count("SELECT COUNT(*) FROM users").await, 3, "the refused signup created no account");
});

both!(
    /// `X-Forwarded-For` from a peer that is not a trusted proxy is ignored:
    /// the peer's own address is what the signin limit counts.
    x_forwarded_for_is_ignored_when_the_peer_is_not_a_trusted_proxy,
    |b: TestAppBuilder| b.env("PAN_SIGNIN_RATE", "2").env("PAN_SIGNIN_USER_RATE", "100"),
    |app| {
        // Each request claims another address; all come from 127.0.0.1, which is what counts.
        for (i, xff) in ["10.0.0.1", "10.0.0.2"].into_iter().enumerate() {
            let (code, _, body) = signin_from(&app, &uname("nobody"), "not the one", Some(xff)).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
        }
        let limited = signin_from(&app, &uname("nobody"), "not the one", Some("10.0.0.3")).await;
        assert_rate_limited(&limited, 30, "3rd signin, claiming a third address");
    }
);

both!(
    /// Behind a trusted proxy, `X-Forwarded-For` names the client: each client
/// address has its own signin limit.
    x_forwarded_for_names_the_client_behind_a_trusted_proxy,
    |b: TestAppBuilder| b
        .env("PAN_TRUSTED_PROXIES", "127.0.0.1")
        .env("PAN_SIGNUP", "open")
        .env("PAN_SIGNIN_RATE", "2")
        .env("PAN_SIGNIN_USER_RATE", "100"),
    |app| {
        for i in 0..2 {
            let (code, _, body) = signin_from(&app, &uname("nobody"), "not the one", Some("10.0.0.1")).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "attempt {i}: {body}");
        }
        assert_rate_limited(&signin_from(&app, &uname("nobody"), "x", Some("10.0.0.1")).await, 30, "10.0.0.1 flooded");
        // The client cannot escape by writing an address of its own in front
        // of the one the proxy appended, and other trusted hops are skipped.
        for xff in ["10.0.0.9, 10.0.0.1", "10.0.0.1, 127.0.0.1"] {
            assert_rate_limited(&signin_from(&app, &uname("nobody"), "x", Some(xff)).await, 30, xff);
        }
        // Another client behind the same proxy has its own budget.
        let (code, _, body) = signin_from(&app, &uname("nobody"), "not the one", Some("10.0.0.2")).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "10.0.0.2: {body}");
    }
);

both!(
    /// A guessing flood against one user from one address does not lock that user
/// out from another address.
    a_flood_against_one_user_from_one_address_does_not_lock_them_out_elsewhere,
    |b: TestAppBuilder| b
        .env("PAN_TRUSTED_PROXIES", "127.0.0.1")
        .env("PAN_SIGNUP", "open")
        .env("PAN_SIGNIN_RATE", "1000")
        .env("PAN_SIGNIN_USER_RATE", "2"),
    |app| {
        let victim = uname("victim");
        assert_eq!(signup(&app, &victim).await, StatusCode::CREATED);
        for i in 0..2 {
            let (code, _, body) = signin_from(&app, &victim, "guess", Some("10.0.0.66")).await;
            assert_eq!(code, StatusCode::UNAUTHORIZED, "guess {i}: {body}");
        }
        assert_rate_limited(&signin_from(&app, &victim, "guess", Some("10.0.0.66")).await, 30, "attacker");
        let (code, _, body) = signin_from(&app, &victim, "correct horse", Some("10.0.0.7")).await;
        assert_eq!(code, StatusCode::OK, "the victim from their own address: {body}");
    }
);

both!(
    /// A password change needs the current password (403 `PASSWORD_WRONG`),
    /// signs out every other session and keeps the caller's; sessions list
    /// with the device named at signin and which one is the caller's.
    a_password_change_needs_the_current_one_and_signs_out_every_other_session,
    |app| {
        let name = uname("pw");
        let laptop = app.user(&name).await;
        let signin = json!({"username": name, "password": "correct horse", "device": "phone"});
        let (code, body) = app.post_json("/usr/signin", None, &signin).await;
        assert_eq!(code, StatusCode::OK, "{body}");
        let phone = body["token"].as_str().unwrap().to_owned();

        let (code, listed) = app.call("GET", "/usr/tokens", Some(&phone)).await;
        assert_eq!(code, StatusCode::OK, "{listed}");
        let sessions = listed["entries"].as_array().unwrap();
        assert_eq!(sessions.len(), 2, "{listed}");
        let current: Vec<(&Value, &Value)> = sessions.iter().map(|s| (&s["device"], &s["current"])).collect();
        assert!(current.contains(&(&json!("phone"), &json!(true))), "{listed}");
        assert!(current.contains(&(&Value::Null, &json!(false))), "{listed}");

        let wrong = json!({"current": "not my password", "new": "a new secret"});
        let (code, body) = app.post_json("/usr/password", Some(&phone), &wrong).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("PASSWORD_WRONG")), "{body}");
        let (code, _) = app.call("GET", "/usr/info", Some(&laptop)).await;
        assert_eq!(code, StatusCode::OK, "a refused change signs nobody out");
        let short = json!({"current": "correct horse", "new": "short"});
        let (code, body) = app.post_json("/usr/password", Some(&phone), &short).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{body}");

        let change = json!({"current": "correct horse", "new": "a new secret"});
        let (code, body) = app.post_json("/usr/password", Some(&phone), &change).await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
        let (code, body) = app.call("GET", "/usr/info", Some(&laptop)).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
        let (code, _) = app.call("GET", "/usr/info", Some(&phone)).await;
        assert_eq!(code, StatusCode::OK, "the caller's session stays");
        let old = json!({"username": name, "password": "correct horse"});
        let (code, body) = app.post_json("/usr/signin", None, &old).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("BAD_CREDENTIALS")));
        app.signin(&name, "a new secret").await;
    }
);

both!(
    /// An app password is shown once, listed without its secret, opens
    /// nothing of this API (not as a token, not at signin), is revoked one by
    /// one; signing out everywhere ends every session and app password.
    app_passwords_are_shown_once_and_never_open_the_api,
    |app| {
        let name = uname("app");
        let token = app.user(&name).await;
        let (code, made) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": "rclone"})).await;
        assert_eq!(code, StatusCode::CREATED, "{made}");
        let secret = made["password"].as_str().unwrap().to_owned();
        assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        let (code, other) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": "finder"})).await;
        assert_eq!(code, StatusCode::CREATED, "{other}");
        let (code, body) = app.post_json("/usr/apppassword/create", Some(&token), &json!({"name": ""})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::BAD_REQUEST, Some("INVALID_REQUEST")), "{body}");

        let (code, listed) = app.call("GET", "/usr/apppassword/list", Some(&token)).await;
        assert_eq!(code, StatusCode::OK);
        let mut names: Vec<&str> =
            listed["entries"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["finder", "rclone"]);
        assert!(!listed.to_string().contains(&secret), "the secret is shown once: {listed}");
        let rclone = listed["entries"].as_array().unwrap().iter().find(|a| a["name"] == "rclone").unwrap();
        assert_eq!(rclone["id"], made["id"]);
        assert!(rclone.get("last_used_at").is_none(), "{listed}");

        // Never a way into this API.
        let (code, body) = app.call("GET", "/usr/info", Some(&secret)).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));
        let (code, body) = app.post_json("/usr/signin", None, &json!({"username": name, "password": secret})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("BAD_CREDENTIALS")));
        let (code, body) = app.post_json("/usr/apppassword/create", Some(&secret), &json!({"name": "x"})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("UNAUTHENTICATED")));

        // Revoked one by one; nobody else's to revoke.
        let someone = app.user(&uname("someone")).await;
        let revoke = format!("/usr/apppassword/revoke?id={}", made["id"].as_str().unwrap());
        let (code, body) = app.call("DELETE", &revoke, Some(&someone)).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("APP_PASSWORD_NOT_FOUND")));
        let (code, _) = app.call("DELETE", &revoke, Some(&token)).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, body) = app.call("DELETE", &revoke, Some(&token)).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::NOT_FOUND, Some("APP_PASSWORD_NOT_FOUND")));

        // Sign out everywhere: this token too, and every app password.
        let (code, _) = app.post_json("/usr/signout/everywhere", Some(&token), &json!({})).await;
        assert_eq!(code, StatusCode::NO_CONTENT);
        let (code, _) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let again = app.signin(&name, "correct horse").await;
        let (_, listed) = app.call("GET", "/usr/apppassword/list", Some(&again)).await;
        assert_eq!(listed["entries"], json!([]), "{listed}");
    }
);

both!(
    /// `api admin set-password` is the recovery path: the new password works,
    /// the old one and every session of the user do not.
    the_operator_sets_a_password_and_the_users_sessions_end,
    |app| {
        let name = uname("forgot");
        let token = app.user(&name).await;
        let (code, out, err) = app.admin(&["set-password", &name], "recovered pass\n");
        assert_eq!(code, Some(0), "{out}{err}");
        let (code, _) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        app.signin(&name, "recovered pass").await;
        let (code, _, err) = app.admin(&["set-password", "nobody-here"], "recovered pass\n");
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("no such user"), "{err}");
    }
);

both!(
    /// Behind a proxy (or listening beyond loopback, or with a public URL
    /// that is not loopback) strangers may reach pan: signup defaults to
    /// invite and quotas to 10 GiB and 100,000 files, and start-up says so.
    an_exposed_server_defaults_to_invites_and_quotas,
    |b: TestAppBuilder| b.env("PAN_TRUSTED_PROXIES", "127.0.0.1"),
    |app| {
        let name = uname("exposed");
        let (code, body) = app.post_json("/usr/signup", None, &json!({"username": name, "password": "correct horse"})).await;
        assert_eq!((code, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("INVITE_REQUIRED")), "{body}");
        let (code, out, err) = app.admin(&["create-user", &name], "correct horse\n");
        assert_eq!(code, Some(0), "{out}{err}");
        let token = app.signin(&name, "correct horse").await;
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert_eq!((info["quota_bytes"].as_u64(), info["quota_files"].as_u64()), (Some(10 << 30), Some(100_000)), "{info}");
        let log = app.api_log_tail(200);
        assert!(log.contains("signup=invite (exposed default), quota bytes=10737418240 (exposed default)"), "{log}");
    }
);

both!(
    /// A setting given explicitly wins over the exposed defaults; the others
    /// keep theirs.
    explicit_settings_win_over_the_exposed_defaults,
    |b: TestAppBuilder| b.env("PAN_TRUSTED_PROXIES", "127.0.0.1").env("PAN_SIGNUP", "open").env("PAN_QUOTA_BYTES", "unlimited"),
    |app| {
        let token = app.user(&uname("explicit")).await;
        let (_, info) = app.call("GET", "/usr/info", Some(&token)).await;
        assert!(info.get("quota_bytes").is_none(), "{info}");
        assert_eq!(info["quota_files"].as_u64(), Some(100_000), "not set: the exposed default");
        let log = app.api_log_tail(200);
        assert!(log.contains("signup=open (set)"), "{log}");
    }
);

/// Thirty wrong signins for one user, spread over two api processes on one
/// Redis (as a load balancer spreads them): the per-(name, address) limit
/// of 10 lets 10 through in all, not 10 per process; a signup limit of 3
/// too. The buckets live in Redis, shared by the fleet.
#[tokio::test]
async fn two_api_processes_share_one_budget() {
    let mut app = TestApp::builder(Deployment::Fleet)
        .env("PAN_SIGNIN_RATE", "1000")
        .env("PAN_SIGNIN_USER_RATE", "10")
        .env("PAN_SIGNUP_RATE", "3")
        .spawn()
        .await;
    let second = app.spawn_another_api().await;
    let bases = [app.base.clone(), second];
    let name = uname("shared");
    let mut codes = Vec::new();
    for i in 0..30 {
        let url = format!("{}/usr/signin", bases[i % 2]);
        let resp = app.http.post(url).json(&json!({"username": name, "password": format!("guess {i}")})).send();
        let resp = resp.await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["code"], "RATE_LIMITED", "{body}");
        } else {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
        codes.push(status);
    }
    let through = codes.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert_eq!(through, 10, "{codes:?}");
    let mut signups = Vec::new();
    for i in 0..6 {
        let url = format!("{}/usr/signup", bases[i % 2]);
        let body = json!({"username": uname("bulk"), "password": "correct horse"});
        signups.push(app.http.post(url).json(&body).send().await.unwrap().status());
    }
    let created = signups.iter().filter(|s| **s == StatusCode::CREATED).count();
    assert_eq!(created, 3, "{signups:?}");
    assert!(signups.iter().all(|s| [StatusCode::CREATED, StatusCode::TOO_MANY_REQUESTS].contains(s)), "{signups:?}");
}
