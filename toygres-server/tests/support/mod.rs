//! Running the real `toygres` binary for end-to-end tests, as a user would: on a free port, with
//! a temporary data dir, driven over HTTP. Everything it starts is stopped when the test ends.

#![allow(dead_code)]

pub mod azurite;
pub mod browser;
pub mod plane;
pub mod process;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use toygres_activities::backend::Backend;
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::embedded::EmbeddedPostgres;

/// Errors in tests.
pub type TestError = Box<dyn std::error::Error + Send + Sync>;
/// Results of tests.
pub type TestResult = Result<(), TestError>;

/// How long an operation may take before a test gives up.
pub const OPERATION_LIMIT: Duration = Duration::from_secs(120);

/// A data dir shared by successive server processes of one test.
pub struct Workspace {
    dir: tempfile::TempDir,
    ports: String,
}

impl Workspace {
    /// A new empty data dir; instance ports come from a range only this test uses.
    pub fn new(test: &str) -> Result<Self, TestError> {
        let dir = toygres_activities::testkit::shared_tempdir()?;
        let range = toygres_activities::testkit::port_range_for(test, 20);
        Ok(Self {
            dir,
            ports: format!("{}-{}", range.start(), range.end()),
        })
    }

    /// The server's data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The first `count` ports of the range this test's instances may use, as `FIRST-LAST`.
    pub fn first_ports(&self, count: u16) -> Result<String, TestError> {
        let (first, _) = self.ports.split_once('-').ok_or("no port range")?;
        let first: u16 = first.parse()?;
        Ok(format!("{first}-{}", first + count.max(1) - 1))
    }

    /// The root of the local instances.
    pub fn instances_dir(&self) -> PathBuf {
        self.data_dir().join("instances")
    }

    /// The URL of the embedded control-plane database.
    pub fn control_plane_url(&self) -> String {
        EmbeddedPostgres::url_in(&self.data_dir().join("controlplane"), "postgres")
    }

    /// Starts `toygres serve` on a free port of 127.0.0.1 and waits until `/readyz` answers 200.
    pub async fn start_server(
        &self,
        log_name: &str,
        extra_env: &[(&str, &str)],
    ) -> Result<Server, TestError> {
        self.start_server_with(log_name, extra_env, &StartOptions::default())
            .await
    }

    /// Starts `toygres serve` as `options` say and waits until `/readyz` answers 200.
    pub async fn start_server_with(
        &self,
        log_name: &str,
        extra_env: &[(&str, &str)],
        options: &StartOptions,
    ) -> Result<Server, TestError> {
        let port = free_port()?;
        let log_path = self.dir.path().join(log_name);
        let log = std::fs::File::create(&log_path)?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_toygres"));
        command
            .arg("serve")
            .env_remove("DATABASE_URL")
            .env_remove("TOYGRES_SECRET_KEY")
            .env_remove("TOYGRES_API_TOKENS")
            .env_remove("TOYGRES_TLS_CERT")
            .env_remove("TOYGRES_TLS_KEY")
            .env("TOYGRES_LISTEN", format!("{}:{port}", options.listen_host))
            .env("TOYGRES_DATA_DIR", self.data_dir())
            .env("TOYGRES_PORT_RANGE", &self.ports)
            .env("TOYGRES_RECONCILE_INTERVAL_SECS", "2")
            // Backups are on (the default: WAL archived, flushed at stops and deletes), but no
            // backup is scheduled unless a test asks: one would hold the instance meanwhile.
            .env("TOYGRES_BACKUP_CHECK_INTERVAL_SECS", "3600")
            .env("RUST_LOG", "debug,hyper=info,h2=info,tower=info")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for (key, value) in extra_env {
            command.env(key, value);
        }
        let mut http = Client::builder();
        let scheme = match &options.trusted_certificate {
            Some(pem) => {
                http = http.tls_certs_only([reqwest::Certificate::from_pem(pem)?]);
                "https"
            }
            None => "http",
        };
        let child = command.spawn()?;
        let server = Server {
            child: Some(child),
            base: format!("{scheme}://127.0.0.1:{port}"),
            http: http.build()?,
            log_path,
            token: options.token.clone(),
        };
        server
            .wait_ready_at(&options.ready_path, Duration::from_secs(90))
            .await?;
        Ok(server)
    }
}

/// How to start a server beyond the defaults (127.0.0.1, plain HTTP, no token sent).
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// The address part of `TOYGRES_LISTEN` (the tests still connect to 127.0.0.1).
    pub listen_host: String,
    /// Connect over https, trusting this PEM certificate (the server's TLS settings go in the
    /// environment).
    pub trusted_certificate: Option<Vec<u8>>,
    /// Sent as a bearer token with every request that has no `Authorization` of its own.
    pub token: Option<String>,
    /// The path that answers 200 once the server is up (`/readyz`; `/healthz` for a server
    /// expected not to be ready).
    pub ready_path: String,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            listen_host: "127.0.0.1".to_string(),
            trusted_certificate: None,
            token: None,
            ready_path: "/readyz".to_string(),
        }
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Stop every instance and the embedded database this test started.
        let instances = self.instances_dir();
        let controlplane = self.data_dir().join("controlplane");
        block_on_own_thread(async move {
            if instances.exists()
                && let Ok(backend) = LocalBackend::new(LocalConfig {
                    root: instances,
                    bin_dir: None,
                    ports: 1..=1,
                })
            {
                delete_all(&backend).await;
                let _ = backend.drain_pool().await;
            }
            let _ = EmbeddedPostgres::stop_in(&controlplane, None).await;
        });
    }
}

/// Runs `work` to its end on a thread and runtime of its own, so that `Drop` can wait for
/// async cleanup even inside a test's runtime.
pub fn block_on_own_thread(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let _ = std::thread::spawn(move || {
        if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            runtime.block_on(work);
        }
    })
    .join();
}

/// Deletes every instance of `backend`, ignoring failures (for cleanup).
pub async fn delete_all(backend: &LocalBackend) {
    for owned in backend.list_owned().await.unwrap_or_default() {
        if let Some(uid) = &owned.uid {
            let _ = backend.delete(owned.instance(), uid).await;
        }
    }
}

/// A running `toygres serve` process.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    http: Client,
    /// Where its stdout and stderr go.
    pub log_path: PathBuf,
    /// The bearer token sent by default.
    token: Option<String>,
}

/// A response: status, headers and JSON body.
#[derive(Debug)]
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body as JSON (`Null` when empty or not JSON).
    pub body: Value,
    /// Body as text.
    pub text: String,
}

impl Reply {
    /// The `error.code` of an error body.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The `error.field` of an error body.
    pub fn error_field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }
}

impl Server {
    /// Sends a request with an optional raw body and headers, and the default token unless
    /// `headers` has an `Authorization`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, TestError> {
        let content_type = body.map(|_| "application/json");
        self.send_as(
            method,
            path,
            body,
            content_type,
            headers,
            self.token.as_deref(),
        )
        .await
    }

    /// Sends `body` with the `Content-Type` given (none when `None`), the default token and
    /// `headers`.
    pub async fn send_typed(
        &self,
        method: Method,
        path: &str,
        body: &str,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, TestError> {
        self.send_as(
            method,
            path,
            Some(body),
            content_type,
            headers,
            self.token.as_deref(),
        )
        .await
    }

    /// Sends a request without the default token (only the `headers` given).
    pub async fn send_anonymous(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, TestError> {
        let content_type = body.map(|_| "application/json");
        self.send_as(method, path, body, content_type, headers, None)
            .await
    }

    /// The port the server listens on.
    pub fn port(&self) -> Result<u16, TestError> {
        let port = self
            .base
            .rsplit(':')
            .next()
            .ok_or("no port in the base URL")?;
        Ok(port.parse()?)
    }

    async fn send_as(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<Reply, TestError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let has_authorization = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let Some(token) = token
            && !has_authorization
        {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            headers,
            body,
            text,
        })
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Result<Reply, TestError> {
        self.send(Method::GET, path, None, &[]).await
    }

    /// POST `body` (JSON) to `path`.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, TestError> {
        self.send(Method::POST, path, Some(&body.to_string()), &[])
            .await
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> Result<Reply, TestError> {
        self.send(Method::DELETE, path, None, &[]).await
    }

    /// PATCH `body` (JSON) to `path`.
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Reply, TestError> {
        self.send(Method::PATCH, path, Some(&body.to_string()), &[])
            .await
    }

    /// POST to `path` with no body (the actions: stop, start, restart).
    pub async fn post_empty(&self, path: &str) -> Result<Reply, TestError> {
        self.send(Method::POST, path, None, &[]).await
    }

    /// Polls `/operations/{id}` until it is terminal, and returns it.
    pub async fn wait_operation(&self, id: &str) -> Result<Value, TestError> {
        let deadline = tokio::time::Instant::now() + OPERATION_LIMIT;
        loop {
            let reply = self.get(&format!("/operations/{id}")).await?;
            if reply.status != StatusCode::OK {
                return Err(
                    format!("GET /operations/{id}: {} {}", reply.status, reply.text).into(),
                );
            }
            let status = reply.body["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if ["succeeded", "failed", "canceled"].contains(&status.as_str()) {
                return Ok(reply.body);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(
                    format!("operation {id} still {status} after {OPERATION_LIMIT:?}").into(),
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `/instances/{name}` until `check` holds (at most `limit`), and returns it.
    pub async fn wait_instance(
        &self,
        name: &str,
        limit: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value, TestError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let instance = self.get(&format!("/instances/{name}")).await?.body;
            if check(&instance) {
                return Ok(instance);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{name} never reached the expected state: {instance}").into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Polls until `/readyz` answers 200, failing early when the process exits.
    pub async fn wait_ready(&self, limit: Duration) -> TestResult {
        self.wait_ready_at("/readyz", limit).await
    }

    /// Polls until `path` answers 200, failing early when the process exits.
    pub async fn wait_ready_at(&self, path: &str, limit: Duration) -> TestResult {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Ok(reply) = self.get(path).await
                && reply.status == StatusCode::OK
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("server not ready; log:\n{}", self.log()).into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// SIGKILL: the process dies at once, mid-whatever.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait for a graceful exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        // SAFETY: kill with a pid we spawned and still own (not yet reaped).
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return false;
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP port free on 127.0.0.1 right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Whether something listens on 127.0.0.1:`port`.
pub fn port_is_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
        .is_ok()
}

/// Runs `sql` with the `psql` client on the instance on 127.0.0.1:`port` as `user` with
/// `password` (database `postgres`, unaligned, tuples only); its output, or its error.
pub fn psql(port: u16, user: &str, password: &str, sql: &str) -> Result<String, String> {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            user,
            "-d",
            "postgres",
        ])
        .args(["-v", "ON_ERROR_STOP=1", "-X", "-A", "-t", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("cannot run psql (install postgresql-client): {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

/// Runs `SELECT 40 + 2` on an instance with a password.
pub async fn query_with_password(port: u16, password: &str) -> Result<i32, tokio_postgres::Error> {
    let client = connect_as_owner(port, password).await?;
    client.query_one("SELECT 40 + 2", &[]).await?.try_get(0)
}

/// Connects to the instance on 127.0.0.1:`port` as `postgres` with `password`.
pub async fn connect_as_owner(
    port: u16,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    connect_as(port, "postgres", "postgres", password).await
}

/// Connects to database `database` of the instance on `port` as `user`.
pub async fn connect_as(
    port: u16,
    user: &str,
    database: &str,
    password: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(user)
        .dbname(database)
        .password(password)
        .connect_timeout(Duration::from_secs(5))
        .connect(tokio_postgres::NoTls)
        .await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Workspace {
    /// The password of a control-plane role (`sealed_admin_password` or
    /// `sealed_monitor_password`) of the live instance `name`, opened with the server's key file,
    /// as only the control plane itself could.
    pub async fn control_plane_password(
        &self,
        name: &str,
        column: &str,
    ) -> Result<String, TestError> {
        let key = toygres_activities::seal::SecretKey::load_or_generate(
            &self.data_dir().join("secret.key"),
        )?;
        let pool = sqlx::PgPool::connect(&self.control_plane_url()).await?;
        let sealed: String = sqlx::query_scalar(&format!(
            "SELECT {column} FROM toygres.instances WHERE name = $1 AND state <> 'deleted'"
        ))
        .bind(name)
        .fetch_one(&pool)
        .await?;
        pool.close().await;
        Ok(key.open(&toygres_activities::seal::SealedSecret::from_stored(sealed))?)
    }

    /// A superuser session on the live instance `name` (on `port`), as the control plane's
    /// `toygres_admin`.
    pub async fn connect_as_admin(
        &self,
        name: &str,
        port: u16,
    ) -> Result<tokio_postgres::Client, TestError> {
        let password = self
            .control_plane_password(name, "sealed_admin_password")
            .await?;
        Ok(connect_as(port, "toygres_admin", "postgres", &password).await?)
    }
}

/// The folders under `root` (instance dirs).
pub fn subdirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                // The backend's own folders (`.locks`) are not instances.
                .filter(|e| e.path().is_dir() && !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}
