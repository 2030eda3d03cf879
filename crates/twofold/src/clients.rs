//! `twofold client`: the applications that sign their users in through Twofold's OpenID
//! Connect provider.

use crate::config::Settings;
use crate::serve::build_core;
use anyhow::Result;
use clap::Subcommand;
use secrecy::ExposeSecret;
use twofold_core::model::RequestMeta;
use twofold_core::oidc::jwt::SigningAlg;
use twofold_core::service::NewClient;

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    SigningAlg::parse(s).ok_or_else(|| format!("{s:?}: use ES256 or RS256"))
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register an application. Its client id is printed; a confidential client's secret is
    /// printed once, alone on the last line.
    Add {
        #[arg(long)]
        name: String,
        /// Where the application receives the code; matched exactly. Repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where the application may send the browser after signing out. Repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A browser or mobile app that cannot keep a secret: no secret, PKCE required.
        #[arg(long)]
        public: bool,
        /// Another company's application: users are asked for consent first.
        #[arg(long)]
        third_party: bool,
        /// How its ID tokens are signed: ES256 (default) or RS256 for libraries that know
        /// nothing else.
        #[arg(long, default_value = "ES256", value_parser = parse_alg)]
        id_token_alg: SigningAlg,
    },
    /// List registered applications.
    List,
    /// Remove an application with every token and consent it was given.
    Remove { client_id: String },
}

pub async fn client(settings: &Settings, command: ClientCommand) -> Result<()> {
    let (core, store) = build_core(settings, &settings.public_url_for(settings.listen)).await?;
    let meta = RequestMeta::default();
    let result = match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            third_party,
            id_token_alg,
        } => core
            .oidc_add_client(
                NewClient {
                    name,
                    redirect_uris,
                    post_logout_redirect_uris,
                    confidential: !public,
                    first_party: !third_party,
                    id_token_alg,
                },
                &meta,
            )
            .await
            .map(|(client, secret)| {
                println!("client_id: {}", client.id);
                if let Some(secret) = secret {
                    println!("client_secret (shown only now):");
                    println!("{}", secret.expose_secret());
                }
            }),
        ClientCommand::List => core.oidc_clients().await.map(|clients| {
            for c in clients {
                let kind = if c.confidential {
                    "confidential"
                } else {
                    "public"
                };
                let party = if c.first_party {
                    "first-party"
                } else {
                    "third-party"
                };
                println!(
                    "{}\t{}\t{kind}\t{party}\t{}\t{}",
                    c.id,
                    c.name,
                    c.id_token_alg.as_str(),
                    c.redirect_uris.join(" ")
                );
            }
        }),
        ClientCommand::Remove { client_id } => core
            .oidc_remove_client(&client_id, &meta)
            .await
            .map(|()| println!("removed client {client_id}")),
    };
    store.close().await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}
