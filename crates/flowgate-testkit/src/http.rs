//! A raw HTTP/1.1 client over a `TcpStream` to 127.0.0.1, for fixtures that talk
//! to a test server (moto, Prefect) without sharing an HTTP client with flowgate.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One request to `127.0.0.1:port` with `Connection: close`, the given extra
/// header lines (e.g. `("Authorization", "Basic ...")`) and a JSON `body`;
/// returns the status (0 when the answer has none) and the body.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut all = headers.to_vec();
    all.push(("Content-Type", "application/json"));
    request_bytes(port, method, path, &all, body.as_bytes())
}

/// As [`request`], with a body of any bytes and no content type but the
/// headers given.
pub fn request_bytes(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    // A server may answer (413) and close before it reads a body it refuses.
    let _ = stream.write_all(body);
    let response = read_answer(&mut stream);
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// The whole answer: up to its `Content-Length` when it has one (a server may
/// keep the connection open despite `Connection: close`: chromedriver does),
/// else until the server closes.
fn read_answer(stream: &mut TcpStream) -> String {
    // A server that never answers fails the test instead of hanging it.
    stream.set_read_timeout(Some(std::time::Duration::from_secs(120))).expect("a read timeout");
    let mut response = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
        let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
        let length =
            head.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
        if length.is_some_and(|length| response.len() >= end + 4 + length) {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// The port of a URL such as `http://127.0.0.1:4200/api`.
pub fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).expect("authority");
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port")
}

/// An answer with its headers: the status, each header (names lowercased) and the body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// As [`request_bytes`], keeping the answer's headers (for redirects and cookies).
pub fn exchange(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let lines: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{lines}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    let _ = stream.write_all(body);
    let response = read_answer(&mut stream);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut head_lines = head.lines();
    let status = head_lines.next().and_then(|l| l.get(9..12)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = head_lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer { status, headers, body: body.to_string() }
}
