use crate::config::Settings;
use crate::serve::build_core;
use anyhow::{Result, bail};
use clap::Subcommand;
use secrecy::SecretString;
use std::io::BufRead;
use twofold_core::model::RequestMeta;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create an account. The password is read from standard input (one line).
    Create {
        email: String,
        /// Mark the email address as verified (no verification mail is sent).
        #[arg(long)]
        verified: bool,
        /// Make the account an operator.
        #[arg(long)]
        operator: bool,
    },
    /// Make an account an operator (audited).
    Promote { email: String },
    /// Make an operator an ordinary account again (audited).
    Demote { email: String },
    /// Show one account and its recent security events.
    Show { email: String },
    /// Remove every second factor and backup code of an account (for example a lost phone),
    /// sign out its sessions and tell the owner. The reason goes to the audit log.
    #[command(name = "reset-2fa")]
    Reset2fa {
        email: String,
        #[arg(long)]
        reason: String,
    },
    /// Change one account's settings (audited).
    Set {
        email: String,
        /// `off`: a sign-in from a new IP network no longer needs an emailed code (a new
        /// browser still does). `on` restores the default.
        #[arg(long, value_parser = ["on", "off"])]
        ip_verification: String,
    },
    /// List accounts, oldest first.
    List {
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, default_value_t = 0)]
        offset: u32,
    },
}

pub async fn run(settings: &Settings, command: UserCommand) -> Result<()> {
    let (core, store) = build_core(settings, &settings.public_url_for(settings.listen)).await?;
    let promote = matches!(command, UserCommand::Promote { .. });
    let result = match command {
        UserCommand::Create {
            email,
            verified,
            operator,
        } => {
            eprintln!("Password (one line on standard input):");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let password = SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned());
            let meta = RequestMeta {
                ip: None,
                user_agent: Some("twofold cli".into()),
            };
            match core
                .create_account_direct(&email, &password, verified, &meta)
                .await
            {
                Ok(id) => {
                    if operator {
                        core.set_operator(&email, true, &meta)
                            .await
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                    }
                    println!(
                        "created {} {id} for {}",
                        if operator { "operator" } else { "account" },
                        email.trim().to_lowercase()
                    );
                    Ok(())
                }
                Err(e) => bail!("{e}"),
            }
        }
        UserCommand::Show { email } => {
            let account = core
                .account_by_email(&email)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("id:          {}", account.id);
            println!("email:       {}", account.email);
            println!(
                "verified:    {}",
                account
                    .email_verified_at
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "no".into())
            );
            println!("created:     {}", account.created_at);
            println!(
                "2FA required by the policy since sign-up: {}",
                if account.two_factor_required {
                    "yes"
                } else {
                    "no"
                }
            );
            println!(
                "operator:    {}",
                if account.operator { "yes" } else { "no" }
            );
            println!(
                "IP verification: {}",
                if account.ip_verification { "on" } else { "off" }
            );
            println!("recent events:");
            for e in core
                .recent_audit(account.id, 20)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!("  {}  {:<28} {}", e.at, e.event, e.ip.unwrap_or_default());
            }
            Ok(())
        }
        UserCommand::Reset2fa { email, reason } => {
            let meta = RequestMeta {
                ip: None,
                user_agent: Some("twofold cli".into()),
            };
            let removed = core
                .reset_two_factor(&email, &reason, &meta)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "removed {removed} factor(s) and all backup codes; every session signed out; the owner is notified"
            );
            // Let the outbox worker of a running server send the mail; nothing else to do here.
            Ok(())
        }
        UserCommand::Set {
            email,
            ip_verification,
        } => {
            let meta = RequestMeta {
                ip: None,
                user_agent: Some("twofold cli".into()),
            };
            let on = ip_verification == "on";
            core.set_ip_verification(&email, on, &meta)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "IP verification is {} for {}",
                if on { "on" } else { "off" },
                email.trim().to_lowercase()
            );
            Ok(())
        }
        UserCommand::Promote { email } | UserCommand::Demote { email } => {
            let on = promote;
            let meta = RequestMeta {
                ip: None,
                user_agent: Some("twofold cli".into()),
            };
            core.set_operator(&email, on, &meta)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{} is {}",
                email.trim().to_lowercase(),
                if on {
                    "an operator"
                } else {
                    "no longer an operator"
                }
            );
            Ok(())
        }
        UserCommand::List { limit, offset } => {
            for a in core
                .list_accounts(limit, offset)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
            {
                println!(
                    "{}  {:<40} {}",
                    a.id,
                    a.email,
                    if a.is_verified() {
                        "verified"
                    } else {
                        "unverified"
                    }
                );
            }
            Ok(())
        }
    };
    store.close().await;
    result
}
