//! The verification API: apps that keep their own logins enroll and check second factors for
//! their users ("subjects"), authenticated with per-tenant API keys.

use super::Core;
use super::enrollment::{Changer, FactorView, PendingTotp};
use crate::error::CoreError;
use crate::model::{Owner, RequestMeta};
use serde_json::json;
use uuid::Uuid;

/// An authenticated API key and the tenant it belongs to.
#[derive(Debug, Clone)]
pub struct ApiCaller {
    pub key_id: Uuid,
    pub tenant_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyResult {
    Valid {
        factor_id: Option<Uuid>,
        kind: &'static str,
        backup_codes_left: Option<u32>,
    },
    Invalid,
}

impl Core {
    /// The owner for a tenant's subject. Subjects from another tenant simply do not exist here.
    pub(super) async fn subject_owner(
        &self,
        caller: &ApiCaller,
        subject: &str,
        create: bool,
    ) -> Result<Owner, CoreError> {
        if let Some(id) = self.known_subject(caller, subject) {
            return Ok(Owner::Subject(id));
        }
        check_subject_name(subject)?;
        let create_with = create.then(|| (self.new_id(), self.clock.now()));
        let id = self
            .store
            .subject(caller.tenant_id, subject, create_with)
            .await?
            .ok_or(CoreError::NotFound)?;
        self.remember_subject(caller, subject, id);
        Ok(Owner::Subject(id))
    }

    /// Subjects are never renamed or re-keyed, so a node remembers the ones it has seen.
    fn known_subject(&self, caller: &ApiCaller, subject: &str) -> Option<Uuid> {
        self.subjects
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(caller.tenant_id, subject.to_owned()))
            .copied()
    }

    fn remember_subject(&self, caller: &ApiCaller, subject: &str, id: Uuid) {
        let mut cache = self.subjects.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= 100_000 {
            cache.clear();
        }
        cache.insert((caller.tenant_id, subject.to_owned()), id);
    }

    pub async fn api_begin_totp(
        &self,
        caller: &ApiCaller,
        subject: &str,
        label: &str,
        meta: &RequestMeta,
    ) -> Result<PendingTotp, CoreError> {
        let owner = self.subject_owner(caller, subject, true).await?;
        self.begin_totp(&owner, label, subject, None, meta).await
    }

    pub async fn api_confirm_factor(
        &self,
        caller: &ApiCaller,
        subject: &str,
        id: Uuid,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<Option<Vec<String>>, CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        let kind = self
            .store
            .factors_of(&owner.key())
            .await?
            .into_iter()
            .find(|f| f.id == id)
            .map(|f| f.kind)
            .ok_or(CoreError::NotFound)?;
        if kind == "totp" {
            self.confirm_totp(&owner, id, code, Changer::Api, meta)
                .await
        } else {
            self.confirm_code_factor(&owner, id, code, Changer::Api, meta)
                .await
        }
    }

    /// Checks a code (TOTP or backup code) for a subject. Wrong codes are `Invalid`, not
    /// errors; a spent budget is `TooManyAttempts`.
    pub async fn api_verify(
        &self,
        caller: &ApiCaller,
        subject: &str,
        code: &str,
        meta: &RequestMeta,
    ) -> Result<VerifyResult, CoreError> {
        // A subject seen before is remembered, and its attempt is paid for while its factors
        // are read; otherwise it is found together with its factors first, since the budget
        // is keyed on its id.
        let (owner, paid, factors) = match self.known_subject(caller, subject) {
            Some(id) => {
                let owner = Owner::Subject(id);
                let (paid, factors) = tokio::try_join!(self.pay_factor_attempt(&owner), async {
                    Ok(self.store.code_check_state(&owner.key()).await?)
                })?;
                (owner, paid, factors)
            }
            None => {
                check_subject_name(subject)?;
                let found = self
                    .store
                    .subject_check_state(caller.tenant_id, subject, Owner::SUBJECT_PREFIX)
                    .await?;
                // An unknown subject has no factors: the same answer as a wrong code.
                let Some((id, factors)) = found else {
                    return Ok(VerifyResult::Invalid);
                };
                self.remember_subject(caller, subject, id);
                let owner = Owner::Subject(id);
                (owner, self.pay_factor_attempt(&owner).await?, factors)
            }
        };
        // Written in the transaction that consumes the code, so a success costs one commit.
        let audit = self.audit(
            "second_factor_verified",
            None,
            meta,
            json!({ "owner": owner.key() }),
        );
        let result = match self
            .check_code(
                paid,
                &owner,
                &factors,
                None,
                code,
                None,
                meta,
                super::OnSuccess::Audit(Some(&audit)),
            )
            .await?
        {
            super::Checked::Used(super::CodeUse::Totp { factor_id }) => VerifyResult::Valid {
                factor_id: Some(factor_id),
                kind: "totp",
                backup_codes_left: None,
            },
            super::Checked::Used(super::CodeUse::BackupCode { remaining }) => VerifyResult::Valid {
                factor_id: None,
                kind: "backup_code",
                backup_codes_left: Some(remaining),
            },
            super::Checked::Used(super::CodeUse::Key { factor_id, .. }) => VerifyResult::Valid {
                factor_id: Some(factor_id),
                kind: "webauthn",
                backup_codes_left: None,
            },
            super::Checked::Used(super::CodeUse::Sent { factor_id, channel }) => {
                VerifyResult::Valid {
                    factor_id: Some(factor_id),
                    kind: if channel == "sms" { "sms" } else { "email" },
                    backup_codes_left: None,
                }
            }
            super::Checked::Wrong | super::Checked::Replayed => VerifyResult::Invalid,
        };
        Ok(result)
    }

    pub async fn api_factors(
        &self,
        caller: &ApiCaller,
        subject: &str,
    ) -> Result<Vec<FactorView>, CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        self.factor_views(&owner).await
    }

    pub async fn api_remove_factor(
        &self,
        caller: &ApiCaller,
        subject: &str,
        id: Uuid,
        meta: &RequestMeta,
    ) -> Result<(), CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        self.remove_factor_of(&owner, id, Changer::Api, meta).await
    }

    pub async fn api_backup_codes(
        &self,
        caller: &ApiCaller,
        subject: &str,
        meta: &RequestMeta,
    ) -> Result<Vec<String>, CoreError> {
        let owner = self.subject_owner(caller, subject, false).await?;
        self.new_backup_codes(&owner, Changer::Api, meta).await
    }
}

fn check_subject_name(subject: &str) -> Result<(), CoreError> {
    if subject.is_empty() || subject.chars().count() > 200 || subject.chars().any(char::is_control)
    {
        return Err(CoreError::invalid(
            "subject",
            "A subject is 1 to 200 printable characters.",
        ));
    }
    Ok(())
}
