//! The data directory (0700) and the data-encryption key file (0600) inside it.

use anyhow::{Context, Result, bail};
use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use twofold_core::keys::Keyring;
use twofold_core::random::OsRandom;

pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating data directory {}", dir.display()))?;
    }
    Ok(())
}

/// Loads the key file, creating it with one fresh key (mode 0600) on first start.
pub fn load_or_create_keys(path: &Path) -> Result<(Keyring, bool)> {
    let created = if path.exists() {
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "the key file is readable by others; chmod 600 it");
        }
        false
    } else {
        if let Some(parent) = path.parent() {
            ensure_data_dir(parent)?;
        }
        let body = Keyring::generate_file(&OsRandom);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating key file {}", path.display()))?;
        file.write_all(b"# Twofold data-encryption keys: ID:BASE64URL, newest last. Back this file up; never share it.\n")?;
        file.write_all(body.as_bytes())?;
        file.sync_all()?;
        true
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading key file {}", path.display()))?;
    let ring = match Keyring::parse(&text) {
        Ok(r) => r,
        Err(e) => bail!("key file {}: {e}", path.display()),
    };
    Ok((ring, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_dir_and_key_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        ensure_data_dir(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let keys = dir.join("data-keys");
        let (_, created) = load_or_create_keys(&keys).unwrap();
        assert!(created);
        assert_eq!(
            std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (_, created_again) = load_or_create_keys(&keys).unwrap();
        assert!(!created_again);
    }
}
