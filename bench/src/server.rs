//! The Twofold process under test.

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres(_) => "PostgreSQL",
        }
    }
}

pub struct Server {
    child: Child,
    pub url: String,
    pub ready_after: Duration,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs a `twofold` command against the data directory / database and returns its stdout.
pub fn cli(bin: &Path, data: &Path, db_url: Option<&str>, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env("TWOFOLD_LOG", "warn");
    if let Some(url) = db_url {
        cmd.env("TWOFOLD_DATABASE__URL", url);
    }
    let out = cmd
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "twofold {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Server {
    pub async fn start(bin: &Path, data: &Path, db_url: Option<&str>, log: &Path) -> Result<Self> {
        let port = free_port()?;
        let log_file = std::fs::File::create(log)?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        // Access logs at info would put a log line per request on the measured path;
        // TWOFOLD_BENCH_SERVER_LOG sets another filter (e.g. `warn,sqlx::query=debug`).
        .env(
            "TWOFOLD_LOG",
            std::env::var("TWOFOLD_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        // The load generator's logins come from one cookie-less client, a new browser at every
        // sign-in: without these it would measure the emailed device code. Each sign-in still
        // records its browser, in the write of its session, as a first sign-in does.
        .env("TWOFOLD_DEVICES__VERIFY", "false")
        .env("TWOFOLD_DEVICES__NOTIFY", "false")
        .stdout(Stdio::from(log_file.try_clone()?))
        .stderr(Stdio::from(log_file));
        if let Some(url) = db_url {
            cmd.env("TWOFOLD_DATABASE__URL", url);
        }
        let started = Instant::now();
        let child = cmd.spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(r) = client.get(format!("{url}/readyz")).send().await
                && r.status() == 200
            {
                break;
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("twofold did not become ready; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(Self {
            child,
            url,
            ready_after: started.elapsed(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (current RSS, peak RSS) in MiB, from /proc.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn stop(mut self) {
        // SIGTERM, so the server shuts down as in production.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

pub fn data_dir(root: &Path) -> PathBuf {
    root.join("data")
}
