//! Vellum's authorization: Cedar policies, deny by default.
//!
//! Policies live in a folder of `*.cedar` files, or are one of the sets of `policies/` compiled
//! into the binary (`default` unless the server is told otherwise). They are validated,
//! strictly, against `vellum.cedarschema` when they are loaded: a policy that does not parse or
//! does not type-check stops the server with an error naming its file, rather than silently
//! never matching.
//!
//! Two questions are answered:
//! - [`Authorizer::is_allowed`]: may this user do this to this collection or document, or (for
//!   `act_for` and `grant`) to this account?
//! - [`Authorizer::permitted_scopes`]: which (collection, label set) scopes may this user query?
//!   The caller turns them into a filter that runs inside the search indexes, so documents a
//!   user may not see are never scored or returned, instead of being dropped after ranking.
//!
//! Entities are built from plain Rust values with [`EntityUid::from_type_name_and_id`], never by
//! formatting Cedar source, so a name containing quotes or backslashes cannot change a policy's
//! meaning.

mod builtin;
mod entities;
mod model;
mod proof;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::{
    Context, Entities, Policy, PolicyId, PolicySet, Request, Response, Schema, ValidationMode,
    Validator,
};
use miette::Diagnostic;

pub use entities::reserved_collection_name;
pub use model::{Action, Decision, PrincipalInfo, RequestContext, Resource, Scope, UnknownAction};
pub use proof::ReadScope;

use entities::Types;

/// The schema's file name, looked for in the policy folder.
pub const SCHEMA_FILE: &str = "vellum.cedarschema";

/// The schema shipped with Vellum (`policies/vellum.cedarschema`), used when a policy folder
/// has none of its own, so a folder of policies is all a deployment has to write.
pub const BUILTIN_SCHEMA: &str = include_str!("../../../policies/vellum.cedarschema");

/// Why a policy folder could not be loaded. Every variant names the file at fault, because the
/// person reading it is editing policies, not Rust.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read policy folder {dir}")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An empty folder would deny everything; far more likely the wrong `--policies` path.
    #[error("no *.cedar policy files in {dir}")]
    NoPolicies { dir: PathBuf },
    #[error("{file}: invalid schema: {reason}")]
    Schema { file: String, reason: String },
    #[error("{file}: syntax error: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: fails validation against the schema: {reason}")]
    Validation { file: String, reason: String },
    /// Loadable Cedar that Vellum does not accept (templates, duplicate or empty ids).
    #[error("{file}: {reason}")]
    Policy { file: String, reason: String },
    #[error("no built-in policy set {name:?} (built in: {known})")]
    UnknownBuiltin { name: String, known: String },
}

pub use builtin::{builtin_names, builtin_set, BUILTIN_SETS};

pub type Result<T, E = LoadError> = std::result::Result<T, E>;

/// A loaded, validated policy set. Immutable: reloading policies means building a new one and
/// swapping the `Arc`, so requests in flight finish under the policies they started with.
#[derive(Clone, Debug)]
pub struct Authorizer {
    policies: PolicySet,
    schema: Schema,
    /// Policy ids in load order (file name order, then order within the file).
    ids: Vec<String>,
    /// Whether [`Authorizer::permitted_scopes`] captures every policy (see
    /// [`Authorizer::scope_filter_is_exact`]).
    scopes_exact: bool,
    types: Types,
    engine: cedar_policy::Authorizer,
}

// The server shares one Authorizer across request tasks.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Authorizer>();
};

impl Authorizer {
    /// Loads every `*.cedar` file in `dir` (sorted by name, not recursive, dot-files skipped)
    /// plus the schema `vellum.cedarschema` found in `dir` or, if absent there, the built-in
    /// copy ([`BUILTIN_SCHEMA`]).
    pub fn load(dir: &Path) -> Result<Authorizer> {
        let read_dir = |source| LoadError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(name) = name else { continue };
            // Dot-files are editor leftovers (".#matters.cedar"), not policies.
            if name.starts_with('.') || !name.ends_with(".cedar") || !path.is_file() {
                continue;
            }
            files.push((name, path));
        }
        files.sort();
        if files.is_empty() {
            return Err(LoadError::NoPolicies {
                dir: dir.to_path_buf(),
            });
        }
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| LoadError::ReadFile {
                path: path.to_path_buf(),
                source,
            })
        };
        let mut sources = Vec::with_capacity(files.len());
        for (name, path) in &files {
            sources.push((name.clone(), read(path)?));
        }
        let schema_path = dir.join(SCHEMA_FILE);
        if schema_path.is_file() {
            let schema = read(&schema_path)?;
            Self::build(&schema_path.display().to_string(), &schema, &sources)
        } else {
            Self::build(&format!("built-in {SCHEMA_FILE}"), BUILTIN_SCHEMA, &sources)
        }
    }

    /// A policy set compiled into the binary ([`BUILTIN_SETS`]: `default`, `law-firm`,
    /// `hospital`), validated against the built-in schema.
    pub fn builtin(name: &str) -> Result<Authorizer> {
        let sources = builtin_set(name).ok_or_else(|| LoadError::UnknownBuiltin {
            name: name.to_string(),
            known: builtin_names().join(", "),
        })?;
        Self::from_sources(&sources)
    }

    /// Builds from in-memory `(file name, text)` pairs, validated against the built-in schema.
    /// The file names only serve policy ids and error messages.
    pub fn from_sources(policies: &[(String, String)]) -> Result<Authorizer> {
        Self::build(&format!("built-in {SCHEMA_FILE}"), BUILTIN_SCHEMA, policies)
    }

    /// Like [`Authorizer::from_sources`], with a schema of the caller's (Cedar schema syntax).
    pub fn from_sources_with_schema(
        schema: &str,
        policies: &[(String, String)],
    ) -> Result<Authorizer> {
        Self::build(SCHEMA_FILE, schema, policies)
    }

    fn build(
        schema_name: &str,
        schema_src: &str,
        sources: &[(String, String)],
    ) -> Result<Authorizer> {
        let schema_error = |reason| LoadError::Schema {
            file: schema_name.to_owned(),
            reason,
        };
        let (schema, warnings) = Schema::from_cedarschema_str(schema_src)
            .map_err(|e| schema_error(describe(&e, schema_src)))?;
        for warning in warnings {
            tracing::warn!(file = schema_name, "{}", describe(&warning, schema_src));
        }
        let types = Types::new().map_err(schema_error)?;
        // A deployment's own schema must still describe the entities built here, or every
        // request would fail at run time; find out now.
        entities::check_schema(&types, &schema).map_err(|reason| {
            schema_error(format!(
                "does not describe the entities vellum-authz builds: {reason}"
            ))
        })?;

        let validator = Validator::new(schema.clone());
        let mut policies = PolicySet::new();
        let mut ids = Vec::new();
        let mut scopes_exact = true;
        for (file, text) in sources {
            let in_file = |reason| LoadError::Policy {
                file: file.clone(),
                reason,
            };
            let parsed = PolicySet::from_str(text).map_err(|e| LoadError::Parse {
                file: file.clone(),
                reason: describe(&e, text),
            })?;
            if parsed.templates().next().is_some() {
                return Err(in_file(
                    "templates (policies with ?principal or ?resource) are not supported: \
                     Vellum loads no template links"
                        .to_owned(),
                ));
            }
            let mut file_set = PolicySet::new();
            for (index, policy) in in_source_order(&parsed) {
                let id = match policy.annotation("id") {
                    Some("") => return Err(in_file(format!("policy {index} has an empty @id"))),
                    Some(id) => id.to_owned(),
                    None => format!("{file}#{index}"),
                };
                if references_documents(&types, policy) {
                    scopes_exact = false;
                    tracing::warn!(
                        policy = id.as_str(),
                        "policy names a specific document: permitted_scopes cannot reflect it, \
                         so search results must be re-checked with is_allowed"
                    );
                }
                let policy = policy.new_id(PolicyId::new(&id));
                let duplicate = |e| in_file(format!("policy id {id:?} is used twice: {e}"));
                file_set.add(policy.clone()).map_err(duplicate)?;
                policies.add(policy).map_err(duplicate)?;
                ids.push(id);
            }
            let result = validator.validate(&file_set, ValidationMode::Strict);
            for warning in result.validation_warnings() {
                tracing::warn!(file = file.as_str(), "{}", describe(warning, text));
            }
            if !result.validation_passed() {
                // Cedar checks each policy once per action it may apply to, so one typo can
                // give seven errors at the same spot; report each spot once.
                let mut reasons: Vec<(String, usize)> = Vec::new();
                let mut seen: BTreeMap<(String, Option<usize>), usize> = BTreeMap::new();
                for error in result.validation_errors() {
                    let spot = (error.policy_id().to_string(), first_offset(error));
                    match seen.get(&spot) {
                        Some(&i) => {
                            if let Some(reason) = reasons.get_mut(i) {
                                reason.1 += 1;
                            }
                        }
                        None => {
                            seen.insert(spot, reasons.len());
                            reasons.push((describe(error, text), 0));
                        }
                    }
                }
                let reasons: Vec<String> = reasons
                    .into_iter()
                    .map(|(reason, more)| match more {
                        0 => reason,
                        n => format!("{reason} (and {n} more like it for other actions)"),
                    })
                    .collect();
                return Err(LoadError::Validation {
                    file: file.clone(),
                    reason: reasons.join("; "),
                });
            }
        }
        tracing::debug!(policies = ids.len(), "authorization policies loaded");
        Ok(Authorizer {
            policies,
            schema,
            ids,
            scopes_exact,
            types,
            engine: cedar_policy::Authorizer::new(),
        })
    }

    /// May `principal` do `action` to `resource`? Deny unless a policy permits it and none
    /// forbids it; deny on any evaluation error.
    pub fn is_allowed(
        &self,
        principal: &PrincipalInfo,
        action: Action,
        resource: &Resource,
        context: &RequestContext,
    ) -> Decision {
        let mut built = self.types.principal_entities(principal);
        let resource_uid = self.types.resource_entities(resource, &mut built);
        let entities = match self.entities(built) {
            Ok(entities) => entities,
            Err(message) => return Decision::error(message),
        };
        self.decide(principal, action, resource_uid, context, &entities)
    }

    /// Which of `scopes` the principal may use for `action`: each scope is evaluated as a
    /// hypothetical document in that collection with those labels (and no other identity).
    ///
    /// Returns the permitted scopes in the order given. The caller turns them into a filter that
    /// runs inside the search indexes. Exact unless a policy names a specific document (see
    /// [`Authorizer::scope_filter_is_exact`]).
    pub fn permitted_scopes(
        &self,
        principal: &PrincipalInfo,
        action: Action,
        scopes: &[Scope],
        context: &RequestContext,
    ) -> Vec<Scope> {
        if scopes.is_empty() {
            return Vec::new();
        }
        // One entity store for every scope: the user once, each collection once, one
        // hypothetical document per scope.
        let mut built = self.types.principal_entities(principal);
        let mut collections = BTreeMap::new();
        let mut documents = Vec::with_capacity(scopes.len());
        for (index, scope) in scopes.iter().enumerate() {
            let collection = collections
                .entry(scope.collection.as_str())
                .or_insert_with(|| self.types.collection_entity(&scope.collection, &mut built))
                .clone();
            documents.push(
                self.types
                    .hypothetical_document(index, collection, scope, &mut built),
            );
        }
        let entities = match self.entities(built) {
            Ok(entities) => entities,
            Err(message) => {
                tracing::error!(user = principal.name.as_str(), "{message}");
                return Vec::new();
            }
        };
        scopes
            .iter()
            .zip(documents)
            .filter(|(scope, document)| {
                let decision = self.decide(principal, action, document.clone(), context, &entities);
                if !decision.errors.is_empty() {
                    tracing::warn!(
                        user = principal.name.as_str(),
                        collection = scope.collection.as_str(),
                        errors = ?decision.errors,
                        "scope denied: policy evaluation failed"
                    );
                }
                decision.allowed
            })
            .map(|(scope, _)| scope.clone())
            .collect()
    }

    /// The proof the store's search and read functions require: the scopes among `candidates`
    /// (the store's [`Scope`]s with documents) that `principal` may use for `action`. This is
    /// the only way to build a [`ReadScope`].
    pub fn read_scope(
        &self,
        principal: &PrincipalInfo,
        action: Action,
        candidates: &[Scope],
        context: &RequestContext,
    ) -> ReadScope {
        let permitted = self.permitted_scopes(principal, action, candidates, context);
        ReadScope::new(principal.name.clone(), action, permitted)
    }

    /// Every policy id, in load order: `@id("...")` where given, else `<file>#<n>` (the n-th
    /// policy of the file, counting from 1). Decisions name policies by these ids.
    pub fn policy_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// False when some policy names a specific `Vellum::Document`. Such a policy can treat one
    /// document differently from the rest of its scope (collection, labels), which a scope
    /// filter cannot express: a forbidden document could slip through the filter, so the
    /// caller must then also check each search hit with [`Authorizer::is_allowed`].
    pub fn scope_filter_is_exact(&self) -> bool {
        self.scopes_exact
    }

    fn entities(&self, built: Vec<cedar_policy::Entity>) -> Result<Entities, String> {
        // Checked against the schema (so a mismatch is an error, not a silent non-match); the
        // schema also supplies the action entities.
        Entities::from_entities(built, Some(&self.schema))
            .map_err(|e| format!("cannot build entities: {}", describe(&e, "")))
    }

    fn decide(
        &self,
        principal: &PrincipalInfo,
        action: Action,
        resource: cedar_policy::EntityUid,
        context: &RequestContext,
        entities: &Entities,
    ) -> Decision {
        let context = match Context::from_pairs(entities::context_pairs(context)) {
            Ok(context) => context,
            Err(e) => return Decision::error(format!("cannot build context: {e}")),
        };
        let request = match Request::new(
            self.types.user_uid(&principal.name),
            self.types.action_uid(action),
            resource,
            context,
            Some(&self.schema),
        ) {
            Ok(request) => request,
            Err(e) => return Decision::error(format!("invalid request: {}", describe(&e, ""))),
        };
        decision(
            &self
                .engine
                .is_authorized(&request, &self.policies, entities),
        )
    }
}

fn decision(response: &Response) -> Decision {
    let diagnostics = response.diagnostics();
    let mut policies: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
    policies.sort();
    let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
    Decision {
        allowed: response.decision() == cedar_policy::Decision::Allow && errors.is_empty(),
        policies,
        errors,
    }
}

/// The static policies of one parsed file with their 1-based position in it. Cedar names them
/// `policy0`, `policy1`, ... in source order; if that ever changes, fall back to id order,
/// which still gives stable ids.
fn in_source_order(parsed: &PolicySet) -> Vec<(usize, &Policy)> {
    let mut numbered: Vec<(Option<usize>, &Policy)> = parsed
        .policies()
        .map(|p| {
            let id: &str = p.id().as_ref();
            let n = id.strip_prefix("policy").and_then(|n| n.parse().ok());
            (n, p)
        })
        .collect();
    if numbered.iter().all(|(n, _)| n.is_some()) {
        numbered.sort_by_key(|(n, _)| *n);
    } else {
        numbered.sort_by_key(|(_, p)| p.id().to_string());
    }
    numbered
        .into_iter()
        .enumerate()
        .map(|(i, (_, p))| (i + 1, p))
        .collect()
}

fn references_documents(types: &Types, policy: &Policy) -> bool {
    policy
        .entity_literals()
        .iter()
        .any(|uid| uid.type_name() == &types.document)
}

/// One line per diagnostic, with the line and column of its first label in `src` when it has
/// one, plus Cedar's help text; related diagnostics (Cedar reports several parse errors
/// this way) follow, separated by "; ".
fn describe(diagnostic: &dyn Diagnostic, src: &str) -> String {
    let mut out = describe_one(diagnostic, src);
    if let Some(related) = diagnostic.related() {
        for other in related {
            let _ = write!(out, "; {}", describe_one(other, src));
        }
    }
    out
}

fn describe_one(diagnostic: &dyn Diagnostic, src: &str) -> String {
    let mut out = String::new();
    if let Some(offset) = first_offset(diagnostic).filter(|&o| o <= src.len() && !src.is_empty()) {
        let (line, column) = line_column(src, offset);
        let _ = write!(out, "line {line}, column {column}: ");
    }
    let _ = write!(out, "{diagnostic}");
    if let Some(help) = diagnostic.help() {
        let _ = write!(out, " (help: {help})");
    }
    out
}

/// Where in the source the diagnostic points, as a byte offset, if anywhere.
fn first_offset(diagnostic: &dyn Diagnostic) -> Option<usize> {
    diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset())
}

/// 1-based line and column (in characters) of byte `offset` in `src`.
fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Vec<(String, String)> {
        vec![(name.to_owned(), text.to_owned())]
    }

    #[test]
    fn builtin_schema_parses() {
        let (_, warnings) = Schema::from_cedarschema_str(BUILTIN_SCHEMA)
            .unwrap_or_else(|e| panic!("built-in schema: {e}"));
        let warnings: Vec<String> = warnings.map(|w| w.to_string()).collect();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab\ncd", 99), (2, 3));
    }

    #[test]
    fn ids_come_from_annotation_or_file_and_position() {
        let authz = Authorizer::from_sources(&src(
            "x.cedar",
            r#"
            permit (principal in Vellum::Role::"a", action, resource);
            @id("named") permit (principal in Vellum::Role::"b", action, resource);
            forbid (principal in Vellum::Role::"c", action, resource);
            "#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(authz.policy_ids(), ["x.cedar#1", "named", "x.cedar#3"]);
    }

    #[test]
    fn duplicate_ids_are_a_load_error() {
        let text = r#"@id("same") permit (principal, action, resource);"#;
        let sources = vec![
            ("a.cedar".to_owned(), text.to_owned()),
            ("b.cedar".to_owned(), text.to_owned()),
        ];
        let err = Authorizer::from_sources(&sources)
            .err()
            .unwrap_or_else(|| panic!("duplicate ids loaded"));
        assert!(
            matches!(&err, LoadError::Policy { file, .. } if file == "b.cedar"),
            "{err}"
        );
    }

    #[test]
    fn templates_are_a_load_error() {
        let err = Authorizer::from_sources(&src(
            "t.cedar",
            "permit (principal == ?principal, action, resource);",
        ))
        .err()
        .unwrap_or_else(|| panic!("template loaded"));
        assert!(err.to_string().starts_with("t.cedar: templates"), "{err}");
    }

    #[test]
    fn empty_policy_set_denies_everything() {
        let authz = Authorizer::from_sources(&[]).unwrap_or_else(|e| panic!("{e}"));
        let user = PrincipalInfo::new("root", ["admin"], ["everyone"]);
        for action in Action::ALL {
            let resource = if action.is_on_accounts() {
                Resource::account("someone", ["admin"], Vec::<String>::new())
            } else {
                Resource::collection("c")
            };
            let d = authz.is_allowed(&user, action, &resource, &RequestContext::default());
            assert!(
                !d.allowed && d.policies.is_empty() && d.errors.is_empty(),
                "{d:?}"
            );
        }
    }

    #[test]
    fn an_evaluation_error_denies_even_if_a_permit_matches() {
        // Cedar alone would skip the failing forbid and allow; Vellum must not.
        let authz = Authorizer::from_sources(&src(
            "e.cedar",
            r#"
            @id("allow-all") permit (principal, action, resource);
            @id("broken-forbid") forbid (principal, action, resource)
            when { 9223372036854775807 + 1 > 0 };
            "#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let user = PrincipalInfo::new("u", ["r"], ["g"]);
        let d = authz.is_allowed(
            &user,
            Action::Read,
            &Resource::document("d", "c", ["l"]),
            &RequestContext::default(),
        );
        assert!(!d.allowed, "{d:?}");
        assert!(
            d.errors.len() == 1 && d.errors[0].contains("broken-forbid"),
            "{d:?}"
        );
        let scopes = [Scope::new("c", ["l"])];
        let permitted =
            authz.permitted_scopes(&user, Action::Search, &scopes, &RequestContext::default());
        assert!(permitted.is_empty(), "{permitted:?}");
    }

    #[test]
    fn document_literals_make_scopes_inexact() {
        let exact = Authorizer::from_sources(&src(
            "a.cedar",
            r#"permit (principal, action, resource in Vellum::Collection::"c");"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(exact.scope_filter_is_exact());
        let inexact = Authorizer::from_sources(&src(
            "a.cedar",
            r#"forbid (principal, action, resource == Vellum::Document::"d-42");"#,
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!inexact.scope_filter_is_exact());
    }

    #[test]
    fn incompatible_schema_is_a_load_error() {
        // A schema without `walled_from` cannot hold the users vellum-authz builds.
        let schema = BUILTIN_SCHEMA.replace("walled_from: Set<String>,", "");
        let err = Authorizer::from_sources_with_schema(&schema, &[])
            .err()
            .unwrap_or_else(|| panic!("incompatible schema loaded"));
        assert!(matches!(err, LoadError::Schema { .. }), "{err}");
    }

    #[test]
    fn an_action_on_the_wrong_kind_of_resource_is_denied() {
        let authz =
            Authorizer::from_sources(&src("all.cedar", "permit (principal, action, resource);"))
                .unwrap_or_else(|e| panic!("{e}"));
        let user = PrincipalInfo::new("u", ["admin"], Vec::<String>::new());
        let context = RequestContext::default();
        let account = Resource::account("v", Vec::<String>::new(), Vec::<String>::new());
        assert!(
            authz
                .is_allowed(&user, Action::ActFor, &account, &context)
                .allowed
        );
        let d = authz.is_allowed(&user, Action::ActFor, &Resource::collection("c"), &context);
        assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
        let d = authz.is_allowed(&user, Action::Read, &account, &context);
        assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
    }

    #[test]
    fn actions_round_trip() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        assert!("Search".parse::<Action>().is_err());
    }
}
