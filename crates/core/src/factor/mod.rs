//! Second factors. One module per factor type; each is pure (no I/O), the services in
//! `crate::service` store and consume them.

pub mod backup_codes;
pub mod otp_code;
pub mod totp;
pub mod webauthn;
