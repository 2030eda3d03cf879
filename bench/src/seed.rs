//! Seeding straight into the database (not through the API): subjects with active TOTP
//! factors whose secrets the benchmark keeps, and accounts with password + TOTP.

use anyhow::{Context, Result};
use sqlx::{AnyPool, Executor};
use twofold_core::keys::Keyring;
use twofold_core::random::{OsRandom, random_bytes};
use uuid::Uuid;

pub struct Seeded {
    /// (external subject id, TOTP secret) — each used for one valid code per run.
    pub subjects: Vec<(String, [u8; 20])>,
    /// (email, TOTP secret) for hosted logins.
    pub accounts: Vec<(String, [u8; 20])>,
}

pub const PASSWORD: &str = "correct horse battery staple 42";

pub async fn connect(url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    Ok(pool)
}

fn sealed_secret(keys: &Keyring, id: Uuid) -> ([u8; 20], twofold_core::keys::Sealed) {
    let secret: [u8; 20] = random_bytes(&OsRandom);
    let sealed = keys.seal(&OsRandom, id.as_bytes(), &secret);
    (secret, sealed)
}

const BATCH: usize = 500;

/// `INSERT … VALUES ($1, $2), ($3, $4) …` for `rows` rows of `columns` values. sqlx's
/// QueryBuilder writes `?` for the Any driver, which PostgreSQL does not accept.
fn values_sql(head: &str, rows: usize, columns: usize) -> String {
    let mut sql = String::from(head);
    sql.push_str(" VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * columns + c + 1));
        }
        sql.push(')');
    }
    sql
}

async fn insert_factors(
    pool: &AnyPool,
    rows: &[(Uuid, String, twofold_core::keys::Sealed)],
) -> Result<()> {
    for chunk in rows.chunks(BATCH) {
        let sql = values_sql(
            "INSERT INTO factors (id, owner, kind, label, status, key_id, secret, algorithm, digits, period, last_step, created_at)",
            chunk.len(),
            12,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, owner, sealed) in chunk {
            q = q
                .bind(id.to_string())
                .bind(owner.clone())
                .bind("totp")
                .bind("bench")
                .bind("active")
                .bind(sealed.key_id.clone())
                .bind(sealed.blob.clone())
                .bind("SHA1")
                .bind(6i64)
                .bind(30i64)
                .bind(-1i64)
                .bind(0i64);
        }
        q.execute(pool).await?;
    }
    Ok(())
}

pub async fn seed(
    pool: &AnyPool,
    keys: &Keyring,
    tenant: &str,
    subjects: u32,
    accounts: u32,
    password_hash: &str,
) -> Result<Seeded> {
    let tenant_id: String = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await?;
    let mut out = Seeded {
        subjects: Vec::new(),
        accounts: Vec::new(),
    };
    let mut subject_rows = Vec::new();
    let mut factor_rows = Vec::new();
    for i in 0..subjects {
        let sid = Uuid::new_v4();
        let fid = Uuid::new_v4();
        let (secret, sealed) = sealed_secret(keys, fid);
        let external = format!("user-{i}");
        subject_rows.push((sid, external.clone()));
        factor_rows.push((fid, format!("subject:{sid}"), sealed));
        out.subjects.push((external, secret));
    }
    for chunk in subject_rows.chunks(BATCH) {
        let sql = values_sql(
            "INSERT INTO subjects (id, tenant_id, external_id, created_at)",
            chunk.len(),
            4,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, ext) in chunk {
            q = q
                .bind(id.to_string())
                .bind(tenant_id.clone())
                .bind(ext.clone())
                .bind(0i64);
        }
        q.execute(pool).await?;
    }
    insert_factors(pool, &factor_rows).await?;

    let mut account_factors = Vec::new();
    for chunk_start in (0..accounts).step_by(BATCH) {
        let end = (chunk_start + BATCH as u32).min(accounts);
        let mut batch = Vec::new();
        for i in chunk_start..end {
            let aid = Uuid::new_v4();
            let fid = Uuid::new_v4();
            let (secret, sealed) = sealed_secret(keys, fid);
            let email = format!("bench-{i}@example.com");
            out.accounts.push((email.clone(), secret));
            account_factors.push((fid, format!("account:{aid}"), sealed));
            batch.push((aid, email));
        }
        let sql = values_sql(
            "INSERT INTO accounts (id, email, password_hash, email_verified_at, security_stamp, created_at)",
            batch.len(),
            6,
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (aid, email) in batch {
            q = q
                .bind(aid.to_string())
                .bind(email)
                .bind(password_hash.to_owned())
                .bind(0i64)
                .bind("stamp")
                .bind(0i64);
        }
        q.execute(pool).await?;
    }
    insert_factors(pool, &account_factors).await?;

    // Rows of their own for the bare-UPDATE limit, so it never touches a factor under test.
    let bare: Vec<_> = (0..10_000)
        .map(|_| {
            let fid = Uuid::new_v4();
            let (_, sealed) = sealed_secret(keys, fid);
            (fid, "bench:bare-update".to_owned(), sealed)
        })
        .collect();
    insert_factors(pool, &bare).await?;
    Ok(out)
}

/// Pads PostgreSQL with filler subjects (and factors) so lookups run against a large table.
pub async fn pad_postgres(pool: &AnyPool, tenant: &str, total: u32) -> Result<()> {
    let tenant_id: String = sqlx::query_scalar("SELECT id FROM tenants WHERE name = $1")
        .bind(tenant)
        .fetch_one(pool)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM subjects")
        .fetch_one(pool)
        .await?;
    let missing = i64::from(total) - have;
    if missing <= 0 {
        return Ok(());
    }
    pool.execute(sqlx::AssertSqlSafe(format!(
        "INSERT INTO subjects (id, tenant_id, external_id, created_at)
         SELECT gen_random_uuid()::text, '{tenant_id}', 'filler-' || g || '-' || {have}, 0 FROM generate_series(1, {missing}) g"
    )))
    .await?;
    pool.execute(
        "INSERT INTO factors (id, owner, kind, label, status, key_id, secret, algorithm, digits, period, last_step, created_at)
         SELECT gen_random_uuid()::text, 'subject:' || s.id, 'totp', 'filler', 'active', 'none', '\\x00'::bytea, 'SHA1', 6, 30, -1, 0
         FROM subjects s LEFT JOIN factors f ON f.owner = 'subject:' || s.id
         WHERE f.id IS NULL",
    )
    .await?;
    pool.execute("ANALYZE").await?;
    Ok(())
}
