//! The `twofold` binary: the server and its operator commands.

mod clients;
mod config;
mod data_dir;
mod healthcheck;
mod http;
mod operator;
mod policy;
mod proxies;
mod serve;
mod telemetry;
mod users;

use anyhow::Result;
use clap::{Parser, Subcommand};
use config::{LogFormat, Overrides, Settings};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// jemalloc rather than the system allocator: requests allocate on one runtime thread and
/// free on another (and on SQLite's connection threads), which glibc's arenas handle with
/// locks. A/B on 2 vCPUs (BENCHMARKS.md, 2026-12-03 07:20): /verify on SQLite 10–12 % faster
/// at c=16 and c=64, the server's CPU per check 12 % lower, idle RSS 2 MiB higher. mimalloc
/// was as fast but kept 49 MiB resident when idle.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "twofold",
    version,
    about = "Self-hosted two-factor authentication server"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, env = "TWOFOLD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides `listen`).
    #[arg(long, global = true)]
    listen: Option<SocketAddr>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format: text or json (overrides `log_format`).
    #[arg(long, global = true, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Configuration commands.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Exit 0 if the server at `listen` answers /readyz, 1 otherwise (for container health probes).
    Healthcheck {
        /// Base URL to probe instead of `listen`, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        url: Option<String>,
    },
    /// Manage customer accounts.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Manage API keys of the verification API.
    Apikey {
        #[command(subcommand)]
        command: operator::ApiKeyCommand,
    },
    /// Applications that sign users in through the OpenID Connect provider.
    Client {
        #[command(subcommand)]
        command: clients::ClientCommand,
    },
    /// Settings of the verification API's tenants.
    Tenant {
        #[command(subcommand)]
        command: operator::TenantCommand,
    },
    /// The mandatory two-step verification policy.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// Manage the data-encryption keys.
    Keys {
        #[command(subcommand)]
        command: operator::KeysCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print the effective settings, secrets redacted.
    Check,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err("expected text or json".into()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir.clone(),
        log_format: cli.log_format,
    };
    let settings = match Settings::load(cli.config.as_deref(), &overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("twofold: {e:#}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("twofold: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<ExitCode> = runtime.block_on(async move {
        match cli.command {
            Command::Serve => {
                telemetry::init(settings.log_format);
                serve::run(settings).await.map(|_| ExitCode::SUCCESS)
            }
            Command::Migrate => {
                telemetry::init(settings.log_format);
                serve::migrate_only(&settings)
                    .await
                    .map(|_| ExitCode::SUCCESS)
            }
            Command::Config {
                command: ConfigCommand::Check,
            } => {
                let toml = settings.redacted_toml()?;
                print!("{toml}");
                if !toml.ends_with('\n') {
                    println!();
                }
                eprintln!("configuration is valid");
                Ok(ExitCode::SUCCESS)
            }
            Command::Healthcheck { url } => Ok(healthcheck::run(&settings, url.as_deref()).await),
            Command::User { command } => users::run(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Apikey { command } => operator::api_key(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Client { command } => clients::client(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Tenant { command } => operator::tenant(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Policy { command } => policy::run(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
            Command::Keys { command } => operator::keys(&settings, command)
                .await
                .map(|_| ExitCode::SUCCESS),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("twofold: {e:#}");
            ExitCode::FAILURE
        }
    }
}
