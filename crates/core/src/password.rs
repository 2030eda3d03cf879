//! Password rules (NIST SP 800-63B: length, no composition rules, no guessable passwords) and
//! Argon2id hashing on a bounded pool, never on the async runtime's worker threads.

use crate::error::CoreError;
use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::password_hash::try_generate_salt;
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

type Job = Box<dyn FnOnce(&mut HashMemory) + Send>;

/// Argon2's working memory (19 MiB at the default parameters), kept and reused by one thread.
/// Allocating it per hash (the crate's default) cost little alone but much in parallel: two
/// threads hashing together got 59–80 hashes/s on a 2-vCPU VM against 121/s with reused
/// memory, single hashes 15 ms either way — most likely the unmap of each freed 19 MiB, which
/// must flush the TLB of every core running the process, and the page faults after it. What a
/// hash leaves in it is overwritten by the next one; it is no more sensitive than the password
/// that request already holds in memory.
#[derive(Default)]
pub struct HashMemory {
    blocks: Vec<Block>,
}

impl HashMemory {
    /// Memory for `params`, or `None` when the machine cannot provide it (a stored hash may
    /// name any cost: failing is the crate's own answer too, not aborting the process).
    fn blocks(&mut self, params: &Params) -> Option<&mut [Block]> {
        let count = params.block_count();
        if self.blocks.len() < count {
            self.blocks
                .try_reserve_exact(count - self.blocks.len())
                .ok()?;
            self.blocks.resize(count, Block::default());
        }
        self.blocks.get_mut(..count)
    }

    /// Gives back memory beyond what `params` need: an old hash with a higher cost gets its
    /// memory for one verification, not for the thread's lifetime.
    fn keep_at_most(&mut self, params: &Params) {
        if self.blocks.len() > params.block_count() {
            self.blocks = Vec::new();
        }
    }
}

/// Argon2id on `workers` dedicated threads with at most `queue` jobs waiting. Past that the
/// caller gets [`CoreError::Busy`] at once, so a login flood cannot starve everything else of
/// CPU or pile up unbounded work. Dedicated threads (rather than the runtime's blocking pool,
/// which grows to hundreds of threads) also keep memory flat: each holds one [`HashMemory`].
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
        let dummy_hash = hash_blocking(
            &params,
            "twofold dummy password for unknown accounts",
            &mut HashMemory::default(),
        )?;
        let (jobs, receiver) = tokio::sync::mpsc::channel::<Job>(queue.max(1));
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..workers.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("twofold-argon2-{n}"))
                .spawn(move || {
                    lower_priority();
                    let mut memory = HashMemory::default();
                    loop {
                        // One idle worker waits on the queue at a time; the others wait here.
                        let job = receiver
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .blocking_recv();
                        match job {
                            Some(job) => job(&mut memory),
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
        self.run(move |memory| hash_blocking(&params, password.expose_secret(), memory))
            .await?
    }

    pub async fn verify(&self, password: &SecretString, phc: &str) -> Result<Verified, CoreError> {
        let params = self.params.clone();
        let password = password.clone();
        let phc = phc.to_owned();
        self.run(move |memory| verify_blocking(&params, password.expose_secret(), &phc, memory))
            .await
    }

    /// Burns the same work as a real verification, so unknown accounts answer in the same time.
    pub async fn verify_dummy(&self, password: &SecretString) -> Result<(), CoreError> {
        let dummy = self.dummy_hash.clone();
        self.verify(password, &dummy).await.map(|_| ())
    }

    async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut HashMemory) -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let _ = done.send(job(memory));
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
/// page views keep their latency while hashing takes whatever CPU is left. `SCHED_IDLE`
/// rather than a nice value because the kernel lets a waking normal thread preempt an idle-
/// class one at once, where a niced one may finish its slice first: every code check wakes
/// several times (socket, database, response), and with nice 10 the flood's `/verify` p99 on
/// PostgreSQL was 45–87 ms against 21–37 ms with `SCHED_IDLE` (`git show df4d184:BENCHMARKS.md`,
/// the A/B of 2026-12-02 18:50). The price is that logins wait while code checks keep every core busy; the bounded
/// queue then turns the excess away. Where the policy is refused, nice 19 is the next best.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: both calls act on the calling thread only (pid/who 0) and take no pointers
    // but `param`, which outlives the call.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) != 0 {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
        }
    }
}

/// The most memory a stored hash may ask for (1 GiB; OWASP's strongest setting is 46 MiB). A
/// hash naming more is refused like a wrong password rather than attempted.
const MAX_STORED_M_COST_KIB: u32 = 1 << 20;

fn argon2id(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

/// The crate's `hash_password` with the thread's memory instead of a fresh allocation; the
/// PHC string is assembled from the crate's own types, as its `hash_password` does.
fn hash_blocking(
    params: &Params,
    password: &str,
    memory: &mut HashMemory,
) -> Result<String, CoreError> {
    let failed = |e: &dyn std::fmt::Display| CoreError::Internal(format!("argon2 hash: {e}"));
    let salt = try_generate_salt().map_err(|e| failed(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let blocks = memory
        .blocks(params)
        .ok_or_else(|| failed(&"out of memory"))?;
    argon2id(params)
        .hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// One synchronous verification with the given parameters and memory, for benchmarks that
/// measure the machine's hashing ceiling outside any pool the way the pool hashes. `true` when
/// the password matches.
pub fn verify_with_params(
    params: &HashParams,
    password: &str,
    phc: &str,
    memory: &mut HashMemory,
) -> bool {
    let Ok(params) = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, None) else {
        return false;
    };
    matches!(
        verify_blocking(&params, password, phc, memory),
        Verified::Valid { .. }
    )
}

/// The crate's `verify_password` with the thread's memory: the stored hash's own algorithm,
/// version and parameters, compared in constant time (`Output`'s `PartialEq`).
fn verify_blocking(
    params: &Params,
    password: &str,
    phc: &str,
    memory: &mut HashMemory,
) -> Verified {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return Verified::Invalid;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Verified::Invalid;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return Verified::Invalid;
    };
    let Ok(version) = parsed
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return Verified::Invalid;
    };
    let Ok(stored) = Params::try_from(&parsed) else {
        return Verified::Invalid;
    };
    if stored.m_cost() > MAX_STORED_M_COST_KIB {
        return Verified::Invalid;
    }
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, stored.clone());
    let computed = memory.blocks(&stored).and_then(|blocks| {
        argon
            .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
            .ok()
            .and_then(|()| Output::new(&out).ok())
    });
    memory.keep_at_most(params);
    if computed.as_ref() != Some(expected) {
        return Verified::Invalid;
    }
    let needs_rehash = algorithm != Algorithm::Argon2id
        || stored.m_cost() < params.m_cost()
        || stored.t_cost() < params.t_cost()
        || stored.p_cost() != params.p_cost();
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

    /// PHC strings printed by the reference C implementation (Debian's `argon2` tool):
    /// `echo -n "correct horse battery staple" | argon2 twofoldsalt16by -id -t 2 -m 8 -p 1 -l 32 -e`
    /// and `… | argon2 somesaltsomesalt -i -t 3 -k 96 -p 2 -l 24 -e`.
    const REFERENCE_ID: &str = "$argon2id$v=19$m=256,t=2,p=1$dHdvZm9sZHNhbHQxNmJ5$s8Zw9WFzrpLwN4lnFDv48isw5eWTeoPQht9brIihGIA";
    const REFERENCE_I: &str =
        "$argon2i$v=19$m=96,t=3,p=2$c29tZXNhbHRzb21lc2FsdA$LHvAzKLDbw0HrXuLRNbFmm44SKDcjtys";

    #[test]
    fn reused_memory_agrees_with_the_reference_implementation() {
        // Current parameters above the stored ones, so the memory stays (dirty) between checks.
        let params = Params::new(512, 1, 1, None).unwrap();
        let pw = "correct horse battery staple";
        let mut memory = HashMemory::default();
        // Memory left dirty by a bigger hash first, then by each check in turn.
        hash_blocking(&Params::new(512, 1, 1, None).unwrap(), "other", &mut memory).unwrap();
        for phc in [REFERENCE_ID, REFERENCE_I, REFERENCE_ID] {
            assert!(matches!(
                verify_blocking(&params, pw, phc, &mut memory),
                Verified::Valid { .. }
            ));
            assert!(matches!(
                verify_blocking(&params, "correct horse battery stapler", phc, &mut memory),
                Verified::Invalid
            ));
        }
        // An older algorithm verifies but asks to be rehashed.
        assert!(matches!(
            verify_blocking(&params, pw, REFERENCE_I, &mut memory),
            Verified::Valid { needs_rehash: true }
        ));
        let tampered = REFERENCE_ID.replace("t=2", "t=3");
        assert!(matches!(
            verify_blocking(&params, pw, &tampered, &mut memory),
            Verified::Invalid
        ));
    }

    #[test]
    fn costlier_stored_hashes_borrow_memory_and_impossible_ones_fail() {
        let params = Params::new(64, 1, 1, None).unwrap();
        let mut memory = HashMemory::default();
        assert!(matches!(
            verify_blocking(
                &params,
                "correct horse battery staple",
                REFERENCE_ID,
                &mut memory
            ),
            Verified::Valid { .. }
        ));
        assert!(memory.blocks.capacity() <= 64, "m=256 memory is given back");
        // 4 TiB: refused like a wrong password, without trying to allocate it.
        let absurd = REFERENCE_ID.replace("m=256", "m=4294967295");
        assert!(matches!(
            verify_blocking(
                &params,
                "correct horse battery staple",
                &absurd,
                &mut memory
            ),
            Verified::Invalid
        ));
    }

    #[test]
    fn hashes_from_reused_memory_verify_with_the_crates_own_path() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let params = Params::new(128, 2, 1, None).unwrap();
        let mut memory = HashMemory::default();
        let ours = hash_blocking(&params, "first password", &mut memory).unwrap();
        let second = hash_blocking(&params, "second password", &mut memory).unwrap();
        let argon = argon2id(&params);
        for (phc, pw) in [(&ours, "first password"), (&second, "second password")] {
            let parsed = PasswordHash::new(phc).unwrap();
            assert!(argon.verify_password(pw.as_bytes(), &parsed).is_ok());
            assert!(argon.verify_password(b"another", &parsed).is_err());
        }
        assert_ne!(ours, second, "each hash has its own salt");
        let theirs = argon.hash_password(b"their password").unwrap().to_string();
        assert!(matches!(
            verify_blocking(&params, "their password", &theirs, &mut memory),
            Verified::Valid {
                needs_rehash: false
            }
        ));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_in_the_idle_class() {
        let hasher = PasswordHasher::new(fast(), 1, 2).unwrap();
        // SAFETY: sched_getscheduler only reads the calling thread's policy.
        let policy = hasher
            .run(|_| unsafe { libc::sched_getscheduler(0) })
            .await
            .unwrap();
        assert_eq!(policy, libc::SCHED_IDLE);
        // SAFETY: as above, on the test's own thread.
        assert_ne!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_IDLE);
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
