//! The real binary, started as an operator starts it, shared by the tests of this crate.
#![allow(dead_code)] // each test binary uses its own part of it

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_twofold");

pub struct Server {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
    pub url: String,
}

impl Server {
    pub fn start(data_dir: &std::path::Path, envs: &[(&str, String)]) -> Self {
        // reqwest is built without a default TLS provider (ring is chosen at start-up).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env(
                "TWOFOLD_LOG",
                "debug,sqlx=warn,hyper=info,h2=info,lettre=info,rustls=info",
            )
            // Each test client is a new browser; known devices have their own tests.
            .env("TWOFOLD_DEVICES__VERIFY", "false")
            .env("TWOFOLD_DEVICES__NOTIFY", "false")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start twofold");
        let log = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            if let Some(url) = log
                .lock()
                .unwrap()
                .lines()
                .find_map(|l| l.split("listening on ").nth(1).map(|u| u.trim().to_owned()))
            {
                break url;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start:\n{}",
                log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Self { child, log, url }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    /// SIGTERM, then the exit status and everything it logged.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait");
        std::thread::sleep(Duration::from_millis(100));
        let log = self.log.lock().unwrap().clone();
        (status, log)
    }
}

pub fn run(args: &[&str], data: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap()
}
