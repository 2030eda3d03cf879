//! The scenarios of BENCHMARKS.md, run against one backend.

use crate::Args;
use crate::cpu;
use crate::load::{self, Outcome, Stats};
use crate::report::Row;
use crate::seed::{self, PASSWORD};
use crate::server::{self, Backend, Server};
use crate::server_latency::Metrics;
use anyhow::{Context, Result};
use secrecy::SecretString;
use serde_json::json;
use sqlx::Executor;
use std::sync::Arc;
use std::time::{Duration, Instant};
use twofold_core::factor::totp::{Algorithm, format_code, hotp};
use twofold_core::keys::Keyring;
use twofold_core::password::{HashMemory, HashParams, PasswordHasher};

const ACCOUNTS: u32 = 3_000;

fn code_now(secret: &[u8]) -> String {
    let step = time::OffsetDateTime::now_utc().unix_timestamp() / 30;
    format_code(hotp(secret, step as u64, Algorithm::Sha1, 6), 6)
}

/// A code no step near now accepts: a fixed "000000" is a subject's real code one time in a
/// few hundred thousand, which a run of wrong codes meets.
fn wrong_code(secret: &[u8]) -> String {
    let step = time::OffsetDateTime::now_utc().unix_timestamp() / 30;
    let near: Vec<u32> = (step - 3..=step + 3)
        .map(|s| hotp(secret, s as u64, Algorithm::Sha1, 6))
        .collect();
    let code = (0..).find(|c| !near.contains(c)).unwrap_or(0);
    format_code(code, 6)
}

fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = admin
        .split_once('?')
        .map(|(b, q)| (b, Some(q)))
        .unwrap_or((admin, None));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Hashes per second with every core hashing at once: the machine's real ceiling (on
/// SMT siblings or under memory-bandwidth limits it is well below cores / one hash).
fn parallel_hashes_per_second(threads: usize) -> f64 {
    let params = HashParams::default();
    let per_thread = 12;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                // Each thread keeps its memory, as the server's hashing threads do.
                let mut memory = HashMemory::default();
                for _ in 0..per_thread {
                    let _ = hash_once(&params, &mut memory);
                }
            });
        }
    });
    (threads * per_thread) as f64 / start.elapsed().as_secs_f64()
}

fn hash_once(params: &HashParams, memory: &mut HashMemory) -> bool {
    twofold_core::password::verify_with_params(
        params,
        PASSWORD,
        DUMMY_PHC.get().map(String::as_str).unwrap_or_default(),
        memory,
    )
}

static DUMMY_PHC: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The machine's hashing ceilings, now: cores ÷ the time of one hash, and the rate with every
/// core hashing (hashes per second).
struct HashingLimits {
    hash_s: f64,
    one_hash: f64,
    all_cores: f64,
}

impl HashingLimits {
    async fn measure(cores: f64) -> Result<Self> {
        let (hash_s, _) = argon2_seconds().await?;
        Ok(Self {
            hash_s,
            one_hash: cores / hash_s,
            all_cores: parallel_hashes_per_second(cores as usize),
        })
    }
}

/// Time of one Argon2id hash at the production parameters, on this machine, now.
async fn argon2_seconds() -> Result<(f64, String)> {
    let hasher =
        PasswordHasher::new(HashParams::default(), 1, 4).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pw = SecretString::from(PASSWORD);
    let phc = hasher.hash(&pw).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    // The median of single hashes, so one scheduling hiccup does not move the limit.
    let mut times = Vec::new();
    for _ in 0..21 {
        let start = Instant::now();
        hasher
            .verify(&pw, &phc)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], phc))
}

pub async fn run_backend(
    args: &Args,
    backend: Backend,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let name = backend.name();
    eprintln!("== {name}");
    let tmp = tempfile::tempdir()?;
    let data = server::data_dir(tmp.path());
    let (db_url, admin) = match &backend {
        Backend::Sqlite => (None, None),
        Backend::Postgres(admin) => {
            let db = format!("twofold_bench_{}", uuid::Uuid::new_v4().simple());
            let pool = seed::connect(admin).await?;
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .await?;
            pool.close().await;
            (Some(with_database(admin, &db)), Some((admin.clone(), db)))
        }
    };
    let result = run_scenarios(args, name, &data, db_url.as_deref(), tmp.path(), notes).await;
    if let Some((admin, db)) = &admin {
        drop_database(admin, db).await?;
    }
    let mut rows = result?;
    if let (Backend::Postgres(admin), true) = (&backend, args.large && args.runs(7)) {
        // Before the 200,000-subject row: the table sizes of scenario 7 in ascending order.
        let at = rows
            .iter()
            .position(|r| r.scenario.starts_with("7."))
            .unwrap_or(rows.len());
        rows.insert(at, small_table(args, name, admin).await?);
    }
    Ok(rows)
}

async fn drop_database(admin: &str, db: &str) -> Result<()> {
    let pool = seed::connect(admin).await?;
    pool.execute(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
    )))
    .await?;
    pool.close().await;
    Ok(())
}

/// Subjects in the 10,000-subject database of scenario 7: a small deployment, where the
/// planner's choices differ from those for a large table (a hash join over every factor
/// instead of an index lookup, once; see `CODE_CHECK_PLANNER` in the store).
const SMALL_TABLE: u32 = 10_000;

/// Scenario 7's small table: a fresh PostgreSQL database seeded with [`SMALL_TABLE`]
/// subjects, as a bulk import leaves it (no ANALYZE), and `/verify` at c=16 on it.
async fn small_table(args: &Args, name: &str, admin: &str) -> Result<Row> {
    eprintln!("   7. /verify with {SMALL_TABLE} subjects, a database of its own");
    let tmp = tempfile::tempdir()?;
    let data = server::data_dir(tmp.path());
    let db = format!("twofold_bench_{}", uuid::Uuid::new_v4().simple());
    let pool = seed::connect(admin).await?;
    pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await?;
    pool.close().await;
    let url = with_database(admin, &db);
    let result = async {
        let out = server::cli(
            &args.twofold,
            &data,
            Some(&url),
            &["apikey", "create", "--name", "bench", "--tenant", "bench"],
        )?;
        let key = Arc::new(
            out.lines()
                .last()
                .context("no API key printed")?
                .trim()
                .to_owned(),
        );
        let keys = Keyring::parse(&std::fs::read_to_string(data.join("data-keys"))?)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let pool = seed::connect(&url).await?;
        let seeded = seed::seed(&pool, &keys, "bench", SMALL_TABLE, 0, "").await?;
        pool.close().await;
        let subjects = Arc::new(seeded.subjects);
        let server = Server::start(
            &args.twofold,
            &data,
            Some(&url),
            &tmp.path().join("server.log"),
        )
        .await?;
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()?;
        let base = Arc::new(server.url.clone());
        let step = Duration::from_secs(args.seconds);
        let stats = verify_load(&client, &base, &key, &subjects, 0, 16, step, true).await;
        server.stop();
        anyhow::Ok(Row::load(
            name,
            format!("7. /verify c=16 with {SMALL_TABLE} subjects"),
            stats,
        ))
    }
    .await;
    drop_database(admin, &db).await?;
    result
}

async fn run_scenarios(
    args: &Args,
    name: &str,
    data: &std::path::Path,
    db_url: Option<&str>,
    tmp: &std::path::Path,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let step = Duration::from_secs(args.seconds);
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2) as f64;

    // First start creates the database, the keys and the canary; the API key comes from the CLI.
    let out = server::cli(
        &args.twofold,
        data,
        db_url,
        &["apikey", "create", "--name", "bench", "--tenant", "bench"],
    )?;
    let api_key = out
        .lines()
        .last()
        .context("no API key printed")?
        .trim()
        .to_owned();
    let keys = Keyring::parse(&std::fs::read_to_string(data.join("data-keys"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let sql_url = db_url
        .map(str::to_owned)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data.join("twofold.db").display()));
    let pool = seed::connect(&sql_url).await?;

    eprintln!(
        "   measuring Argon2id and seeding {} subjects, {ACCOUNTS} accounts",
        args.subjects
    );
    let (_, phc) = argon2_seconds().await?;
    let _ = DUMMY_PHC.set(phc.clone());
    let seeded = seed::seed(&pool, &keys, "bench", args.subjects, ACCOUNTS, &phc).await?;
    let subjects = Arc::new(seeded.subjects);
    let accounts = Arc::new(seeded.accounts);

    // The server's log goes with the temporary directory unless asked to keep it.
    let log = match std::env::var_os("TWOFOLD_BENCH_LOG_DIR") {
        Some(dir) => std::path::PathBuf::from(dir).join(format!("{name}.log")),
        None => tmp.join("server.log"),
    };
    let server = Server::start(&args.twofold, data, db_url, &log).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (idle_rss, _) = server.memory_mib();
    rows.push(Row::value(
        name,
        "6. start to ready /readyz (existing database)",
        format!("{:.0} ms", server.ready_after.as_secs_f64() * 1000.0),
    ));
    rows.push(Row::value(
        name,
        "6. RSS idle",
        format!("{idle_rss:.1} MiB"),
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let base = Arc::new(server.url.clone());
    let key = Arc::new(api_key);
    let mut next_subject = 0usize;

    // 1. Valid codes, each subject once.
    let mut verify_rps = Vec::new();
    let verify_steps: &[usize] = if args.runs(1) { &[1, 16, 64] } else { &[] };
    for &c in verify_steps {
        checkpoint(&pool, db_url.is_none()).await;
        let offset = next_subject;
        let cpu = cpu::Sample::take(server.pid(), db_url.is_some());
        let stats = verify_load(&client, &base, &key, &subjects, offset, c, step, true).await;
        let spent = cpu_per(&cpu, server.pid(), db_url.is_some(), stats.requests);
        next_subject += stats.requests;
        eprintln!("   1. verify valid c={c}: {:.0}/s", stats.rps());
        verify_rps.push((c, stats.rps()));
        let row = Row::load(name, format!("1. /verify valid code, c={c}"), stats);
        rows.push(Row {
            value: Some(spent),
            ..row
        });
    }
    let (_, peak_after_verify) = server.memory_mib();

    // 2. Wrong codes, spread so that no subject reaches its budget.
    let wrong_steps: &[usize] = if args.runs(2) { &[1, 16, 64] } else { &[] };
    for &c in wrong_steps {
        let stats = verify_load(&client, &base, &key, &subjects, 0, c, step, false).await;
        eprintln!("   2. verify wrong c={c}: {:.0}/s", stats.rps());
        rows.push(Row::load(
            name,
            format!("2. /verify wrong code, c={c}"),
            stats,
        ));
    }

    // 3. The limit: the consuming UPDATE alone, on the same database (WAL checkpointed first,
    // as for every step, so a long WAL left by an earlier step does not slow the next).
    let factor_ids: Arc<Vec<String>> = Arc::new(
        sqlx::query_scalar("SELECT id FROM factors WHERE owner = 'bench:bare-update'")
            .fetch_all(&pool)
            .await?,
    );
    let checkouts: &[Checkout] = if args.runs(3) {
        &[Checkout::PerStatement, Checkout::Held]
    } else {
        &[]
    };
    for &checkout in checkouts {
        for (c, rps) in &verify_rps {
            checkpoint(&pool, db_url.is_none()).await;
            // SQLite has one writer: its limit is one connection issuing UPDATEs back to back.
            let bare_c = if db_url.is_none() { 1 } else { *c };
            let stats = bare_update(
                &sql_url,
                db_url.is_none(),
                &factor_ids,
                bare_c,
                step,
                checkout,
            )
            .await?;
            let ratio = if stats.rps() > 0.0 {
                rps / stats.rps() * 100.0
            } else {
                0.0
            };
            let how = match checkout {
                Checkout::PerStatement => "",
                Checkout::Held => ", connections held",
            };
            eprintln!(
                "   3. bare UPDATE{how} c={bare_c}: {:.0}/s (verify c={c} = {ratio:.0} %)",
                stats.rps()
            );
            let row = Row::load(
                name,
                format!("3. bare conditional UPDATE{how}, c={bare_c} (vs /verify c={c})"),
                stats,
            );
            rows.push(Row {
                value: Some(format!("/verify = {ratio:.0} % of it")),
                ..row
            });
        }
    }

    // 4. Hosted login, password + TOTP, between two measurements of the hashing limits: on
    // this VM one hash took 12-27 ms across one day's runs, so a limit measured minutes
    // earlier (at seeding) could be off by half.
    let (argon_limit, parallel_limit, used_accounts) = if args.runs(4) {
        let before = HashingLimits::measure(cores).await?;
        let cpu = cpu::Sample::take(server.pid(), db_url.is_some());
        let login = login_load(
            &client,
            &base,
            &accounts,
            0,
            (cores as usize) * 4,
            step,
            true,
            None,
        )
        .await;
        let login_cpu = cpu_per(&cpu, server.pid(), db_url.is_some(), login.requests);
        let after = HashingLimits::measure(cores).await?;
        let hash_ms = (before.hash_s + after.hash_s) / 2.0 * 1000.0;
        let argon_limit = cores / ((before.hash_s + after.hash_s) / 2.0);
        let parallel_limit = (before.all_cores + after.all_cores) / 2.0;
        rows.push(Row::value(
            name,
            "4. Argon2id limit (cores / one hash)",
            format!(
                "{argon_limit:.1} logins/s ({hash_ms:.1} ms per hash, {cores} cores; {:.1} before the logins, {:.1} after)",
                before.one_hash, after.one_hash
            ),
        ));
        rows.push(Row::value(
            name,
            "4. Argon2id measured with every core hashing",
            format!(
                "{parallel_limit:.1} hashes/s ({:.1} before, {:.1} after)",
                before.all_cores, after.all_cores
            ),
        ));
        let share = login.rps() / argon_limit * 100.0;
        let share_parallel = login.rps() / parallel_limit * 100.0;
        eprintln!(
            "   4. login: {:.1}/s = {share:.0} % of the Argon2 limit, {share_parallel:.0} % of all cores hashing",
            login.rps()
        );
        let used_accounts = login.requests;
        let row = Row::load(name, "4. hosted login (password + TOTP)", login);
        rows.push(Row {
            value: Some(format!(
                "{share:.0} % of cores / one hash; {share_parallel:.0} % of all cores hashing; {login_cpu}"
            )),
            ..row
        });
        (argon_limit, parallel_limit, used_accounts)
    } else if args.runs(5) {
        // The flood's rate still comes from the machine's hashing limits.
        let limits = HashingLimits::measure(cores).await?;
        (limits.one_hash, limits.all_cores, 0)
    } else {
        (0.0, 0.0, 0)
    };

    // 5. A password-login flood at ten times capacity while /verify runs at c=16.
    if args.runs(5) {
        // Ten times what the machine can hash, offered at a steady rate (open loop).
        let flood_rate = parallel_limit.max(argon_limit) * 10.0;
        let flood_c = 256;
        let metrics_before = Metrics::scrape(&client, &base).await?;
        let flood_cpu = cpu::Sample::take(server.pid(), db_url.is_some());
        let verify_task = {
            let (client, base, key, subjects) =
                (client.clone(), base.clone(), key.clone(), subjects.clone());
            let offset = next_subject;
            tokio::spawn(async move {
                verify_load(&client, &base, &key, &subjects, offset, 16, step, true).await
            })
        };
        let flood = login_load(
            &client,
            &base,
            &accounts,
            used_accounts,
            flood_c,
            step,
            false,
            Some(flood_rate),
        )
        .await;
        let verify_under_flood = verify_task.await?;
        // Per request of either kind: what matters here is who had the cores.
        let flood_spent = cpu_per(
            &flood_cpu,
            server.pid(),
            db_url.is_some(),
            verify_under_flood.requests + flood.requests,
        );
        next_subject += verify_under_flood.requests;
        if verify_under_flood.requests == 0 {
            notes.push(format!(
                "{name}: scenario 5 had no unused subjects left for /verify; raise --subjects"
            ));
        }
        eprintln!(
            "   5. flood: verify p99 {:.1} ms; logins {} ok, {} shed (503), {} errors",
            verify_under_flood.p99_ms(),
            flood.ok,
            flood.shed,
            flood.errors
        );
        let metrics_after = Metrics::scrape(&client, &base).await?;
        let inside = metrics_after.verify().since(&metrics_before.verify());
        let mut inside = vec![
            inside
                .summary("requests inside the server")
                .unwrap_or_else(|| "no requests inside the server".to_owned()),
        ];
        for statement in ["subject_state", "step_claim"] {
            let groups = metrics_after
                .group(statement)
                .since(&metrics_before.group(statement));
            inside.extend(groups.summary(&format!("{statement} groups")));
        }
        let inside = inside.join("; ");
        let row = Row::load(
            name,
            "5. /verify c=16 during the login flood",
            verify_under_flood,
        );
        rows.push(Row {
            value: Some(inside),
            ..row
        });
        let row = Row::load(name, format!("5. password-login flood, c={flood_c}"), flood);
        rows.push(Row {
            value: Some(format!("with the /verify load, {flood_spent}")),
            ..row
        });
    }
    let (_, peak_after_flood) = server.memory_mib();
    if args.runs(1) {
        rows.push(Row::value(
            name,
            "6. RSS peak after scenario 1",
            format!("{peak_after_verify:.1} MiB"),
        ));
    }
    if args.runs(5) {
        rows.push(Row::value(
            name,
            "6. RSS peak after the flood",
            format!("{peak_after_flood:.1} MiB"),
        ));
    }

    // 7. /verify with a large subjects table (PostgreSQL).
    if db_url.is_some() && args.large && args.runs(7) {
        let remaining = subjects.len().saturating_sub(next_subject + 1);
        if remaining > 1000 {
            let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subjects")
                .fetch_one(&pool)
                .await?;
            let first = next_subject + 50_000.min(remaining / 2);
            let s = verify_load(&client, &base, &key, &subjects, first, 16, step, true).await;
            // After the padding, the subjects after those: each code works once, and a
            // used one would count as an error.
            let second = first + s.requests;
            rows.push(Row::load(
                name,
                format!("7. /verify c=16 with {count} subjects"),
                s,
            ));
            eprintln!("   7. padding to 1,000,000 subjects");
            seed::pad_postgres(&pool, "bench", 1_000_000).await?;
            let s = verify_load(&client, &base, &key, &subjects, second, 16, step, true).await;
            if s.requests == 0 {
                notes.push(
                    "scenario 7 at 1,000,000 subjects had no unused subjects left; raise --subjects"
                        .into(),
                );
            }
            rows.push(Row::load(name, "7. /verify c=16 with 1000000 subjects", s));
        } else {
            notes.push("scenario 7 skipped: not enough unused subjects; raise --subjects".into());
        }
    }
    server.stop();
    pool.close().await;
    Ok(rows)
}

#[allow(clippy::too_many_arguments)]
async fn verify_load(
    client: &reqwest::Client,
    base: &Arc<String>,
    key: &Arc<String>,
    subjects: &Arc<Vec<(String, [u8; 20])>>,
    offset: usize,
    concurrency: usize,
    duration: Duration,
    valid: bool,
) -> Stats {
    let (client, base, key, subjects) =
        (client.clone(), base.clone(), key.clone(), subjects.clone());
    let limit = if valid {
        subjects.len().saturating_sub(offset)
    } else {
        usize::MAX
    };
    load::run(concurrency, duration, limit, move |i| {
        let (client, base, key, subjects) =
            (client.clone(), base.clone(), key.clone(), subjects.clone());
        async move {
            let (subject, secret) = &subjects[(offset + i) % subjects.len()];
            let code = if valid {
                code_now(secret)
            } else {
                wrong_code(secret)
            };
            let r = client
                .post(format!("{base}/api/v1/subjects/{subject}/verify"))
                .bearer_auth(key.as_str())
                .json(&json!({ "code": code }))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => match r.json::<serde_json::Value>().await {
                    Ok(v) if v["valid"] == valid => Outcome::Ok,
                    other => report_error(format!("/verify answered {other:?}")),
                },
                Ok(r) => report_error(format!(
                    "/verify answered {}: {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                )),
                Err(e) => report_error(format!("/verify failed: {e}")),
            }
        }
    })
    .await
}

#[allow(clippy::too_many_arguments)]
async fn login_load(
    client: &reqwest::Client,
    base: &Arc<String>,
    accounts: &Arc<Vec<(String, [u8; 20])>>,
    offset: usize,
    concurrency: usize,
    duration: Duration,
    with_second_step: bool,
    // Requests per second for an open-loop flood; `None` sends as fast as answers come.
    rate: Option<f64>,
) -> Stats {
    let (client, base, accounts) = (client.clone(), base.clone(), accounts.clone());
    let started = Instant::now();
    let limit = if with_second_step {
        accounts.len().saturating_sub(offset)
    } else {
        usize::MAX
    };
    load::run(concurrency, duration, limit, move |i| {
        let (client, base, accounts) = (client.clone(), base.clone(), accounts.clone());
        async move {
            if let Some(rate) = rate {
                let due = started + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let (email, secret) = &accounts[(offset + i) % accounts.len()];
            let r = client
                .post(format!("{base}/api/v1/session"))
                .json(&json!({ "email": email, "password": PASSWORD }))
                .send()
                .await;
            let r = match r {
                Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
                    return Outcome::Shed;
                }
                Ok(r) if r.status() == 200 => r,
                _ => return Outcome::Error,
            };
            if !with_second_step {
                return Outcome::Ok;
            }
            // The answer also sets the device cookie: take the session's.
            let Some(cookie) = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .find(|c| c.starts_with("twofold_session="))
                .map(str::to_owned)
            else {
                return Outcome::Error;
            };
            let r = client
                .post(format!("{base}/api/v1/session/second-factor"))
                .header("cookie", cookie)
                .json(&json!({ "code": code_now(secret) }))
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => Outcome::Ok,
                _ => Outcome::Error,
            }
        }
    })
    .await
}

/// How [`bare_update`] gets its connections: checked out of sqlx's pool for each statement
/// (as most applications do; sqlx then tests the connection with a round trip on the way out
/// and again on the way back), or held for the whole run, as Twofold's code checks hold theirs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checkout {
    PerStatement,
    Held,
}

/// The statement `/verify` consumes a step with, alone, each in its own transaction.
async fn bare_update(
    url: &str,
    sqlite: bool,
    ids: &Arc<Vec<String>>,
    concurrency: usize,
    duration: Duration,
    checkout: Checkout,
) -> Result<Stats> {
    sqlx::any::install_default_drivers();
    let connections = if sqlite {
        1
    } else {
        concurrency.min(32) as u32
    };
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(connections)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;").await?;
                }
                Ok(())
            })
        })
        .connect(url)
        .await?;
    let mut held = Vec::new();
    if checkout == Checkout::Held {
        for _ in 0..connections {
            held.push(pool.acquire().await?);
        }
    }
    let slots = Arc::new(tokio::sync::Semaphore::new(held.len()));
    let held = Arc::new(std::sync::Mutex::new(held));
    // Steps only ever grow, across runs too, so every UPDATE finds its condition true.
    static NEXT_STEP: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let _ = NEXT_STEP.compare_exchange(
        0,
        time::OffsetDateTime::now_utc().unix_timestamp() + 1_000_000,
        std::sync::atomic::Ordering::SeqCst,
        std::sync::atomic::Ordering::SeqCst,
    );
    let ids = ids.clone();
    let pool2 = pool.clone();
    let held2 = held.clone();
    let stats = load::run(concurrency, duration, usize::MAX, move |i| {
        let (pool, ids, held, slots) = (pool2.clone(), ids.clone(), held2.clone(), slots.clone());
        async move {
            let id = &ids[i % ids.len()];
            let step = NEXT_STEP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let query = sqlx::query(
                "UPDATE factors SET last_step = $2, last_drift = $3, last_used_at = $4,
                        drift_matches = drift_matches + CASE WHEN $3 = 0 THEN 0 ELSE 1 END
                 WHERE id = $1 AND status = 'active' AND last_step < $2",
            )
            .bind(id.as_str())
            .bind(step)
            .bind(0i64)
            .bind(0i64);
            let r = match checkout {
                Checkout::PerStatement => query.execute(&pool).await,
                Checkout::Held => {
                    let Ok(_slot) = slots.acquire().await else {
                        return Outcome::Error;
                    };
                    let Some(mut conn) = held.lock().ok().and_then(|mut h| h.pop()) else {
                        return Outcome::Error;
                    };
                    let r = query.execute(&mut *conn).await;
                    if let Ok(mut h) = held.lock() {
                        h.push(conn);
                    }
                    r
                }
            };
            match r {
                Ok(r) if r.rows_affected() == 1 => Outcome::Ok,
                _ => Outcome::Error,
            }
        }
    })
    .await;
    if let Ok(mut h) = held.lock() {
        h.clear();
    }
    pool.close().await;
    Ok(stats)
}

/// Where the CPU went since `before`, per request, as the table's figure.
fn cpu_per(before: &cpu::Sample, server: u32, postgres: bool, requests: usize) -> String {
    let (twofold, database, generator, busy) =
        before.per_op_since(&cpu::Sample::take(server, postgres), requests);
    let database = if postgres {
        format!(", PostgreSQL {database:.3} ms")
    } else {
        String::new()
    };
    format!(
        "CPU per request: Twofold {twofold:.3} ms{database}, load generator {generator:.3} ms ({busy:.2} cores busy)"
    )
}

/// Prints the first few unexpected answers, so a run with errors says why.
fn report_error(what: String) -> Outcome {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SHOWN: AtomicUsize = AtomicUsize::new(0);
    if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
        eprintln!("   unexpected: {what}");
    }
    Outcome::Error
}

async fn checkpoint(pool: &sqlx::AnyPool, sqlite: bool) {
    if sqlite {
        let _ = pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await;
    }
}
