//! The shipped policy sets, loaded from the repository and evaluated by real Cedar: each
//! matrix row is one principal × action × resource with the expected decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use vellum_authz::{Action, Authorizer, LoadError, PrincipalInfo, RequestContext, Resource, Scope};

fn policies_dir() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies")).to_path_buf()
}

fn load(set: &str) -> Authorizer {
    let dir = policies_dir().join(set);
    Authorizer::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn user(name: &str, roles: &[&str], groups: &[&str]) -> PrincipalInfo {
    PrincipalInfo::new(name, roles.iter().copied(), groups.iter().copied())
}

fn coll(name: &str) -> Resource {
    Resource::collection(name)
}

fn doc(id: &str, collection: &str, labels: &[&str]) -> Resource {
    Resource::document(id, collection, labels.iter().copied())
}

fn account(name: &str, roles: &[&str], groups: &[&str]) -> Resource {
    Resource::account(name, roles.iter().copied(), groups.iter().copied())
}

const NORMAL: RequestContext = RequestContext { break_glass: false };
const BREAK_GLASS: RequestContext = RequestContext { break_glass: true };

use Action::*;

/// Checks every row and reports all mismatches at once.
fn check(authz: &Authorizer, rows: &[(&PrincipalInfo, Action, &Resource, RequestContext, bool)]) {
    let mut failures = Vec::new();
    for (principal, action, resource, context, expected) in rows {
        let decision = authz.is_allowed(principal, *action, resource, context);
        if decision.allowed != *expected {
            failures.push(format!(
                "{} {action} {resource:?} (break_glass={}): expected {}, got {decision:?}",
                principal.name,
                context.break_glass,
                if *expected { "allow" } else { "deny" },
            ));
        }
        assert!(
            decision.errors.is_empty(),
            "evaluation errors: {decision:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// default

#[test]
fn default_set_admins_may_do_everything_everyone_else_nothing() {
    let authz = load("default");
    assert_eq!(authz.policy_ids(), ["admins-may-do-everything"]);
    let admin = user("root", &["admin"], &[]);
    let editor = user("eve", &["editor", "attorney"], &["matter-1234", "staff"]);
    let unknown = user("mallory", &[], &[]);
    // A *group* called admin, or a *user* called admin, is not the admin role.
    let admin_group = user("gus", &[], &["admin"]);
    let admin_named = user("admin", &[], &[]);
    let resources = [
        coll("matter-1234"),
        doc("d1", "matter-1234", &[]),
        doc("d2", "cardiology", &["phi", "privileged"]),
    ];
    let mut rows = Vec::new();
    for action in Action::ON_COLLECTIONS {
        for resource in &resources {
            for context in [NORMAL, BREAK_GLASS] {
                rows.push((&admin, action, resource, context, true));
                for nobody in [&editor, &unknown, &admin_group, &admin_named] {
                    rows.push((nobody, action, resource, context, false));
                }
            }
        }
    }
    check(&authz, &rows);

    // Account administration: admins only.
    let target = account("alice", &["attorney"], &["matter-1234"]);
    let mut rows = Vec::new();
    for action in Action::ON_ACCOUNTS {
        rows.push((&admin, action, &target, NORMAL, true));
        for nobody in [&editor, &unknown, &admin_group, &admin_named] {
            rows.push((nobody, action, &target, NORMAL, false));
        }
    }
    check(&authz, &rows);

    let allowed = authz.is_allowed(&admin, Delete, &resources[1], &NORMAL);
    assert_eq!(allowed.policies, ["admins-may-do-everything"]);
    let denied = authz.is_allowed(&unknown, Read, &resources[1], &NORMAL);
    assert!(
        !denied.allowed && denied.policies.is_empty(),
        "deny by default: {denied:?}"
    );
}

#[test]
fn default_set_scopes() {
    let authz = load("default");
    let scopes = [
        Scope::new("matter-1234", Vec::<String>::new()),
        Scope::new("cardiology", ["phi"]),
    ];
    let admin = user("root", &["admin"], &[]);
    assert_eq!(
        authz.permitted_scopes(&admin, Search, &scopes, &NORMAL),
        scopes.to_vec()
    );
    let other = user("eve", &["editor"], &["matter-1234"]);
    assert!(authz
        .permitted_scopes(&other, Search, &scopes, &NORMAL)
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// law firm

struct Firm {
    alice: PrincipalInfo,
    paul: PrincipalInfo,
    petra: PrincipalInfo,
    wally: PrincipalInfo,
    rita: PrincipalInfo,
    rick: PrincipalInfo,
    adam: PrincipalInfo,
    teamer: PrincipalInfo,
    mallory: PrincipalInfo,
}

fn firm() -> Firm {
    Firm {
        alice: user("alice@firm.example", &["attorney"], &["matter-1234"]),
        paul: user("paul", &["paralegal"], &["matter-1234"]),
        petra: user("petra", &["partner"], &["matter-1234", "matter-5678"]),
        // On the 5678 team, but walled off it: the wall wins.
        wally: user(
            "wally",
            &["attorney"],
            &["matter-5678", "walled-matter-5678"],
        ),
        rita: user("rita", &["records"], &[]),
        rick: user("rick", &["records"], &["walled-matter-5678"]),
        adam: user("adam", &["admin"], &["walled-matter-5678"]),
        // On a team without a role: may query, not see privileged material or change anything.
        teamer: user("teamer", &[], &["matter-1234"]),
        mallory: user("mallory", &[], &[]),
    }
}

#[test]
fn law_firm_matrix() {
    let authz = load("law-firm");
    let f = firm();
    let c1234 = coll("matter-1234");
    let plain = doc("d-1", "matter-1234", &[]);
    let privileged = doc("d-2", "matter-1234", &["privileged"]);
    let c5678 = coll("matter-5678");
    let d5678 = doc("d-3", "matter-5678", &[]);
    let p5678 = doc("d-4", "matter-5678", &["privileged", "exhibit"]);
    let n = NORMAL;

    let mut rows = vec![
        // Attorney on the matter: queries, reads privileged, uploads, deletes; nothing else.
        (&f.alice, Search, &c1234, n, true),
        (&f.alice, Ask, &c1234, n, true),
        (&f.alice, Summarize, &plain, n, true),
        (&f.alice, Read, &plain, n, true),
        (&f.alice, Read, &privileged, n, true),
        (&f.alice, Search, &privileged, n, true),
        (&f.alice, Upload, &c1234, n, true),
        (&f.alice, Delete, &plain, n, true),
        (&f.alice, Admin, &c1234, n, false),
        (&f.alice, Read, &d5678, n, false),
        (&f.alice, Search, &c5678, n, false),
        // Paralegal: no privileged material, no deleting.
        (&f.paul, Search, &c1234, n, true),
        (&f.paul, Read, &plain, n, true),
        (&f.paul, Upload, &c1234, n, true),
        (&f.paul, Read, &privileged, n, false),
        (&f.paul, Search, &privileged, n, false),
        (&f.paul, Ask, &privileged, n, false),
        (&f.paul, Summarize, &privileged, n, false),
        (&f.paul, Delete, &plain, n, false),
        (&f.paul, Delete, &c1234, n, false),
        // Partner on two matters.
        (&f.petra, Read, &privileged, n, true),
        (&f.petra, Read, &p5678, n, true),
        (&f.petra, Delete, &d5678, n, true),
        // Ethical wall beats the team permit, for every action.
        (&f.wally, Read, &d5678, n, false),
        (&f.wally, Search, &c5678, n, false),
        (&f.wally, Upload, &c5678, n, false),
        (&f.wally, Delete, &d5678, n, false),
        (&f.wally, Read, &p5678, n, false),
        (&f.wally, Read, &plain, n, false),
        // Records: upload and delete anywhere, never query or read; walls still apply.
        (&f.rita, Upload, &c1234, n, true),
        (&f.rita, Delete, &privileged, n, true),
        (&f.rita, Upload, &c5678, n, true),
        (&f.rita, Read, &plain, n, false),
        (&f.rita, Search, &c1234, n, false),
        (&f.rick, Upload, &c1234, n, true),
        (&f.rick, Upload, &c5678, n, false),
        (&f.rick, Delete, &d5678, n, false),
        // Admin: administers, does not read; the wall applies to admins too.
        (&f.adam, Admin, &c1234, n, true),
        (&f.adam, Admin, &plain, n, true),
        (&f.adam, Admin, &c5678, n, false),
        (&f.adam, Read, &plain, n, false),
        (&f.adam, Search, &c1234, n, false),
        // Team member without a role.
        (&f.teamer, Read, &plain, n, true),
        (&f.teamer, Read, &privileged, n, false),
        (&f.teamer, Upload, &c1234, n, false),
        (&f.teamer, Delete, &plain, n, false),
    ];
    // Deny by default: an unknown user with no roles or groups gets nothing, even break-glass.
    let all = [&c1234, &plain, &privileged, &c5678, &d5678, &p5678];
    for action in Action::ON_COLLECTIONS {
        for resource in all {
            rows.push((&f.mallory, action, resource, NORMAL, false));
            rows.push((&f.mallory, action, resource, BREAK_GLASS, false));
        }
    }
    check(&authz, &rows);

    // The audit trail names the determining policies.
    let walled = authz.is_allowed(&f.wally, Read, &d5678, &NORMAL);
    assert_eq!(walled.policies, ["ethical-wall"]);
    let privileged_denied = authz.is_allowed(&f.paul, Read, &privileged, &NORMAL);
    assert_eq!(privileged_denied.policies, ["privileged-needs-attorney"]);
    let allowed = authz.is_allowed(&f.alice, Read, &plain, &NORMAL);
    assert_eq!(allowed.policies, ["matter-team-may-query-and-read"]);
}

#[test]
fn law_firm_walls_bind_account_administration() {
    let authz = load("law-firm");
    let root = user("root", &["admin"], &[]);
    let wanda = user("wanda", &["admin"], &["walled-matter-1234"]);
    let alice = user("alice", &["attorney"], &["matter-1234"]);
    let on_matter = account("alice", &["attorney"], &["matter-1234"]);
    let records = account("rita", &["records"], &[]);
    let unwalled_admin = account("sock", &["admin"], &[]);
    let behind_the_wall = account(
        "dora",
        &["attorney"],
        &["matter-5678", "walled-matter-1234"],
    );
    let elsewhere = account("eve", &["attorney"], &["matter-5678"]);
    let mut rows = Vec::new();
    for action in Action::ON_ACCOUNTS {
        for target in [
            &on_matter,
            &records,
            &unwalled_admin,
            &behind_the_wall,
            &elsewhere,
        ] {
            // An unwalled administrator manages every account; users manage none.
            rows.push((&root, action, target, NORMAL, true));
            rows.push((&alice, action, target, NORMAL, false));
            rows.push((&alice, action, target, BREAK_GLASS, false));
        }
        // A walled administrator only manages accounts behind the same wall: not the matter's
        // team, nor records staff or administrators who could reach the matter.
        rows.push((&wanda, action, &on_matter, NORMAL, false));
        rows.push((&wanda, action, &records, NORMAL, false));
        rows.push((&wanda, action, &unwalled_admin, NORMAL, false));
        rows.push((&wanda, action, &elsewhere, NORMAL, false));
        rows.push((&wanda, action, &behind_the_wall, NORMAL, true));
    }
    check(&authz, &rows);
    let walled = authz.is_allowed(&wanda, ActFor, &on_matter, &NORMAL);
    assert_eq!(walled.policies, ["ethical-wall-accounts"]);
    let allowed = authz.is_allowed(&root, Grant, &on_matter, &NORMAL);
    assert_eq!(allowed.policies, ["admins-may-manage-accounts"]);
    // The collection wall is unchanged for the same administrator.
    assert!(
        !authz
            .is_allowed(&wanda, Admin, &coll("matter-1234"), &NORMAL)
            .allowed
    );
    assert!(
        authz
            .is_allowed(&wanda, Admin, &coll("matter-5678"), &NORMAL)
            .allowed
    );
}

#[test]
fn hospital_admins_manage_accounts_and_nobody_else_does() {
    let authz = load("hospital");
    let admin = user("root", &["admin"], &[]);
    let carla = user("carla", &["clinician"], &["dept-cardiology"]);
    let target = account("olga", &["clinician"], &["dept-oncology"]);
    let mut rows = Vec::new();
    for action in Action::ON_ACCOUNTS {
        rows.push((&admin, action, &target, NORMAL, true));
        rows.push((&carla, action, &target, NORMAL, false));
        rows.push((&carla, action, &target, BREAK_GLASS, false));
    }
    check(&authz, &rows);
}

#[test]
fn law_firm_scopes() {
    let authz = load("law-firm");
    let f = firm();
    let none = Vec::<String>::new;
    let s1234 = Scope::new("matter-1234", none());
    let s1234p = Scope::new("matter-1234", ["privileged"]);
    let s5678 = Scope::new("matter-5678", none());
    let s5678p = Scope::new("matter-5678", ["privileged", "exhibit"]);
    let s9999 = Scope::new("matter-9999", none());
    let scopes = [
        s1234.clone(),
        s1234p.clone(),
        s5678.clone(),
        s5678p.clone(),
        s9999.clone(),
    ];
    let scopes_for = |p: &PrincipalInfo, a: Action| authz.permitted_scopes(p, a, &scopes, &NORMAL);

    assert_eq!(
        scopes_for(&f.alice, Search),
        [s1234.clone(), s1234p.clone()]
    );
    assert_eq!(scopes_for(&f.paul, Search), std::slice::from_ref(&s1234));
    assert_eq!(scopes_for(&f.paul, Ask), std::slice::from_ref(&s1234));
    assert_eq!(
        scopes_for(&f.petra, Summarize),
        [s1234.clone(), s1234p.clone(), s5678.clone(), s5678p.clone()]
    );
    assert_eq!(scopes_for(&f.wally, Search), Vec::<Scope>::new());
    assert_eq!(scopes_for(&f.rita, Search), Vec::<Scope>::new());
    assert_eq!(scopes_for(&f.mallory, Search), Vec::<Scope>::new());
    // Records may delete everywhere: all scopes, in the order given.
    assert_eq!(scopes_for(&f.rita, Delete), scopes.to_vec());
    assert_eq!(scopes_for(&f.rick, Delete), [s1234, s1234p, s9999]);
    assert!(authz.scope_filter_is_exact());
    assert!(authz
        .permitted_scopes(&f.alice, Search, &[], &NORMAL)
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// hospital

#[test]
fn hospital_matrix() {
    let authz = load("hospital");
    let carol = user("dr.carol", &["clinician"], &["dept-cardiology"]);
    let olga = user("dr.olga", &["clinician"], &["dept-oncology"]);
    let clerk = user("clerk", &[], &["dept-cardiology"]);
    let bill = user("bill", &["billing"], &[]);
    let rex = user("rex", &["records"], &[]);
    let root = user("root", &["admin"], &[]);
    let nobody = user("visitor", &[], &[]);

    let card = coll("cardiology");
    let card_phi = doc("c-1", "cardiology", &["phi"]);
    let card_plain = doc("c-2", "cardiology", &["rota"]);
    let onc = coll("oncology");
    let onc_phi = doc("o-1", "oncology", &["phi"]);
    let onc_plain = doc("o-2", "oncology", &[]);
    let (n, bg) = (NORMAL, BREAK_GLASS);

    check(
        &authz,
        &[
            // A clinician reads their department, PHI included, and nothing else...
            (&carol, Search, &card, n, true),
            (&carol, Read, &card_phi, n, true),
            (&carol, Ask, &card_phi, n, true),
            (&carol, Summarize, &card_plain, n, true),
            (&carol, Upload, &card, n, true),
            (&carol, Read, &onc_phi, n, false),
            (&carol, Read, &onc_plain, n, false),
            (&carol, Search, &onc, n, false),
            (&carol, Upload, &onc, n, false),
            (&carol, Delete, &card_phi, n, false),
            // ...unless they break the glass: then search and read anywhere, nothing more.
            (&carol, Read, &onc_phi, bg, true),
            (&carol, Search, &onc_phi, bg, true),
            (&carol, Search, &onc, bg, true),
            (&carol, Ask, &onc_phi, bg, false),
            (&carol, Delete, &onc_plain, bg, false),
            (&carol, Upload, &onc, bg, false),
            (&olga, Read, &card_plain, n, false),
            (&olga, Read, &card_phi, bg, true),
            (&olga, Read, &onc_phi, n, true),
            // Department staff who are not clinicians: no PHI, and no break-glass.
            (&clerk, Read, &card_plain, n, true),
            (&clerk, Read, &card_phi, n, false),
            (&clerk, Search, &card_phi, n, false),
            (&clerk, Read, &onc_plain, bg, false),
            (&clerk, Read, &card_phi, bg, false),
            (&clerk, Upload, &card, n, false),
            // Billing searches non-PHI documents anywhere, and does nothing else.
            (&bill, Search, &card_plain, n, true),
            (&bill, Search, &onc_plain, n, true),
            (&bill, Search, &card_phi, n, false),
            (&bill, Search, &card_phi, bg, false),
            (&bill, Read, &card_plain, n, false),
            (&bill, Ask, &card_plain, n, false),
            (&bill, Summarize, &onc_plain, n, false),
            // Records file and retire, never read.
            (&rex, Upload, &card, n, true),
            (&rex, Delete, &card_phi, n, true),
            (&rex, Read, &card_plain, n, false),
            (&rex, Search, &card_phi, n, false),
            // Admins administer, never read.
            (&root, Admin, &card, n, true),
            (&root, Admin, &onc_phi, n, true),
            (&root, Read, &card_plain, n, false),
            (&root, Read, &card_phi, bg, false),
            // Deny by default.
            (&nobody, Read, &card_plain, n, false),
            (&nobody, Read, &card_plain, bg, false),
            (&nobody, Search, &card, n, false),
        ],
    );

    // Break-glass access is attributable to its own policy, for the audit record.
    let glass = authz.is_allowed(&carol, Read, &onc_phi, &BREAK_GLASS);
    assert_eq!(glass.policies, ["break-glass"]);
    let phi = authz.is_allowed(&bill, Search, &card_phi, &NORMAL);
    assert_eq!(phi.policies, ["phi-needs-clinician"]);
}

#[test]
fn hospital_scopes() {
    let authz = load("hospital");
    let carol = user("dr.carol", &["clinician"], &["dept-cardiology"]);
    let bill = user("bill", &["billing"], &[]);
    let clerk = user("clerk", &[], &["dept-cardiology"]);
    let none = Vec::<String>::new;
    let card = Scope::new("cardiology", none());
    let card_phi = Scope::new("cardiology", ["phi"]);
    let onc = Scope::new("oncology", none());
    let onc_phi = Scope::new("oncology", ["phi"]);
    let er_phi = Scope::new("emergency", ["urgent", "phi"]);
    let scopes = [
        card.clone(),
        card_phi.clone(),
        onc.clone(),
        onc_phi.clone(),
        er_phi.clone(),
    ];
    assert_eq!(er_phi.labels, ["phi", "urgent"], "Scope::new sorts labels");

    assert_eq!(
        authz.permitted_scopes(&carol, Search, &scopes, &NORMAL),
        [card.clone(), card_phi.clone()]
    );
    assert_eq!(
        authz.permitted_scopes(&carol, Search, &scopes, &BREAK_GLASS),
        scopes.to_vec()
    );
    assert_eq!(
        authz.permitted_scopes(&carol, Ask, &scopes, &BREAK_GLASS),
        [card.clone(), card_phi]
    );
    assert_eq!(
        authz.permitted_scopes(&bill, Search, &scopes, &NORMAL),
        [card.clone(), onc]
    );
    assert!(authz
        .permitted_scopes(&bill, Read, &scopes, &NORMAL)
        .is_empty());
    assert_eq!(
        authz.permitted_scopes(&clerk, Search, &scopes, &NORMAL),
        [card]
    );
}

// ---------------------------------------------------------------------------------------------
// loading

/// A temporary policy folder holding `files`.
fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("write: {e}"));
    }
    dir
}

const GOOD: &str = r#"permit (principal in Vellum::Role::"admin", action, resource);"#;

fn load_err(dir: &Path) -> LoadError {
    match Authorizer::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn syntax_error_names_the_file() {
    let dir = folder(&[
        ("a-good.cedar", GOOD),
        (
            "b-broken.cedar",
            "// fine\npermit (principal, action resource);\n",
        ),
    ]);
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(
        matches!(&err, LoadError::Parse { file, .. } if file == "b-broken.cedar"),
        "{message}"
    );
    assert!(
        message.starts_with("b-broken.cedar: syntax error: line 2"),
        "{message}"
    );
}

#[test]
fn schema_violation_names_the_file_and_attribute() {
    let typo = r#"
        @id("privileged-typo")
        forbid (principal, action, resource is Vellum::Document)
        when { resource.lables.contains("privileged") };
    "#;
    let dir = folder(&[("a-good.cedar", GOOD), ("typo.cedar", typo)]);
    let err = load_err(dir.path());
    let message = err.to_string();
    assert!(
        matches!(&err, LoadError::Validation { file, .. } if file == "typo.cedar"),
        "{message}"
    );
    assert!(message.contains("lables"), "{message}");
    assert!(message.contains("privileged-typo"), "{message}");

    // The same through from_sources.
    let err = Authorizer::from_sources(&[("mem.cedar".to_owned(), typo.to_owned())])
        .err()
        .unwrap_or_else(|| panic!("typo loaded"));
    assert!(err.to_string().starts_with("mem.cedar: "), "{err}");

    // Unknown entity types and actions are validation errors too.
    for bad in [
        r#"permit (principal in Vellum::Rol::"admin", action, resource);"#,
        r#"permit (principal, action == Vellum::Action::"serch", resource);"#,
        r#"permit (principal, action, resource) when { context.breakglass };"#,
    ] {
        let err = Authorizer::from_sources(&[("bad.cedar".to_owned(), bad.to_owned())])
            .err()
            .unwrap_or_else(|| panic!("{bad} loaded"));
        assert!(err.to_string().starts_with("bad.cedar: "), "{err}");
    }
}

#[test]
fn folder_problems_are_load_errors() {
    // The policies/ root holds the schema and a README, no policies.
    assert!(matches!(
        load_err(&policies_dir()),
        LoadError::NoPolicies { .. }
    ));
    let missing = policies_dir().join("no-such-set");
    assert!(matches!(load_err(&missing), LoadError::ReadDir { .. }));
    // Only *.cedar, not recursive, no dot-files.
    let dir = folder(&[("notes.txt", "not cedar"), (".#x.cedar", "not cedar")]);
    std::fs::create_dir(dir.path().join("sub.cedar")).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(load_err(dir.path()), LoadError::NoPolicies { .. }));
}

#[test]
fn folder_schema_overrides_builtin() {
    // A copy of the built-in schema in the folder is used (and works).
    let dir = folder(&[
        ("a.cedar", GOOD),
        ("vellum.cedarschema", vellum_authz::BUILTIN_SCHEMA),
    ]);
    let authz = Authorizer::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(authz.policy_ids(), ["a.cedar#1"]);
    // A broken one is an error naming it.
    let dir = folder(&[
        ("a.cedar", GOOD),
        ("vellum.cedarschema", "namespace Vellum { entity"),
    ]);
    let err = load_err(dir.path());
    assert!(matches!(&err, LoadError::Schema { .. }), "{err}");
    assert!(err.to_string().contains("vellum.cedarschema"), "{err}");
}

#[test]
fn policy_ids_are_in_file_order() {
    let authz = load("law-firm");
    assert_eq!(
        authz.policy_ids(),
        [
            "admins-may-manage-accounts",
            "matter-team-may-query-and-read",
            "matter-lawyers-may-upload",
            "matter-attorneys-may-delete",
            "records-may-upload-and-delete",
            "admins-may-administer",
            "privileged-needs-attorney",
            "ethical-wall",
            "ethical-wall-accounts",
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// hostile names

#[test]
fn quotes_backslashes_and_spaces_in_names_are_just_names() {
    let authz = load("law-firm");
    let nasty = r#"matter "9" \ x") || true || ("#;
    let insider = user(r#"o'brien "the \"boss\"" @ firm"#, &["attorney"], &[nasty]);
    let outsider = user(r#"x" || principal == principal || "y"#, &["attorney"], &[]);
    let nasty_doc = doc(r#"doc \" 1"#, nasty, &["privileged"]);

    // The group-named-after-the-collection rule matches on the exact string.
    check(
        &authz,
        &[
            (&insider, Read, &nasty_doc, NORMAL, true),
            (&insider, Search, &coll(nasty), NORMAL, true),
            (&insider, Read, &doc("d", "matter-9", &[]), NORMAL, false),
            (
                &insider,
                Read,
                &doc("d", r#"matter "9" \ x"#, &[]),
                NORMAL,
                false,
            ),
            (&outsider, Read, &nasty_doc, NORMAL, false),
            (
                &outsider,
                Read,
                &doc("d", "matter-1234", &[]),
                NORMAL,
                false,
            ),
        ],
    );
    // A wall on the hostile name holds.
    let walled = user("w", &["attorney"], &[nasty, &format!("walled-{nasty}")]);
    assert!(!authz.is_allowed(&walled, Read, &nasty_doc, &NORMAL).allowed);

    // A label that merely contains the word is a different label.
    let paralegal = user("p", &["paralegal"], &["matter-1234"]);
    let near_label = doc("d", "matter-1234", &["privileged\"", " privileged"]);
    assert!(
        authz
            .is_allowed(&paralegal, Read, &near_label, &NORMAL)
            .allowed
    );

    // Policies can name such entities with Cedar escapes; only the exact name matches.
    let policy = r#"permit (principal == Vellum::User::"a\"b\\c d", action, resource in Vellum::Collection::"q \"x\"");"#;
    let authz = Authorizer::from_sources(&[("exact.cedar".to_owned(), policy.to_owned())])
        .unwrap_or_else(|e| panic!("{e}"));
    let exact = user(r#"a"b\c d"#, &[], &[]);
    let escaped = user(r#"a\"b\\c d"#, &[], &[]);
    let target = coll(r#"q "x""#);
    assert!(authz.is_allowed(&exact, Read, &target, &NORMAL).allowed);
    assert!(!authz.is_allowed(&escaped, Read, &target, &NORMAL).allowed);
    assert!(
        !authz
            .is_allowed(&exact, Read, &coll(r#"q \"x\""#), &NORMAL)
            .allowed
    );
    let scopes = [
        Scope::new(r#"q "x""#, ["a\"b"]),
        Scope::new("q", Vec::<String>::new()),
    ];
    assert_eq!(
        authz.permitted_scopes(&exact, Search, &scopes, &NORMAL),
        [scopes[0].clone()]
    );
}

#[test]
fn duplicate_roles_and_groups_are_harmless() {
    let authz = load("law-firm");
    let twice = user(
        "t",
        &["attorney", "attorney"],
        &["matter-1234", "matter-1234"],
    );
    let d = authz.is_allowed(&twice, Read, &doc("d", "matter-1234", &["x", "x"]), &NORMAL);
    assert!(d.allowed && d.errors.is_empty(), "{d:?}");
}

#[test]
fn shared_across_threads() {
    let authz = Arc::new(load("hospital"));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let authz = Arc::clone(&authz);
            std::thread::spawn(move || {
                let carol = user(&format!("c{i}"), &["clinician"], &["dept-cardiology"]);
                authz
                    .is_allowed(&carol, Read, &doc("d", "cardiology", &["phi"]), &NORMAL)
                    .allowed
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().unwrap_or_else(|_| panic!("thread panicked")));
    }
}
