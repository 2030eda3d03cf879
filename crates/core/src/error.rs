use crate::ports::StoreError;

/// Everything a use case can refuse. The web layer maps each variant to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("{message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    WeakPassword(String),
    /// Unknown account, wrong password and locked account all look like this (no oracle).
    #[error("Incorrect email or password.")]
    InvalidCredentials,
    #[error("Please verify your email address first. We have sent you a new link.")]
    EmailNotVerified,
    #[error("Too many attempts. Try again in {retry_after_secs} seconds.")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("This link is invalid or has expired.")]
    InvalidToken,
    #[error("The current password is not correct.")]
    WrongCurrentPassword,
    #[error("You need to sign in.")]
    Unauthenticated,
    #[error("That code is not correct.")]
    WrongCode,
    #[error("Too many wrong codes. Sign in again.")]
    SecondStepVoid,
    #[error("Confirm with your second factor first.")]
    StepUpRequired,
    /// Resend cooldown or a send quota (per number, account, address or country).
    #[error("Too many codes were requested. Try again in {retry_after_secs} seconds.")]
    SendLimited { retry_after_secs: u64 },
    /// The daily SMS budget is spent (circuit breaker open) or SMS is not configured.
    #[error("We cannot send text messages right now. Use another method.")]
    SmsUnavailable,
    /// A WebAuthn response that does not verify (wrong origin, replayed or expired challenge,
    /// bad signature, a key registered already, a counter that went backwards).
    #[error("{0}")]
    KeyRejected(&'static str),
    /// The operator's policy does not allow this (a forbidden method, removing the last
    /// factor of an account that must have one).
    #[error("{0}")]
    PolicyForbids(&'static str),
    /// A sensitive action needs two-step verification, which the account has not set up.
    #[error("Set up two-step verification first.")]
    TwoFactorSetupRequired,
    /// Signed in, but not allowed here (a customer at the operator console).
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("Not found.")]
    NotFound,
    #[error("The server is busy. Try again in {retry_after_secs} seconds.")]
    Busy { retry_after_secs: u64 },
    #[error("The service is temporarily unavailable.")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl CoreError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            message: message.into(),
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Conflict(m) | StoreError::Other(m) => Self::Internal(m),
        }
    }
}
