//! The real binary, as an operator runs it: start-up, logs, configuration and commands.

use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twofold_testkit::SmtpSink;

mod common;

use common::{BIN, Server, run};

const PW: &str = "correct horse battery staple 42";
const NEW_PW: &str = "violet tractor harbour lemonade 8";

fn smtp_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("TWOFOLD_MAIL__DELIVERY", "smtp".into()),
        ("TWOFOLD_MAIL__SMTP__HOST", "127.0.0.1".into()),
        ("TWOFOLD_MAIL__SMTP__PORT", port.to_string()),
        ("TWOFOLD_MAIL__SMTP__SECURITY", "none".into()),
        (
            "TWOFOLD_MAIL__SMTP__FROM",
            "Twofold <no-reply@twofold.test>".into(),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_and_shutdown_is_graceful() {
    let smtp = SmtpSink::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &smtp_env(smtp.port()));
    let c = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();

    let r = c
        .post(server.at("/api/v1/signup"))
        .json(&json!({"email": "logs@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mail = smtp.wait_for("logs@example.com", 0).await;
    // A stable Message-ID from the outbox id, for receivers to drop a resent copy.
    let message_id = mail
        .data
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        message_id.starts_with('<') && message_id.ends_with("@twofold.test>"),
        "{}",
        mail.data
    );
    assert!(uuid::Uuid::parse_str(&message_id[1..message_id.len() - 14]).is_ok());
    let verify = mail.token("/verify-email").unwrap();
    // The link itself, as a browser would open it (the token is in the query string).
    assert_eq!(
        c.get(server.at(&format!("/verify-email?token={verify}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    c.post(server.at("/api/v1/email-verification"))
        .json(&json!({"token": verify}))
        .send()
        .await
        .unwrap();
    let r = c
        .post(server.at("/api/v1/session"))
        .json(&json!({"email": "logs@example.com", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    c.post(server.at("/api/v1/session"))
        .json(&json!({"email": "logs@example.com", "password": "a wrong password here"}))
        .send()
        .await
        .unwrap();
    c.post(server.at("/api/v1/password-reset"))
        .json(&json!({"email": "logs@example.com"}))
        .send()
        .await
        .unwrap();
    let reset = smtp
        .wait_for("logs@example.com", 1)
        .await
        .token("/password-reset")
        .unwrap();
    assert_eq!(
        c.get(server.at(&format!("/password-reset?token={reset}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(server.at("/api/v1/password-reset/complete"))
        .json(&json!({"token": reset, "password": NEW_PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    smtp.wait_for("logs@example.com", 2).await;

    let (status, log) = server.stop();
    assert!(status.success(), "graceful shutdown exits 0; log:\n{log}");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        log.contains("/verify-email"),
        "requests are logged (by path):\n{log}"
    );
    for secret in [
        verify.as_str(),
        reset.as_str(),
        cookie.as_str(),
        PW,
        NEW_PW,
        "a wrong password here",
        "token=",
    ] {
        assert!(
            !log.contains(secret),
            "secret {secret:?} found in the log:\n{log}"
        );
    }
    assert!(
        !log.contains("$argon2"),
        "password hashes must not be logged"
    );

    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(data.join("data-keys"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
}

#[test]
fn development_mail_is_printed_with_full_links() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(server.at("/api/v1/signup"))
            .json(&json!({"email": "dev@example.com", "password": PW}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server
        .log
        .lock()
        .unwrap()
        .contains("===== END OF MAIL =====")
    {
        assert!(Instant::now() < deadline, "no development mail printed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (_, log) = server.stop();
    assert!(log.contains("development mode"));
    let block = log
        .split("===== DEVELOPMENT MAIL (not sent) =====")
        .nth(1)
        .unwrap();
    assert!(block.contains("To: dev@example.com"));
    let link = block
        .split_whitespace()
        .find(|w| w.contains("/verify-email?token="))
        .expect("link in block");
    assert!(link.starts_with(&server_url_prefix()), "{link}");
    assert_eq!(
        link.split("token=").nth(1).unwrap().len(),
        43,
        "the whole token is printed"
    );
}

fn server_url_prefix() -> String {
    "http://127.0.0.1:".to_owned()
}

#[test]
fn config_check_redacts_secrets_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("twofold.toml");
    std::fs::write(
        &cfg,
        "[database]\nurl = \"postgres://app:s3cr3t-db@db/twofold\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&cfg)
        .args(["config", "check"])
        .env("TWOFOLD_MAIL__DELIVERY", "smtp")
        .env("TWOFOLD_MAIL__SMTP__HOST", "mail.example.com")
        .env("TWOFOLD_MAIL__SMTP__PORT", "587")
        .env("TWOFOLD_MAIL__SMTP__SECURITY", "starttls")
        .env("TWOFOLD_MAIL__SMTP__USERNAME", "mailer")
        .env("TWOFOLD_MAIL__SMTP__PASSWORD", "s3cr3t-smtp")
        .env("TWOFOLD_MAIL__SMTP__FROM", "a@example.com")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[redacted]"), "{stdout}");
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
    assert!(stdout.contains("mail.example.com"));

    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\nbogus_key = true\n").unwrap();
    let out = Command::new(BIN)
        .args(["--config"])
        .arg(&cfg)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));

    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("TWOFOLD_LISEN", "x")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "unknown environment keys are refused too"
    );

    let out = Command::new(BIN)
        .args(["config", "check"])
        .env("TWOFOLD_DEVICES__IPV4_PREFIX", "40")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("devices.ipv4_prefix"));

    // A configured GeoIP database that is not one stops the start instead of being ignored.
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("city.mmdb");
    std::fs::write(&bogus, b"not a database").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TWOFOLD_DEVICES__GEOIP_DATABASE", &bogus)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("devices.geoip_database"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn user_commands_and_healthcheck() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_verified_user(&data, "ops@example.com");
    let list = Command::new(BIN)
        .args(["user", "list", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("ops@example.com  "));
    let show = Command::new(BIN)
        .args(["user", "show", "OPS@example.com", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&show.stdout).contains("account_created_by_operator"));
    assert!(String::from_utf8_lossy(&show.stdout).contains("IP verification: on"));

    // The per-account switch of network checks: audited, shown, and only `on`/`off`.
    let set = run(
        &["user", "set", "ops@example.com", "--ip-verification", "off"],
        &data,
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let show = String::from_utf8_lossy(&run(&["user", "show", "ops@example.com"], &data).stdout)
        .into_owned();
    assert!(show.contains("IP verification: off"), "{show}");
    assert!(show.contains("ip_verification_off"), "{show}");
    // Operators: promoted and demoted (audited), and the policy that holds them to keys.
    assert!(
        run(&["user", "promote", "ops@example.com"], &data)
            .status
            .success()
    );
    let show = String::from_utf8_lossy(&run(&["user", "show", "ops@example.com"], &data).stdout)
        .into_owned();
    assert!(
        show.contains("operator:    yes") && show.contains("operator_promoted"),
        "{show}"
    );
    assert!(
        run(&["user", "demote", "ops@example.com"], &data)
            .status
            .success()
    );
    let show = String::from_utf8_lossy(&run(&["user", "show", "ops@example.com"], &data).stdout)
        .into_owned();
    assert!(show.contains("operator:    no"), "{show}");
    let set = run(
        &["policy", "set", "--operators-phishing-resistant", "on"],
        &data,
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert!(String::from_utf8_lossy(&set.stdout).contains("security key or passkey required"));
    let contradiction = run(&["policy", "set", "--allowed-methods", "totp"], &data);
    assert!(
        !contradiction.status.success(),
        "keys are needed for operators"
    );
    for bad in [
        vec![
            "user",
            "set",
            "ops@example.com",
            "--ip-verification",
            "maybe",
        ],
        vec![
            "user",
            "set",
            "nobody@example.com",
            "--ip-verification",
            "on",
        ],
    ] {
        assert!(!run(&bad, &data).status.success(), "{bad:?}");
    }

    let server = Server::start(&data, &[]);
    let ok = Command::new(BIN)
        .args(["healthcheck", "--url", &server.url])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let (_, _) = server.stop();
    let down = Command::new(BIN)
        .args(["healthcheck", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!down.status.success());

    // The account created on the command line can sign in.
    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(server.at("/api/v1/session"))
            .json(&json!({"email": "ops@example.com", "password": PW}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    server.stop();
}

/// `twofold user create EMAIL --verified`, with the password on standard input.
fn create_verified_user(data: &std::path::Path, email: &str) {
    let mut child = Command::new(BIN)
        .args(["user", "create", email, "--verified", "--data-dir"])
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PW}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn code_for(secret: &str, offset_secs: i64) -> String {
    let at = time::OffsetDateTime::now_utc().unix_timestamp() + offset_secs;
    let out = Command::new("oathtool")
        .args(["--totp", "-b", "--now"])
        .arg(format!("@{at}"))
        .arg(secret)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn api_keys_and_key_rotation_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(
        &["apikey", "create", "--name", "shop", "--tenant", "acme"],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(
        key.starts_with("tfk_"),
        "the key is alone on the last line: {stdout}"
    );

    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = reqwest::Client::new();
    let (secret, factor) = rt.block_on(async {
        let r: serde_json::Value = c
            .post(server.at("/api/v1/subjects/u1/factors"))
            .bearer_auth(&key)
            .json(&json!({"type": "totp"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = r["secret"].as_str().unwrap().to_owned();
        let id = r["id"].as_str().unwrap().to_owned();
        let r = c
            .post(server.at(&format!("/api/v1/subjects/u1/factors/{id}/confirm")))
            .bearer_auth(&key)
            .json(&json!({"code": code_for(&secret, 0)}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        (secret, id)
    });

    let out = run(&["keys", "rotate"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("re-sealed 1 secret"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let keyfile = std::fs::read_to_string(data.join("data-keys")).unwrap();
    assert_eq!(keyfile.lines().filter(|l| !l.starts_with('#')).count(), 2);

    // The running server meets the new key id, reloads the key file and still verifies.
    rt.block_on(async {
        let r: serde_json::Value = c
            .post(server.at("/api/v1/subjects/u1/verify"))
            .bearer_auth(&key)
            .json(&json!({"code": code_for(&secret, 30)}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(r["valid"], true, "{r}");
        assert_eq!(r["factor_id"], factor.as_str());
    });
    let (status, log) = server.stop();
    assert!(status.success());
    assert!(
        !log.contains(&secret),
        "the TOTP secret must never be logged"
    );
    assert!(!log.contains(&key), "API keys must never be logged");

    // A key file that does not belong to this database stops start-up with a clear message.
    std::fs::write(
        data.join("data-keys"),
        twofold_core::keys::Keyring::generate_file(&twofold_core::random::OsRandom).as_str(),
    )
    .unwrap();
    let out = run(&["serve", "--listen", "127.0.0.1:0"], &data);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open this database's canary"), "{err}");
}

/// `apikey list` and `apikey revoke`; a running server (another process, its own cache)
/// refuses a key revoked from the command line within about a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(
        &["apikey", "create", "--name", "shop", "--tenant", "acme"],
        &data,
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let key = stdout.lines().last().unwrap().trim().to_owned();
    let id = stdout.split_whitespace().nth(3).unwrap().to_owned();
    let server = Server::start(&data, &[]);
    let c = reqwest::Client::new();
    let status = || async {
        c.get(server.at("/api/v1/subjects/u1/factors"))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(status().await, 404, "the key works: an unknown subject");

    let out = run(&["apikey", "list"], &data);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success());
    let row = list.lines().find(|l| l.starts_with(&id)).expect(&list);
    let cols: Vec<&str> = row.split('\t').collect();
    assert_eq!(cols[1..3], ["acme", "shop"], "{row}");
    assert_ne!(cols[4], "-", "last use is recorded: {row}");
    assert_eq!(cols[5], "-", "not revoked: {row}");

    let out = run(&["apikey", "revoke", &id, "--reason", "leaked"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = String::from_utf8_lossy(&run(&["apikey", "list"], &data).stdout).into_owned();
    assert!(list.contains("(leaked)"), "{list}");
    // The server checks the database at most once a second; wait for that, boundedly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while status().await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "the revoked key still works"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Bad input: clear messages, no panics.
    for (args, expected) in [
        (
            vec!["apikey", "revoke", &id, "--reason", "again"],
            "revoked already",
        ),
        (
            vec![
                "apikey",
                "revoke",
                "00000000-0000-0000-0000-000000000000",
                "--reason",
                "x",
            ],
            "no API key with that id",
        ),
        (vec!["apikey", "revoke", &id, "--reason", " "], "reason"),
        (
            vec!["apikey", "revoke", "not-an-id", "--reason", "x"],
            "invalid value",
        ),
    ] {
        let out = run(&args, &data);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (status, _) = server.stop();
    assert!(status.success());
}

/// Texts go out through the signed webhook; the code, the full number, the webhook secret and
/// the API key never reach the log (debug level), only the masked number does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_codes_and_numbers_never_reach_the_logs() {
    use twofold_testkit::SmsGateway;
    let gateway = SmsGateway::start().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["apikey", "create", "--name", "shop"], &data);
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    let secret = "webhook-secret-0123456789";
    let server = Server::start(
        &data,
        &[
            ("TWOFOLD_SMS__ADAPTER", "webhook".into()),
            (
                "TWOFOLD_SMS__WEBHOOK__URL",
                format!("{}/send", gateway.url()),
            ),
            ("TWOFOLD_SMS__WEBHOOK__SECRET", secret.into()),
        ],
    );
    let c = reqwest::Client::new();
    let api = |path: &str| format!("{}/api/v1/subjects{path}", server.url);
    let f: serde_json::Value = c
        .post(api("/u1/factors"))
        .bearer_auth(&key)
        .json(&json!({"type": "sms", "phone": "+1 415 555 8318"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = f["id"].as_str().unwrap().to_owned();
    let r = c
        .post(api("/u1/challenges"))
        .bearer_auth(&key)
        .json(&json!({"factor_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let sent = gateway.wait_for("+14155558318", 0).await;
    assert!(sent.header("x-twofold-signature").is_some());
    let code = sent.sms_code().unwrap();
    let r = c
        .post(api(&format!("/u1/factors/{id}/confirm")))
        .bearer_auth(&key)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let (status, log) = server.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("+1 ••• ••• 8318"),
        "the masked number is logged:\n{log}"
    );
    for secret in [code.as_str(), "4155558318", secret, key.as_str()] {
        assert!(!log.contains(secret), "{secret:?} found in the log:\n{log}");
    }
}

#[test]
fn policy_commands_apply_to_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_verified_user(&data, "old@example.com");
    let show = run(&["policy", "show"], &data);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("required:        off"), "{text}");
    assert!(text.contains("configuration"), "{text}");

    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let log_in = || {
        rt.block_on(async {
            let r = reqwest::Client::new()
                .post(server.at("/api/v1/session"))
                .json(&json!({"email": "old@example.com", "password": PW}))
                .send()
                .await
                .unwrap();
            r.json::<serde_json::Value>().await.unwrap()["status"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    };
    assert_eq!(log_in(), "signed_in");

    // Changed while the server runs: its next sign-in follows the new policy.
    let set = run(
        &[
            "policy",
            "set",
            "--required",
            "all",
            "--enforce-from",
            "2026-01-01",
        ],
        &data,
    );
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    assert_eq!(log_in(), "enrollment_required");
    let text = String::from_utf8_lossy(&run(&["policy", "show"], &data).stdout).to_string();
    assert!(text.contains("enforce_from:    2026-01-01"), "{text}");
    assert!(text.contains("database"), "{text}");

    // Policies that cannot mean what was meant are refused, and nothing changes.
    for args in [
        &["policy", "set", "--allowed-methods", "carrier-pigeon"][..],
        &[
            "policy",
            "set",
            "--required",
            "new_accounts",
            "--enforce-from",
            "2026-01-01",
        ][..],
        &["policy", "set", "--enforce-from", "21/01/2027"][..],
    ] {
        let out = run(args, &data);
        assert!(!out.status.success(), "{args:?} was accepted");
    }
    assert_eq!(log_in(), "enrollment_required");
    let off = run(&["policy", "set", "--required", "off"], &data);
    assert!(
        off.status.success(),
        "{}",
        String::from_utf8_lossy(&off.stderr)
    );
    assert_eq!(log_in(), "signed_in");
    server.stop();
}

/// `twofold client` and `keys rotate-signing`, and a whole code + refresh exchange with the
/// server logging at debug: no code, token or client secret in the log.
#[test]
fn oidc_clients_and_tokens_stay_out_of_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cb = "https://app.example/cb";
    let refused = run(
        &[
            "client",
            "add",
            "--name",
            "Shop",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        &data,
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("must use https"));
    let out = run(
        &["client", "add", "--name", "Shop", "--redirect-uri", cb],
        &data,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("client_id: "))
        .unwrap()
        .to_owned();
    let secret = stdout.lines().last().unwrap().trim().to_owned();
    let listed = String::from_utf8_lossy(&run(&["client", "list"], &data).stdout).into_owned();
    assert!(listed.contains(&id) && listed.contains("confidential") && listed.contains("ES256"));
    create_verified_user(&data, "oidc@example.com");

    let server = Server::start(&data, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = reqwest::Client::new();
    let verifier = "a-verifier-of-at-least-forty-three-characters-0123456789";
    let challenge = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
    };
    let (code, tokens, refreshed) = rt.block_on(async {
        let r = browser
            .post(server.at("/api/v1/session"))
            .json(&json!({ "email": "oidc@example.com", "password": PW }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let mut authorize = url::Url::parse(&server.at("/oidc/authorize")).unwrap();
        authorize.query_pairs_mut().extend_pairs([
            ("response_type", "code"),
            ("client_id", &id),
            ("redirect_uri", cb),
            ("scope", "openid email"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ]);
        let r = browser.get(authorize.as_str()).send().await.unwrap();
        let to = r.headers()["location"].to_str().unwrap().to_owned();
        let code = url::Url::parse(&to)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let tokens: serde_json::Value = app
            .post(server.at("/oidc/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", cb),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let refreshed: serde_json::Value = app
            .post(server.at("/oidc/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ("client_id", &id),
                ("client_secret", &secret),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (code, tokens, refreshed)
    });
    assert!(refreshed["access_token"].is_string(), "{refreshed}");

    // A new data-encryption key re-seals the signing key too, and the running server still
    // signs with it.
    let out = run(&["keys", "rotate"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("re-sealed 0 secret"),
        "the signing key is a sealed secret: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let resealed: serde_json::Value = rt.block_on(async {
        app.post(server.at("/oidc/token"))
            .basic_auth(&id, Some(&secret))
            .form(&[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    refreshed["refresh_token"].as_str().unwrap(),
                ),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert!(resealed["id_token"].is_string(), "{resealed}");
    let refreshed = resealed;

    // A rotation while the server runs: the JWK Set has the old key and the new one.
    let out = run(&["keys", "rotate-signing"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("(ES256)"));
    let keys = rt.block_on(async {
        let jwks: serde_json::Value = app
            .get(server.at("/oidc/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"].as_array().unwrap().len()
    });
    assert_eq!(keys, 2);

    // A removed client's tokens and credentials stop working.
    assert!(run(&["client", "remove", &id], &data).status.success());
    let status = rt.block_on(async {
        app.get(server.at("/oidc/userinfo"))
            .bearer_auth(refreshed["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 401);
    let (_, log) = server.stop();
    for (what, value) in [
        ("code", code.as_str()),
        ("client secret", secret.as_str()),
        ("access token", tokens["access_token"].as_str().unwrap()),
        ("refresh token", tokens["refresh_token"].as_str().unwrap()),
        ("id token", tokens["id_token"].as_str().unwrap()),
        (
            "rotated refresh token",
            refreshed["refresh_token"].as_str().unwrap(),
        ),
    ] {
        assert!(!log.contains(value), "the {what} is in the log");
    }
    assert!(log.contains("/oidc/token"), "requests are logged (by path)");
}

/// Logins turned away under a flood (503 with Retry-After) are the design working, not an
/// error: the log gets no line per refused request, which during an attack would be
/// thousands a second. Errors stay logged where they arise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_logins_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &[
            ("TWOFOLD_PASSWORD_HASHING__WORKERS", "1".into()),
            ("TWOFOLD_PASSWORD_HASHING__QUEUE", "1".into()),
        ],
    );
    let c = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (c, url) = (c.clone(), server.at("/api/v1/session"));
        tasks.push(tokio::spawn(async move {
            c.post(url)
                .json(&json!({"email": format!("flood{i}@example.com"), "password": PW}))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut shed = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status() == 503 {
            assert!(r.headers().contains_key("retry-after"));
            shed += 1;
        } else {
            // 429: past the client address's budget, which these 40 from one address exceed.
            assert!([401, 429].contains(&r.status().as_u16()), "{}", r.status());
        }
    }
    assert!(
        shed > 0,
        "one worker with a queue of one must shed some of 40 logins"
    );
    let (_, log) = server.stop();
    assert!(
        !log.lines().any(|l| l.contains("ERROR")),
        "{shed} shed logins were logged as errors:\n{log}"
    );
}

/// Start-up mistakes name what is wrong: a refused database port by its address, an unknown
/// enum value with the values allowed, a zero limit by its key.
#[test]
fn start_up_errors_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    for (key, value, expected) in [
        (
            "TWOFOLD_DATABASE__URL",
            format!("postgres://postgres@127.0.0.1:{port}/test"),
            format!("connection refused to 127.0.0.1:{port}"),
        ),
        (
            "TWOFOLD_LOG_FORMAT",
            "xml".into(),
            "log_format: unknown variant `xml`, expected `text` or `json`".into(),
        ),
        (
            "TWOFOLD_MAIL__DELIVERY",
            "pigeon".into(),
            "mail.delivery: unknown variant `pigeon`, expected `log` or `smtp`".into(),
        ),
        (
            "TWOFOLD_SERVER__HEADER_READ_TIMEOUT_SECONDS",
            "0".into(),
            "server.header_read_timeout_seconds must be at least 1".into(),
        ),
    ] {
        let out = Command::new(BIN)
            .args(["migrate", "--data-dir"])
            .arg(&data)
            .env(key, &value)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key}={value}");
        assert!(err.contains(&expected), "{key}={value}: {err}");
    }
}

/// `[limits]` sets the attempt budgets: with one free password attempt and a long wait, the
/// third wrong password in a row is refused before it is tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_limits_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    create_verified_user(&data, "limits@example.com");
    let server = Server::start(
        &data,
        &[
            ("TWOFOLD_LIMITS__LOGIN_PER_ACCOUNT__FREE", "1".into()),
            (
                "TWOFOLD_LIMITS__LOGIN_PER_ACCOUNT__BASE_DELAY_SECONDS",
                "600".into(),
            ),
        ],
    );
    let c = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = c
            .post(server.at("/api/v1/session"))
            .json(&json!({ "email": "limits@example.com", "password": "wrong password 1" }))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 429]);
    let (status, _) = server.stop();
    assert!(status.success());
}
