//! Users and API keys over the API. Account administration is the Cedar action `admin` on the
//! collection [`ACCOUNTS_RESOURCE`], so policies decide who administers accounts (the shipped
//! sets: role `admin`). Everyone may manage their own API keys and password.

use vellum_auth::{NewUser, Principal};
use vellum_authz::{Action, Resource};

use crate::api::{
    AccountView, CreatedKeyView, KeyView, NewKeyRequest, NewUserRequest, PasswordRequest,
};
use crate::service::{Service, ServiceError, ServiceResult, ACCOUNTS_RESOURCE};

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
    pub fn list_users(&self, principal: &Principal) -> ServiceResult<Vec<AccountView>> {
        self.require_account_admin(principal)?;
        Ok(self
            .auth
            .list_users()?
            .into_iter()
            .map(AccountView::from)
            .collect())
    }

    /// Adds an account (admins only).
    pub fn add_user(
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
    pub fn set_user_disabled(
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
    pub fn set_user_password(
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
    pub fn list_keys(&self, principal: &Principal, all: bool) -> ServiceResult<Vec<KeyView>> {
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
    pub fn create_key(
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
    pub fn revoke_key(&self, principal: &Principal, id: &str) -> ServiceResult<()> {
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
