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

    // Plugin sections are checked too, and a bad one never echoes its secrets.
    let bad_plugin_sections: [&[(&str, &str)]; 2] = [
        &[
            ("GOFORWARD_AUTH__SMTP__PASSWORD", "smtpsecret-123"),
            ("GOFORWARD_AUTH__TYPO", "1"),
        ],
        &[
            ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__EMAIL", "root@example.com"),
            (
                "GOFORWARD_AUTH__BOOTSTRAP_ADMIN__PASSWORD",
                "smtpsecret-123",
            ),
            ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__TYPO", "1"),
        ],
    ];
    for envs in bad_plugin_sections {
        let (code, _, stderr) = goforward(envs, &["config", "check"]);
        assert_ne!(code, 0, "{envs:?}");
        assert!(stderr.contains("auth"), "{stderr}");
        assert!(
            !stderr.contains("smtpsecret-123"),
            "secret echoed: {stderr}"
        );
    }
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

/// `goforward admin create` makes a confirmed account with an administrator
/// level (the level is in the JWT at sign-in); run again it resets the
/// password; bad input exits non-zero with one line and changes nothing.
/// `[auth.bootstrap_admin]` from the environment creates its account at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_bootstraps_an_administrator() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("gf.db").display());
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_goforward"));
        cmd.args(args)
            .current_dir(dir.path())
            .env("GOFORWARD_DATA_DIR", dir.path())
            .env("GOFORWARD_DATABASE_URL", &db)
            .env("GOFORWARD_LOG", "error")
            .env("GOFORWARD_AUTH__BCRYPT_COST", "4")
            .env_remove("GOFORWARD_ADMIN_PASSWORD");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let create = |email: &'static str, password: &'static str, role: &'static str| {
        vec![
            "admin",
            "create",
            "--email",
            email,
            "--password",
            password,
            "--role",
            role,
        ]
    };

    let (code, stdout, stderr) = run(
        &create("root@example.com", "first password", "system_admin"),
        &[
            ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__EMAIL", "boot@example.com"),
            ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__PASSWORD", "boot password"),
            ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__ADMIN_ROLE", "moderator"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("created root@example.com (system_admin) id="),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(
        &create("ROOT@example.com", "second password", "super_admin"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("updated root@example.com (super_admin)"),
        "{stdout}"
    );

    // Bad input: one line, non-zero, nothing created.
    for (args, envs, needle) in [
        (
            create("x@example.com", "long enough", "root"),
            vec![],
            "--role",
        ),
        (
            create("not-an-email", "long enough", "admin"),
            vec![],
            "email",
        ),
        (
            create("x@example.com", "short", "admin"),
            vec![],
            "characters",
        ),
        (
            vec!["admin", "create", "--email", "x@example.com"],
            vec![],
            "GOFORWARD_ADMIN_PASSWORD",
        ),
        (
            create("x@example.com", "long enough", "admin"),
            vec![
                ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__EMAIL", "boot@example.com"),
                ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__PASSWORD", "boot password"),
                ("GOFORWARD_AUTH__BOOTSTRAP_ADMIN__ADMIN_ROLE", "root"),
            ],
            "auth.bootstrap_admin.admin_role",
        ),
    ] {
        let (code, _, stderr) = run(&args, &envs);
        assert_ne!(code, 0, "{args:?}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("boot password"), "secret echoed: {stderr}");
    }

    // The accounts sign in, with their levels in the access token.
    let app = goforward_core::testing::TestApp::builder()
        .plugin(goforward::Auth::new())
        .config(|c| c.database.url = Some(db.clone()))
        .postgres(false)
        .start()
        .await
        .unwrap();
    let sign_in = |email: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let res = app
                .client()
                .post(app.url("/auth/v1/token?grant_type=password"))
                .header("apikey", app.anon_key())
                .json(&serde_json::json!({ "email": email, "password": password }))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    let claims = |token: &str| {
        let verifier = goforward::token::TokenVerifier::hs256(
            goforward_core::testing::TEST_JWT_SECRET.as_bytes(),
        );
        serde_json::Value::Object(verifier.verify(token).unwrap())
    };
    let (status, body) = sign_in("root@example.com", "first password").await;
    assert_eq!(status, 400, "the password was reset: {body}");
    let (status, body) = sign_in("root@example.com", "second password").await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["app_metadata"]["admin_role"], "super_admin");
    let (status, body) = sign_in("boot@example.com", "boot password").await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims(token)["app_metadata"]["admin_role"], "moderator");
    let (status, _) = sign_in("x@example.com", "long enough").await;
    assert_eq!(status, 400, "not created");
    app.stop().await;
}
