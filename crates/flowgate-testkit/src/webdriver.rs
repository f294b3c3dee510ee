//! A real browser for the dashboard's tests: Debian's headless Chromium driven
//! by its `chromedriver` over the W3C WebDriver protocol (JSON over HTTP on
//! 127.0.0.1). scripts/test installs both packages when a machine lacks them.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::request;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long chromedriver may take to listen, and a page or an element to appear.
const TIMEOUT: Duration = Duration::from_secs(30);

/// One headless Chromium session; dropping it ends the session and the driver.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

/// An element of the current page, by its WebDriver id.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with
    /// a profile of its own; panics naming what is missing.
    pub fn start() -> Self {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "`{binary}` is missing: scripts/test installs Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                         format!("--user-data-dir={}", profile.path().display())],
            },
        }}});
        let mut browser = Self { driver, port, session: String::new(), _profile: profile };
        let created = browser.call("POST", "/session", &capabilities);
        browser.session = created["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {created}")).to_string();
        browser
    }

    /// One WebDriver command; its `value`, or a panic with the driver's error.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" { String::new() } else { body.to_string() };
        let (status, answer) = request(self.port, method, path, &[], &body);
        let answer: Value = serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{method} {path}: {e}: {answer}"));
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: &Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url` and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", &json!({ "url": url }));
    }

    /// The current page's address.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", &Value::Null).as_str().unwrap_or_default().to_string()
    }

    /// The current page's HTML, as the browser holds it.
    pub fn source(&self) -> String {
        self.session_call("GET", "/source", &Value::Null).as_str().unwrap_or_default().to_string()
    }

    /// The elements matching a CSS selector, waiting (bounded) for at least one.
    pub fn wait_for(&self, css: &str) -> Vec<Element> {
        self.wait_for_within(css, TIMEOUT)
    }

    /// As [`Browser::wait_for`], for up to `limit` (what a real flow run takes).
    pub fn wait_for_within(&self, css: &str, limit: Duration) -> Vec<Element> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.find_all(css);
            if !found.is_empty() {
                return found;
            }
            assert!(Instant::now() < deadline, "no `{css}` on {}:\n{}", self.url(), self.source());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The elements matching a CSS selector now (perhaps none).
    pub fn find_all(&self, css: &str) -> Vec<Element> {
        let found = self.session_call("POST", "/elements", &json!({"using": "css selector", "value": css}));
        let ids = found.as_array().cloned().unwrap_or_default();
        ids.iter().filter_map(|e| e.as_object()?.values().next()?.as_str().map(|id| Element(id.to_string()))).collect()
    }

    /// Runs `script` in the page (a function body) and returns what it returns.
    pub fn execute(&self, script: &str) -> Value {
        self.session_call("POST", "/execute/sync", &json!({ "script": script, "args": [] }))
    }

    /// The rendered text of an element (what a user reads).
    pub fn text(&self, element: &Element) -> String {
        let text = self.session_call("GET", &format!("/element/{}/text", element.0), &Value::Null);
        text.as_str().unwrap_or_default().to_string()
    }

    /// Types `text` into an element.
    pub fn type_into(&self, element: &Element, text: &str) {
        self.session_call("POST", &format!("/element/{}/value", element.0), &json!({ "text": text }));
    }

    pub fn click(&self, element: &Element) {
        self.session_call("POST", &format!("/element/{}/click", element.0), &json!({}));
    }

    /// The cookies the browser holds for the current page, as WebDriver lists them.
    pub fn cookies(&self) -> Vec<Value> {
        self.session_call("GET", "/cookie", &Value::Null).as_array().cloned().unwrap_or_default()
    }

    /// Saves a PNG of the window as the scenario's artifact, under
    /// `$FLOWGATE_SCREENSHOTS` (default: `screenshots/` in the system's temp
    /// directory); returns its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.session_call("GET", "/screenshot", &Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        let dir = std::env::var_os("FLOWGATE_SCREENSHOTS")
            .map_or_else(|| std::env::temp_dir().join("flowgate-screenshots"), PathBuf::from);
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = request(self.port, "DELETE", &format!("/session/{}", self.session), &[], "");
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
