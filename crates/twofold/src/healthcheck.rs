//! A probe for container health checks. It speaks just enough HTTP/1.1 over loopback to read
//! a status line, which keeps an HTTP client library (and its TLS stack) out of the binary.

use crate::config::Settings;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub async fn run(settings: &Settings, url: Option<&str>) -> ExitCode {
    let target = match url {
        Some(u) => u
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
        None => {
            let mut addr = settings.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            addr.to_string()
        }
    };
    match tokio::time::timeout(Duration::from_secs(5), probe(&target)).await {
        Ok(Ok(true)) => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(Ok(false)) => {
            println!("not ready");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            println!("unreachable: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            println!("timed out");
            ExitCode::FAILURE
        }
    }
}

async fn probe(host: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(host).await?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let head = String::from_utf8_lossy(&buf);
    Ok(head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
}
