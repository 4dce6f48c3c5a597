//! A local HTTP server serving OSV exports (`<base>/<Ecosystem>/all.zip`) for `rampart db
//! update` tests, so no test makes an outside request; and the zips it serves.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// What the server serves at one path: an ETag and the body.
pub type Served = Arc<Mutex<HashMap<String, (String, Vec<u8>)>>>;

/// A request the server saw: path and the If-None-Match it carried.
pub type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A minimal HTTP/1.1 server on 127.0.0.1 answering GETs from `served`, with 304 when
/// If-None-Match names the current ETag.
pub fn serve() -> (String, Served, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served: Served = Arc::default();
    let seen: Seen = Arc::default();
    let (files, log) = (Arc::clone(&served), Arc::clone(&seen));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let mut if_none_match = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("if-none-match") {
                        if_none_match = Some(value.trim().to_string());
                    }
                }
            }
            log.lock()
                .unwrap()
                .push((path.clone(), if_none_match.clone()));
            let entry = files.lock().unwrap().get(&path).cloned();
            let response = match entry {
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
                Some((etag, _)) if if_none_match.as_deref() == Some(etag.as_str()) => format!(
                    "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                )
                .into_bytes(),
                Some((etag, body)) => {
                    let mut out = format!(
                        "HTTP/1.1 200 OK\r\nETag: {etag}\r\nLast-Modified: Mon, 01 Dec 2026 00:00:00 GMT\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    out.extend_from_slice(&body);
                    out
                }
            };
            let _ = stream.write_all(&response);
        }
    });
    (base, served, seen)
}

/// A zip of the given (name, content) members, stored uncompressed so a test can flip
/// bytes of a member in place.
pub fn zip_of(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, content) in members {
            writer.start_file(name.as_str(), options).unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap();
    }
    out.into_inner()
}
