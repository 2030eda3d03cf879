//! Twofold's benchmark: starts the release binary on SQLite and on PostgreSQL, seeds it through
//! SQL, runs every scenario of BENCHMARKS.md against it over loopback HTTP, and prints a table.
//! It measures; it asserts nothing.

mod cpu;
mod load;
mod report;
mod scenarios;
mod seed;
mod server;
mod server_latency;

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;

#[derive(Parser, Clone)]
#[command(about = "Load-test a Twofold release binary")]
pub struct Args {
    /// The twofold binary (release build).
    #[arg(long)]
    pub twofold: PathBuf,
    /// PostgreSQL admin URL; each run creates and drops its own database. Without it only SQLite runs.
    #[arg(long, env = "TWOFOLD_BENCH_POSTGRES_URL")]
    pub postgres: Option<String>,
    /// Seconds per measured scenario step.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Subjects seeded for the /verify scenarios (each code is used once).
    #[arg(long, default_value_t = 200_000)]
    pub subjects: u32,
    /// Also measure /verify with 10 thousand and 1 million subjects on PostgreSQL.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub large: bool,
    /// Leave SQLite out (to repeat a PostgreSQL measurement quickly).
    #[arg(long)]
    pub skip_sqlite: bool,
    /// The scenarios to run, e.g. `--scenarios 4` to repeat the hosted login alone (3 compares
    /// with 1 and runs only with it; 6's start and idle figures always come, its peaks with 1
    /// and 5).
    #[arg(long, value_delimiter = ',', default_values_t = [1u8, 2, 3, 4, 5, 7])]
    pub scenarios: Vec<u8>,
}

impl Args {
    pub fn runs(&self, scenario: u8) -> bool {
        self.scenarios.contains(&scenario)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // reqwest is built without a default TLS provider; the workspace standardises on ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if !args.skip_sqlite {
        rows.extend(
            scenarios::run_backend(&args, server::Backend::Sqlite, &mut notes)
                .await
                .context("SQLite run")?,
        );
    }
    if let Some(url) = args.postgres.clone() {
        rows.extend(
            scenarios::run_backend(&args, server::Backend::Postgres(url), &mut notes)
                .await
                .context("PostgreSQL run")?,
        );
    } else {
        notes.push("PostgreSQL skipped: no --postgres / TWOFOLD_BENCH_POSTGRES_URL".into());
    }
    report::print(&rows, &notes);
    Ok(())
}
