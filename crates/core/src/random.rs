/// Cryptographically secure randomness, injected so tests can make it predictable.
pub trait Random: Send + Sync {
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // The OS generator failing is unrecoverable: continuing would hand out guessable tokens.
        #[allow(clippy::expect_used)]
        getrandom::fill(buf).expect("the operating system's random number generator failed");
    }
}

pub fn random_bytes<const N: usize>(random: &dyn Random) -> [u8; N] {
    let mut buf = [0u8; N];
    random.fill(&mut buf);
    buf
}
