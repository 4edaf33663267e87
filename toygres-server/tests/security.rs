//! Security of the real `toygres` binary, over HTTP: bearer tokens and roles, the start-up
//! refusals, TLS (with curl, the CLI and the scripts), hostile input, and a password that
//! appears nowhere but in the create response.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;
use toygres_server::cli::exit;

const ADMIN: &str = "admin-9f2c4e6a8b1d3f5a7c9e";
const READER: &str = "reader-3b5d7f9a1c2e4f6a8b0d";

fn tokens_setting() -> String {
    format!("admin:{ADMIN},readonly:{READER}")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn operation_id(reply: &Reply) -> Result<String, TestError> {
    Ok(reply.body["operation"]["id"]
        .as_str()
        .ok_or_else(|| format!("no operation id in {}", reply.text))?
        .to_string())
}

/// Fails unless `reply` is a `401 unauthorized` in the API's error shape with a challenge.
fn assert_unauthorized(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.error_code(), "unauthorized", "{what}");
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(
        reply
            .headers
            .get("www-authenticate")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("Bearer")),
        "{what}: no WWW-Authenticate: Bearer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_every_route_but_health_and_the_description() -> TestResult {
    let workspace = Workspace::new("security_tokens_guard_routes")?;
    let tokens = tokens_setting();
    let server = workspace
        .start_server("server.log", &[("TOYGRES_API_TOKENS", &tokens)])
        .await?;
    let admin = bearer(ADMIN);
    let reader = bearer(READER);

    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let reply = server.send_anonymous(Method::GET, path, None, &[]).await?;
        assert_eq!(reply.status, StatusCode::OK, "{path} must stay public");
    }
    let openapi = server.get("/openapi.json").await?;
    assert_eq!(
        openapi.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(openapi.body["paths"]["/instances"]["post"]["responses"]["403"].is_object());
    assert!(openapi.body["paths"]["/healthz"]["get"]["responses"]["401"].is_null());

    let protected = [
        (Method::GET, "/instances"),
        (Method::GET, "/instances/orders-db"),
        (Method::GET, "/instances/orders-db/events"),
        (Method::GET, "/operations"),
        (Method::GET, "/operations/op_doesnotexist"),
        (Method::GET, "/metrics"),
        (Method::POST, "/instances"),
        (Method::DELETE, "/instances/orders-db"),
        (Method::PUT, "/instances"),
        (Method::GET, "/nowhere"),
        (Method::GET, "/healthz/"),
    ];
    let wrong_credentials = [
        bearer("wrong-token-0123456789abcdef"),
        bearer(&format!("{ADMIN}x")),
        bearer(&ADMIN[..ADMIN.len() - 1]),
        ADMIN.to_string(),
        format!("Token {ADMIN}"),
        "Basic YWRtaW46YWRtaW4=".to_string(),
        "Bearer ".to_string(),
        bearer(&"x".repeat(8 * 1024)),
    ];
    for (method, path) in &protected {
        let body = (method == Method::POST).then_some(r#"{"name":"sneaky"}"#);
        let reply = server
            .send_anonymous(method.clone(), path, body, &[])
            .await?;
        assert_unauthorized(&reply, &format!("{method} {path} without a token"));
        for credential in &wrong_credentials {
            let reply = server
                .send_anonymous(
                    method.clone(),
                    path,
                    body,
                    &[("authorization", credential.as_str())],
                )
                .await?;
            assert_unauthorized(&reply, &format!("{method} {path} with a wrong credential"));
        }
        let twice = server
            .send_anonymous(
                method.clone(),
                path,
                body,
                &[("authorization", &admin), ("authorization", &admin)],
            )
            .await?;
        assert_unauthorized(&twice, &format!("{method} {path} with two tokens"));
    }
    assert_eq!(
        server.get("/instances").await?.status,
        StatusCode::UNAUTHORIZED,
        "this server was started without a default token"
    );

    // The read-only token reads everything and changes nothing.
    for path in ["/instances", "/operations", "/metrics"] {
        let reply = server
            .send_anonymous(Method::GET, path, None, &[("authorization", &reader)])
            .await?;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text);
    }
    let missing = server
        .send_anonymous(
            Method::GET,
            "/instances/orders-db",
            None,
            &[("authorization", &reader)],
        )
        .await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let refused = server
        .send_anonymous(
            Method::POST,
            "/instances",
            Some(r#"{"name":"orders-db"}"#),
            &[("authorization", &reader)],
        )
        .await?;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert_eq!(refused.error_code(), "forbidden");

    // The admin token does everything; the reader sees the result but cannot delete it.
    let created = server
        .send_anonymous(
            Method::POST,
            "/instances",
            Some(r#"{"name":"orders-db"}"#),
            &[("authorization", &admin)],
        )
        .await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let create_id = operation_id(&created)?;
    let operation_path = format!("/operations/{create_id}");
    let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
    loop {
        let operation = server
            .send_anonymous(
                Method::GET,
                &operation_path,
                None,
                &[("authorization", &reader)],
            )
            .await?;
        assert_eq!(operation.status, StatusCode::OK, "{}", operation.text);
        match operation.body["status"].as_str() {
            Some("succeeded") => break,
            Some("pending" | "running") if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            _ => return Err(format!("the create did not succeed: {}", operation.text).into()),
        }
    }
    for method in [Method::DELETE, Method::POST, Method::PUT, Method::PATCH] {
        let refused = server
            .send_anonymous(
                method.clone(),
                "/instances/orders-db",
                None,
                &[("authorization", &reader)],
            )
            .await?;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{method}");
        assert_eq!(refused.error_code(), "forbidden");
    }
    let deleted = server
        .send_anonymous(
            Method::DELETE,
            "/instances/orders-db",
            None,
            &[("authorization", &admin)],
        )
        .await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);

    let metrics = server
        .send_anonymous(Method::GET, "/metrics", None, &[("authorization", &reader)])
        .await?;
    assert!(
        metrics
            .text
            .contains(r#"toygres_http_auth_refusals_total{code="unauthorized"}"#)
            && metrics
                .text
                .contains(r#"toygres_http_auth_refusals_total{code="forbidden"}"#),
        "{}",
        metrics.text
    );

    let log = server.log();
    assert!(log.contains("the API requires a bearer token") && log.contains("admin_tokens"));
    assert!(log.contains("request refused"));
    for secret in [ADMIN, READER, "wrong-token-0123456789abcdef"] {
        assert!(!log.contains(secret), "the log shows a token");
    }
    Ok(())
}

/// Idempotency keys belong to the token that sent them: another token reusing a key makes an
/// independent request, and never gets the first caller's answer or password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_are_scoped_per_token() -> TestResult {
    const OTHER_ADMIN: &str = "admin-two-5e7a9c1b3d5f7a9c1e";
    let workspace = Workspace::new("security_idempotency_per_token")?;
    let tokens = format!("{},admin:{OTHER_ADMIN}", tokens_setting());
    // No instance needs to start: the answers are what is tested.
    let server = workspace
        .start_server(
            "server.log",
            &[
                ("TOYGRES_API_TOKENS", &tokens),
                ("TOYGRES_FAULTS", "deploy=hang"),
            ],
        )
        .await?;
    let first = bearer(ADMIN);
    let second = bearer(OTHER_ADMIN);
    let send = |credential: &str, body: &str| {
        let (credential, body) = (credential.to_string(), body.to_string());
        let server = &server;
        async move {
            let headers = [
                ("authorization", credential.as_str()),
                ("idempotency-key", "shared-key-1"),
            ];
            server
                .send_anonymous(Method::POST, "/instances", Some(&body), &headers)
                .await
        }
    };
    let body = r#"{"name":"keyed"}"#;
    let created = send(&first, body).await?;
    assert_eq!(created.status, StatusCode::ACCEPTED, "{}", created.text);
    let password = created.body["password"].as_str().ok_or("no password")?;

    // The same key and body from another token: a new request, refused for the taken name.
    let other = send(&second, body).await?;
    assert_eq!(other.status, StatusCode::CONFLICT, "{}", other.text);
    assert!(!other.text.contains(password), "the password leaked");

    // The same key with another body from another token: its own, new request.
    let own = send(&second, r#"{"name":"keyed-too"}"#).await?;
    assert_eq!(own.status, StatusCode::ACCEPTED, "{}", own.text);
    assert_ne!(own.body["operation"]["id"], created.body["operation"]["id"]);
    assert_ne!(own.body["password"], created.body["password"]);

    // Each token still replays its own answer.
    let replay = send(&first, body).await?;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.text);
    assert_eq!(
        replay.body["operation"]["id"],
        created.body["operation"]["id"]
    );
    assert_eq!(replay.body["password"], created.body["password"]);
    let replay = send(&second, r#"{"name":"keyed-too"}"#).await?;
    assert_eq!(replay.body["operation"]["id"], own.body["operation"]["id"]);
    assert_eq!(replay.body["password"], own.body["password"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_the_loopback_api_is_open_and_the_log_says_so() -> TestResult {
    let workspace = Workspace::new("security_without_tokens")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let listed = server
        .send_anonymous(Method::GET, "/instances", None, &[])
        .await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let metrics = server
        .send_anonymous(Method::GET, "/metrics", None, &[])
        .await?;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        server.log().contains("no API token configured"),
        "the log must say that the API runs without authentication"
    );
    Ok(())
}

/// Runs `toygres serve` with `env` and expects it to refuse to start; returns its stderr.
fn refused_start(data_dir: &Path, env: &[(&str, &str)]) -> Result<String, TestError> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_toygres"));
    command
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("TOYGRES_API_TOKENS")
        .env_remove("TOYGRES_TLS_CERT")
        .env_remove("TOYGRES_TLS_KEY")
        .env("TOYGRES_DATA_DIR", data_dir)
        .env("TOYGRES_LISTEN", format!("127.0.0.1:{}", free_port()?))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            return Err(format!("the server started with {env:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output()?;
    assert!(!output.status.success(), "{env:?}");
    Ok(String::from_utf8(output.stderr)?)
}

#[test]
fn start_up_refuses_what_would_expose_the_api() -> TestResult {
    let scratch = tempfile::tempdir()?;
    let data_dir = scratch.path().join("data");
    let public = format!("0.0.0.0:{}", free_port()?);
    let cert = scratch.path().join("cert.pem");
    let missing = scratch.path().join("missing.pem");
    std::fs::write(&cert, "not a certificate\n")?;
    let (cert, missing) = (cert.display().to_string(), missing.display().to_string());

    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("TOYGRES_LISTEN", &public)],
            "refusing to listen on 0.0.0.0",
        ),
        (
            vec![("TOYGRES_API_TOKENS", "admin:tiny-secret")],
            "entry 1: the token has 11 characters; it needs 16 to 256",
        ),
        (
            vec![("TOYGRES_API_TOKENS", "superuser:much-too-guessable-secret")],
            "the role must be 'admin' or 'readonly'",
        ),
        (
            vec![(
                "TOYGRES_API_TOKENS",
                "admin:much-too-guessable-secret,admin:much-too-guessable-secret",
            )],
            "entry 2 repeats the token of entry 1",
        ),
        (vec![("TOYGRES_TLS_CERT", &cert)], "--tls-key"),
        (
            vec![("TOYGRES_TLS_CERT", &cert), ("TOYGRES_TLS_KEY", &missing)],
            "no PEM certificate",
        ),
        (
            vec![
                ("TOYGRES_TLS_CERT", &missing),
                ("TOYGRES_TLS_KEY", &missing),
                ("TOYGRES_API_TOKENS", "admin:much-too-guessable-secret"),
                ("TOYGRES_LISTEN", &public),
            ],
            "missing.pem",
        ),
    ];
    for (env, expected) in cases {
        let stderr = refused_start(&data_dir, &env)?;
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        for secret in ["tiny-secret", "much-too-guessable-secret"] {
            assert!(
                !stderr.contains(secret),
                "the error quotes a token: {stderr}"
            );
        }
        assert!(
            !data_dir.exists(),
            "{env:?}: nothing may be started before the settings are checked"
        );
    }
    Ok(())
}

/// Writes a self-signed certificate for 127.0.0.1 and localhost, and its key (mode 0600).
fn self_signed_certificate(dir: &Path) -> Result<(PathBuf, PathBuf, Vec<u8>), TestError> {
    use std::os::unix::fs::PermissionsExt as _;
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])?;
    let cert = dir.join("api-cert.pem");
    let key = dir.join("api-key.pem");
    let pem = generated.cert.pem();
    std::fs::write(&cert, &pem)?;
    std::fs::write(&key, generated.signing_key.serialize_pem())?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    Ok((cert, key, pem.into_bytes()))
}

/// Runs the `toygres` CLI with `env` and returns its exit code and stderr.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Result<(i32, String), TestError> {
    let scratch = tempfile::tempdir()?;
    let mut command = Command::new(env!("CARGO_BIN_EXE_toygres"));
    command
        .args(args)
        .env_remove("TOYGRES_URL")
        .env_remove("TOYGRES_TOKEN")
        .env_remove("TOYGRES_CA_CERT")
        .current_dir(scratch.path())
        .stdin(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output()?;
    Ok((
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr)?,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_tokens_serves_every_interface_to_the_cli_and_the_scripts() -> TestResult {
    let workspace = Workspace::new("security_tls_with_tokens")?;
    let scratch = tempfile::tempdir()?;
    let (cert, key, pem) = self_signed_certificate(scratch.path())?;
    let tokens = tokens_setting();
    let (cert_path, key_path) = (cert.display().to_string(), key.display().to_string());
    let options = StartOptions {
        listen_host: "0.0.0.0".to_string(),
        trusted_certificate: Some(pem),
        token: Some(ADMIN.to_string()),
        ..StartOptions::default()
    };
    let server = workspace
        .start_server_with(
            "server.log",
            &[
                ("TOYGRES_API_TOKENS", &tokens),
                ("TOYGRES_TLS_CERT", &cert_path),
                ("TOYGRES_TLS_KEY", &key_path),
            ],
            &options,
        )
        .await?;
    assert!(server.base.starts_with("https://"));
    let listed = server.get("/instances").await?;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert!(
        !server.log().contains("without TLS"),
        "no clear-text warning with TLS"
    );

    // Plain HTTP on the TLS port gets no answer.
    let port = server.port()?;
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(
        plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()),
        "plain HTTP must not be served on the TLS port"
    );

    // The CLI: https with the CA, without it (untrusted: unreachable), and its auth exit code.
    let url = format!("https://127.0.0.1:{port}");
    let trusted = [
        ("TOYGRES_URL", url.as_str()),
        ("TOYGRES_CA_CERT", cert_path.as_str()),
    ];
    let (code, stderr) = cli(
        &["list"],
        &[trusted[0], trusted[1], ("TOYGRES_TOKEN", ADMIN)],
    )?;
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = cli(&["list"], &[trusted[0], ("TOYGRES_TOKEN", ADMIN)])?;
    assert_eq!(code, i32::from(exit::UNREACHABLE), "{stderr}");
    let (code, stderr) = cli(&["list"], &trusted)?;
    assert_eq!(code, i32::from(exit::AUTH), "{stderr}");
    assert!(stderr.contains("unauthorized"), "{stderr}");
    let (code, stderr) = cli(
        &["create", "read-only-try"],
        &[trusted[0], trusted[1], ("TOYGRES_TOKEN", READER)],
    )?;
    assert_eq!(code, i32::from(exit::AUTH), "{stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");

    // The curl scripts: curl trusts CURL_CA_BUNDLE.
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/list-instances.sh");
    let output = Command::new(&script)
        .env("TOYGRES_URL", &url)
        .env("TOYGRES_TOKEN", READER)
        .env("CURL_CA_BUNDLE", &cert)
        .stdin(Stdio::null())
        .output()?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(&script)
        .env("TOYGRES_URL", &url)
        .env("TOYGRES_TOKEN", "wrong-token-0123456789abcdef")
        .env("CURL_CA_BUNDLE", &cert)
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(output.status.code(), Some(i32::from(exit::AUTH)));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_4xx_and_never_5xx() -> TestResult {
    let workspace = Workspace::new("security_hostile_input")?;
    let tokens = tokens_setting();
    let options = StartOptions {
        token: Some(ADMIN.to_string()),
        ..StartOptions::default()
    };
    let server = workspace
        .start_server_with("server.log", &[("TOYGRES_API_TOKENS", &tokens)], &options)
        .await?;

    // Bodies: not JSON, wrong types, huge numbers, unicode and path traversal in names.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let bodies: Vec<(String, &str)> = vec![
        ("{".into(), "malformed_json"),
        ("\u{feff}{\"name\":\"bom\"}".into(), "malformed_json"),
        ("{\"name\":\"x\"}{\"name\":\"y\"}".into(), "malformed_json"),
        ("{\"name\":\"a\",\"name\":\"b\"}".into(), "invalid_request"),
        (deep, "malformed_json"),
        ("\"just a string\"".into(), "invalid_request"),
        ("null".into(), "invalid_request"),
        ("{\"name\":{\"nested\":true}}".into(), "invalid_request"),
        ("{\"name\":[\"orders\"]}".into(), "invalid_request"),
        ("{\"name\":true}".into(), "invalid_request"),
        (
            "{\"name\":\"ok\",\"storage_gb\":1e400}".into(),
            "malformed_json",
        ),
        (
            "{\"name\":\"ok\",\"storage_gb\":99999999999999999999999}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"storage_gb\":-9223372036854775809}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"storage_gb\":4294967297}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"storage_gb\":\"10\"}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"storage_gb\":true}".into(),
            "invalid_request",
        ),
        ("{\"name\":\"订单\"}".into(), "invalid_request"),
        ("{\"name\":\"db-🐘\"}".into(), "invalid_request"),
        ("{\"name\":\"\u{202e}bd-sredro\"}".into(), "invalid_request"),
        ("{\"name\":\"ordеrs\"}".into(), "invalid_request"),
        ("{\"name\":\"../../etc/passwd\"}".into(), "invalid_request"),
        ("{\"name\":\"..\"}".into(), "invalid_request"),
        ("{\"name\":\"a/b\"}".into(), "invalid_request"),
        ("{\"name\":\"a\\u0000b\"}".into(), "invalid_request"),
        (
            "{\"name\":\"ok\",\"password\":\"twelve chars\\u0000\"}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"password\":\"\\ud800\\ud800\\ud800\\ud800\\ud800\\ud800\"}".into(),
            "malformed_json",
        ),
        (
            "{\"name\":\"ok\",\"postgres_version\":\"../../../bin/sh\"}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"dns_label\":\"../x\"}".into(),
            "invalid_request",
        ),
        (
            "{\"name\":\"ok\",\"expose\":\"public\\u0000\"}".into(),
            "invalid_request",
        ),
    ];
    for (body, code) in &bodies {
        let reply = server
            .send(Method::POST, "/instances", Some(body), &[])
            .await?;
        let shown: String = body.chars().take(80).collect();
        assert!(
            reply.status.is_client_error(),
            "{shown} -> {} {}",
            reply.status,
            reply.text
        );
        assert_eq!(reply.error_code(), *code, "{shown} -> {}", reply.text);
    }
    let not_utf8 = reqwest::Client::new()
        .post(format!("{}/instances", server.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body(vec![b'{', 0xff, 0xfe, b'}'])
        .send()
        .await?;
    assert_eq!(not_utf8.status(), StatusCode::BAD_REQUEST);

    // Paths and queries: traversal, NUL, forged cursors, huge numbers.
    let cursor = |raw: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    };
    let not_found = [
        "/instances/..%2F..%2Fetc%2Fpasswd",
        "/instances/a%00b",
        "/instances/%E8%AE%A2%E5%8D%95",
        "/instances/%2e%2e/events",
        "/operations/op_%00",
        "/operations/..%2F..%2Fetc%2Fpasswd",
        "/operations/%F0%9F%90%98",
        "/instances/%FF",
        "/instances/%C0%AE%C0%AE/events",
        "/operations/%FF%FE",
    ];
    for path in not_found {
        let reply = server.get(path).await?;
        assert_eq!(
            reply.status,
            StatusCode::NOT_FOUND,
            "{path} -> {}",
            reply.text
        );
        assert_eq!(reply.error_code(), "not_found", "{path}");
    }
    // Raw request lines, which no client library would normalize (reqwest sends
    // `/instances/%2e%2e` as `/`, the web console's address).
    for target in [
        "/instances/../../etc/passwd",
        "/instances/..",
        "/instances/%2e%2e",
        "/instances/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/operations/../instances",
    ] {
        let status = raw_status(server.port()?, &format!("GET {target} HTTP/1.1")).await?;
        assert!(status == "400" || status == "404", "{target} -> {status}");
    }
    let nul_name = cursor(r#"["a\u0000b",1]"#);
    let far_past = cursor(r#"["-200000-01-01T00:00:00Z","op_x"]"#);
    let nul_id = cursor(r#"["2026-01-01T00:00:00Z","op_\u0000"]"#);
    let invalid: Vec<(String, &str)> = vec![
        ("/operations?instance=%00".into(), "instance"),
        ("/operations?instance=..%2F..".into(), "instance"),
        ("/operations?instance=%E8%AE%A2".into(), "instance"),
        ("/instances?limit=99999999999999999999999".into(), "limit"),
        ("/instances?limit=-9223372036854775808".into(), "limit"),
        ("/instances?limit=1e3".into(), "limit"),
        ("/operations?limit=%00".into(), "limit"),
        ("/instances?state=%00".into(), "state"),
        (format!("/instances?cursor={nul_name}"), "cursor"),
        (format!("/operations?cursor={far_past}"), "cursor"),
        (format!("/operations?cursor={nul_id}"), "cursor"),
        ("/instances?cursor=%FF%FE".into(), "cursor"),
    ];
    for (path, field) in &invalid {
        let reply = server.get(path).await?;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} -> {}",
            reply.text
        );
        assert_eq!(reply.error_field(), *field, "{path}");
    }

    // Sizes: body, headers, URL.
    let big_body = json!({"name": "big", "password": "p".repeat(65 * 1024)}).to_string();
    let reply = server
        .send(Method::POST, "/instances", Some(&big_body), &[])
        .await?;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    let big_header = "h".repeat(20 * 1024);
    let reply = server
        .send(
            Method::GET,
            "/instances",
            None,
            &[("x-filler", &big_header)],
        )
        .await?;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let many: Vec<(String, String)> = (0..80)
        .map(|i| (format!("x-filler-{i}"), "v".to_string()))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let reply = server.send(Method::GET, "/instances", None, &many).await?;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let long_path = format!("/instances/{}", "a".repeat(20 * 1024));
    let reply = server.get(&long_path).await?;
    assert!(reply.status.is_client_error(), "{}", reply.status);
    let idempotency = "k".repeat(300);
    let reply = server
        .send(
            Method::POST,
            "/instances",
            Some(r#"{"name":"idem"}"#),
            &[("idempotency-key", &idempotency)],
        )
        .await?;
    assert_eq!(reply.error_field(), "Idempotency-Key", "{}", reply.text);

    // A client that sends half a request head and stalls keeps nothing busy: the server still
    // answers others at once.
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", server.port()?)).await?;
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /instances HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let started = std::time::Instant::now();
    assert_eq!(server.get("/instances").await?.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(stalled);

    let log = server.log();
    assert!(!log.contains("panicked"), "a request made the server panic");
    assert!(!log.contains("internal error"), "a request got a 500");
    Ok(())
}

/// Sends `request_line` with the admin token over a raw connection; returns the status code.
async fn raw_status(port: u16, request_line: &str) -> Result<String, TestError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "{request_line}\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {ADMIN}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await??;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("no status line in {answer:?}"))?;
    Ok(status.to_string())
}

/// Every regular file under `root` (sockets, links and devices skipped).
fn files_under(root: &Path) -> Result<Vec<PathBuf>, TestError> {
    let mut files = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    Ok(files)
}

/// The non-comment lines of a PostgreSQL configuration file.
fn settings_lines(path: &Path) -> Result<Vec<String>, TestError> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect())
}

/// What PostgreSQL stores for the owner's password, read by the control plane's superuser once
/// the owner logged in with `password`.
async fn stored_password(
    workspace: &Workspace,
    port: u16,
    password: &str,
) -> Result<String, TestError> {
    connect_as_owner(port, password).await?;
    let client = workspace.connect_as_admin("secretive", port).await?;
    let row = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = 'postgres'",
            &[],
        )
        .await?;
    Ok(row.try_get(0)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_never_leaks() -> TestResult {
    let workspace = Workspace::new("security_the_password_never_leaks")?;
    let tokens = tokens_setting();
    let options = StartOptions {
        token: Some(ADMIN.to_string()),
        ..StartOptions::default()
    };
    let server = workspace
        .start_server_with("server.log", &[("TOYGRES_API_TOKENS", &tokens)], &options)
        .await?;
    let password = "Leak-Canary-7f3a9c21";
    let created = server
        .post(
            "/instances",
            &json!({"name": "secretive", "password": password}),
        )
        .await?;
    assert_eq!(
        created.body["password"], password,
        "the create response returns it once"
    );
    let create_id = operation_id(&created)?;
    assert_eq!(
        server.wait_operation(&create_id).await?["status"],
        "succeeded"
    );
    // A password reset: its answer returns the new password once, nothing else ever does.
    let reset_password = "Reset-Canary-4d1e8b55";
    let reset = server
        .post(
            "/instances/secretive/reset-password",
            &json!({"password": reset_password}),
        )
        .await?;
    assert_eq!(reset.body["password"], reset_password);
    let reset_id = operation_id(&reset)?;
    assert_eq!(
        server.wait_operation(&reset_id).await?["status"],
        "succeeded"
    );

    // Every API response but the create's.
    let mut responses = Vec::new();
    for path in [
        "/instances",
        "/instances?state=running",
        "/instances/secretive",
        "/instances/secretive/events",
        &format!("/operations/{create_id}"),
        &format!("/operations/{reset_id}"),
        "/operations",
        "/operations?instance=secretive",
        "/metrics",
        "/openapi.json",
        "/healthz",
        "/readyz",
    ] {
        let reply = server.get(path).await?;
        assert!(reply.status.is_success(), "{path}: {}", reply.text);
        responses.push((path.to_string(), reply.text));
    }
    let instance = server.get("/instances/secretive").await?.body;
    let port = u16::try_from(instance["port"].as_u64().ok_or("no port")?)?;
    assert_eq!(instance["host"], "127.0.0.1");

    // The instance: scram-sha-256 everywhere, 127.0.0.1 only, and only a SCRAM verifier.
    let data = workspace.instances_dir().join("secretive").join("data");
    let hba = settings_lines(&data.join("pg_hba.conf"))?;
    assert!(!hba.is_empty());
    for line in &hba {
        let method = line.split_whitespace().last().unwrap_or("");
        assert_eq!(method, "scram-sha-256", "pg_hba.conf: {line}");
    }
    let conf = settings_lines(&data.join("postgresql.conf"))?;
    let last = |name: &str| {
        conf.iter()
            .rfind(|line| line.starts_with(name))
            .map(|line| line.replace(' ', ""))
    };
    assert_eq!(
        last("listen_addresses").as_deref(),
        Some("listen_addresses='127.0.0.1'")
    );
    assert_eq!(
        last("password_encryption").as_deref(),
        Some("password_encryption='scram-sha-256'")
    );
    let verifier = stored_password(&workspace, port, reset_password).await?;
    assert!(
        verifier.starts_with("SCRAM-SHA-256$"),
        "not a SCRAM verifier"
    );
    let wrong = stored_password(&workspace, port, "not-the-password-1").await;
    assert!(wrong.is_err(), "a wrong password must be refused");
    let old = stored_password(&workspace, port, password).await;
    assert!(
        old.is_err(),
        "the password before the reset must be refused"
    );

    // Every file under the data dir: the control-plane database, the key, the instance's own
    // data dir and logs.
    let files = files_under(&workspace.data_dir())?;
    assert!(
        files.iter().any(|file| file.ends_with("pg_hba.conf"))
            && files.iter().any(|file| file.ends_with("secret.key")),
        "the scan must cover the instance and the control plane"
    );
    let mut scanned = 0usize;
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            // A file PostgreSQL removed between listing and reading.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(format!("{}: {error}", file.display()).into()),
        };
        scanned += bytes.len();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [password, reset_password, ADMIN, READER] {
            assert!(
                !text.contains(secret),
                "{} holds a secret in plaintext",
                file.display()
            );
        }
    }
    assert!(scanned > 10_000_000, "the scan must have read the clusters");

    // Command lines of every process.
    let ps = Command::new("ps").args(["-eo", "args"]).output()?;
    let processes = String::from_utf8_lossy(&ps.stdout);
    assert!(processes.contains("postgres"), "ps must list the instance");
    for secret in [password, reset_password, ADMIN, READER] {
        assert!(!processes.contains(secret), "a command line shows a secret");
    }

    // Every row of every table of the metadata and Duroxide schemas, as text.
    let pool = sqlx::PgPool::connect(&workspace.control_plane_url()).await?;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text FROM information_schema.tables \
         WHERE table_schema IN ('toygres', 'toygres_duroxide') AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&pool)
    .await?;
    assert!(
        tables
            .iter()
            .any(|(schema, table)| schema == "toygres_duroxide" && table == "history"),
        "{tables:?}"
    );
    assert!(
        tables
            .iter()
            .any(|(schema, table)| schema == "toygres" && table == "instances")
    );
    let mut dumped = 0;
    for (schema, table) in &tables {
        let dump: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM \"{schema}\".\"{table}\" t"
        ))
        .fetch_one(&pool)
        .await?;
        let dump = dump.unwrap_or_default();
        dumped += dump.len();
        for secret in [password, reset_password, ADMIN, READER] {
            assert!(
                !dump.contains(secret),
                "{schema}.{table} holds a secret in plaintext"
            );
        }
    }
    assert!(dumped > 1000, "the dump must have covered real rows");
    pool.close().await;

    // The delete's answers, then the log, at debug level, of the whole life of the instance.
    let deleted = server.delete("/instances/secretive").await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let delete_id = operation_id(&deleted)?;
    let done = server.wait_operation(&delete_id).await?;
    assert_eq!(done["status"], "succeeded", "{done}");
    responses.push(("DELETE /instances/secretive".into(), deleted.text));
    responses.push((format!("/operations/{delete_id}"), done.to_string()));
    for (path, text) in &responses {
        assert!(!text.contains(password), "{path} shows the password");
        assert!(
            !text.contains(reset_password),
            "{path} shows the new password"
        );
    }
    let log = server.log();
    assert!(
        log.contains("DEBUG"),
        "the log must be at debug level for this test to mean something"
    );
    for secret in [password, reset_password, ADMIN, READER] {
        assert!(!log.contains(secret), "the server log shows a secret");
    }
    Ok(())
}
