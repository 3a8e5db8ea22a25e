//! Start-up: settings, help, and failing fast on bad or unreachable backends.

use pan_tests::*;

/// `api --help` names every setting.
#[test]
fn help_documents_every_setting() {
    let out = std::process::Command::new(binary("api")).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "PAN_LISTEN",
        "PAN_DATA_DIR",
        "DATABASE_URL",
        "REDIS_URL",
        "PAN_EMBEDDED_WORKERS",
        "PAN_STORE_URL",
        "PAN_STAGING_URL",
        "PAN_CHUNK_SIZE",
        "PAN_MAX_CHUNKS",
        "PAN_MAX_FILE_SIZE",
        "PAN_UPLOAD_TTL",
        "PAN_TOKEN_TTL",
        "PAN_REDIS_PREFIX",
        "PAN_MERGE_THREADS",
        "PAN_WORKER_JOBS",
        "PAN_MAX_SINGLE_UPLOAD",
        "PAN_BACKUP_URL",
        "PAN_SWEEP_SCHEDULE",
        "PAN_URL_TTL",
        "PAN_KEY_DAYS",
        "PAN_PUBLIC_URL",
        "PAN_SCRUB_ALWAYS",
        "PAN_INSTANT_ACROSS_USERS",
        "PAN_METRICS_TOKEN",
        "PAN_SIGNIN_RATE",
        "PAN_SIGNIN_USER_RATE",
        "PAN_SIGNUP_RATE",
        "PAN_TRUSTED_PROXIES",
        "PAN_HEADER_TIMEOUT",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    let out = std::process::Command::new(binary("worker")).arg("--help").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("DATABASE_URL"));
}

fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(binary("api"))
        .env_clear()
        .env("PAN_DATA_DIR", dir.path())
        .env("PAN_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A bad setting stops the api at start-up with exit code 2 and one line
/// naming the setting.
#[test]
fn bad_settings_exit_2_with_one_line_naming_the_setting() {
    let cases: [(&str, &str); 11] = [
        ("PAN_CHUNK_SIZE", "ten"),
        ("PAN_LISTEN", "not an address"),
        ("DATABASE_URL", "postgres://x/y"),
        ("DATABASE_URL", "mysql://nobody:wrong@127.0.0.1:1/none"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("PAN_STORE_URL", "ftp://example/x"),
        ("PAN_PUBLIC_URL", "javascript:alert(1)"),
        ("PAN_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("PAN_HEADER_TIMEOUT", "0"),
        ("PAN_SIGNIN_RATE", "-1"),
        // Beyond loopback, signed URLs need a configured public address.
        ("PAN_LISTEN", "0.0.0.0:0"),
    ];
    for (var, value) in cases {
        let (code, stderr) = run(&[(var, value)]);
        assert_eq!(code, Some(2), "{var}={value}: {stderr}");
        let flag = var.trim_start_matches("PAN_").to_lowercase().replace('_', "-");
        let named = if value == "0.0.0.0:0" { "PAN_PUBLIC_URL" } else { var };
        assert!(
            stderr.contains(named) || stderr.contains(&flag),
            "{var}={value}: error does not name the setting: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{var}: not one line: {stderr}");
    }
}
