//! For tests (feature `testkit`): a Kubernetes API server on a real TCP port, so the backend
//! (or the `toygres` binary, through a kubeconfig) talks to it over HTTP like to a cluster.
//!
//! - `pods/<pod>/portforward` WebSocket upgrades are served the way the kubelet serves them
//!   (subprotocol `v4.channel.k8s.io`: a data and an error channel per port, each opened by a
//!   frame carrying the port) and bridged to a TCP address a [`PortMap`] chooses, usually a
//!   local PostgreSQL standing in for the pod.
//! - `SelfSubjectAccessReview`s are allowed: the in-memory API has no authorizer (the requests
//!   are recorded with their RBAC attributes, for tests to check against a Role).
//! - `GET /api/v1/namespaces/<name>` answers for the namespaces the server was started with
//!   (404 for others): the in-memory API does not serve Namespace paths.
//! - Every other request is handed to an in-memory API (kube-fake-client's [`Client`]).
//! - Every request is recorded, with the RBAC attributes a real API server would check.

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use kube::Client;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The WebSocket subprotocol of pod port-forwards.
pub(crate) const PORT_FORWARD_PROTOCOL: &str = "v4.channel.k8s.io";

/// Where a forward to `(namespace, pod, port)` goes, or the status the API server answers
/// instead (404 when the pod does not exist, 403 to play a Role without `pods/portforward`).
pub type PortMap = Arc<
    dyn Fn(
            String,
            String,
            u16,
        ) -> Pin<Box<dyn Future<Output = Result<SocketAddr, StatusCode>> + Send>>
        + Send
        + Sync,
>;

/// One request the server received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// Whether it asked for a WebSocket upgrade.
    pub upgrade: bool,
}

/// What RBAC checks for a request: `verb` on `resource` (with `/subresource`) of `group`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    /// The API group (`""` for the core group).
    pub group: String,
    /// The resource, with `/subresource` when there is one (`pods/portforward`).
    pub resource: String,
    /// The RBAC verb.
    pub verb: String,
}

impl RecordedRequest {
    /// The accesses an API server authorizes for this request. A WebSocket upgrade of a
    /// subresource (port-forward, exec) is a GET that newer API servers also authorize as
    /// `create`, so it needs both.
    pub fn accesses(&self) -> Vec<Access> {
        let segments: Vec<&str> = self.path.trim_matches('/').split('/').collect();
        let (group, rest) = match segments.as_slice() {
            ["api", _version, rest @ ..] => ("", rest),
            ["apis", group, _version, rest @ ..] => (*group, rest),
            _ => return Vec::new(),
        };
        let rest = match rest {
            ["namespaces", _namespace, rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        let (resource, named) = match rest {
            [resource] => (resource.to_string(), false),
            [resource, _name] => (resource.to_string(), true),
            [resource, _name, subresource] => (format!("{resource}/{subresource}"), true),
            _ => return Vec::new(),
        };
        let watching = self
            .query
            .as_deref()
            .is_some_and(|query| query.split('&').any(|pair| pair == "watch=true"));
        let verbs: &[&str] = match (self.method.as_str(), named) {
            ("GET", _) if self.upgrade => &["get", "create"],
            ("GET", _) if watching => &["watch"],
            ("GET", true) => &["get"],
            ("GET", false) => &["list"],
            ("POST", _) => &["create"],
            ("PUT", _) => &["update"],
            ("PATCH", _) => &["patch"],
            ("DELETE", true) => &["delete"],
            ("DELETE", false) => &["deletecollection"],
            _ => &[],
        };
        verbs
            .iter()
            .map(|verb| Access {
                group: group.to_string(),
                resource: resource.clone(),
                verb: (*verb).to_string(),
            })
            .collect()
    }
}

/// The running server; stops when dropped.
#[derive(Debug)]
pub struct TestApiServer {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct State {
    api: Client,
    ports: PortMap,
    namespaces: Arc<Vec<String>>,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
}

impl TestApiServer {
    /// Listens on a free port of 127.0.0.1, serving `api`, forwarding ports as `ports` says,
    /// with the namespaces `namespaces`.
    pub async fn start(api: Client, ports: PortMap, namespaces: &[&str]) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = State {
            api,
            ports,
            namespaces: Arc::new(namespaces.iter().map(|ns| ns.to_string()).collect()),
            requests: requests.clone(),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(Self {
            address,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// A client that talks to this server over HTTP, with `namespace` as its default.
    pub fn client(&self, namespace: &str) -> Result<Client, kube::Error> {
        crate::backend::kubernetes::install_crypto_provider();
        let url = self
            .url()
            .parse()
            .map_err(|error: http::uri::InvalidUri| kube::Error::Service(error.into()))?;
        let mut config = kube::Config::new(url);
        config.default_namespace = namespace.to_string();
        Client::try_from(config)
    }

    /// A kubeconfig (YAML) whose current context is this server and `namespace`.
    pub fn kubeconfig(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n  - name: test\n    cluster:\n      \
             server: {}\ncontexts:\n  - name: test\n    context:\n      cluster: test\n      \
             user: test\n      namespace: {namespace}\ncurrent-context: test\nusers:\n  - name: \
             test\n    user: {{}}\n",
            self.url()
        )
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .map(|requests| requests.clone())
            .unwrap_or_default()
    }
}

async fn serve(state: State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_string(),
        query: request.uri().query().map(str::to_string),
        upgrade,
    };
    if let Ok(mut requests) = state.requests.lock() {
        requests.push(recorded.clone());
    }
    if upgrade && recorded.path.ends_with("/portforward") && request.method() == Method::GET {
        return port_forward(&state, &recorded, request).await;
    }
    if request.method() == Method::POST && recorded.path.ends_with("/selfsubjectaccessreviews") {
        return allow_review(request).await;
    }
    if request.method() == Method::GET
        && let ["api", "v1", "namespaces", name] = recorded
            .path
            .trim_matches('/')
            .split('/')
            .collect::<Vec<_>>()
            .as_slice()
    {
        return namespace(&state, name);
    }
    proxy(&state.api, request).await
}

/// Namespace `name` if the server has it, else a 404.
fn namespace(state: &State, name: &str) -> Response<Full<Bytes>> {
    if !state.namespaces.iter().any(|known| known == name) {
        return status(
            StatusCode::NOT_FOUND,
            &format!("namespaces \"{name}\" not found"),
        );
    }
    let body = serde_json::json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "status": {"phase": "Active"},
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Answers a `SelfSubjectAccessReview` with `allowed: true`.
async fn allow_review(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return status(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let mut review: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(review) => review,
        Err(error) => return status(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    review["status"] = serde_json::json!({"allowed": true});
    let mut response = Response::new(Full::new(Bytes::from(review.to_string())));
    *response.status_mut() = StatusCode::CREATED;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Hands the request to the in-memory API.
async fn proxy(api: &Client, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => return status(StatusCode::BAD_REQUEST, &error.to_string()),
    };
    let request = Request::from_parts(parts, kube::client::Body::from(body.to_vec()));
    let response = match api.send(request).await {
        Ok(response) => response,
        Err(error) => return status(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    };
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Response::from_parts(parts, Full::new(collected.to_bytes())),
        Err(error) => status(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// A Kubernetes `Status` answer.
fn status(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code.as_u16(),
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Accepts the WebSocket and bridges its one port to the address the port map gives.
async fn port_forward(
    state: &State,
    recorded: &RecordedRequest,
    mut request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let segments: Vec<&str> = recorded.path.trim_matches('/').split('/').collect();
    let [
        "api",
        "v1",
        "namespaces",
        namespace,
        "pods",
        pod,
        "portforward",
    ] = segments.as_slice()
    else {
        return status(StatusCode::NOT_FOUND, "not a pod port-forward");
    };
    let ports: Vec<u16> = recorded
        .query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.strip_prefix("ports="))
        .flat_map(|list| list.split("%2C").map(str::to_string).collect::<Vec<_>>())
        .filter_map(|port| port.parse().ok())
        .collect();
    let [port] = ports.as_slice() else {
        return status(StatusCode::BAD_REQUEST, "exactly one port is served");
    };
    let offered = request
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !offered
        .split(',')
        .any(|protocol| protocol.trim() == PORT_FORWARD_PROTOCOL)
    {
        return status(StatusCode::BAD_REQUEST, "v4.channel.k8s.io is required");
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key");
    };
    let target = match (state.ports)(namespace.to_string(), pod.to_string(), *port).await {
        Ok(target) => target,
        Err(code) => {
            return status(code, &format!("port-forward to pod {pod} refused ({code})"));
        }
    };
    let upgrading = hyper::upgrade::on(&mut request);
    let port = *port;
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrading.await {
            let socket =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            bridge(socket, port, target).await;
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PORT_FORWARD_PROTOCOL),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Channel 0 carries the port's data, channel 1 its errors; each opens with the port number.
pub(crate) async fn bridge<S>(mut socket: WebSocketStream<S>, port: u16, target: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let [low, high] = port.to_le_bytes();
    for channel in [0u8, 1] {
        if socket
            .send(Message::binary(vec![channel, low, high]))
            .await
            .is_err()
        {
            return;
        }
    }
    let mut tcp = match TcpStream::connect(target).await {
        Ok(tcp) => tcp,
        Err(error) => {
            let mut frame = vec![1u8];
            frame.extend_from_slice(
                format!("error forwarding port {port}: dial {target}: {error}").as_bytes(),
            );
            let _ = socket.send(Message::binary(frame)).await;
            // Leave the closing to the client, which has the error now. (Closing at once
            // races it: kube-rs may then fail its next write on the closed socket and report
            // only "connection closed", dropping the error frame it had not yet handled.)
            let client_closed = async { while let Some(Ok(_)) = socket.next().await {} };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), client_closed).await;
            let _ = socket.close(None).await;
            return;
        }
    };
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Binary(frame))) => {
                    if let Some((0, data)) = frame.split_first()
                        && tcp.write_all(data).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            read = tcp.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    let mut frame = Vec::with_capacity(count + 1);
                    frame.push(0u8);
                    frame.extend_from_slice(&buffer[..count]);
                    if socket.send(Message::binary(frame)).await.is_err() {
                        break;
                    }
                }
            },
        }
    }
    let _ = tcp.shutdown().await;
    let _ = socket.close(None).await;
}
