//! Test support: a database per test on either backend, a real SMTP sink, and the whole app
//! spawned on port 0 with a fake clock.

pub mod app;
pub mod burst;
pub mod db;
pub mod mmdb;
pub mod nginx;
pub mod port;
pub mod sms_gateway;
pub mod smtp;
pub mod totp;

pub use app::{Node, TestApp, spawn_app, spawn_app_configured, spawn_app_with};
pub use db::{Backend, TestDb};
pub use sms_gateway::{RecordedRequest, SmsGateway, Stopping};
pub use smtp::{ReceivedMail, SmtpSink};

/// Runs an async test body once per available backend: SQLite always, PostgreSQL when
/// `TWOFOLD_TEST_POSTGRES_URL` is set (and it must be set when `CI=true`).
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::TestDb::postgres().await {
                    super::$body(db).await;
                }
            }
        }
    };
}
