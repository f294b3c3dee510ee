//! A counting HTTP/1.1 proxy between a client and the Prefect server: every
//! request is forwarded unchanged and logged (method, path, status), so the
//! benchmark can say which requests a release sent, and how many of them wrote.
//!
//! Each request goes upstream on a fresh connection with `Connection: close`,
//! so one whole response is read per request; the client's connection is kept
//! alive. Request bodies must carry `Content-Length` or be empty (what reqwest
//! and httpx send); a chunked request body is answered 501.

use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// One request seen by the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    /// The upstream's status code; 0 when it gave no answer.
    pub status: u16,
}

impl Logged {
    /// A request that writes: anything but `GET` and the `…/filter` reads (the
    /// rule flowgate's Prefect client counts `writes` by).
    pub fn writes(&self) -> bool {
        let path = self.path.split('?').next().unwrap_or("").trim_end_matches('/');
        let read = ["/filter", "/paginate", "/count"].iter().any(|end| path.ends_with(end));
        self.method != "GET" && self.method != "HEAD" && !read
    }
}

impl std::fmt::Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} → {}", self.method, self.path, self.status)
    }
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    log: Mutex<Vec<Logged>>,
    stop: AtomicBool,
}

/// A running proxy on 127.0.0.1; stops accepting when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    shared: Arc<Shared>,
    port: u16,
}

impl CountingProxy {
    /// Proxies to `upstream` (`host:port`).
    pub fn start(upstream: &str) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
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
        Ok(Self { shared, port })
    }

    /// `http://127.0.0.1:<port>`: put the upstream's path after it.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests logged since the last call, in the order they arrived.
    pub fn take(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.shared.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// One request read from the client.
struct Request {
    head: Vec<String>,
    body: Vec<u8>,
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
    let header = |name: &str| header(&head, name);
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "chunked request body"));
    }
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(Some(Request { head, body, close }))
}

fn header(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|h| {
        let (key, value) = h.split_once(':')?;
        key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_string())
    })
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
        let mut words = request.head[0].split_whitespace();
        let method = words.next().unwrap_or("").to_string();
        let path = words.next().unwrap_or("").to_string();
        let answer = forward(&shared.upstream, &request);
        let status = answer.as_ref().map_or(0, |response| status_of(response));
        shared.log.lock().unwrap_or_else(|e| e.into_inner()).push(Logged { method, path, status });
        let response = answer?;
        client.write_all(&response)?;
        if request.close || closes(&response) {
            return Ok(());
        }
    }
}

/// Sends the request upstream with `Connection: close` and reads the whole
/// response, whose `Connection: close` is then dropped again if it is framed.
fn forward(upstream: &str, request: &Request) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(upstream)?;
    server.set_nodelay(true)?;
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
    let mut out = head.into_bytes();
    out.extend_from_slice(&request.body);
    server.write_all(&out)?;
    let mut response = Vec::new();
    server.read_to_end(&mut response)?;
    Ok(keep_alive(response))
}

fn head_of(response: &[u8]) -> Option<(String, usize)> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((String::from_utf8_lossy(&response[..end]).into_owned(), end))
}

fn framed(head: &str) -> bool {
    head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("content-length:") || l.starts_with("transfer-encoding:")
    })
}

/// The upstream closes because the proxy asked it to; the client need not.
fn keep_alive(response: Vec<u8>) -> Vec<u8> {
    let Some((head, end)) = head_of(&response) else { return response };
    if !framed(&head) {
        return response;
    }
    let kept: Vec<&str> = head.lines().filter(|l| !l.to_ascii_lowercase().starts_with("connection:")).collect();
    let mut out = kept.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: keep-alive");
    out.extend_from_slice(&response[end..]);
    out
}

fn closes(response: &[u8]) -> bool {
    head_of(response)
        .is_none_or(|(head, _)| head.to_ascii_lowercase().contains("\nconnection: close") || !framed(&head))
}

fn status_of(response: &[u8]) -> u16 {
    let line = response.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(line).split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream answering every request with its method, then closing.
    fn upstream() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                if let Ok(Some(request)) = read_request(&mut reader) {
                    let method = request.head[0].split_whitespace().next().unwrap().to_string();
                    let answer = format!(
                        "HTTP/1.1 201 Created\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{method}",
                        method.len()
                    );
                    let _ = stream.write_all(answer.as_bytes());
                }
            }
        });
        address
    }

    #[test]
    fn forwards_on_one_kept_alive_connection_and_logs_every_request() {
        let proxy = CountingProxy::start(&upstream()).unwrap();
        let mut client = TcpStream::connect(proxy.url().trim_start_matches("http://")).unwrap();
        let mut reader = BufReader::new(client.try_clone().unwrap());
        for request in [
            "GET /api/work_pools/p HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /api/deployments/filter HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            "PATCH /api/deployments/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        ] {
            client.write_all(request.as_bytes()).unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 201"), "{status}");
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                assert!(!line.to_ascii_lowercase().starts_with("connection: close"), "{line}");
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            assert_eq!(String::from_utf8(body).unwrap(), request.split(' ').next().unwrap());
        }
        let log = proxy.take();
        assert_eq!(
            log.iter().map(|l| l.to_string()).collect::<Vec<_>>(),
            ["GET /api/work_pools/p → 201", "POST /api/deployments/filter → 201", "PATCH /api/deployments/1 → 201"]
        );
        assert_eq!(log.iter().filter(|l| l.writes()).count(), 1);
        assert!(proxy.take().is_empty(), "take drains the log");
    }

    #[test]
    fn writes_are_everything_but_gets_and_filters() {
        let logged = |method: &str, path: &str| Logged { method: method.into(), path: path.into(), status: 200 };
        assert!(!logged("GET", "/api/deployments/x").writes());
        assert!(!logged("POST", "/api/deployments/filter").writes());
        assert!(!logged("POST", "/api/flows/filter/").writes());
        assert!(!logged("POST", "/api/deployments/paginate").writes());
        assert!(logged("POST", "/api/flows/").writes());
        assert!(logged("PATCH", "/api/deployments/x").writes());
        assert!(logged("DELETE", "/api/deployments/x").writes());
    }
}
