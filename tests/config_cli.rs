//! The `goforward` binary: bad configuration exits non-zero with one line
//! naming the key (no panic, no backtrace); `keys` and `config check` work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn goforward(envs: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_goforward"));
    cmd.args(args)
        .current_dir(dir.path())
        .env("GOFORWARD_DATA_DIR", dir.path())
        .env("GOFORWARD_LOG", "error");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn bad_config_exits_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad_toml = dir.path().join("bad.toml");
    std::fs::write(&bad_toml, "[server]\naddr = 5\n").unwrap();
    let unreadable = dir.path().join("missing.toml");
    let short_previous = dir.path().join("short_previous.toml");
    std::fs::write(
        &short_previous,
        "[jwt]\nkid = \"k2\"\n[[jwt.previous_secrets]]\nkid = \"k1\"\nsecret = \"short\"\n",
    )
    .unwrap();
    let duplicate_kid = dir.path().join("duplicate_kid.toml");
    std::fs::write(
        &duplicate_kid,
        "[jwt]\nkid = \"k1\"\n[[jwt.previous_secrets]]\nkid = \"k1\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    let short_previous = short_previous.to_str().unwrap().to_owned();
    let duplicate_kid = duplicate_kid.to_str().unwrap().to_owned();
    let bad_toml = bad_toml.to_str().unwrap().to_owned();
    let unreadable = unreadable.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("GOFORWARD_DATABASE_URL", "mysql://localhost/db")],
            "database.url",
        ),
        (vec![("GOFORWARD_ADDR", "127.0.0.1:99999")], "server.addr"),
        (vec![("GOFORWARD_ADDR", "nonsense")], "server.addr"),
        (
            vec![("GOFORWARD_CONFIG", unreadable.as_str())],
            "GOFORWARD_CONFIG",
        ),
        (vec![("GOFORWARD_CONFIG", bad_toml.as_str())], "server.addr"),
        (vec![("GOFORWARD_JWT_SECRET", "short")], "jwt.secret"),
        (
            vec![("GOFORWARD_SERVER__JSON_LIMIT", "lots")],
            "server.json_limit",
        ),
        (vec![("GOFORWARD_NOPE__X", "1")], "nope"),
        (
            vec![("GOFORWARD_CONFIG", short_previous.as_str())],
            "jwt.previous_secrets[0].secret",
        ),
        (
            vec![("GOFORWARD_CONFIG", duplicate_kid.as_str())],
            "jwt.previous_secrets[0].kid",
        ),
        (vec![("GOFORWARD_JWT__KID", "has space")], "jwt.kid"),
    ];
    for (envs, key) in cases {
        let (code, _, stderr) = goforward(&envs, &["serve"]);
        assert_ne!(code, 0, "{envs:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{envs:?}: one line, got {stderr}");
        assert!(lines[0].contains(key), "{envs:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        assert!(!stderr.contains("short"), "secret value echoed: {stderr}");
    }
}

#[test]
fn keys_and_config_check() {
    let secret = "cli-test-secret-0123456789abcdef0123456789";
    let (code, stdout, stderr) = goforward(&[("GOFORWARD_JWT_SECRET", secret)], &["keys"]);
    assert_eq!(code, 0, "{stderr}");
    let anon = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GOFORWARD_ANON_KEY="))
        .unwrap();
    let service = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GOFORWARD_SERVICE_KEY="))
        .unwrap();
    let verifier = goforward::token::TokenVerifier::hs256(secret.as_bytes());
    assert_eq!(verifier.verify(anon).unwrap()["role"], "anon");
    assert_eq!(verifier.verify(service).unwrap()["role"], "service_role");

    let (code, stdout, _) = goforward(&[], &["config", "check"]);
    assert_eq!((code, stdout.trim()), (0, "configuration ok"));
}

#[test]
fn generated_secret_is_persisted_so_keys_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        let out = Command::new(env!("CARGO_BIN_EXE_goforward"))
            .arg("keys")
            .env("GOFORWARD_DATA_DIR", dir.path())
            .env("GOFORWARD_LOG", "error")
            .env_remove("GOFORWARD_JWT_SECRET")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .to_owned()
    };
    let first = run();
    let secret = std::fs::read_to_string(dir.path().join("jwt_secret")).unwrap();
    assert!(secret.len() >= 32);
    let verifier = goforward::token::TokenVerifier::hs256(secret.trim().as_bytes());
    assert!(
        verifier
            .verify(first.trim_start_matches("GOFORWARD_ANON_KEY="))
            .is_ok()
    );
    let _ = run();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("jwt_secret")).unwrap(),
        secret,
        "not regenerated"
    );
}
