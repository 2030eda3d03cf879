//! `twofold policy show | set`: the mandatory-2FA policy, stored in the database so that every
//! node applies a change at its next decision, without a restart.

use crate::config::Settings;
use crate::serve::build_core;
use anyhow::{Result, bail};
use clap::Subcommand;
use twofold_core::model::RequestMeta;
use twofold_core::policy::{Policy, Required, day};
use twofold_core::service::PolicySource;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Print the policy in force and where it comes from.
    Show,
    /// Change the policy; options not given keep their current value.
    Set {
        /// off, new_accounts or all.
        #[arg(long, value_parser = parse_required)]
        required: Option<Required>,
        /// With `--required all`: the day (YYYY-MM-DD, from 00:00 UTC) existing accounts must
        /// have 2FA by; `none` requires it at once.
        #[arg(long)]
        enforce_from: Option<String>,
        /// Comma-separated methods that count and may be added (totp, webauthn, sms, email),
        /// or `all`.
        #[arg(long)]
        allowed_methods: Option<String>,
        /// `on`: operator accounts sign in only with a security key or passkey that verifies
        /// the user (no codes, no backup codes, no remembered browser).
        #[arg(long, value_parser = ["on", "off"])]
        operators_phishing_resistant: Option<String>,
    },
}

fn parse_required(s: &str) -> Result<Required, String> {
    match s {
        "off" => Ok(Required::Off),
        "new_accounts" | "new-accounts" => Ok(Required::NewAccounts),
        "all" => Ok(Required::All),
        _ => Err("expected off, new_accounts or all".into()),
    }
}

fn print(policy: &Policy, source: PolicySource) {
    println!("required:        {}", policy.required.as_str());
    println!(
        "enforce_from:    {}",
        policy
            .enforce_from
            .map(day::format)
            .unwrap_or_else(|| "-".into())
    );
    println!(
        "allowed_methods: {}",
        if policy.allowed_methods.is_empty() {
            "all".to_owned()
        } else {
            policy.allowed_methods.join(", ")
        }
    );
    println!(
        "operators:       {}",
        if policy.operators_phishing_resistant {
            "security key or passkey required (phishing-resistant)"
        } else {
            "as everyone"
        }
    );
    println!(
        "source:          {}",
        match source {
            PolicySource::Database => "database (twofold policy set)",
            PolicySource::Configuration => "configuration ([policy])",
        }
    );
}

pub async fn run(settings: &Settings, command: PolicyCommand) -> Result<()> {
    let (core, store) = build_core(settings, &settings.public_url_for(settings.listen)).await?;
    let result = async {
        let (mut policy, source) = core
            .policy_with_source()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match command {
            PolicyCommand::Show => print(&policy, source),
            PolicyCommand::Set {
                required,
                enforce_from,
                allowed_methods,
                operators_phishing_resistant,
            } => {
                if let Some(v) = operators_phishing_resistant {
                    policy.operators_phishing_resistant = v == "on";
                }
                if let Some(r) = required {
                    policy.required = r;
                }
                match enforce_from.as_deref() {
                    None => {}
                    Some("none") | Some("") => policy.enforce_from = None,
                    Some(d) => policy.enforce_from = Some(day::parse(d).map_err(anyhow::Error::msg)?),
                }
                if policy.required != Required::All && policy.enforce_from.is_some() {
                    if enforce_from.is_some() {
                        bail!("--enforce-from is the deadline for existing accounts: it needs --required all");
                    }
                    // The deadline belonged to `all`; it means nothing for the new setting.
                    policy.enforce_from = None;
                }
                if let Some(list) = allowed_methods {
                    policy.allowed_methods = if list.trim() == "all" {
                        Vec::new()
                    } else {
                        list.split(',')
                            .map(|m| m.trim().to_owned())
                            .filter(|m| !m.is_empty())
                            .collect()
                    };
                }
                let meta = RequestMeta {
                    ip: None,
                    user_agent: Some("twofold cli".into()),
                };
                core.set_policy(&policy, &meta)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                print(&policy, PolicySource::Database);
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}
