//! A small but real SMTP server for tests: it speaks the protocol over TCP, so mail goes
//! through lettre and the network exactly as in production. It can be stopped and restarted
//! on the same port to simulate an outage.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::port::{self, PortHold};

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

impl ReceivedMail {
    /// The first link in the body that contains `path`.
    pub fn link(&self, path: &str) -> Option<String> {
        self.data
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(path))
            .map(str::to_owned)
    }

    pub fn token(&self, path: &str) -> Option<String> {
        self.link(path)?.split("token=").nth(1).map(str::to_owned)
    }

    pub fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned()
    }
}

pub struct SmtpSink {
    addr: SocketAddr,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Holds the port while the sink is stopped (see [`crate::port`]).
    hold: Mutex<Option<PortHold>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = port::listen(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind smtp sink");
        let addr = listener.local_addr().expect("sink addr");
        let mails = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(serve(listener, mails.clone()));
        Self {
            addr,
            mails,
            task: Mutex::new(Some(task)),
            hold: Mutex::new(None),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Stops accepting connections: senders get "connection refused", and the port stays
    /// reserved for [`SmtpSink::restart`].
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().expect("lock").take() {
            *self.hold.lock().expect("lock") =
                Some(PortHold::take(self.addr).expect("hold smtp sink port"));
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        let listener = port::listen(self.addr).expect("rebind smtp sink");
        *self.task.lock().expect("lock") = Some(tokio::spawn(serve(listener, self.mails.clone())));
        self.hold.lock().expect("lock").take();
    }

    pub fn all(&self) -> Vec<ReceivedMail> {
        self.mails.lock().expect("lock").clone()
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .count()
    }

    /// Waits (up to 15 s) for the `nth` (0-based) mail to `to`.
    pub async fn wait_for(&self, to: &str, nth: usize) -> ReceivedMail {
        for _ in 0..300 {
            let found: Vec<ReceivedMail> = self
                .all()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == to))
                .collect();
            if let Some(m) = found.get(nth) {
                return m.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no mail #{nth} to {to} arrived; got {:?}",
            self.all()
                .iter()
                .map(|m| (&m.to, m.subject()))
                .collect::<Vec<_>>()
        );
    }
}

impl SmtpSink {
    /// Waits (up to 15 s) for a mail to `to` whose text contains `text`. Mail goes out in the
    /// background, in no promised order, so this is the way to wait for one notice among
    /// several.
    pub async fn wait_for_text(&self, to: &str, text: &str) -> ReceivedMail {
        for _ in 0..300 {
            if let Some(m) = self
                .all()
                .into_iter()
                .find(|m| m.to.iter().any(|t| t == to) && m.data.contains(text))
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no mail to {to} containing {text:?}; got {:?}",
            self.all()
                .iter()
                .map(|m| (&m.to, m.subject()))
                .collect::<Vec<_>>()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(listener: TcpListener, mails: Arc<Mutex<Vec<ReceivedMail>>>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let mails = mails.clone();
        tokio::spawn(async move {
            let _ = session(stream, mails).await;
        });
    }
}

async fn session(
    stream: tokio::net::TcpStream,
    mails: Arc<Mutex<Vec<ReceivedMail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_owned();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write
                .write_all(b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                .await?;
        } else if upper.starts_with("HELO") {
            write.write_all(b"250 sink.test\r\n").await?;
        } else if upper.starts_with("MAIL FROM:") {
            from = addr_of(&cmd[10..]);
            to.clear();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(addr_of(&cmd[8..]));
            write.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            write.write_all(b"354 end with .\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                data.push_str(
                    l.strip_prefix('.')
                        .filter(|_| l.starts_with(".."))
                        .unwrap_or(l),
                );
                data.push('\n');
            }
            mails.lock().expect("lock").push(ReceivedMail {
                from: from.clone(),
                to: to.clone(),
                data: decode_body(&data),
            });
            write.write_all(b"250 queued\r\n").await?;
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "RSET" || upper == "NOOP" {
            write.write_all(b"250 OK\r\n").await?;
        } else {
            write.write_all(b"502 not implemented\r\n").await?;
        }
    }
}

fn addr_of(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(a, _)| a)
        .unwrap_or(s);
    inner.to_owned()
}

/// Undoes quoted-printable transfer encoding of the body, which lettre picks for long lines.
fn decode_body(data: &str) -> String {
    let Some((head, body)) = data.split_once("\n\n") else {
        return data.to_owned();
    };
    if !head
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: quoted-printable")
    {
        return data.to_owned();
    }
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    format!("{head}\n\n{}", String::from_utf8_lossy(&out))
}
