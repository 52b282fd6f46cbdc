//! The proof of a permission check that the store's search and read functions require.
//!
//! Only [`crate::Authorizer::read_scope`] builds a [`ReadScope`] (its fields are private to
//! this crate), so code that reaches document text without asking Cedar first does not
//! compile. Whoever holds one also holds the duty to write the audit record of what it read:
//! in Vellum that is the application layer (`vellum-app`), the only front door.

use crate::model::{Action, Scope};

/// The (collection, labels) scopes Cedar permits one principal for one action, decided over
/// the scopes that had documents when it was asked. Narrowing it is always allowed
/// ([`ReadScope::narrowed_to`]); widening it is impossible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a ReadScope proves a permission check: read with it, and audit what was read"]
pub struct ReadScope {
    principal: String,
    action: Action,
    scopes: Vec<Scope>,
}

impl ReadScope {
    pub(crate) fn new(principal: String, action: Action, scopes: Vec<Scope>) -> ReadScope {
        ReadScope {
            principal,
            action,
            scopes,
        }
    }

    /// Who the decision was for (for the audit record).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The action it was decided for.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The permitted scopes.
    pub fn scopes(&self) -> &[Scope] {
        &self.scopes
    }

    /// Whether a document of `collection` with `labels` (normalised) falls inside.
    pub fn permits(&self, collection: &str, labels: &[String]) -> bool {
        self.scopes.iter().any(|scope| {
            scope.collection == collection
                && scope.labels.len() == labels.len()
                && labels.iter().all(|label| scope.labels.contains(label))
        })
    }

    /// The same proof restricted to the scopes whose documents carry every label of `labels`
    /// (normalised), so a label filter runs inside both engines like the scope itself.
    pub fn with_labels(&self, labels: &[String]) -> ReadScope {
        self.keeping(|scope| labels.iter().all(|label| scope.labels.contains(label)))
    }

    /// The same proof restricted to `collections` (what the caller asked for).
    pub fn narrowed_to(&self, collections: &[String]) -> ReadScope {
        self.keeping(|scope| collections.contains(&scope.collection))
    }

    /// The same proof with only the scopes `keep` accepts: narrowing is always allowed.
    fn keeping(&self, keep: impl Fn(&Scope) -> bool) -> ReadScope {
        ReadScope {
            principal: self.principal.clone(),
            action: self.action,
            scopes: self
                .scopes
                .iter()
                .filter(|scope| keep(scope))
                .cloned()
                .collect(),
        }
    }
}
