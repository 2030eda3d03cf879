//! Password rules (NIST SP 800-63B: length, no composition rules, no guessable passwords) and
//! Argon2id hashing on a bounded pool, never on the async runtime's worker threads.

use crate::error::CoreError;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, Mutex};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// Refuses passwords that are too short, too long, or easy to guess (common passwords,
/// keyboard patterns, the user's own email). Length counts characters, not bytes.
pub fn check_password_policy(password: &str, email: &str) -> Result<(), CoreError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(CoreError::WeakPassword(format!(
            "Use at least {MIN_LEN} characters."
        )));
    }
    if chars > MAX_LEN {
        return Err(CoreError::WeakPassword(format!(
            "Use at most {MAX_LEN} characters."
        )));
    }
    let local = email.split('@').next().unwrap_or_default();
    let inputs = [email, local, "twofold"];
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if u8::from(entropy.score()) < 2 {
        return Err(CoreError::WeakPassword(
            "This password is too common or easy to guess. Try a longer phrase of unrelated words."
                .into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct HashParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for HashParams {
    /// OWASP's Argon2id recommendation: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        Self {
            m_cost_kib: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Argon2id on `workers` dedicated threads with at most `queue` jobs waiting. Past that the
/// caller gets [`CoreError::Busy`] at once, so a login flood cannot starve everything else of
/// CPU or pile up unbounded work. Dedicated threads (rather than the runtime's blocking pool,
/// which grows to hundreds of threads) also keep memory flat: each thread's allocator arena
/// holds on to its 19 MiB Argon2 blocks.
pub struct PasswordHasher {
    params: Params,
    jobs: tokio::sync::mpsc::Sender<Job>,
    dummy_hash: String,
}

pub enum Verified {
    Valid { needs_rehash: bool },
    Invalid,
}

impl PasswordHasher {
    pub fn new(params: HashParams, workers: usize, queue: usize) -> Result<Self, CoreError> {
        let params = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, None)
            .map_err(|e| CoreError::Internal(format!("argon2 parameters: {e}")))?;
        let dummy_hash = hash_blocking(&params, "twofold dummy password for unknown accounts")?;
        let (jobs, receiver) = tokio::sync::mpsc::channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("twofold-argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        // One idle worker waits on the queue at a time; the others wait here.
                        let job = receiver
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .blocking_recv();
                        match job {
                            Some(job) => job(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| CoreError::Internal(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(Self {
            params,
            jobs,
            dummy_hash,
        })
    }

    /// Fails fast when the queue is full, so callers can refuse before doing any other work
    /// (database look-ups) for a request that would be turned away anyway.
    pub fn check_capacity(&self) -> Result<(), CoreError> {
        if self.jobs.capacity() == 0 {
            Err(CoreError::Busy {
                retry_after_secs: 1,
            })
        } else {
            Ok(())
        }
    }

    pub async fn hash(&self, password: &SecretString) -> Result<String, CoreError> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || hash_blocking(&params, password.expose_secret()))
            .await?
    }

    pub async fn verify(&self, password: &SecretString, phc: &str) -> Result<Verified, CoreError> {
        let params = self.params.clone();
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move || verify_blocking(&params, password.expose_secret(), &phc))
            .await
    }

    /// Burns the same work as a real verification, so unknown accounts answer in the same time.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<(), CoreError> {
        let dummy = self.dummy_hash.clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.jobs.try_send(job).map_err(|e| match e {
            tokio::sync::mpsc::error::TrySendError::Full(_) => CoreError::Busy {
                retry_after_secs: 1,
            },
            tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                CoreError::Internal("password hashing pool stopped".into())
            }
        })?;
        result
            .await
            .map_err(|_| CoreError::Internal("password hashing job was lost".into()))
    }
}

/// Hashing threads yield the CPU to everything else: under a login flood, code checks and
/// page views keep their latency while hashing takes whatever CPU is left.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread (who = 0) only changes its nice value.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn hash_blocking(params: &Params, password: &str) -> Result<String, CoreError> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| CoreError::Internal(format!("argon2 hash: {e}")))
}

/// One synchronous verification with the given parameters, for benchmarks that measure the
/// machine's hashing ceiling outside any pool. `true` when the password matches.
pub fn verify_with_params(params: &HashParams, password: &str, phc: &str) -> bool {
    let Ok(params) = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, None) else {
        return false;
    };
    matches!(
        verify_blocking(&params, password, phc),
        Verified::Valid { .. }
    )
}

fn verify_blocking(params: &Params, password: &str, phc: &str) -> Verified {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Verified::Invalid;
    };
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    if argon.verify_password(password.as_bytes(), &parsed).is_err() {
        return Verified::Invalid;
    }
    let current = Params::try_from(&parsed).ok();
    let needs_rehash = parsed.algorithm.as_str() != "argon2id"
        || current.is_none_or(|p| {
            p.m_cost() < params.m_cost()
                || p.t_cost() < params.t_cost()
                || p.p_cost() != params.p_cost()
        });
    Verified::Valid { needs_rehash }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast() -> HashParams {
        HashParams {
            m_cost_kib: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }

    #[test]
    fn policy_length_and_guessability() {
        assert!(check_password_policy("short", "a@example.com").is_err());
        assert!(check_password_policy(&"x".repeat(129), "a@example.com").is_err());
        assert!(check_password_policy("password1", "a@example.com").is_err());
        assert!(check_password_policy("qwertyuiop", "a@example.com").is_err());
        assert!(check_password_policy("alice2024!", "alice2024@example.com").is_err());
        assert!(check_password_policy("correct horse battery staple 42", "a@example.com").is_ok());
        // Any characters are allowed, and length counts characters.
        assert!(check_password_policy("ñandú 🦙 cielo verde río", "a@example.com").is_ok());
    }

    #[tokio::test]
    async fn hash_verify_and_rehash_detection() {
        let weak = PasswordHasher::new(fast(), 2, 8).unwrap();
        let pw = SecretString::from("correct horse battery staple");
        let phc = weak.hash(&pw).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(matches!(
            weak.verify(&pw, &phc).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        ));
        assert!(matches!(
            weak.verify(&SecretString::from("wrong"), &phc)
                .await
                .unwrap(),
            Verified::Invalid
        ));
        let stronger = PasswordHasher::new(
            HashParams {
                m_cost_kib: 128,
                t_cost: 2,
                p_cost: 1,
            },
            2,
            8,
        )
        .unwrap();
        assert!(matches!(
            stronger.verify(&pw, &phc).await.unwrap(),
            Verified::Valid { needs_rehash: true }
        ));
        assert!(matches!(
            weak.verify(&pw, "not a phc string").await.unwrap(),
            Verified::Invalid
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_busy_instead_of_piling_up() {
        let hasher = Arc::new(
            PasswordHasher::new(
                HashParams {
                    m_cost_kib: 8 * 1024,
                    t_cost: 3,
                    p_cost: 1,
                },
                1,
                2,
            )
            .unwrap(),
        );
        let pw = SecretString::from("correct horse battery staple");
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let h = hasher.clone();
            let pw = pw.clone();
            tasks.push(tokio::spawn(async move { h.hash(&pw).await }));
        }
        let mut busy = 0;
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(CoreError::Busy { .. }) => busy += 1,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        assert!(ok >= 1, "some work must get through");
        assert!(busy >= 1, "a full queue must shed load, got {ok} ok");
    }
}
