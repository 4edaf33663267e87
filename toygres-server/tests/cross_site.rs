//! Cross-site requests against the real binary: bodies of changes must be JSON (a web page can
//! send `text/plain` or a form anywhere without a CORS preflight), and a server without tokens
//! answers only requests addressed to loopback (DNS rebinding) from its own origin (cross-site
//! request forgery). With tokens, the bearer token stops both and only the JSON rule applies.
//! Custom `Host` headers, missing ones and odd framings go over raw TCP, byte for byte.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

const ADMIN: &str = "cross-site-admin-0123456789abcdef";

/// What a raw request got back.
#[derive(Debug)]
struct RawReply {
    status: u16,
    body: Value,
    text: String,
}

impl RawReply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

/// Sends `request` (everything up to the end of the head's last header line, without the
/// blank line) and then `body` to 127.0.0.1:`port` on a fresh connection.
async fn raw(port: u16, request: &str, body: &str) -> Result<RawReply, TestError> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let message = format!("{request}\r\nConnection: close\r\n\r\n{body}");
    stream.write_all(message.as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut answer),
    )
    .await??;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("no status line in {answer:?}"))?
        .parse()?;
    let text = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(RawReply { status, body, text })
}

/// A `GET path` with these header lines.
async fn raw_get(port: u16, path: &str, headers: &[&str]) -> Result<RawReply, TestError> {
    let mut request = format!("GET {path} HTTP/1.1");
    for header in headers {
        request.push_str("\r\n");
        request.push_str(header);
    }
    raw(port, &request, "").await
}

/// A `POST /instances` of `body` (with its `Content-Length`) and these header lines.
async fn raw_create(port: u16, headers: &[&str], body: &str) -> Result<RawReply, TestError> {
    let mut request = format!("POST /instances HTTP/1.1\r\nContent-Length: {}", body.len());
    for header in headers {
        request.push_str("\r\n");
        request.push_str(header);
    }
    raw(port, &request, body).await
}

/// Nothing was created: no instance, no operation.
async fn nothing_created(server: &Server) -> TestResult {
    let instances = server.get("/instances?state=deleted").await?;
    let live = server.get("/instances").await?;
    let operations = server.get("/operations").await?;
    for reply in [&instances, &live, &operations] {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["items"], json!([]), "{}", reply.text);
    }
    Ok(())
}

/// Deletes `name` and waits until the delete is final.
async fn delete_and_wait(server: &Server, name: &str) -> TestResult {
    let deleted = server.delete(&format!("/instances/{name}")).await?;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text);
    let id = deleted.body["operation"]["id"]
        .as_str()
        .ok_or("no operation id")?;
    let operation = server.wait_operation(id).await?;
    assert_eq!(operation["status"], "succeeded", "{operation}");
    Ok(())
}

fn assert_415(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{what}: {}",
        reply.text
    );
    assert_eq!(reply.error_code(), "unsupported_media_type", "{what}");
    let message = reply.body["error"]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("application/json"),
        "{what}: the message must say what to send: {message}"
    );
}

fn assert_forbidden(reply: &RawReply, what: &str, mentions: &[&str]) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text);
    assert_eq!(reply.code(), "forbidden", "{what}: {}", reply.text);
    for word in mentions {
        assert!(
            reply.message().contains(word),
            "{what}: the message must mention {word:?}: {}",
            reply.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_of_changes_must_be_json() -> TestResult {
    let workspace = Workspace::new("cross_site_bodies_must_be_json")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let port = server.port()?;
    let create = |name: &str| json!({"name": name}).to_string();

    // What a web page can send anywhere without a preflight: text/plain, forms, multipart.
    let refused = [
        ("text/plain", create("plain-text")),
        ("text/plain;charset=UTF-8", create("plain-text")),
        (
            "application/x-www-form-urlencoded",
            "name=form-body".to_string(),
        ),
        (
            "multipart/form-data; boundary=x",
            "--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nmultipart\r\n--x--\r\n"
                .to_string(),
        ),
        // Near misses: only application/json itself (with parameters) is JSON here.
        ("text/json", create("text-json")),
        ("application/jsonp", create("jsonp")),
        ("application/json-seq", create("json-seq")),
        ("application/merge-patch+json", create("merge-patch")),
        ("json", create("bare-json")),
        ("", create("empty-type")),
    ];
    for (content_type, body) in &refused {
        let reply = server
            .send_typed(Method::POST, "/instances", body, Some(content_type), &[])
            .await?;
        assert_415(&reply, content_type);
    }
    // A body without any Content-Type, with a length or chunked.
    let reply = server
        .send_typed(Method::POST, "/instances", &create("no-type"), None, &[])
        .await?;
    assert_415(&reply, "no Content-Type");
    let chunk = create("chunked");
    let chunked = raw(
        port,
        "POST /instances HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked",
        &format!("{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len()),
    )
    .await?;
    assert_eq!(chunked.status, 415, "chunked: {}", chunked.text);
    assert_eq!(chunked.code(), "unsupported_media_type");
    // Two Content-Type headers, one of them JSON: which one a reader believes is a guess.
    let twice = raw_create(
        port,
        &[
            "Host: 127.0.0.1",
            "Content-Type: application/json",
            "Content-Type: text/plain",
        ],
        &create("two-types"),
    )
    .await?;
    assert_eq!(twice.status, 415, "two types: {}", twice.text);
    // A form with no fields has an empty body but still says it is a form: a change without a
    // body (DELETE here) must not accept it either.
    for content_type in ["application/x-www-form-urlencoded", "text/plain"] {
        let reply = server
            .send_typed(
                Method::DELETE,
                "/instances/empty-form",
                "",
                Some(content_type),
                &[],
            )
            .await?;
        assert_415(&reply, &format!("empty DELETE as {content_type}"));
    }
    nothing_created(&server).await?;
    assert!(
        server.log().contains("request refused"),
        "refusals are logged"
    );

    // JSON with parameters and any case is JSON; a DELETE without body or type stays fine.
    let accepted = server
        .send_typed(
            Method::POST,
            "/instances",
            &create("charset-json"),
            Some("Application/JSON; charset=utf-8"),
            &[],
        )
        .await?;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    delete_and_wait(&server, "charset-json").await?;
    // Content-Length: 0 and no type on a change: no body, nothing to refuse (404: no such name).
    let empty = raw(
        port,
        "DELETE /instances/never-made HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0",
        "",
    )
    .await?;
    assert_eq!(empty.status, 404, "{}", empty.text);
    // Reads are not concerned: a GET with a stray Content-Type is answered.
    let read = raw_get(
        port,
        "/instances",
        &["Host: 127.0.0.1", "Content-Type: text/plain"],
    )
    .await?;
    assert_eq!(read.status, 200, "{}", read.text);
    // Unknown routes keep their 404. On a known route the body rule comes before the method
    // check: a JSON body to a method the route lacks gets its 405, a text one its 415.
    let unknown = server
        .send_typed(Method::POST, "/nowhere", "x", Some("text/plain"), &[])
        .await?;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let wrong_method = server
        .send_typed(
            Method::PUT,
            "/instances",
            "{}",
            Some("application/json"),
            &[],
        )
        .await?;
    assert_eq!(
        wrong_method.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        wrong_method.text
    );
    let wrong_both = server
        .send_typed(Method::PUT, "/instances", "x", Some("text/plain"), &[])
        .await?;
    assert_415(&wrong_both, "PUT /instances as text/plain");

    // The OpenAPI description says so for every change.
    let openapi = server.get("/openapi.json").await?;
    for (path, method) in [("/instances", "post"), ("/instances/{name}", "delete")] {
        let responses = &openapi.body["paths"][path][method]["responses"];
        assert!(
            responses["415"].is_object(),
            "{method} {path} must list 415: {responses}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_requests_addressed_to_loopback_are_served() -> TestResult {
    let workspace = Workspace::new("cross_site_loopback_hosts")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let port = server.port()?;

    // DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1.
    let rebound = raw_get(port, "/instances", &["Host: evil.example"]).await?;
    assert_forbidden(
        &rebound,
        "Host: evil.example",
        &[
            "'evil.example'",
            "loopback",
            "DNS rebinding",
            "TOYGRES_API_TOKENS",
        ],
    );
    let foreign_hosts = [
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("localhost.evil.example:{port}"),
        format!("app.localhost:{port}"),
        format!("0.0.0.0:{port}"),
        format!("10.0.0.1:{port}"),
        format!("[::ffff:10.0.0.1]:{port}"),
        format!("[fe80::1]:{port}"),
        format!("127.1:{port}"),
        format!("127.0.0.1:{port}@evil.example"),
        "127.0.0.1:port".to_string(),
        String::new(),
    ];
    for host in &foreign_hosts {
        let reply = raw_get(port, "/instances", &[&format!("Host: {host}")]).await?;
        assert_forbidden(&reply, &format!("Host: {host}"), &["loopback"]);
    }
    let missing = raw_get(port, "/instances", &[]).await?;
    assert_forbidden(&missing, "no Host", &["Host"]);
    let twice = raw_get(
        port,
        "/instances",
        &[&format!("Host: 127.0.0.1:{port}"), "Host: evil.example"],
    )
    .await?;
    assert_forbidden(&twice, "two Host headers", &["Host"]);
    // The absolute form names the host in the request line: it counts as much as Host.
    let absolute = raw_get(
        port,
        &format!("http://evil.example:{port}/instances"),
        &[&format!("Host: 127.0.0.1:{port}")],
    )
    .await?;
    assert_forbidden(&absolute, "absolute-form target", &["evil.example"]);
    // Every route: health, readiness and unknown routes too; changes before anything else.
    for path in [
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/metrics",
        "/nowhere",
    ] {
        let reply = raw_get(port, path, &["Host: evil.example"]).await?;
        assert_forbidden(&reply, path, &["evil.example"]);
    }
    let create = raw_create(
        port,
        &["Host: evil.example", "Content-Type: application/json"],
        r#"{"name":"rebound"}"#,
    )
    .await?;
    assert_forbidden(&create, "create with Host: evil.example", &["evil.example"]);
    nothing_created(&server).await?;

    // Loopback names and addresses, with or without a port. Another port is accepted too: a
    // forwarder (ssh -L, kubectl port-forward, docker -p) makes clients address its port.
    let loopback_hosts = [
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        "localhost".to_string(),
        format!("127.0.0.1:{port}"),
        "127.0.0.1".to_string(),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
        "[::1]".to_string(),
        format!("[::ffff:127.0.0.1]:{port}"),
        "127.0.0.1:1".to_string(),
    ];
    for host in &loopback_hosts {
        let reply = raw_get(port, "/instances", &[&format!("Host: {host}")]).await?;
        assert_eq!(reply.status, 200, "Host: {host}: {}", reply.text);
    }

    let log = server.log();
    assert!(
        log.contains("request refused") && log.contains("evil.example"),
        "refusals are logged with their reason"
    );
    let metrics = server.get("/metrics").await?;
    assert!(
        metrics
            .text
            .lines()
            .any(|line| line.starts_with("toygres_http_cross_site_refusals_total{reason=\"host\"}")),
        "refusals are counted: {}",
        metrics.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_the_servers_own_origin_is_served() -> TestResult {
    let workspace = Workspace::new("cross_site_own_origin")?;
    let server = workspace.start_server("server.log", &[]).await?;
    let port = server.port()?;
    let host = format!("Host: 127.0.0.1:{port}");

    // The issue's request: a page on evil.example posts text/plain to the API.
    let forged = raw_create(
        port,
        &[
            &host,
            "Origin: http://evil.example",
            "Content-Type: text/plain",
        ],
        r#"{"name":"forged"}"#,
    )
    .await?;
    assert_forbidden(
        &forged,
        "the forged create",
        &["'http://evil.example'", "Origin", "cross-site"],
    );
    let foreign_origins = [
        "null".to_string(),
        "http://evil.example".to_string(),
        format!("http://evil.example:{port}"),
        // Another server on this machine (another port) is another origin.
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://localhost:{}", port.wrapping_add(1)),
        "http://127.0.0.1".to_string(),
        // The same address over another scheme is another origin.
        format!("https://127.0.0.1:{port}"),
        format!("file://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/instances"),
        format!("http://127.0.0.1:{port}.evil.example"),
        format!("http://10.0.0.1:{port}"),
        "not an origin".to_string(),
    ];
    for origin in &foreign_origins {
        for reply in [
            raw_create(
                port,
                &[
                    &host,
                    &format!("Origin: {origin}"),
                    "Content-Type: application/json",
                ],
                r#"{"name":"cross-site"}"#,
            )
            .await?,
            raw_get(port, "/instances", &[&host, &format!("Origin: {origin}")]).await?,
        ] {
            assert_forbidden(&reply, &format!("Origin: {origin}"), &["Origin"]);
        }
    }
    let null = raw_get(port, "/instances", &[&host, "Origin: null"]).await?;
    assert_forbidden(&null, "Origin: null", &["'null'"]);
    let twice = raw_get(
        port,
        "/instances",
        &[
            &host,
            &format!("Origin: http://127.0.0.1:{port}"),
            "Origin: http://evil.example",
        ],
    )
    .await?;
    assert_forbidden(&twice, "two Origin headers", &["Origin"]);
    nothing_created(&server).await?;

    // The server's own origin: its scheme, a loopback host and the port the request addressed.
    for (host, origin) in [
        (
            format!("127.0.0.1:{port}"),
            format!("http://127.0.0.1:{port}"),
        ),
        (
            format!("localhost:{port}"),
            format!("http://localhost:{port}"),
        ),
        (
            format!("localhost:{port}"),
            format!("HTTP://LOCALHOST:{port}"),
        ),
        (
            format!("127.0.0.1:{port}"),
            format!("http://localhost:{port}"),
        ),
        (format!("[::1]:{port}"), format!("http://[::1]:{port}")),
        ("localhost".to_string(), "http://localhost".to_string()),
        ("localhost:80".to_string(), "http://localhost".to_string()),
    ] {
        let reply = raw_get(
            port,
            "/instances",
            &[&format!("Host: {host}"), &format!("Origin: {origin}")],
        )
        .await?;
        assert_eq!(
            reply.status, 200,
            "Host {host}, Origin {origin}: {}",
            reply.text
        );
    }
    let own = server
        .send(
            Method::POST,
            "/instances",
            Some(&json!({"name": "same-origin"}).to_string()),
            &[("origin", &format!("http://127.0.0.1:{port}"))],
        )
        .await?;
    assert_eq!(own.status, StatusCode::ACCEPTED, "{}", own.text);
    delete_and_wait(&server, "same-origin").await?;

    let metrics = server.get("/metrics").await?;
    assert!(
        metrics
            .text
            .lines()
            .any(|line| line
                .starts_with("toygres_http_cross_site_refusals_total{reason=\"origin\"}")),
        "refusals are counted: {}",
        metrics.text
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tokens_the_token_decides_and_bodies_must_still_be_json() -> TestResult {
    let workspace = Workspace::new("cross_site_with_tokens")?;
    let tokens = format!("admin:{ADMIN}");
    let options = StartOptions {
        token: Some(ADMIN.to_string()),
        ..StartOptions::default()
    };
    let server = workspace
        .start_server_with("server.log", &[("TOYGRES_API_TOKENS", &tokens)], &options)
        .await?;
    let port = server.port()?;
    let bearer = format!("Authorization: Bearer {ADMIN}");

    // A foreign name or origin with a valid token: served (the token is what a page lacks).
    let rebound = raw_get(port, "/instances", &["Host: evil.example", &bearer]).await?;
    assert_eq!(rebound.status, 200, "{}", rebound.text);
    let cross = raw_get(
        port,
        "/instances",
        &["Host: 127.0.0.1", "Origin: http://evil.example", &bearer],
    )
    .await?;
    assert_eq!(cross.status, 200, "{}", cross.text);
    // Without the token, the forged request is refused before its body is looked at.
    let forged = raw_create(
        port,
        &[
            "Host: evil.example",
            "Origin: http://evil.example",
            "Content-Type: text/plain",
        ],
        r#"{"name":"forged"}"#,
    )
    .await?;
    assert_eq!(forged.status, 401, "{}", forged.text);
    // With it, the body must still be JSON.
    let plain = server
        .send_typed(
            Method::POST,
            "/instances",
            r#"{"name":"plain-text"}"#,
            Some("text/plain"),
            &[],
        )
        .await?;
    assert_415(&plain, "text/plain with a token");
    nothing_created(&server).await?;
    Ok(())
}
