//! A real nginx (Debian's package) in front of a test app, configured for forward-auth with
//! `auth_request` exactly as docs/forward-auth/nginx.conf shows, plus a small upstream that
//! echoes the `Remote-*` headers nginx passes on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nginx {
    pub url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    std::env::var_os("NGINX_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"))
}

/// A port nothing listens on now, for [`Nginx::start_on`] (so that forward-auth rules can
/// name nginx's host and port before it starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts an upstream on a free port that answers every request with the `Remote-User`,
/// `Remote-Email` and `Remote-Amr` headers it got, one per line.
pub async fn echo_upstream() -> SocketAddr {
    use axum::http::HeaderMap;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        ["remote-user", "remote-email", "remote-amr"]
            .iter()
            .map(|h| {
                let v = headers.get(*h).and_then(|v| v.to_str().ok()).unwrap_or("");
                format!("{h}: {v}\n")
            })
            .collect::<String>()
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

impl Nginx {
    /// nginx on a free port: everything goes through `auth_request` to the app's forward-auth
    /// endpoint and on to `upstream`.
    pub async fn start(app_url: &str, upstream: SocketAddr) -> Self {
        Self::start_on(free_port(), app_url, upstream).await
    }

    /// As [`Nginx::start`], on `port` (from [`free_port`]).
    pub async fn start_on(port: u16, app_url: &str, upstream: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("nginx dir");
        let template = include_str!("../../../docs/forward-auth/nginx.conf");
        let server = template
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port};"))
            .replace("https://login.example.com", app_url)
            .replace("http://app-backend:8080", &format!("http://{upstream}"));
        let d = dir.path().display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log info;\nevents {{}}\nhttp {{\n  access_log off;\n\
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             {server}\n}}\n"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).expect("nginx.conf");
        let mut child = Command::new(binary())
            .arg("-c")
            .arg(&path)
            .arg("-p")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's nginx (apt-get install nginx)",
                    binary().display()
                )
            });
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Self {
                    url: format!("http://127.0.0.1:{port}"),
                    child,
                    _dir: dir,
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        panic!("nginx did not start listening on {port}:\n{log}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
