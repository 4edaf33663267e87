//! The kubelet's port-forward endpoint: `GET /portForward/<namespace>/<pod>?port=<port>` over
//! TLS, upgraded to a WebSocket (subprotocol `v4.channel.k8s.io`), bridged to the pod's local
//! PostgreSQL. The API server proxies `pods/portforward` here (it dials the node's InternalIP
//! and kubelet port, and skips verifying the kubelet's certificate when given no CA for it).
//! A pod of any served namespace is reached; one of another namespace, or not running here, is
//! answered 404.

use super::AgentError;
use super::pods::Pods;
use crate::testkit::kube_apiserver::{PORT_FORWARD_PROTOCOL, bridge};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

/// The listening endpoint.
pub struct Kubelet {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Listens on a free port of 127.0.0.1 with a fresh self-signed certificate.
    pub async fn start(pods: Arc<Pods>) -> Result<Self, AgentError> {
        let acceptor = acceptor()?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(AgentError::io("listening for the kubelet endpoint"))?;
        let port = listener
            .local_addr()
            .map_err(AgentError::io("the kubelet endpoint's address"))?
            .port();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let pods = pods.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let pods = pods.clone();
                        async move { Ok::<_, std::convert::Infallible>(serve(&pods, request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(Self { port, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The serving task.
    pub fn into_task(self) -> tokio::task::JoinHandle<()> {
        self.task
    }
}

fn acceptor() -> Result<TlsAcceptor, AgentError> {
    let generated =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .map_err(|error| AgentError::Tls(error.to_string()))?;
    let cert = CertificateDer::from(generated.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| AgentError::Tls(error.to_string()))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|error| AgentError::Tls(error.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn status(code: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(message.to_string())));
    *response.status_mut() = code;
    response
}

fn serve(pods: &Pods, mut request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let ["portForward", namespace, pod, ..] = segments.as_slice() else {
        return status(StatusCode::NOT_FOUND, "only portForward is served");
    };
    // The API server passes `port=`, kube clients talking to a kubelet directly `ports=`.
    let ports: Vec<u16> = request
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| {
            pair.strip_prefix("port=")
                .or_else(|| pair.strip_prefix("ports="))
        })
        .flat_map(|list| list.split([',']).map(str::to_string).collect::<Vec<_>>())
        .filter_map(|port| port.replace("%2C", ",").parse().ok())
        .collect();
    let [port] = ports.as_slice() else {
        return status(StatusCode::BAD_REQUEST, "exactly one port is served");
    };
    let Some(running) = pods.find(namespace, pod) else {
        return status(
            StatusCode::NOT_FOUND,
            &format!("pod {namespace}/{pod} does not run on this node"),
        );
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
        return status(
            StatusCode::BAD_REQUEST,
            "the WebSocket subprotocol v4.channel.k8s.io is required",
        );
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key");
    };
    // Every container port of the pod is its PostgreSQL here.
    let target = SocketAddr::from(([127, 0, 0, 1], running.port));
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
