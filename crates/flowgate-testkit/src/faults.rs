//! A fault-injecting HTTP/1.1 proxy for tests: sits between flowgate and a real
//! server (Prefect, an S3 endpoint) on 127.0.0.1 and, for a seeded share of
//! requests, delays them, resets the connection, truncates the response, or
//! answers a burst of 503s in the server's place.
//!
//! Each request is forwarded on a fresh upstream connection with `Connection:
//! close`, so the proxy sees one whole response per request and decides a fault
//! per request (a pooled client connection would otherwise carry many requests
//! past a single per-connection decision). Requests must carry `Content-Length`
//! or no body (what reqwest and object_store send); chunked request bodies are
//! not supported and are answered 501.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy does to a request it picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Forwarded after this delay.
    Latency,
    /// The client's connection is reset before anything is forwarded.
    Reset,
    /// Forwarded, but only the first half of the response reaches the client.
    Truncate,
    /// Answered 503 by the proxy, and the next few requests too (a burst).
    Unavailable,
}

/// Counts of what happened, for the test's report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FaultStats {
    pub requests: u64,
    pub latency: u64,
    pub resets: u64,
    pub truncated: u64,
    pub unavailable: u64,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    /// Fault rate in percent, 0..=100; changeable while running.
    rate: AtomicU64,
    enabled: AtomicBool,
    rng: Mutex<u64>,
    burst_left: AtomicU64,
    /// The faults it may choose; all four unless narrowed by [`FaultProxy::only`].
    kinds: Mutex<Vec<Fault>>,
    stats: Mutex<FaultStats>,
    stop: AtomicBool,
    /// The delay of [`Fault::Latency`], in milliseconds.
    latency_ms: AtomicU64,
}

/// A running proxy; stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    port: u16,
}

/// How many requests after the first 503 of a burst also get a 503.
const BURST: u64 = 3;
const LATENCY: Duration = Duration::from_millis(300);

impl FaultProxy {
    /// Proxies to `upstream` (`host:port`), faulting `rate_percent`% of requests,
    /// chosen by a generator seeded with `seed` (the same seed, the same choices
    /// for the same sequence of requests).
    pub fn start(upstream: &str, rate_percent: u64, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            rate: AtomicU64::new(rate_percent.min(100)),
            enabled: AtomicBool::new(true),
            rng: Mutex::new(seed.max(1)),
            burst_left: AtomicU64::new(0),
            kinds: Mutex::new(vec![Fault::Latency, Fault::Reset, Fault::Truncate, Fault::Unavailable]),
            stats: Mutex::new(FaultStats::default()),
            stop: AtomicBool::new(false),
            latency_ms: AtomicU64::new(LATENCY.as_millis() as u64),
        });
        let accept = Arc::clone(&shared);
        thread::spawn(move || {
            for client in listener.incoming() {
                if accept.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let shared = Arc::clone(&accept);
                thread::spawn(move || {
                    let _ = serve(&shared, client);
                });
            }
        });
        Self { shared, port }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`: put the upstream's path after it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Chooses among `kinds` only (a server that is busy but never drops a
    /// connection, say: `&[Fault::Unavailable]`).
    pub fn only(self, kinds: &[Fault]) -> Self {
        assert!(!kinds.is_empty(), "a fault proxy needs at least one kind of fault");
        *self.shared.kinds.lock().expect("kinds") = kinds.to_vec();
        self
    }

    /// Delays by `latency` the requests it picks for [`Fault::Latency`] (300 ms
    /// unless set): with rate 100 and only that fault, a link of that round trip.
    pub fn with_latency(self, latency: Duration) -> Self {
        self.shared.latency_ms.store(latency.as_millis() as u64, Ordering::SeqCst);
        self
    }

    /// Turns faults on or off (off: a plain proxy).
    pub fn set_enabled(&self, enabled: bool) {
        self.shared.enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            self.shared.burst_left.store(0, Ordering::SeqCst);
        }
    }

    pub fn stats(&self) -> FaultStats {
        self.shared.stats.lock().expect("stats").clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// xorshift64*: small, seeded, good enough to spread faults.
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn choose(shared: &Shared) -> Option<Fault> {
    if !shared.enabled.load(Ordering::SeqCst) {
        return None;
    }
    if shared.burst_left.load(Ordering::SeqCst) > 0 {
        shared.burst_left.fetch_sub(1, Ordering::SeqCst);
        return Some(Fault::Unavailable);
    }
    let roll = next_random(&mut shared.rng.lock().expect("rng"));
    if roll % 100 >= shared.rate.load(Ordering::SeqCst) {
        return None;
    }
    let fault = {
        let kinds = shared.kinds.lock().expect("kinds");
        kinds[((roll / 100) % kinds.len() as u64) as usize]
    };
    if fault == Fault::Unavailable {
        shared.burst_left.store(BURST, Ordering::SeqCst);
    }
    Some(fault)
}

/// One request head and body, as read from the client.
struct Request {
    head: Vec<String>,
    body: Vec<u8>,
    /// The client asked to close the connection after this response.
    close: bool,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let header = |name: &str| {
        head.iter().skip(1).find_map(|h| {
            let (key, value) = h.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "chunked request body"));
    }
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, body, close }))
}

fn serve(shared: &Shared, client: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut client = client;
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                client.write_all(b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let fault = choose(shared);
        {
            let mut stats = shared.stats.lock().expect("stats");
            stats.requests += 1;
            match fault {
                Some(Fault::Latency) => stats.latency += 1,
                Some(Fault::Reset) => stats.resets += 1,
                Some(Fault::Truncate) => stats.truncated += 1,
                Some(Fault::Unavailable) => stats.unavailable += 1,
                None => {}
            }
        }
        match fault {
            Some(Fault::Reset) => {
                // Linger 0 would send RST; std has no setter, so an abrupt close of both halves.
                let _ = client.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Unavailable) => {
                let body = b"{\"detail\":\"injected 503\"}";
                let head = format!(
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
                    body.len()
                );
                client.write_all(head.as_bytes())?;
                client.write_all(body)?;
                if request.close {
                    return Ok(());
                }
                continue;
            }
            Some(Fault::Latency) => thread::sleep(Duration::from_millis(shared.latency_ms.load(Ordering::SeqCst))),
            Some(Fault::Truncate) | None => {}
        }
        let response = forward(&shared.upstream, &request)?;
        if fault == Some(Fault::Truncate) {
            client.write_all(&response[..response.len() / 2])?;
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        client.write_all(&response)?;
        if request.close || response_closes(&response) {
            return Ok(());
        }
    }
}

/// Sends the request upstream with `Connection: close` and reads the whole response.
fn forward(upstream: &str, request: &Request) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream)?;
    let mut head = String::new();
    head.push_str(&request.head[0]);
    head.push_str("\r\n");
    for h in request.head.iter().skip(1) {
        if h.split_once(':').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection")) {
            continue;
        }
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    server.write_all(head.as_bytes())?;
    server.write_all(&request.body)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    Ok(without_close(response))
}

/// The upstream answered `Connection: close` because the proxy asked for it;
/// the client's connection stays open unless the response has no length.
fn without_close(response: Vec<u8>) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else { return response };
    let head = String::from_utf8_lossy(&response[..end]).to_string();
    let framed = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("content-length:") || l.starts_with("transfer-encoding:")
    });
    if !framed {
        return response;
    }
    let kept: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: keep-alive");
    out.extend_from_slice(&response[end..]);
    out
}

fn response_closes(response: &[u8]) -> bool {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
    head.contains("connection: close") || !(head.contains("content-length:") || head.contains("transfer-encoding:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny upstream answering every request with `ok` and its own Connection: close.
    fn upstream() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                if read_request(&mut reader).ok().flatten().is_some() {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                }
            }
        });
        address
    }

    fn get(port: u16) -> io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn without_faults_it_is_a_plain_proxy() {
        let proxy = FaultProxy::start(&upstream(), 0, 7);
        for _ in 0..5 {
            let answer = get(proxy.port()).unwrap();
            assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
        }
        assert_eq!(proxy.stats().requests, 5);
    }

    #[test]
    fn at_full_rate_every_request_is_faulted_and_every_kind_occurs() {
        let proxy = FaultProxy::start(&upstream(), 100, 42);
        let mut ok = 0;
        for _ in 0..60 {
            match get(proxy.port()) {
                Ok(a) if a.starts_with("HTTP/1.1 200") && a.ends_with("ok") => ok += 1,
                _ => {}
            }
        }
        let stats = proxy.stats();
        assert_eq!(stats.requests, 60);
        assert_eq!(stats.latency + stats.resets + stats.truncated + stats.unavailable, 60, "{stats:?}");
        assert!(stats.resets > 0 && stats.truncated > 0 && stats.unavailable > 0 && stats.latency > 0, "{stats:?}");
        assert_eq!(ok, stats.latency, "only delayed requests get through whole");
        proxy.set_enabled(false);
        assert!(get(proxy.port()).unwrap().ends_with("ok"));
    }
}
