//! Azurite, Microsoft's Azure Storage emulator (npm package `azurite`), as a real Azure Blob
//! endpoint for backup tests: started over HTTPS on a free port with a throwaway certificate (as
//! pgBackRest speaks HTTPS only), with one container created through the Blob REST API, and
//! stopped when dropped.

use super::{TestError, free_port, port_is_open};
use base64::Engine as _;
use hmac::{KeyInit as _, Mac as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator's well-known development account.
pub const ACCOUNT: &str = "devstoreaccount1";
/// The emulator's well-known development key (public, documented by Microsoft).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// The Blob API version the tests speak.
const API_VERSION: &str = "2021-08-06";

/// A running Azurite Blob service.
pub struct Azurite {
    child: Child,
    /// Its HTTPS port on 127.0.0.1.
    pub port: u16,
    /// The container created for the test.
    pub container: String,
}

impl Azurite {
    /// Starts `azurite-blob` with its data under `dir` and creates `container`. Fails with what
    /// to install when Azurite is missing: the tests need it (`.ci/run` installs it).
    pub async fn start(dir: &Path, container: &str) -> Result<Azurite, TestError> {
        let binary = find_binary().ok_or(
            "azurite-blob is not installed: `npm install -g azurite` (docs/backups.md); \
             .ci/run installs it",
        )?;
        std::fs::create_dir_all(dir)?;
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])?;
        let cert = dir.join("azurite-cert.pem");
        let key = dir.join("azurite-key.pem");
        std::fs::write(&cert, generated.cert.pem())?;
        std::fs::write(&key, generated.signing_key.serialize_pem())?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.join("azurite.log"))?;
        let child = Command::new(binary)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(dir.join("data"))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--silent", "--disableTelemetry", "--skipApiVersionCheck"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let azurite = Azurite {
            child,
            port,
            container: container.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !port_is_open(port) {
            if Instant::now() > deadline {
                return Err(format!(
                    "azurite did not listen on {port} within 30 s: {}",
                    std::fs::read_to_string(dir.join("azurite.log")).unwrap_or_default()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        azurite.create_container().await?;
        Ok(azurite)
    }

    /// The server settings that send backups to this container.
    pub fn server_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TOYGRES_BACKUP_REPO", "azure".into()),
            ("TOYGRES_BACKUP_AZURE_ACCOUNT", ACCOUNT.into()),
            ("TOYGRES_BACKUP_AZURE_KEY", KEY.into()),
            ("TOYGRES_BACKUP_AZURE_CONTAINER", self.container.clone()),
            ("TOYGRES_BACKUP_STORAGE_HOST", "127.0.0.1".into()),
            ("TOYGRES_BACKUP_STORAGE_PORT", self.port.to_string()),
            ("TOYGRES_BACKUP_URI_STYLE", "path".into()),
            ("TOYGRES_BACKUP_VERIFY_TLS", "false".into()),
        ]
    }

    /// Names of the blobs in the container whose name starts with `prefix`.
    pub async fn blobs(&self, prefix: &str) -> Result<Vec<String>, TestError> {
        let query = format!("restype=container&comp=list&prefix={prefix}");
        let resource = format!(
            "/{ACCOUNT}/{ACCOUNT}/{}\ncomp:list\nprefix:{prefix}\nrestype:container",
            self.container
        );
        let text = self.send(reqwest::Method::GET, &query, &resource).await?;
        Ok(text
            .split("<Name>")
            .skip(1)
            .filter_map(|rest| rest.split("</Name>").next())
            .map(str::to_string)
            .collect())
    }

    async fn create_container(&self) -> Result<(), TestError> {
        let resource = format!("/{ACCOUNT}/{ACCOUNT}/{}\nrestype:container", self.container);
        self.send(reqwest::Method::PUT, "restype=container", &resource)
            .await?;
        Ok(())
    }

    /// Sends a request on the container signed with the account's shared key.
    async fn send(
        &self,
        method: reqwest::Method,
        query: &str,
        canonical_resource: &str,
    ) -> Result<String, TestError> {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let string_to_sign = format!(
            "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n{canonical_resource}"
        );
        let key = base64::engine::general_purpose::STANDARD.decode(KEY)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)?;
        mac.update(string_to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()?;
        let url = format!(
            "https://127.0.0.1:{}/{ACCOUNT}/{}?{query}",
            self.port, self.container
        );
        let response = client
            .request(method, url)
            .header("x-ms-date", date)
            .header("x-ms-version", API_VERSION)
            .header("Authorization", format!("SharedKey {ACCOUNT}:{signature}"))
            .header("Content-Length", "0")
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(format!("azurite answered {status}: {text}").into());
        }
        Ok(text)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `azurite-blob` on the PATH.
fn find_binary() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("azurite-blob"))
            .find(|candidate| candidate.is_file())
    })
}
