//! Start-up, the server loop and graceful shutdown.

use crate::config::{MailDelivery, Settings, redact_url};
use crate::data_dir::{ensure_data_dir, load_or_create_keys};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use twofold_core::password::{HashParams, PasswordHasher};
use twofold_core::ports::Deliver;
use twofold_core::random::OsRandom;
use twofold_core::{Core, CoreSettings, SystemClock};
use twofold_delivery::{
    Deliveries, LogDelivery, SmsAdapter, SmtpMailer, build_sms, run_outbox_worker,
};
use twofold_store::{ConnectOptions, SqlStore};
use twofold_web::{AppState, WebSettings};

/// Connects (and migrates) the store and assembles the core.
pub async fn build_core(settings: &Settings, public_url: &str) -> Result<(Arc<Core>, SqlStore)> {
    ensure_data_dir(&settings.data_dir)?;
    let (keys, created) = load_or_create_keys(&settings.keys_path())?;
    if created {
        tracing::info!(path = %settings.keys_path().display(), "generated a new data-encryption key; back this file up");
    }
    let store = connect_and_migrate(settings).await?;
    let workers = settings.password_hashing.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let hasher = PasswordHasher::new(
        HashParams {
            m_cost_kib: settings.password_hashing.memory_kib,
            t_cost: settings.password_hashing.iterations,
            p_cost: 1,
        },
        workers,
        settings.password_hashing.queue,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let core_settings = CoreSettings {
        public_url: public_url.to_owned(),
        product_name: settings.branding.product_name.clone(),
        session_idle_timeout: time::Duration::minutes(i64::from(
            settings.session.idle_timeout_minutes,
        )),
        session_lifetime: time::Duration::hours(i64::from(settings.session.lifetime_hours)),
        step_up_window: time::Duration::seconds(i64::from(settings.session.step_up_seconds)),
        trusted_browser_ttl: (settings.session.trusted_browser_days > 0)
            .then(|| time::Duration::days(i64::from(settings.session.trusted_browser_days))),
        totp_window: settings.second_factor.totp_window,
        codes: settings.second_factor.code_settings(),
        send_quotas: settings.second_factor.send_quotas(),
        relying_party: settings.webauthn.relying_party(),
        policy: settings.policy.clone(),
        devices: settings.devices.clone(),
        forward_auth: settings.forward_auth.clone(),
        oidc: settings.oidc.core(),
        login_budget_account: settings.limits.login_per_account.budget(),
        login_budget_ip: settings.limits.login_per_address.budget(),
        second_factor_budget: settings.limits.second_factor.budget(),
        partial_session_attempts: settings.limits.tries_per_sign_in,
        ..CoreSettings::default()
    };
    let keys_path = settings.keys_path();
    let core = Core::new(
        Arc::new(store.clone()),
        Arc::new(SystemClock),
        Arc::new(OsRandom),
        Arc::new(keys),
        Arc::new(hasher),
        core_settings,
    )
    .with_key_source(Arc::new(move || {
        crate::data_dir::load_or_create_keys(&keys_path)
            .map(|(ring, _)| ring)
            .map_err(|e| format!("{e:#}"))
    }));
    let core = match &settings.devices.geoip_database {
        // A configured database that cannot be read is a mistake to report, not to skip.
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("devices.geoip_database: reading {}", path.display()))?;
            let geoip = twofold_core::geo::GeoIp::from_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("devices.geoip_database: {}: {e}", path.display()))?;
            core.with_geoip(geoip)
        }
        None => core,
    };
    core.check_key_canary()
        .await
        .map_err(|e| match e {
            twofold_core::CoreError::Internal(m) => anyhow::anyhow!(m),
            e => anyhow::anyhow!("{e}"),
        })
        .context("start-up key check")?;
    Ok((Arc::new(core), store))
}

async fn connect_and_migrate(settings: &Settings) -> Result<SqlStore> {
    let url = settings.database_url();
    let store = SqlStore::connect(
        &url,
        &ConnectOptions {
            max_connections: settings.database.max_connections,
            ..ConnectOptions::default()
        },
    )
    .await
    .with_context(|| format!("database {}", redact_url(&url)))?;
    let applied = store.migrate().await?;
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(store)
}

pub async fn migrate_only(settings: &Settings) -> Result<()> {
    ensure_data_dir(&settings.data_dir)?;
    let store = connect_and_migrate(settings).await?;
    println!(
        "database is up to date ({})",
        redact_url(&settings.database_url())
    );
    store.close().await;
    Ok(())
}

pub async fn run(settings: Settings) -> Result<()> {
    check_clock();
    let _ = rustls::crypto::ring::default_provider().install_default();
    twofold_web::install_metrics();
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let bound = listener.local_addr()?;
    let public_url = settings.public_url_for(bound);
    let (core, store) = build_core(&settings, &public_url).await?;

    let email: Arc<dyn Deliver> = match settings.mail.delivery {
        MailDelivery::Log => Arc::new(LogDelivery),
        MailDelivery::Smtp => {
            let smtp = settings.mail.smtp.as_ref().context("mail.smtp missing")?;
            Arc::new(SmtpMailer::new(smtp)?)
        }
    };
    let sms = build_sms(&settings.sms).map_err(|e| anyhow::anyhow!(e))?;
    if settings.sms.adapter == SmsAdapter::Log {
        tracing::warn!(
            "SMS delivery is in development mode: text messages, codes included, are printed to this log and not sent"
        );
    }
    let delivery: Arc<dyn Deliver> = Arc::new(Deliveries { email, sms });
    let web = WebSettings {
        public_url: public_url.clone(),
        trusted_proxies: settings.trusted_proxies.clone(),
        templates_dir: settings.templates_dir.clone(),
        branding: settings.branding.clone(),
        cookie_domain: settings.session.cookie_domain.clone(),
        metrics_token: settings.metrics.bearer_token.clone(),
        request_timeout: Duration::from_secs(settings.server.request_timeout_seconds),
    };
    let state = AppState::new(core.clone(), web).map_err(|e| anyhow::anyhow!(e))?;
    let app = twofold_web::router(state);

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(run_outbox_worker(core.clone(), delivery, shutdown.clone()));
    let housekeeping = tokio::spawn(housekeeping(core.clone(), shutdown.clone()));

    tracing::info!(data_dir = %settings.data_dir.display(), database = %redact_url(&settings.database_url()), "storage ready");
    match settings.mail.delivery {
        MailDelivery::Log => tracing::warn!(
            "mail delivery is in development mode: messages are printed to this log, not sent"
        ),
        MailDelivery::Smtp => tracing::info!(
            host = settings
                .mail
                .smtp
                .as_ref()
                .map(|s| s.host.as_str())
                .unwrap_or_default(),
            "mail delivery via SMTP"
        ),
    }
    if !public_url.starts_with("https://") && !is_loopback_url(&public_url) {
        tracing::warn!(%public_url, "public_url is plain http on a non-loopback host: cookies are not Secure; put Twofold behind https");
    }
    tracing::info!("listening on http://{bound}");
    tracing::info!("Twofold is ready: open {public_url}/signup");

    let signal_token = shutdown.clone();
    crate::http::serve(listener, app, &settings.server, async move {
        shutdown_signal().await;
        tracing::info!(
            drain_seconds = settings.server.drain_seconds,
            "shutting down: no new connections, finishing requests in flight"
        );
        signal_token.cancel();
    })
    .await;

    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .is_err()
    {
        tracing::warn!("outbox worker did not stop within 10 s");
    }
    housekeeping.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Periodic work that any node may do: telling owners about abandoned second steps (every
/// minute, so the mail goes out soon after the 10 minutes), reminding owners of the 2FA
/// deadline, dropping expired sessions and codes, and forgetting stale known browsers.
async fn housekeeping(core: Arc<Core>, shutdown: CancellationToken) {
    for round in 0u64.. {
        match core.notify_abandoned_second_steps().await {
            Ok(n) if n > 0 => {
                tracing::info!(accounts = n, "owners told about abandoned second steps")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "abandoned second-step check failed"),
        }
        match core.send_policy_reminders().await {
            Ok(n) if n > 0 => {
                tracing::info!(accounts = n, "two-step verification reminders queued")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "policy reminders failed"),
        }
        // Statistics at start and then every half hour; a scan of accounts, never per page.
        if round % 30 == 0
            && let Err(e) = core.aggregate_stats().await
        {
            tracing::warn!(error = %e, "statistics job failed");
        }
        if round % 10 == 0 {
            match core.purge_expired_sessions().await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "expired sessions removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "session clean-up failed"),
            }
            match core.purge_code_challenges().await {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "old code challenges and send counters removed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "code challenge clean-up failed"),
            }
            if let Err(e) = core.purge_device_challenges().await {
                tracing::warn!(error = %e, "device code clean-up failed");
            }
            match core.purge_oidc().await {
                Ok(n) if n > 0 => {
                    tracing::info!(removed = n, "expired OIDC codes and tokens removed")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "OIDC clean-up failed"),
            }
        }
        // Hourly: it ranks the browsers of accounts over the cap, a scan of an index.
        if round % 60 == 0 {
            match core.purge_known_devices().await {
                Ok(n) if n > 0 => tracing::info!(removed = n, "stale known browsers forgotten"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "known browser clean-up failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn is_loopback_url(url: &str) -> bool {
    let host = url
        .trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    matches!(host, "127.0.0.1" | "localhost" | "[") || host.starts_with("127.")
}

/// One-time codes and sessions depend on the clock; a clock far in the past is a broken host.
fn check_clock() {
    let now = time::OffsetDateTime::now_utc();
    if now.year() < 2025 {
        tracing::error!(%now, "the system clock looks wrong (before 2025); time-based codes and sessions will misbehave");
    }
}
