//! Parallel requests released together, the way an attacker lines them up: each request goes
//! out on a connection of its own, all but its last byte; once every connection holds its
//! request, the last bytes go out at once, so the server starts them all together rather
//! than one after another as they connect.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Barrier;

/// One HTTP/1.1 request, written out in full.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

impl RawRequest {
    /// A JSON POST to `base` (`http://host:port`) + `path`, with extra `headers`.
    pub fn post_json(
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &serde_json::Value,
    ) -> Self {
        let url = url::Url::parse(base).expect("base url");
        let host = url.host_str().expect("host");
        let port = url.port().expect("port");
        let to: SocketAddr = format!("{host}:{port}").parse().expect("socket address");
        let body = body.to_string();
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Self { to, bytes }
    }
}

/// A response: its status and body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub body: String,
}

impl RawResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends every request as described in the module documentation; answers in input order.
pub async fn burst(requests: Vec<RawRequest>) -> Vec<RawResponse> {
    let ready = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|request| {
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(request.to).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (head, last) = request.bytes.split_at(request.bytes.len() - 1);
                stream.write_all(head).await.expect("write");
                stream.flush().await.expect("flush");
                ready.wait().await;
                stream.write_all(last).await.expect("write last byte");
                let mut answer = Vec::new();
                stream.read_to_end(&mut answer).await.expect("read answer");
                parse(&answer)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(tasks.len());
    for task in tasks {
        answers.push(task.await.expect("burst task"));
    }
    answers
}

fn parse(answer: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        unchunk(body)
    } else {
        body.to_owned()
    };
    RawResponse { status, body }
}

fn unchunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
