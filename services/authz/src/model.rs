//! The request vocabulary callers use: who asks, for what, on which resource.
//!
//! These are plain Rust types on purpose: the server and the search layer never touch Cedar
//! values, so they cannot build an entity from unescaped text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The signed-in user, as authentication (vellum-auth) established it.
///
/// Each role becomes membership of `Vellum::Role::"<role>"` and each group membership of
/// `Vellum::Group::"<group>"`. Names are taken verbatim: any character is fine, nothing is parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrincipalInfo {
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
}

impl PrincipalInfo {
    /// Convenience constructor, mostly for tests and tools.
    pub fn new<R, G>(name: impl Into<String>, roles: R, groups: G) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
        G: IntoIterator,
        G::Item: Into<String>,
    {
        PrincipalInfo {
            name: name.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }
}

/// What the principal wants to do: one `Vellum::Action::"<name>"` of the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Query the indexes for matching passages.
    Search,
    /// Ask a question answered from retrieved passages.
    Ask,
    /// Summarize documents.
    Summarize,
    /// Open a document.
    Read,
    /// Add documents to a collection.
    Upload,
    /// Remove documents or collections.
    Delete,
    /// Administer a collection (reindex, settings).
    Admin,
    /// Act for another user: set their password or make them an API key, which lets the actor
    /// sign in as them. The resource is that user's [`Resource::Account`].
    #[serde(rename = "act_for")]
    ActFor,
    /// Create an account, or give it roles and groups. The resource is the
    /// [`Resource::Account`] as it will be.
    Grant,
}

impl Action {
    /// Every action, in declaration order.
    pub const ALL: [Action; 9] = [
        Action::Search,
        Action::Ask,
        Action::Summarize,
        Action::Read,
        Action::Upload,
        Action::Delete,
        Action::Admin,
        Action::ActFor,
        Action::Grant,
    ];

    /// The actions on collections and documents.
    pub const ON_COLLECTIONS: [Action; 7] = [
        Action::Search,
        Action::Ask,
        Action::Summarize,
        Action::Read,
        Action::Upload,
        Action::Delete,
        Action::Admin,
    ];

    /// The actions on accounts.
    pub const ON_ACCOUNTS: [Action; 2] = [Action::ActFor, Action::Grant];

    /// Whether the action's resource is a [`Resource::Account`] (else a collection or a
    /// document).
    pub fn is_on_accounts(self) -> bool {
        Action::ON_ACCOUNTS.contains(&self)
    }

    /// The Cedar action id (`Vellum::Action::"<this>"`), also used in logs and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Search => "search",
            Action::Ask => "ask",
            Action::Summarize => "summarize",
            Action::Read => "read",
            Action::Upload => "upload",
            Action::Delete => "delete",
            Action::Admin => "admin",
            Action::ActFor => "act_for",
            Action::Grant => "grant",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of [`Action::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown action {0:?} (expected one of search, ask, summarize, read, upload, delete, admin, \
     act_for, grant)"
)]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_owned()))
    }
}

/// What the action applies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "type")]
pub enum Resource {
    /// A whole collection: `Vellum::Collection::"<name>"`.
    Collection { name: String },
    /// One document: `Vellum::Document::"<id>"`, child of `Vellum::Collection::"<collection>"`.
    Document {
        id: String,
        collection: String,
        labels: Vec<String>,
    },
    /// A user account as the object of account administration (`act_for`, `grant`):
    /// `Vellum::Account::"<name>"` with its roles and groups (for `grant`, as they will be).
    Account {
        name: String,
        roles: Vec<String>,
        groups: Vec<String>,
    },
}

impl Resource {
    pub fn collection(name: impl Into<String>) -> Self {
        Resource::Collection { name: name.into() }
    }

    pub fn document<L>(id: impl Into<String>, collection: impl Into<String>, labels: L) -> Self
    where
        L: IntoIterator,
        L::Item: Into<String>,
    {
        Resource::Document {
            id: id.into(),
            collection: collection.into(),
            labels: labels.into_iter().map(Into::into).collect(),
        }
    }

    pub fn account<R, G>(name: impl Into<String>, roles: R, groups: G) -> Self
    where
        R: IntoIterator,
        R::Item: Into<String>,
        G: IntoIterator,
        G::Item: Into<String>,
    {
        Resource::Account {
            name: name.into(),
            roles: roles.into_iter().map(Into::into).collect(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// The collection this resource is, or belongs to; empty for an account, which is in none.
    pub fn collection_name(&self) -> &str {
        match self {
            Resource::Collection { name } => name,
            Resource::Document { collection, .. } => collection,
            Resource::Account { .. } => "",
        }
    }
}

/// A class of documents that the search indexes can filter on: one collection, one label set.
///
/// Search never asks Cedar about individual hits; it asks which scopes are permitted (see
/// [`crate::Authorizer::permitted_scopes`]) and turns them into a filter that runs inside the
/// index, so forbidden documents are never scored, counted or returned.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Ord, PartialOrd, Serialize, Deserialize)]
pub struct Scope {
    pub collection: String,
    /// Sorted and without duplicates when built with [`Scope::new`], so equal label sets compare
    /// equal.
    pub labels: Vec<String>,
}

impl Scope {
    /// Builds a scope with its labels sorted and deduplicated.
    pub fn new<L>(collection: impl Into<String>, labels: L) -> Self
    where
        L: IntoIterator,
        L::Item: Into<String>,
    {
        let mut labels: Vec<String> = labels.into_iter().map(Into::into).collect();
        labels.sort();
        labels.dedup();
        Scope {
            collection: collection.into(),
            labels,
        }
    }
}

/// Facts about the request itself, given to policies as `context`.
///
/// Every field is always sent (the schema requires them), so a policy may read
/// `context.break_glass` without a `has` check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    /// The user explicitly invoked emergency access. The server must audit every request that
    /// sets it, whatever the decision.
    pub break_glass: bool,
}

/// The outcome of one authorization question, with what the audit log needs to explain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub allowed: bool,
    /// Ids of the determining policies, sorted: the `permit`s that allowed it, or the `forbid`s
    /// that denied it. Empty for a deny by default (nothing permitted it).
    pub policies: Vec<String>,
    /// Evaluation errors. Any error makes the decision a deny: Cedar skips a policy that
    /// errors, and a skipped `forbid` must not turn into an allow.
    pub errors: Vec<String>,
}

impl Decision {
    /// A deny caused by something other than policy evaluation (the request could not be built).
    pub(crate) fn error(message: String) -> Self {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![message],
        }
    }
}
