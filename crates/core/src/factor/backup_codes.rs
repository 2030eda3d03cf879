//! Backup codes: ten single-use recovery codes of 80 bits, shown once.
//!
//! They use Crockford's base32 alphabet (no i, l, o, u), so a code read off paper survives
//! look-alike letters: input is normalized before hashing.

use crate::random::Random;

pub const COUNT: usize = 10;
/// 16 symbols of 5 bits = 80 bits per code.
const SYMBOLS: usize = 16;
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A fresh set of codes, formatted `xxxx-xxxx-xxxx-xxxx` for display.
pub fn generate(random: &dyn Random) -> Vec<String> {
    (0..COUNT)
        .map(|_| {
            let mut bytes = [0u8; SYMBOLS];
            random.fill(&mut bytes);
            let symbols: String = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(b & 0x1f)] as char)
                .collect();
            symbols
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The canonical form that is hashed: lower case, no separators, look-alikes mapped.
/// `None` when it cannot be a backup code at all.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(SYMBOLS);
    for c in input.chars() {
        let c = c.to_ascii_lowercase();
        let c = match c {
            ' ' | '-' | '\t' => continue,
            'i' | 'l' => '1',
            'o' => '0',
            c => c,
        };
        if !ALPHABET.contains(&(c as u8)) || !c.is_ascii() {
            return None;
        }
        out.push(c);
    }
    (out.len() == SYMBOLS).then_some(out)
}

/// Whether an entry looks like a backup code rather than a numeric one-time code.
pub fn looks_like_backup_code(input: &str) -> bool {
    normalize(input).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::OsRandom;

    #[test]
    fn ten_distinct_readable_codes_of_80_bits() {
        let codes = generate(&OsRandom);
        assert_eq!(codes.len(), 10);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 19, "{c}");
            assert!(normalize(c).is_some(), "{c}");
            assert!(!c.contains(['i', 'l', 'o', 'u']));
        }
    }

    #[test]
    fn normalization_forgives_case_separators_and_look_alikes() {
        assert_eq!(
            normalize("ABCD-EFGH-JKMN-PQRS").as_deref(),
            Some("abcdefghjkmnpqrs")
        );
        assert_eq!(
            normalize("0000 1111 2222 3333").as_deref(),
            Some("0000111122223333")
        );
        assert_eq!(
            normalize("oooo-llll-iiii-0000").as_deref(),
            Some("0000111111110000")
        );
        assert_eq!(normalize("123456"), None);
        assert_eq!(normalize("abcd-efgh-jkmn-pqr!"), None);
        assert_eq!(normalize("uuuu-uuuu-uuuu-uuuu"), None);
        assert!(!looks_like_backup_code("123 456"));
    }
}
