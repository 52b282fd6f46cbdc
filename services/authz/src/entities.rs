//! Turning [`PrincipalInfo`], [`Resource`] and [`Scope`] into Cedar entities.
//!
//! Every uid is made with `EntityUid::from_type_name_and_id` and every attribute value with
//! `RestrictedExpression::new_string`, never by formatting Cedar text: user, group and collection
//! names come from outside and may contain `"`, `\` or anything else.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, Request, RestrictedExpression,
    Schema,
};

use crate::model::{Action, PrincipalInfo, RequestContext, Resource, Scope};

/// A group named `walled-<collection>` puts its members behind an ethical wall for that
/// collection (see `policies/law-firm/walls.cedar`).
const WALL_PREFIX: &str = "walled-";

/// Whether a collection name is one the policies give a meaning of its own, so nobody may
/// create it; the reason says why. `walled-<matter>` is the group of an ethical wall: the
/// matter rule ("the team is the group named like the collection") would make a collection of
/// that name the own matter of everyone behind the wall.
pub fn reserved_collection_name(name: &str) -> Option<&'static str> {
    name.to_ascii_lowercase()
        .starts_with(WALL_PREFIX)
        .then_some("names starting with `walled-` are ethical-wall groups; choose another name")
}

/// The schema's entity type names, parsed once.
#[derive(Clone, Debug)]
pub(crate) struct Types {
    user: EntityTypeName,
    role: EntityTypeName,
    group: EntityTypeName,
    collection: EntityTypeName,
    pub(crate) document: EntityTypeName,
    account: EntityTypeName,
    action: EntityTypeName,
}

impl Types {
    pub(crate) fn new() -> Result<Self, String> {
        let parse = |name: &str| {
            EntityTypeName::from_str(name).map_err(|e| format!("entity type {name}: {e}"))
        };
        Ok(Types {
            user: parse("Vellum::User")?,
            role: parse("Vellum::Role")?,
            group: parse("Vellum::Group")?,
            collection: parse("Vellum::Collection")?,
            document: parse("Vellum::Document")?,
            account: parse("Vellum::Account")?,
            action: parse("Vellum::Action")?,
        })
    }

    fn uid(type_name: &EntityTypeName, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
    }

    pub(crate) fn user_uid(&self, name: &str) -> EntityUid {
        Self::uid(&self.user, name)
    }

    pub(crate) fn action_uid(&self, action: Action) -> EntityUid {
        Self::uid(&self.action, action.as_str())
    }

    /// The user, member of one `Role` per role and one `Group` per group (those entities are
    /// included too, so the store is complete).
    pub(crate) fn principal_entities(&self, principal: &PrincipalInfo) -> Vec<Entity> {
        let roles = unique(&principal.roles);
        let groups = unique(&principal.groups);
        let walled_from = walled_from(&groups);
        let mut entities = Vec::with_capacity(1 + roles.len() + groups.len());
        let mut parents = HashSet::new();
        for role in &roles {
            let uid = Self::uid(&self.role, role);
            parents.insert(uid.clone());
            entities.push(Entity::new_no_attrs(uid, HashSet::new()));
        }
        for group in &groups {
            let uid = Self::uid(&self.group, group);
            parents.insert(uid.clone());
            entities.push(Entity::new_no_attrs(uid, HashSet::new()));
        }
        let attrs = HashMap::from([
            (
                "name".to_owned(),
                RestrictedExpression::new_string(principal.name.clone()),
            ),
            ("roles".to_owned(), string_set(&roles)),
            ("groups".to_owned(), string_set(&groups)),
            ("walled_from".to_owned(), string_set(&walled_from)),
        ]);
        entities.push(entity(self.user_uid(&principal.name), attrs, parents));
        entities
    }

    /// Adds `Vellum::Collection::"<name>"` to `out` and returns its uid.
    pub(crate) fn collection_entity(&self, name: &str, out: &mut Vec<Entity>) -> EntityUid {
        let uid = Self::uid(&self.collection, name);
        let attrs = HashMap::from([(
            "collection".to_owned(),
            RestrictedExpression::new_string(name.to_owned()),
        )]);
        out.push(entity(uid.clone(), attrs, HashSet::new()));
        uid
    }

    /// Adds the resource (and, for a document, its collection) to `out`; returns its uid.
    pub(crate) fn resource_entities(
        &self,
        resource: &Resource,
        out: &mut Vec<Entity>,
    ) -> EntityUid {
        match resource {
            Resource::Collection { name } => self.collection_entity(name, out),
            Resource::Account {
                name,
                roles,
                groups,
            } => {
                // No parents: an account is not a member of roles or groups the way the
                // principal is, so `principal in Vellum::Role::"x"` never matches a resource.
                let uid = Self::uid(&self.account, name);
                let roles = unique(roles);
                let groups = unique(groups);
                let attrs = HashMap::from([
                    (
                        "name".to_owned(),
                        RestrictedExpression::new_string(name.clone()),
                    ),
                    ("roles".to_owned(), string_set(&roles)),
                    ("groups".to_owned(), string_set(&groups)),
                    ("walled_from".to_owned(), string_set(&walled_from(&groups))),
                ]);
                out.push(entity(uid.clone(), attrs, HashSet::new()));
                uid
            }
            Resource::Document {
                id,
                collection,
                labels,
            } => {
                let parent = self.collection_entity(collection, out);
                let uid = Self::uid(&self.document, id);
                out.push(self.document_entity(uid.clone(), parent, collection, labels));
                uid
            }
        }
    }

    /// Adds a stand-in document for `scope` (its collection must already be in `out`). Its id is
    /// made up, so only policies about collections and labels apply to it, which is exactly
    /// what an index filter can express.
    pub(crate) fn hypothetical_document(
        &self,
        index: usize,
        collection: EntityUid,
        scope: &Scope,
        out: &mut Vec<Entity>,
    ) -> EntityUid {
        let uid = Self::uid(&self.document, &format!("vellum-authz:scope:{index}"));
        out.push(self.document_entity(uid.clone(), collection, &scope.collection, &scope.labels));
        uid
    }

    fn document_entity(
        &self,
        uid: EntityUid,
        parent: EntityUid,
        collection: &str,
        labels: &[String],
    ) -> Entity {
        let attrs = HashMap::from([
            (
                "collection".to_owned(),
                RestrictedExpression::new_string(collection.to_owned()),
            ),
            ("labels".to_owned(), string_set(&unique(labels))),
        ]);
        entity(uid, attrs, HashSet::from([parent]))
    }
}

fn entity(
    uid: EntityUid,
    attrs: HashMap<String, RestrictedExpression>,
    parents: HashSet<EntityUid>,
) -> Entity {
    // `Entity::new` only fails when evaluating an extension call (`ip("...")`); these values
    // are string literals and sets of them. Should that ever change, an entity without
    // attributes makes every policy that reads one fail, which denies.
    match Entity::new(uid.clone(), attrs, parents.clone()) {
        Ok(entity) => entity,
        Err(e) => {
            tracing::error!("cannot build entity {uid}: {e}");
            Entity::new_no_attrs(uid, parents)
        }
    }
}

fn string_set(items: &[&str]) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .iter()
            .map(|s| RestrictedExpression::new_string((*s).to_owned())),
    )
}

/// The collections C of the groups named `walled-C`.
fn walled_from<'a>(groups: &[&'a str]) -> Vec<&'a str> {
    unique_strs(groups.iter().filter_map(|g| g.strip_prefix(WALL_PREFIX)))
}

/// Deduplicated, keeping first occurrences, so a role listed twice does not make two entities
/// with the same uid (which Cedar rejects).
pub(crate) fn unique(items: &[String]) -> Vec<&str> {
    unique_strs(items.iter().map(String::as_str))
}

fn unique_strs<'a>(items: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = HashSet::new();
    items.filter(|s| seen.insert(*s)).collect()
}

/// The `context` record. Every field is always present, so policies need no `has` checks.
pub(crate) fn context_pairs(context: &RequestContext) -> Vec<(String, RestrictedExpression)> {
    vec![(
        "break_glass".to_owned(),
        RestrictedExpression::new_bool(context.break_glass),
    )]
}

/// Builds one request per action and resource kind against `schema`, so a deployment schema
/// that cannot hold Vellum's entities or requests fails at load instead of denying every
/// request later.
pub(crate) fn check_schema(types: &Types, schema: &Schema) -> Result<(), String> {
    let principal = PrincipalInfo::new("schema-check", ["role"], ["group", "walled-collection"]);
    let mut built = types.principal_entities(&principal);
    let collection = types.resource_entities(&Resource::collection("collection"), &mut Vec::new());
    let document = types.resource_entities(
        &Resource::document("document", "collection", ["label"]),
        &mut built,
    );
    let account = types.resource_entities(
        &Resource::account("account", ["role"], ["group", "walled-collection"]),
        &mut built,
    );
    Entities::from_entities(built, Some(schema)).map_err(|e| e.to_string())?;
    for action in Action::ALL {
        let resources = if action.is_on_accounts() {
            vec![&account]
        } else {
            vec![&collection, &document]
        };
        for resource in resources {
            let context = Context::from_pairs(context_pairs(&RequestContext::default()))
                .map_err(|e| e.to_string())?;
            Request::new(
                types.user_uid(&principal.name),
                types.action_uid(action),
                resource.clone(),
                context,
                Some(schema),
            )
            .map_err(|e| format!("action {action}: {e}"))?;
        }
    }
    Ok(())
}
