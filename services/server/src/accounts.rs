//! Users and API keys over the API. Account administration is the Cedar action `admin` on the
//! collection [`ACCOUNTS_RESOURCE`], so policies decide who administers accounts (the shipped
//! sets: role `admin`). Everyone may manage their own API keys and password.

use vellum_auth::{NewUser, Principal};
use vellum_authz::{Action, Resource};

use crate::api::{
    AccountView, CreatedKeyView, KeyView, NewKeyRequest, NewUserRequest, PasswordRequest,
};
use crate::service::{Caller, Service, ServiceError, ServiceResult, ACCOUNTS_RESOURCE};
use vellum_audit::actions;

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

    /// Adds an account (admins only).
    fn add_user_unaudited(
        &self,
        principal: &Principal,
        request: &NewUserRequest,
    ) -> ServiceResult<AccountView> {
        self.require_account_admin(principal)?;
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
            roles: request.roles.iter().map(|role| role.0.clone()).collect(),
            groups: request.groups.iter().map(|group| group.0.clone()).collect(),
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

    /// Sets a password: one's own, or anyone's for an admin. Another user's account that the
    /// caller may not administer looks missing.
    fn set_user_password_unaudited(
        &self,
        principal: &Principal,
        name: &str,
        request: &PasswordRequest,
    ) -> ServiceResult<()> {
        if name != principal.name && !self.administers_accounts(principal) {
            return Err(ServiceError::NotFound);
        }
        Ok(self.auth.set_password(name, &request.password)?)
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

    /// Creates an API key for the caller, or for another user (admins only). The key is in the
    /// answer once and stored only hashed.
    fn create_key_unaudited(
        &self,
        principal: &Principal,
        request: &NewKeyRequest,
    ) -> ServiceResult<CreatedKeyView> {
        let user = request.user.as_deref().unwrap_or(&principal.name);
        if user != principal.name {
            self.require_account_admin(principal)?;
        }
        let created = self.auth.create_key(user, &request.name)?;
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

    /// Adds an account (account administrators only).
    pub fn add_user(
        &self,
        caller: &Caller,
        request: &NewUserRequest,
    ) -> ServiceResult<AccountView> {
        let names = |list: &[crate::api::AccountName]| {
            list.iter()
                .map(|name| name.0.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let event = self
            .audit_event(caller, actions::USER_CHANGE)
            .resource(request.name.clone())
            .detail("change", "add")
            .detail("roles", names(&request.roles))
            .detail("groups", names(&request.groups));
        let result = self.add_user_unaudited(&caller.principal, request);
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

    /// Sets a password: one's own, or anyone's for an account administrator.
    pub fn set_user_password(
        &self,
        caller: &Caller,
        name: &str,
        request: &PasswordRequest,
    ) -> ServiceResult<()> {
        let event = self
            .audit_event(caller, actions::USER_CHANGE)
            .resource(name.to_string())
            .detail("change", "password");
        let result = self.set_user_password_unaudited(&caller.principal, name, request);
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

    /// Creates an API key (shown once, stored hashed).
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
            .detail("user", owner);
        let result = self.create_key_unaudited(&caller.principal, request);
        if let Ok(created) = &result {
            event.resource = Some(created.info.id.clone());
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
