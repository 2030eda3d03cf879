use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Logs go to stdout; `TWOFOLD_LOG` (or `RUST_LOG`) sets the filter, default `info`.
pub fn init(format: LogFormat) {
    let filter = std::env::var("TWOFOLD_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Already initialised (tests call this more than once): keep the first.
    let _ = result;
}
