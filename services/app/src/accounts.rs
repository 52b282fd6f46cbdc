//! Users and API keys over the API. Account administration is the Cedar action `admin` on the
//! collection [`ACCOUNTS_RESOURCE`], so policies decide who administers accounts (the shipped
//! sets: role `admin`). Everyone may manage their own API keys and password.
//!
//! A stolen token or key must not become a permanent way in, and an administrator must not
//! become someone else unseen:
//! - passwords, API keys and accounts are made or changed from an interactive session only
//!   (`via == "session"`), never with an API key;
//! - one's own password changes only with the current one, checked like a login (throttled);
//! - a password change ends the user's sessions and revokes their keys; keys expire;
//! - acting for another user (setting their password, making them a key) is also the Cedar
//!   action `act_for` on that user's `Vellum::Account`, needs a reason, and its audit record
//!   keeps the reason and Cedar's decision;
//! - creating an account is also `grant` on the account as it will be, so policies can refuse
//!   roles and groups the administrator may not have themselves (the law-firm walls do).

use vellum_audit::{actions, AuditEvent};
use vellum_auth::{NewUser, Principal, UserInfo};
use vellum_authz::{Action, RequestContext, Resource};

use crate::service::{
    audit_decision, principal_info, Caller, Service, ServiceError, ServiceResult, ACCOUNTS_RESOURCE,
};
use crate::types::{
    AccountView, CreatedKeyView, KeyView, LoginRequest, NewKeyRequest, NewUserRequest,
    PasswordRequest,
};

/// The longest reason for acting for another user (as for break-glass).
const MAX_REASON_CHARS: usize = 500;

/// Credentials and accounts change only from a session opened with a password: a stolen API
/// key must not turn into a new password, more keys or a new account.
fn require_session(principal: &Principal) -> ServiceResult<()> {
    if principal.via == "session" {
        Ok(())
    } else {
        Err(ServiceError::Forbidden)
    }
}

/// The stated reason for acting for another user: 1-500 characters.
fn require_reason(reason: Option<&str>) -> ServiceResult<()> {
    let reason = reason.map(str::trim).unwrap_or_default();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(ServiceError::BadRequest(format!(
            "acting for another user needs a reason (1-{MAX_REASON_CHARS} characters), which \
             the audit log keeps"
        )));
    }
    Ok(())
}

/// The reason as the audit record keeps it (bounded, even when it was refused as too long).
fn recorded_reason(reason: &str) -> String {
    reason.trim().chars().take(MAX_REASON_CHARS).collect()
}

fn account_resource(user: &UserInfo) -> Resource {
    Resource::account(user.name.clone(), user.roles.clone(), user.groups.clone())
}

impl Service {
    fn administers_accounts(&self, principal: &Principal) -> bool {
        self.allows(
            principal,
            Action::Admin,
            &Resource::collection(ACCOUNTS_RESOURCE),
        )
    }

    fn require_account_admin(&self, principal: &Principal) -> ServiceResult<()> {
        if self.administers_accounts(principal) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Cedar's decision on `action` (`act_for`, `grant`) to `account`, kept in `event`; a
    /// denial is 403.
    fn require_on_account(
        &self,
        principal: &Principal,
        action: Action,
        account: &Resource,
        event: &mut AuditEvent,
    ) -> ServiceResult<()> {
        let decision = self.authorizer().is_allowed(
            &principal_info(principal),
            action,
            account,
            &RequestContext::default(),
        );
        event.decision = Some(audit_decision(&decision));
        if decision.allowed {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Checks the caller's current password as a login would: the same throttle per account
    /// and address, so a stolen session cannot guess at it. Wrong: 403.
    fn verify_current_password(&self, caller: &Caller, current: Option<&str>) -> ServiceResult<()> {
        let Some(current) = current else {
            return Err(ServiceError::BadRequest(
                "changing your own password needs current_password".into(),
            ));
        };
        let request = LoginRequest {
            user: caller.principal.name.clone(),
            password: current.to_string(),
        };
        match self.login_unaudited(&request, &caller.address) {
            // Only the check was wanted: the session it opened ends at once.
            Ok(verified) => Ok(self.auth.logout(&verified.token)?),
            Err(ServiceError::Unauthenticated) => Err(ServiceError::Forbidden),
            Err(other) => Err(other),
        }
    }

    /// Every account (admins only).
    fn list_users_unaudited(&self, principal: &Principal) -> ServiceResult<Vec<AccountView>> {
        self.require_account_admin(principal)?;
        Ok(self
            .auth
            .list_users()?
            .into_iter()
            .map(AccountView::from)
            .collect())
    }

    /// Adds an account (admins, from a session, with `grant` on the account as it will be).
    fn add_user_unaudited(
        &self,
        principal: &Principal,
        request: &NewUserRequest,
        event: &mut AuditEvent,
    ) -> ServiceResult<AccountView> {
        self.require_account_admin(principal)?;
        require_session(principal)?;
        let roles: Vec<String> = request.roles.iter().map(|role| role.0.clone()).collect();
        let groups: Vec<String> = request.groups.iter().map(|group| group.0.clone()).collect();
        let account = Resource::account(request.name.clone(), roles.clone(), groups.clone());
        self.require_on_account(principal, Action::Grant, &account, event)?;
        if self
            .auth
            .list_users()?
            .iter()
            .any(|user| user.name == request.name)
        {
            return Err(ServiceError::Conflict(format!(
                "user {:?} already exists",
                request.name
            )));
        }
        let user = self.auth.add_user(&NewUser {
            name: &request.name,
            password: &request.password,
            roles,
            groups,
        })?;
        Ok(AccountView::from(user))
    }

    /// Disables or enables an account (admins only; an admin cannot disable themself, so the
    /// last way in is not closed by mistake).
    fn set_user_disabled_unaudited(
        &self,
        principal: &Principal,
        name: &str,
        disabled: bool,
    ) -> ServiceResult<()> {
        self.require_account_admin(principal)?;
        if disabled && name == principal.name {
            return Err(ServiceError::BadRequest(
                "you cannot disable your own account".into(),
            ));
        }
        Ok(self.auth.set_disabled(name, disabled)?)
    }

    /// Sets a password, from a session: one's own with the current one, or another user's for
    /// an admin whom Cedar allows `act_for` them, with a reason. Another user's account that
    /// the caller may not administer looks missing. Either way the user's sessions end and
    /// their API keys are revoked.
    fn set_user_password_unaudited(
        &self,
        caller: &Caller,
        name: &str,
        request: &PasswordRequest,
        event: &mut AuditEvent,
    ) -> ServiceResult<()> {
        let principal = &caller.principal;
        if name == principal.name {
            require_session(principal)?;
            self.verify_current_password(caller, request.current_password.as_deref())?;
            return Ok(self.auth.set_password(name, &request.password)?);
        }
        if !self.administers_accounts(principal) {
            return Err(ServiceError::NotFound);
        }
        // A printed or reset password opens only its own change, not other accounts.
        if principal.must_change_password {
            return Err(ServiceError::PasswordChangeRequired);
        }
        require_session(principal)?;
        require_reason(request.reason.as_deref())?;
        let target = self.auth.user(name)?;
        self.require_on_account(principal, Action::ActFor, &account_resource(&target), event)?;
        // Someone else chose it: the user must choose their own at their next sign-in.
        Ok(self.auth.reset_password(name, &request.password)?)
    }

    /// API keys: the caller's own, or everyone's (`all`) for an admin.
    fn list_keys_unaudited(&self, principal: &Principal, all: bool) -> ServiceResult<Vec<KeyView>> {
        if all {
            self.require_account_admin(principal)?;
        }
        let user = (!all).then_some(principal.name.as_str());
        Ok(self
            .auth
            .list_keys(user)?
            .into_iter()
            .map(KeyView::from)
            .collect())
    }

    /// Creates an API key, from a session: for the caller, or for another user (admins whom
    /// Cedar allows `act_for` them, with a reason). It expires after `expires_in_days` or the
    /// server's default. The key is in the answer once and stored only hashed.
    fn create_key_unaudited(
        &self,
        principal: &Principal,
        request: &NewKeyRequest,
        event: &mut AuditEvent,
    ) -> ServiceResult<CreatedKeyView> {
        require_session(principal)?;
        if request.reason.is_some() {
            require_reason(request.reason.as_deref())?;
        }
        let user = request.user.as_deref().unwrap_or(&principal.name);
        if user != principal.name {
            self.require_account_admin(principal)?;
            let target = self.auth.user(user)?;
            self.require_on_account(principal, Action::ActFor, &account_resource(&target), event)?;
            require_reason(request.reason.as_deref())?;
        }
        let days = request
            .expires_in_days
            .unwrap_or_else(|| self.auth.key_days());
        let created = self.auth.create_key_for_days(user, &request.name, days)?;
        Ok(CreatedKeyView {
            key: created.key,
            info: KeyView::from(created.info),
        })
    }

    /// Revokes a key: the caller's own, or any for an admin. Someone else's key that the caller
    /// may not administer looks missing.
    fn revoke_key_unaudited(&self, principal: &Principal, id: &str) -> ServiceResult<()> {
        if !self.administers_accounts(principal) {
            let own = self
                .auth
                .list_keys(Some(&principal.name))?
                .iter()
                .any(|key| key.id == id);
            if !own {
                return Err(ServiceError::NotFound);
            }
        }
        Ok(self.auth.revoke_key(id)?)
    }
}

/// The audited entry points: one record per call (user and key changes, listings, refusals).
impl Service {
    /// Every account (account administrators only).
    pub fn list_users(&self, caller: &Caller) -> ServiceResult<Vec<AccountView>> {
        let event = self.audit_event(caller, "user.list");
        let result = self.list_users_unaudited(&caller.principal);
        self.audited(event, result)
    }

    /// Adds an account (account administrators, from a session, allowed to `grant` it).
    pub fn add_user(
        &self,
        caller: &Caller,
        request: &NewUserRequest,
    ) -> ServiceResult<AccountView> {
        let names = |list: &[crate::types::AccountName]| {
            list.iter()
                .map(|name| name.0.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut event = self
            .audit_event(caller, actions::USER_CHANGE)
            .resource(request.name.clone())
            .detail("change", "add")
            .detail("roles", names(&request.roles))
            .detail("groups", names(&request.groups));
        let result = self.add_user_unaudited(&caller.principal, request, &mut event);
        self.audited(event, result)
    }

    /// Disables or enables an account (account administrators only).
    pub fn set_user_disabled(
        &self,
        caller: &Caller,
        name: &str,
        disabled: bool,
    ) -> ServiceResult<()> {
        let event = self
            .audit_event(caller, actions::USER_CHANGE)
            .resource(name.to_string())
            .detail("change", if disabled { "disable" } else { "enable" });
        let result = self.set_user_disabled_unaudited(&caller.principal, name, disabled);
        self.audited(event, result)
    }

    /// Sets a password: one's own (with the current one), or another user's for an account
    /// administrator acting for them (with a reason). Sessions end and API keys are revoked.
    pub fn set_user_password(
        &self,
        caller: &Caller,
        name: &str,
        request: &PasswordRequest,
    ) -> ServiceResult<()> {
        let mut event = self
            .audit_event(caller, actions::USER_CHANGE)
            .resource(name.to_string())
            .detail("change", "password");
        if name != caller.principal.name {
            event = event.detail("act_for", name.to_string());
            if let Some(reason) = &request.reason {
                event = event.detail("reason", recorded_reason(reason));
            }
        }
        let result = self.set_user_password_unaudited(caller, name, request, &mut event);
        self.audited(event, result)
    }

    /// API keys: the caller's own, or everyone's (`all`) for an admin.
    pub fn list_keys(&self, caller: &Caller, all: bool) -> ServiceResult<Vec<KeyView>> {
        let event = self
            .audit_event(caller, "key.list")
            .detail("all", all.to_string());
        let result = self.list_keys_unaudited(&caller.principal, all);
        self.audited(event, result)
    }

    /// Creates an API key (shown once, stored hashed, expiring).
    pub fn create_key(
        &self,
        caller: &Caller,
        request: &NewKeyRequest,
    ) -> ServiceResult<CreatedKeyView> {
        let owner = request
            .user
            .clone()
            .unwrap_or_else(|| caller.principal.name.clone());
        let mut event = self
            .audit_event(caller, actions::KEY_CHANGE)
            .detail("change", "create")
            .detail("user", owner.clone());
        if owner != caller.principal.name {
            event = event.detail("act_for", owner);
            if let Some(reason) = &request.reason {
                event = event.detail("reason", recorded_reason(reason));
            }
        }
        let result = self.create_key_unaudited(&caller.principal, request, &mut event);
        if let Ok(created) = &result {
            event.resource = Some(created.info.id.clone());
            event = event.detail("expires_at", created.info.expires_at.to_string());
        }
        self.audited(event, result)
    }

    /// Revokes an API key: one's own, or any for an admin.
    pub fn revoke_key(&self, caller: &Caller, id: &str) -> ServiceResult<()> {
        let event = self
            .audit_event(caller, actions::KEY_CHANGE)
            .resource(id.to_string())
            .detail("change", "revoke");
        let result = self.revoke_key_unaudited(&caller.principal, id);
        self.audited(event, result)
    }
}
