use crate::audit::insert_audit;
use crate::codec::db_error;
use crate::outbox::insert_outbox;
use sqlx::{Any, Transaction};
use twofold_core::model::{Effects, StampChange};
use twofold_core::ports::StoreResult;

/// Writes what accompanies a change, inside the change's transaction: the audit event, the
/// owner's notification, and a new security stamp that ends every other session.
pub(crate) async fn apply_effects(
    tx: &mut Transaction<'_, Any>,
    effects: &Effects,
) -> StoreResult<()> {
    if let Some(change) = &effects.new_stamp {
        bump_stamp(tx, change).await?;
    }
    if let Some(mail) = &effects.mail {
        insert_outbox(tx, mail).await?;
    }
    insert_audit(&mut **tx, &effects.audit).await
}

/// A new security stamp: every session of the account ends except `keep_session`, which
/// takes the new stamp.
pub(crate) async fn bump_stamp(
    tx: &mut Transaction<'_, Any>,
    change: &StampChange,
) -> StoreResult<()> {
    sqlx::query("UPDATE accounts SET security_stamp = $2 WHERE id = $1")
        .bind(change.account.to_string())
        .bind(&change.stamp)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    let keep = change
        .keep_session
        .map(|k| k.to_string())
        .unwrap_or_default();
    sqlx::query("DELETE FROM sessions WHERE account_id = $1 AND id <> $2")
        .bind(change.account.to_string())
        .bind(&keep)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    sqlx::query("UPDATE sessions SET security_stamp = $2 WHERE id = $1")
        .bind(&keep)
        .bind(&change.stamp)
        .execute(&mut **tx)
        .await
        .map_err(db_error)?;
    Ok(())
}
