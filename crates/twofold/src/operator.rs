//! Operator commands for API keys and data-encryption keys.

use crate::config::Settings;
use crate::serve::build_core;
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::io::Write;
use time::format_description::well_known::Rfc3339;
use twofold_core::CoreError;
use twofold_core::keys::Keyring;
use twofold_core::model::{ApiKeyInfo, RequestMeta};
use twofold_core::random::OsRandom;

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key. The key is printed once, alone on the last line.
    Create {
        #[arg(long)]
        name: String,
        /// The tenant the key belongs to (created if new); subjects are scoped by tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// List API keys: id, tenant, name, created, last used, revoked (with the reason).
    List,
    /// Revoke an API key for good; every node refuses it within about a second.
    Revoke {
        /// The key's id, as `apikey list` shows it.
        id: uuid::Uuid,
        /// Why, for the list and the audit log.
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Let a tenant's app use security keys on its own domain: the relying-party id (its
    /// registrable domain) and the origins of the pages that call WebAuthn.
    Webauthn {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        rp_id: String,
        /// An origin such as https://app.example.com; repeat for several.
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
    },
}

pub async fn tenant(settings: &Settings, command: TenantCommand) -> Result<()> {
    let (core, store) = build_core(settings, &settings.public_url_for(settings.listen)).await?;
    let result = match command {
        TenantCommand::Webauthn {
            tenant,
            rp_id,
            origins,
        } => match core
            .set_tenant_relying_party(&tenant, &rp_id, &origins)
            .await
        {
            Ok(()) => {
                println!(
                    "tenant {tenant}: WebAuthn relying party {rp_id}, origins {}",
                    origins.join(", ")
                );
                Ok(())
            }
            Err(twofold_core::CoreError::NotFound) => Err(anyhow::anyhow!(
                "no tenant named {tenant:?} (tenants are created with `twofold apikey create --tenant`)"
            )),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        },
    };
    store.close().await;
    result
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Add a new data-encryption key and re-seal every secret under it. Running servers pick
    /// the new key up from the key file when they first meet it.
    Rotate,
    /// Make new ID-token signing keys; the old ones stay in the JWK Set for a week so
    /// tokens they signed still verify.
    RotateSigning,
}

pub async fn api_key(settings: &Settings, command: ApiKeyCommand) -> Result<()> {
    let (core, store) = build_core(settings, &settings.public_url_for(settings.listen)).await?;
    let result = match command {
        ApiKeyCommand::Create { name, tenant } => {
            core.create_api_key(&tenant, &name)
                .await
                .map(|(record, key)| {
                    println!(
                        "created API key {} ({}) for tenant {tenant}; it is shown only now:",
                        record.id, record.name
                    );
                    println!("{key}");
                })
        }
        ApiKeyCommand::List => core.list_api_keys().await.map(print_api_keys),
        ApiKeyCommand::Revoke { id, reason } => core
            .revoke_api_key(id, &reason, &RequestMeta::default())
            .await
            .map(|()| println!("revoked API key {id}")),
    };
    store.close().await;
    result.map_err(|e| match e {
        CoreError::NotFound => {
            anyhow::anyhow!("no API key with that id (see `twofold apikey list`)")
        }
        e => anyhow::anyhow!("{e}"),
    })
}

fn print_api_keys(keys: Vec<ApiKeyInfo>) {
    let when = |t: Option<time::OffsetDateTime>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format(&Rfc3339).unwrap_or_else(|_| t.to_string()),
        )
    };
    println!("ID\tTENANT\tNAME\tCREATED\tLAST USED\tREVOKED");
    for k in keys {
        let revoked = match (k.revoked_at, k.revoked_reason) {
            (None, _) => "-".to_owned(),
            (at, reason) => format!("{} ({})", when(at), reason.unwrap_or_default()),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{revoked}",
            k.id,
            k.tenant,
            k.name,
            when(Some(k.created_at)),
            when(k.last_used_at),
        );
    }
}

pub async fn keys(settings: &Settings, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::RotateSigning => {
            let (core, store) =
                build_core(settings, &settings.public_url_for(settings.listen)).await?;
            let result = core.rotate_signing_keys().await;
            store.close().await;
            for key in result.map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("new token signing key {} ({})", key.id, key.alg.as_str());
            }
            Ok(())
        }
        KeysCommand::Rotate => {
            let path = settings.keys_path();
            if !path.exists() {
                bail!("no key file at {}", path.display());
            }
            // Prove the current keys open this database before adding anything.
            let (_, store) =
                build_core(settings, &settings.public_url_for(settings.listen)).await?;
            store.close().await;
            let line = Keyring::generate_file(&OsRandom);
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.write_all(line.as_bytes())?;
            file.sync_all()?;
            let (core, store) =
                build_core(settings, &settings.public_url_for(settings.listen)).await?;
            let result = core.reseal_all().await.map_err(|e| anyhow::anyhow!("{e}"));
            store.close().await;
            let n = result?;
            println!(
                "added a new data-encryption key and re-sealed {n} secret(s) under it; keep the old keys in {} until every backup that needs them is gone",
                path.display()
            );
            Ok(())
        }
    }
}
