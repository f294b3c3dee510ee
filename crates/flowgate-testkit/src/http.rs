//! A raw HTTP/1.1 client over a `TcpStream` to 127.0.0.1, for fixtures that talk
//! to a test server (moto, Prefect) without sharing an HTTP client with flowgate.

use std::io::{Read, Write};
use std::net::TcpStream;

/// One request to `127.0.0.1:port` with `Connection: close`, the given extra
/// header lines (e.g. `("Authorization", "Basic ...")`) and a JSON `body`;
/// returns the status (0 when the answer has none) and the body.
pub fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let headers: String = headers.iter().map(|(name, value)| format!("{name}: {value}\r\n")).collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{headers}Content-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_string();
    (status, body)
}

/// The port of a URL such as `http://127.0.0.1:4200/api`.
pub fn port_of(url: &str) -> u16 {
    let authority = url.split("://").nth(1).and_then(|r| r.split('/').next()).expect("authority");
    authority.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).expect("port")
}
