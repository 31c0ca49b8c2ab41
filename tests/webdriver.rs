//! A small W3C WebDriver client (the protocol's JSON over HTTP, through reqwest) and the
//! ChromeDriver process it talks to: enough for the browser tests to open rollcall's pages in
//! Debian's headless Chromium, type, click, run axe-core and take screenshots. The browser and
//! its driver come from Debian's `chromium` and `chromium-driver` packages, which `make test`
//! installs when they are missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

/// Where Debian puts the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// ChromeDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running ChromeDriver; dropping it stops it.
pub struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser could not be driven.
#[derive(Debug, thiserror::Error)]
pub enum WebDriverError {
    /// Chromium or ChromeDriver is not installed.
    #[error(
        "{0} is missing: `make test` installs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
    )]
    Missing(&'static str),
    /// The driver did not start or answer.
    #[error("chromedriver: {0}")]
    Driver(String),
    /// A command failed: the protocol's error and message.
    #[error("WebDriver {command}: {error}: {message}")]
    Command {
        /// The command.
        command: String,
        /// The protocol's error code.
        error: String,
        /// Its message.
        message: String,
    },
    /// HTTP to the driver failed.
    #[error("talking to chromedriver")]
    Http(#[from] reqwest::Error),
}

impl Driver {
    /// Starts ChromeDriver on a free port and waits until it answers.
    pub async fn start() -> Result<Driver, WebDriverError> {
        for (path, what) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromedriver")] {
            if !Path::new(path).exists() {
                return Err(WebDriverError::Missing(what));
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| WebDriverError::Driver(e.to_string()))?
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| WebDriverError::Driver(e.to_string()))?;
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{}/status", driver.base)).send().await
                && r.status().is_success()
            {
                return Ok(driver);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(WebDriverError::Driver("did not answer within 10 s".into()))
    }

    /// A new headless browser session, `width`×`height` CSS pixels.
    pub async fn session(&self, width: u32, height: u32) -> Result<Browser, WebDriverError> {
        let http = reqwest::Client::new();
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--no-first-run",
                        format!("--window-size={width},{height}"),
                        "--lang=en-US"
                    ]
                }
            }}
        });
        let v = call(
            &http,
            reqwest::Method::POST,
            &format!("{}/session", self.base),
            Some(caps),
            "new session",
        )
        .await?;
        let id = v["sessionId"]
            .as_str()
            .ok_or_else(|| WebDriverError::Driver(format!("no session id in {v}")))?
            .to_owned();
        Ok(Browser {
            http,
            session: format!("{}/session/{id}", self.base),
        })
    }
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
    command: &str,
) -> Result<Value, WebDriverError> {
    let mut req = http.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let v: Value = req.send().await?.json().await?;
    let value = v["value"].clone();
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Err(WebDriverError::Command {
            command: command.to_owned(),
            error: error.to_owned(),
            message: value["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    Ok(value)
}

/// One browser session.
pub struct Browser {
    http: reqwest::Client,
    session: String,
}

/// An element of the page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    async fn post(&self, path: &str, body: Value, command: &str) -> Result<Value, WebDriverError> {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.session),
            Some(body),
            command,
        )
        .await
    }

    async fn get(&self, path: &str, command: &str) -> Result<Value, WebDriverError> {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}{path}", self.session),
            None,
            command,
        )
        .await
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&self, url: &str) -> Result<(), WebDriverError> {
        self.post("/url", json!({"url": url}), "navigate")
            .await
            .map(drop)
    }

    /// The current address.
    pub async fn url(&self) -> Result<String, WebDriverError> {
        Ok(self
            .get("/url", "url")
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The page's HTML as the browser holds it.
    pub async fn source(&self) -> Result<String, WebDriverError> {
        Ok(self
            .get("/source", "source")
            .await?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// The first element matching CSS `selector`.
    pub async fn find(&self, selector: &str) -> Result<Element, WebDriverError> {
        let v = self
            .post(
                "/element",
                json!({"using": "css selector", "value": selector}),
                selector,
            )
            .await?;
        v[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| WebDriverError::Driver(format!("no element id for {selector}")))
    }

    /// Types `text` into `element`.
    pub async fn type_into(&self, element: &Element, text: &str) -> Result<(), WebDriverError> {
        self.post(
            &format!("/element/{}/value", element.0),
            json!({"text": text}),
            "type",
        )
        .await
        .map(drop)
    }

    /// Clears `element`.
    pub async fn clear(&self, element: &Element) -> Result<(), WebDriverError> {
        self.post(&format!("/element/{}/clear", element.0), json!({}), "clear")
            .await
            .map(drop)
    }

    /// Clicks `element`.
    pub async fn click(&self, element: &Element) -> Result<(), WebDriverError> {
        self.post(&format!("/element/{}/click", element.0), json!({}), "click")
            .await
            .map(drop)
    }

    /// Runs `script` in the page (WebDriver scripts are not subject to the page's CSP).
    pub async fn execute(&self, script: &str, args: Value) -> Result<Value, WebDriverError> {
        self.post(
            "/execute/sync",
            json!({"script": script, "args": args}),
            "execute",
        )
        .await
    }

    /// Runs an asynchronous `script`; it calls its last argument with the result.
    pub async fn execute_async(&self, script: &str, args: Value) -> Result<Value, WebDriverError> {
        self.post(
            "/execute/async",
            json!({"script": script, "args": args}),
            "execute async",
        )
        .await
    }

    /// Polls `script` until what it returns satisfies `pred`, for at most `timeout`; returns
    /// the last value either way (the caller asserts on it).
    pub async fn poll(
        &self,
        script: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let v = self.execute(script, json!([])).await.unwrap_or(Value::Null);
            if pred(&v) || tokio::time::Instant::now() >= deadline {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the address until `pred` holds, for at most `timeout`; returns it.
    pub async fn wait_for_url(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, WebDriverError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let url = self.url().await?;
            if pred(&url) {
                return Ok(url);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WebDriverError::Driver(format!(
                    "still at {url} after {timeout:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG of the viewport, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<(), WebDriverError> {
        let v = self.get("/screenshot", "screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .map_err(|e| WebDriverError::Driver(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| WebDriverError::Driver(e.to_string()))?;
        }
        std::fs::write(path, png).map_err(|e| WebDriverError::Driver(e.to_string()))
    }

    /// Runs axe-core (from `tests/browser/node_modules`, installed by `make test`) on the page
    /// against WCAG 2.0, 2.1 and 2.2 A and AA; returns the violations.
    pub async fn axe_violations(&self) -> Result<Vec<Value>, WebDriverError> {
        let source = std::fs::read_to_string(axe_path()).map_err(|_| {
            WebDriverError::Driver(
                "tests/browser/node_modules/axe-core is missing: `make test` installs it (npm ci --prefix tests/browser)".into(),
            )
        })?;
        self.execute(&source, json!([])).await?;
        let result = self
            .execute_async(
                "const done = arguments[arguments.length - 1];\
                 axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a','wcag2aa','wcag21a','wcag21aa','wcag22aa']}})\
                   .then(r => done(r.violations), e => done([{id: 'axe-error', help: String(e)}]));",
                json!([]),
            )
            .await?;
        Ok(result.as_array().cloned().unwrap_or_default())
    }

    /// Ends the session.
    pub async fn quit(self) -> Result<(), WebDriverError> {
        call(
            &self.http,
            reqwest::Method::DELETE,
            &self.session,
            None,
            "quit",
        )
        .await
        .map(drop)
    }
}

fn axe_path() -> PathBuf {
    crate::workspace_root().join("tests/browser/node_modules/axe-core/axe.min.js")
}
