//! A real, headless Chromium (Debian's `chromium` and `chromium-driver`) driven over WebDriver
//! (chromedriver's HTTP API) with reqwest, plus chromedriver's passthrough to the DevTools
//! protocol for what WebDriver lacks (viewport size, full-page screenshots, clipboard
//! permission, cookie flags). Everything it starts (chromedriver, Chromium and Chromium's
//! helpers) is killed when the [`Browser`] is dropped, even when the test fails.

use super::{TestError, free_port};
use base64::Engine as _;
use serde_json::{Value, json};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian installs the browser and its driver.
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";
/// chromedriver, from `chromium-driver`.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a wait for something on a page lasts before the test fails.
pub const PAGE_LIMIT: Duration = Duration::from_secs(30);

/// One browser session.
pub struct Browser {
    driver: Option<Child>,
    endpoint: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium (flags as STACK.md says for
    /// root on this machine) with a fresh profile and a `width` x `height` viewport.
    pub async fn start(width: u32, height: u32) -> Result<Browser, TestError> {
        for path in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(path).exists() {
                return Err(format!(
                    "{path} is missing: apt-get install -y chromium chromium-driver (.ci/run installs them)"
                )
                .into());
            }
        }
        let port = free_port()?;
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: Drop kills the group and every descendant.
            .process_group(0);
        let driver = command.spawn()?;
        let profile = tempfile::tempdir()?;
        let mut browser = Browser {
            driver: Some(driver),
            endpoint: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            _profile: profile,
        };
        browser.wait_driver().await?;
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let created = browser
            .raw(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                }}})),
            )
            .await?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {created}"))?
            .to_string();
        browser.set_viewport(width, height).await?;
        Ok(browser)
    }

    async fn wait_driver(&self) -> Result<(), TestError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = self
                .http
                .get(format!("{}/status", self.endpoint))
                .send()
                .await
                && response.status().is_success()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err("chromedriver did not answer /status".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One WebDriver command; its `value`, or the WebDriver error as a test error.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.endpoint));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let reply: Value = request.send().await?.json().await?;
        let value = reply.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            return Err(format!(
                "WebDriver {path}: {error}: {}",
                value["message"].as_str().unwrap_or_default()
            )
            .into());
        }
        Ok(value)
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, TestError> {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    /// A DevTools protocol command, through chromedriver.
    pub async fn cdp(&self, command: &str, params: Value) -> Result<Value, TestError> {
        self.command(
            reqwest::Method::POST,
            "/goog/cdp/execute",
            Some(json!({"cmd": command, "params": params})),
        )
        .await
    }

    /// Lays pages out at `width` x `height` CSS pixels (a phone below 500 px).
    pub async fn set_viewport(&self, width: u32, height: u32) -> Result<(), TestError> {
        self.cdp(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500}),
        )
        .await?;
        Ok(())
    }

    /// Lets pages of `origin` read and write the clipboard.
    pub async fn grant_clipboard(&self, origin: &str) -> Result<(), TestError> {
        self.cdp(
            "Browser.grantPermissions",
            json!({"origin": origin, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]}),
        )
        .await?;
        Ok(())
    }

    /// The clipboard's text, read by the page as a user's paste would.
    pub async fn clipboard(&self) -> Result<String, TestError> {
        let value = self
            .execute_async(
                "const done = arguments[arguments.length - 1]; navigator.clipboard.readText().then(done, (e) => done('ERROR ' + e));",
                json!([]),
            )
            .await?;
        Ok(value.as_str().unwrap_or_default().to_string())
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<(), TestError> {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    /// The current URL.
    pub async fn url(&self) -> Result<String, TestError> {
        Ok(self
            .command(reqwest::Method::GET, "/url", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> Result<String, TestError> {
        Ok(self
            .command(reqwest::Method::GET, "/source", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// The first element that `css` selects, if any.
    pub async fn try_find(&self, css: &str) -> Result<Option<Element>, TestError> {
        let found = self
            .command(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found
            .as_array()
            .and_then(|items| items.first())
            .and_then(|item| item[ELEMENT].as_str())
            .map(|id| Element(id.to_string())))
    }

    /// The first element that `css` selects, waiting for it up to [`PAGE_LIMIT`].
    pub async fn find(&self, css: &str) -> Result<Element, TestError> {
        let deadline = tokio::time::Instant::now() + PAGE_LIMIT;
        loop {
            if let Some(element) = self.try_find(css).await? {
                return Ok(element);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "no element '{css}' on {} after {PAGE_LIMIT:?}",
                    self.url().await?
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks `element` as a user would (scrolled into view, at its centre).
    pub async fn click(&self, element: &Element) -> Result<(), TestError> {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.0),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// Types `text` into `element` (after clearing it).
    pub async fn type_into(&self, element: &Element, text: &str) -> Result<(), TestError> {
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/clear", element.0),
            Some(json!({})),
        )
        .await?;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    /// The visible text of `element`.
    pub async fn text(&self, element: &Element) -> Result<String, TestError> {
        Ok(self
            .command(
                reqwest::Method::GET,
                &format!("/element/{}/text", element.0),
                None,
            )
            .await?
            .as_str()
            .unwrap_or_default()
            .to_string())
    }

    /// Waits until the text of the first element `css` selects satisfies `check`; returns it.
    pub async fn wait_text(
        &self,
        css: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String, TestError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let text = match self.try_find(css).await? {
                // The element may be replaced by a live refresh between the two calls.
                Some(element) => self.text(&element).await.unwrap_or_default(),
                None => String::new(),
            };
            if check(&text) {
                return Ok(text);
            }
            if tokio::time::Instant::now() > deadline {
                let page = match self.try_find("body").await? {
                    Some(body) => self.text(&body).await.unwrap_or_default(),
                    None => String::new(),
                };
                return Err(format!(
                    "'{css}' on {} still reads {text:?} after {limit:?}; the page reads:\n{page}",
                    self.url().await?
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs `script` in the page with `args`; its return value.
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value, TestError> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Runs `script`, which calls its last argument with the result, in the page.
    pub async fn execute_async(&self, script: &str, args: Value) -> Result<Value, TestError> {
        self.command(
            reqwest::Method::POST,
            "/execute/async",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Every cookie the browser holds for the current page, with its flags.
    pub async fn cookies(&self) -> Result<Vec<Value>, TestError> {
        let reply = self.cdp("Network.getCookies", json!({})).await?;
        Ok(reply["cookies"].as_array().cloned().unwrap_or_default())
    }

    /// A PNG of the whole page (beyond the viewport) into `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), TestError> {
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
        std::fs::write(path, bytes)?;
        Ok(())
    }

    /// Ends the session (Chromium exits) and stops chromedriver.
    pub async fn quit(mut self) -> Result<(), TestError> {
        let _ = self.command(reqwest::Method::DELETE, "", None).await;
        self.kill_all();
        Ok(())
    }

    fn kill_all(&mut self) {
        let Some(mut driver) = self.driver.take() else {
            return;
        };
        let root = driver.id() as i32;
        // Chromium and its helpers: the driver's process group, and every descendant (a helper
        // may have made a group of its own).
        let mut doomed = descendants(root);
        doomed.push(root);
        // SAFETY: signals to processes this browser started (its group and its descendants).
        unsafe {
            libc::kill(-root, libc::SIGKILL);
            for pid in &doomed {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        let _ = driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// Every process below `root`, from `/proc`.
fn descendants(root: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
                .filter_map(|pid| {
                    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                    // The command may contain spaces or parentheses: fields follow the last ')'.
                    let after = &stat[stat.rfind(')')? + 2..];
                    let parent = after.split(' ').nth(1)?.parse().ok()?;
                    Some((pid, parent))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        for (pid, of) in &parents {
            if *of == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        index += 1;
    }
    found.remove(0);
    found
}
