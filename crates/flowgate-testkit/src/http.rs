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
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// The port of a URL such as `http://127.0.0.1:4200/api`.
pub fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).expect("authority");
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port")
}
