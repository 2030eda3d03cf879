//! Proving the data-encryption key at start-up, and re-sealing secrets under the newest key.

use super::Core;
use crate::error::CoreError;
use crate::keys::Sealed;
use uuid::Uuid;

const CANARY: &[u8] = b"twofold key canary v1";

impl Core {
    /// Opens the canary sealed at first start; fails when the configured keys cannot, which
    /// means the key file does not belong to this database.
    pub async fn check_key_canary(&self) -> Result<(), CoreError> {
        match self.store.canary().await? {
            None => {
                let sealed = self.keyring().seal(self.random.as_ref(), b"canary", CANARY);
                self.store.set_canary(&sealed).await?;
                Ok(())
            }
            Some(sealed) => match self.open_sealed(b"canary", &sealed) {
                Ok(plain) if plain.as_slice() == CANARY => Ok(()),
                _ => Err(CoreError::Internal(format!(
                    "the data-encryption keys cannot open this database's canary (sealed with key {}): wrong or missing key file",
                    sealed.key_id
                ))),
            },
        }
    }

    /// Re-seals every secret not yet under the newest key. Safe to run while servers run:
    /// each row changes only if it is still under the key it was read with.
    pub async fn reseal_all(&self) -> Result<usize, CoreError> {
        let active = self.keyring().active_key_id().to_owned();
        let mut done = 0;
        for (table, id, sealed) in self.store.sealed_values().await? {
            if sealed.key_id == active {
                continue;
            }
            let row = Uuid::parse_str(&id).map_err(|e| CoreError::Internal(e.to_string()))?;
            let plain = self
                .open_sealed(row.as_bytes(), &sealed)
                .map_err(|e| CoreError::Internal(format!("{table} {id}: {e}")))?;
            let resealed: Sealed =
                self.keyring()
                    .seal(self.random.as_ref(), row.as_bytes(), &plain);
            if self
                .store
                .reseal(&table, &id, &sealed.key_id, &resealed)
                .await?
            {
                done += 1;
            }
        }
        let canary = self.keyring().seal(self.random.as_ref(), b"canary", CANARY);
        self.store.set_canary(&canary).await?;
        Ok(done)
    }
}
