//! The Twofold domain: accounts, sessions, factors and the use cases that tie them together.
//!
//! Nothing here knows about HTTP or SQL. Time, randomness, storage and delivery come in
//! through the traits in [`ports`], so every rule can be tested with a fake clock.

pub mod assurance;
pub mod canonical;
pub mod clock;
pub mod device;
pub mod email;
pub mod error;
pub mod factor;
pub mod geo;
pub mod keys;
pub mod mail;
pub mod model;
pub mod oidc;
pub mod password;
pub mod phone;
pub mod policy;
pub mod ports;
pub mod random;
pub mod service;
pub mod stats;
pub mod throttle;
pub mod token;

pub use clock::{Clock, FakeClock, SystemClock};
pub use error::CoreError;
pub use service::{Core, CoreSettings};
