//! A webhook receiver on 127.0.0.1: it records every POST it gets (path,
//! headers, body) and answers as told: `fail(n)` makes the next `n`
//! requests get 500, `hold()` keeps requests open without an answer (a
//! receiver that hangs while the sender is killed), `answer()` goes back to
//! 200. Each request is served on its own thread, so a held one blocks no other.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with; None when it was held.
    pub answered: Option<u16>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

#[derive(Debug, Default)]
struct Script {
    failures_left: usize,
    holding: bool,
    received: Vec<Received>,
}

#[derive(Debug)]
pub struct Receiver {
    port: u16,
    script: Arc<(Mutex<Script>, Condvar)>,
}

impl Receiver {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
        let port = listener.local_addr().expect("address").port();
        let script: Arc<(Mutex<Script>, Condvar)> = Arc::default();
        let serving = Arc::clone(&script);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let script = Arc::clone(&serving);
                std::thread::spawn(move || serve(&script, stream));
            }
        });
        Self { port, script }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The next `n` requests get 500.
    pub fn fail(&self, n: usize) {
        self.script.0.lock().unwrap().failures_left = n;
    }

    /// Requests from now on are kept open and never answered.
    pub fn hold(&self) {
        self.script.0.lock().unwrap().holding = true;
    }

    /// Requests from now on are answered (200 unless failing).
    pub fn answer(&self) {
        self.script.0.lock().unwrap().holding = false;
    }

    /// Every request so far, in the order received.
    pub fn received(&self) -> Vec<Received> {
        self.script.0.lock().unwrap().received.clone()
    }

    /// Waits until `ready` holds of what was received, up to `limit`; panics naming `what` otherwise.
    pub fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        let (lock, changed) = &*self.script;
        let mut script = lock.lock().unwrap();
        while !ready(&script.received) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("the receiver waited {limit:?} for {what}; it got {:#?}", script.received);
            }
            script = changed.wait_timeout(script, left).unwrap().0;
        }
        script.received.clone()
    }
}

fn serve(script: &(Mutex<Script>, Condvar), stream: TcpStream) {
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.trim_end().split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (lock, changed) = script;
    let answer = {
        let mut script = lock.lock().unwrap();
        let answer = if script.holding {
            None
        } else if script.failures_left > 0 {
            script.failures_left -= 1;
            Some(500)
        } else {
            Some(200)
        };
        script.received.push(Received { path, headers, body, answered: answer });
        changed.notify_all();
        answer
    };
    let Some(status) = answer else {
        // Held: keep the connection open until the sender gives up or dies.
        std::thread::sleep(Duration::from_secs(120));
        return;
    };
    let reason = if status == 200 { "OK" } else { "Internal Server Error" };
    let mut stream = stream;
    let _ = write!(stream, "HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}
