//! A full disk under load, on SQLite: the data directory is a small tmpfs, filled while
//! sign-ups and enrolments run and freed again. While it is full requests answer 503 with
//! `Retry-After` (never 500) and `/readyz` says not ready; after it is freed every request
//! succeeds again without a restart; and every 2xx answered during the whole run is in the
//! database afterwards, with no mail sent for an account that does not exist.
//!
//! Mounting needs root (CI runs as root); elsewhere the test says why it did not run.

mod common;

use common::{Server, run};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A tmpfs mounted over a directory for the length of the test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, megabytes: u32) -> Result<Self, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={megabytes}m,mode=0700"))
            .arg("tmpfs")
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(Self(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem holding `path` until writing fails for want of space.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling: {e}"),
        }
    }
    // The last partial chunk too, so that not even a page is left.
    while let Ok(n) = f.write(&chunk[..512]) {
        if n == 0 {
            break;
        }
    }
    let _ = f.sync_all();
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    accounts: Vec<String>,
    factors: Vec<String>,
    unavailable: u64,
    /// Any answer but 201, 202 and a well-formed 503, with what was asked.
    wrong: Vec<String>,
}

struct Load {
    url: String,
    key: String,
    client: reqwest::Client,
    seen: Mutex<Seen>,
    counter: AtomicU64,
    stop: AtomicBool,
}

impl Load {
    /// One sign-up or one enrolment, alternately; records what was acknowledged.
    async fn one(&self) -> u16 {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let (email, request) = if n.is_multiple_of(2) {
            let email = format!("load-{n}@example.com");
            let r = self
                .client
                .post(format!("{}/api/v1/signup", self.url))
                .json(&json!({ "email": email, "password": "correct horse battery staple 42" }));
            (Some(email), r)
        } else {
            let r = self
                .client
                .post(format!("{}/api/v1/subjects/s{n}/factors", self.url))
                .bearer_auth(&self.key)
                .json(&json!({ "type": "totp", "label": "phone" }));
            (None, r)
        };
        let r = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.seen.lock().unwrap().wrong.push(format!("{n}: {e}"));
                return 0;
            }
        };
        let status = r.status().as_u16();
        let retry_after = r.headers().contains_key("retry-after");
        let kind = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.text().await.unwrap_or_default();
        let mut seen = self.seen.lock().unwrap();
        match (status, email) {
            (202, Some(email)) => seen.accounts.push(email),
            (201, None) => {
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                seen.factors.push(v["id"].as_str().unwrap().to_owned());
            }
            (503, _) if retry_after && kind.starts_with("application/problem+json") => {
                seen.unavailable += 1;
            }
            _ => seen
                .wrong
                .push(format!("{n}: {status} {kind} {retry_after} {body}")),
        }
        status
    }

    fn unavailable(&self) -> u64 {
        self.seen.lock().unwrap().unavailable
    }

    fn acknowledged(&self) -> usize {
        let seen = self.seen.lock().unwrap();
        seen.accounts.len() + seen.factors.len()
    }
}

async fn wait_for(what: &str, deadline: Duration, mut done: impl AsyncFnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done().await {
        assert!(Instant::now() < until, "waited {deadline:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_loses_no_acknowledged_write_and_the_server_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _mount = match Tmpfs::mount(&data, 16) {
        Ok(m) => m,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("not run: mounting a tmpfs needs root here ({e})");
            return;
        }
        Err(e) => panic!("CI=true and a tmpfs cannot be mounted: {e}"),
    };
    let out = run(&["apikey", "create", "--name", "load"], &data);
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let server = Server::start(&data, &[]);
    let load = Arc::new(Load {
        url: server.url.clone(),
        key,
        client: reqwest::Client::new(),
        seen: Mutex::default(),
        counter: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let workers: Vec<_> = (0..6)
        .map(|_| {
            let load = load.clone();
            tokio::spawn(async move {
                while !load.stop.load(Ordering::Relaxed) {
                    load.one().await;
                }
            })
        })
        .collect();
    let client = reqwest::Client::new();

    wait_for(
        "writes before the fill",
        Duration::from_secs(30),
        async || load.acknowledged() >= 40,
    )
    .await;
    let filler = data.join("filler");
    fill(&filler);
    let before = load.unavailable();
    wait_for("503s while full", Duration::from_secs(30), async || {
        load.unavailable() >= before + 50
    })
    .await;
    wait_for(
        "not ready while full",
        Duration::from_secs(30),
        async || readyz(&client, &server.url).await == 503,
    )
    .await;

    std::fs::remove_file(&filler).unwrap();
    wait_for("ready after freeing", Duration::from_secs(30), async || {
        readyz(&client, &server.url).await == 200
    })
    .await;
    load.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    // Every request succeeds again, without a restart.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(load.one().await);
    }
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 202),
        "after freeing: {statuses:?}"
    );

    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    let seen = std::mem::take(&mut *load.seen.lock().unwrap());
    assert!(
        seen.wrong.is_empty(),
        "answers other than 2xx or 503: {:?}",
        seen.wrong
    );
    assert!(!log.contains("panicked"), "{log}");

    // Every acknowledged write is in the database.
    let db = format!("sqlite://{}", data.join("twofold.db").display());
    let pool = sqlx::SqlitePool::connect(&db).await.unwrap();
    let accounts: Vec<String> = sqlx::query_scalar("SELECT email FROM accounts")
        .fetch_all(&pool)
        .await
        .unwrap();
    let factors: Vec<String> = sqlx::query_scalar("SELECT id FROM factors")
        .fetch_all(&pool)
        .await
        .unwrap();
    let missing: Vec<_> = seen
        .accounts
        .iter()
        .filter(|e| !accounts.contains(e))
        .collect();
    assert!(
        missing.is_empty(),
        "sign-ups answered 202 but lost: {missing:?}"
    );
    let missing: Vec<_> = seen
        .factors
        .iter()
        .filter(|f| !factors.contains(f))
        .collect();
    assert!(
        missing.is_empty(),
        "enrolments answered 201 but lost: {missing:?}"
    );
    // No mail went to an address whose account does not exist.
    let phantom: Vec<_> = log
        .lines()
        .filter_map(|l| l.strip_prefix("To: "))
        .filter(|to| to.starts_with("load-") && !accounts.iter().any(|a| a == to.trim()))
        .collect();
    assert!(
        phantom.is_empty(),
        "mail for accounts that do not exist: {phantom:?}"
    );
    assert!(seen.unavailable >= 50);
}
