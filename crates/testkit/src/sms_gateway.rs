//! A stand-in for an SMS gateway (Twilio's Messages API, or an operator's webhook): an HTTP
//! server on 127.0.0.1 that records every request and answers with a chosen status. Hand-made
//! on purpose, like the SMTP sink: a test must be able to stop it (connections refused) and
//! start it again on the same port, and every answer closes its connection so no pooled
//! connection outlives a stop.

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::port::{self, PortHold};

#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A field of a form-encoded body (Twilio).
    pub fn form(&self, field: &str) -> Option<String> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&self.body)
            .ok()?
            .into_iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v)
    }

    /// The text of the message, from a Twilio form (`Body`) or a webhook JSON body (`text`).
    pub fn sms_text(&self) -> Option<String> {
        self.form("Body").or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&self.body)
                .ok()?
                .get("text")?
                .as_str()
                .map(str::to_owned)
        })
    }

    /// The first run of 4 to 10 digits in the message text: the code.
    pub fn sms_code(&self) -> Option<String> {
        let text = self.sms_text()?;
        text.split(|c: char| !c.is_ascii_digit())
            .find(|run| (4..=10).contains(&run.len()))
            .map(str::to_owned)
    }
}

pub struct SmsGateway {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    status: Arc<AtomicU16>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Holds the port while the gateway is stopped (see [`crate::port`]).
    hold: Mutex<Option<PortHold>>,
}

impl SmsGateway {
    pub async fn start() -> Self {
        let listener = port::listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind gateway");
        let addr = listener.local_addr().expect("gateway addr");
        let gateway = Self {
            addr,
            requests: Arc::new(Mutex::new(Vec::new())),
            status: Arc::new(AtomicU16::new(201)),
            task: Mutex::new(None),
            hold: Mutex::new(None),
        };
        gateway.serve(listener);
        gateway
    }

    fn serve(&self, listener: TcpListener) {
        let (requests, status) = (self.requests.clone(), self.status.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (requests, status) = (requests.clone(), status.clone());
                tokio::spawn(async move {
                    let _ = answer(stream, requests, status).await;
                });
            }
        });
        *self.task.lock().expect("lock") = Some(task);
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The status every later request gets (201 by default).
    pub fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// Stops listening: senders get "connection refused". `stop().await` also waits until the
    /// socket is closed, so the very next connection is refused; a bare `stop()` leaves a
    /// moment in which a connection may still be accepted and then reset.
    pub fn stop(&self) -> Stopping {
        let task = self.task.lock().expect("lock").take();
        if let Some(t) = &task {
            *self.hold.lock().expect("lock") =
                Some(PortHold::take(self.addr).expect("hold gateway port"));
            t.abort();
        }
        Stopping(task)
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop().await;
        let listener = port::listen(self.addr).expect("rebind the SMS gateway");
        self.serve(listener);
        self.hold.lock().expect("lock").take();
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests have arrived or `timeout` has passed, and returns
    /// all requests so far: fewer than `n` means they did not come.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The code in the last text received (see [`RecordedRequest::sms_code`]).
    pub fn last_sms_code(&self) -> Option<String> {
        self.requests().last()?.sms_code()
    }

    /// Requests for one number (Twilio's `To` or the webhook's `to`).
    pub fn to(&self, number: &str) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r.form("To").as_deref() == Some(number)
                    || serde_json::from_slice::<serde_json::Value>(&r.body)
                        .ok()
                        .and_then(|v| v.get("to").and_then(|t| t.as_str().map(str::to_owned)))
                        .as_deref()
                        == Some(number)
            })
            .collect()
    }

    /// Waits (up to 15 s) for the `nth` (0-based) message to `number`.
    pub async fn wait_for(&self, number: &str, nth: usize) -> RecordedRequest {
        for _ in 0..300 {
            if let Some(r) = self.to(number).get(nth) {
                return r.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no text #{nth} to {number} arrived; got {} requests",
            self.requests().len()
        );
    }
}

impl Drop for SmsGateway {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// What [`SmsGateway::stop`] returns: the listener is already cancelled; awaiting this waits
/// until it is closed.
pub struct Stopping(Option<JoinHandle<()>>);

impl IntoFuture for Stopping {
    type Output = ();
    type IntoFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            if let Some(task) = self.0 {
                // A cancelled task's future (and its listener) is dropped before the handle
                // resolves.
                let _ = task.await;
            }
        })
    }
}

async fn answer(
    mut stream: TcpStream,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    status: Arc<AtomicU16>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Ok(());
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[header_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    requests.lock().expect("lock").push(RecordedRequest {
        method,
        path,
        headers,
        body,
    });
    let code = status.load(Ordering::SeqCst);
    // Twilio-shaped bodies; the webhook adapter ignores them.
    let reply = match code {
        ..300 => r#"{"sid":"SM00000000000000000000000000000000","status":"queued"}"#,
        429 => r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
        500.. => r#"{"code":20500,"message":"Internal Server Error","status":500}"#,
        _ => {
            r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","status":400}"#
        }
    };
    let response = format!(
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
