//! Account administration on the service layer (issue 15, findings 4-6), under the law-firm
//! policies:
//! - a stolen session token or API key must not become a permanent takeover (finding 4);
//! - account administrators must not become someone else, least of all across an ethical wall
//!   (finding 5);
//! - concurrent wrong passwords for one account must be throttled, not all checked (finding 6).

mod common;

use vellum_server::api::{
    AccountName, LoginRequest, NewKeyRequest, NewUserRequest, PasswordRequest,
};
use vellum_server::{Caller, ServiceError};

/// The password `common::setup` gives every user.
const PASSWORD: &str = "a long enough password";

/// alice works on matter-1234; wanda administers accounts but is walled off matter-1234; root
/// administers accounts without walls.
fn firm() -> common::Setup {
    common::setup(
        "law-firm",
        &[(
            "matter-1234",
            "",
            "email-court-notices-pacer/nef/almd_1.eml",
        )],
        &[
            ("alice", &["attorney"], &["matter-1234"]),
            ("wanda", &["admin"], &["walled-matter-1234"]),
            ("root", &["admin"], &[]),
        ],
    )
}

const ALICE: usize = 0;
const ROOT: usize = 2;

/// An interactive session of `name` (the principals of `common::setup` come from API keys).
fn session(setup: &common::Setup, name: &str) -> Caller {
    let login = setup
        .service
        .auth()
        .login(name, PASSWORD)
        .unwrap_or_else(|err| panic!("login {name}: {err}"));
    Caller::new(login.principal, "10.0.0.1")
}

/// The caller of `common::setup`'s API key for user number `index`.
fn key_caller(setup: &common::Setup, index: usize) -> Caller {
    Caller::new(setup.principals[index].clone(), "10.0.0.1")
}

fn own_password(new: &str, current: Option<&str>) -> PasswordRequest {
    PasswordRequest {
        password: new.into(),
        current_password: current.map(Into::into),
        reason: None,
    }
}

fn reset_password(new: &str, reason: Option<&str>) -> PasswordRequest {
    PasswordRequest {
        password: new.into(),
        current_password: None,
        reason: reason.map(Into::into),
    }
}

fn key_request(name: &str, user: Option<&str>, reason: Option<&str>) -> NewKeyRequest {
    NewKeyRequest {
        name: name.into(),
        user: user.map(Into::into),
        expires_in_days: None,
        reason: reason.map(Into::into),
    }
}

fn new_user(name: &str, roles: &[&str], groups: &[&str]) -> NewUserRequest {
    let names = |list: &[&str]| -> Vec<AccountName> {
        list.iter().map(|s| AccountName(s.to_string())).collect()
    };
    NewUserRequest {
        name: name.into(),
        password: "a sock puppet's password".into(),
        roles: names(roles),
        groups: names(groups),
    }
}

fn can_log_in(setup: &common::Setup, name: &str, password: &str) -> bool {
    setup.service.auth().login(name, password).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Finding 4: a stolen token is not a permanent takeover.

#[test]
fn an_api_key_can_neither_change_a_password_nor_mint_keys() {
    let setup = firm();
    let stolen_key = key_caller(&setup, ALICE);
    let changed = setup.service.set_user_password(
        &stolen_key,
        "alice",
        &own_password("the thief's password", Some(PASSWORD)),
    );
    assert!(
        matches!(changed, Err(ServiceError::Forbidden)),
        "{changed:?}"
    );
    assert!(can_log_in(&setup, "alice", PASSWORD));
    let minted = setup
        .service
        .create_key(&stolen_key, &key_request("persistence", None, None));
    assert!(matches!(minted, Err(ServiceError::Forbidden)), "{minted:?}");
    // An administrator's key cannot act for anyone either.
    let root_key = key_caller(&setup, ROOT);
    let reset = setup.service.set_user_password(
        &root_key,
        "alice",
        &reset_password("root's choice of password", Some("helpdesk ticket 42")),
    );
    assert!(matches!(reset, Err(ServiceError::Forbidden)), "{reset:?}");
}

#[test]
fn changing_ones_own_password_needs_the_current_one() {
    let setup = firm();
    let alice = session(&setup, "alice");
    let missing = setup.service.set_user_password(
        &alice,
        "alice",
        &own_password("alice's new password", None),
    );
    assert!(
        matches!(missing, Err(ServiceError::BadRequest(_))),
        "{missing:?}"
    );
    let wrong = setup.service.set_user_password(
        &alice,
        "alice",
        &own_password("alice's new password", Some("not alice's password")),
    );
    assert!(matches!(wrong, Err(ServiceError::Forbidden)), "{wrong:?}");
    assert!(can_log_in(&setup, "alice", PASSWORD));
    setup
        .service
        .set_user_password(
            &alice,
            "alice",
            &own_password("alice's new password", Some(PASSWORD)),
        )
        .unwrap_or_else(|err| panic!("own password change: {err}"));
    assert!(can_log_in(&setup, "alice", "alice's new password"));

    // Wrong current passwords count as failed logins: a stolen session cannot guess on.
    let root = session(&setup, "root");
    let mut outcomes = Vec::new();
    for attempt in 0..8 {
        let guess = own_password(
            "root's new password",
            Some(&format!("guess number {attempt}")),
        );
        outcomes.push(setup.service.set_user_password(&root, "root", &guess));
    }
    assert!(
        matches!(outcomes.last(), Some(Err(ServiceError::Throttled(_)))),
        "{outcomes:?}"
    );
}

#[test]
fn a_password_change_ends_sessions_and_revokes_api_keys() {
    let setup = firm();
    let auth = setup.service.auth();
    let key = auth
        .create_key("alice", "laptop")
        .unwrap_or_else(|err| panic!("{err}"));
    let alice = session(&setup, "alice");
    setup
        .service
        .set_user_password(
            &alice,
            "alice",
            &own_password("alice's new password", Some(PASSWORD)),
        )
        .unwrap_or_else(|err| panic!("own password change: {err}"));
    assert!(auth.authenticate(&key.key).is_err(), "the key survived");
    assert!(
        auth.list_keys(Some("alice"))
            .unwrap_or_default()
            .iter()
            .all(|key| key.revoked_at.is_some()),
        "a key of alice is still active"
    );

    // The same for a reset by an administrator.
    let key = auth
        .create_key("alice", "scanner")
        .unwrap_or_else(|err| panic!("{err}"));
    let root = session(&setup, "root");
    setup
        .service
        .set_user_password(
            &root,
            "alice",
            &reset_password("a reset password!", Some("helpdesk ticket 42: forgot it")),
        )
        .unwrap_or_else(|err| panic!("reset: {err}"));
    assert!(
        auth.authenticate(&key.key).is_err(),
        "the key survived a reset"
    );
}

#[test]
fn new_keys_expire_after_the_default_and_at_most_the_maximum() {
    let setup = firm();
    let alice = session(&setup, "alice");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let created = setup
        .service
        .create_key(&alice, &key_request("laptop", None, None))
        .unwrap_or_else(|err| panic!("{err}"));
    let days = vellum_auth::DEFAULT_KEY_DAYS as u64;
    assert!(
        (now + days * 86_400..=now + days * 86_400 + 60).contains(&created.info.expires_at),
        "{:?}",
        created.info
    );
    let mut short = key_request("one week", None, None);
    short.expires_in_days = Some(7);
    let created = setup
        .service
        .create_key(&alice, &short)
        .unwrap_or_else(|err| panic!("{err}"));
    assert!(created.info.expires_at <= now + 7 * 86_400 + 60);
    for days in [0, vellum_auth::MAX_KEY_DAYS + 1] {
        let mut request = key_request("too long", None, None);
        request.expires_in_days = Some(days);
        let refused = setup.service.create_key(&alice, &request);
        assert!(
            matches!(refused, Err(ServiceError::BadRequest(_))),
            "{days}: {refused:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 5: administrators cannot become anyone, and walls bind them.

#[test]
fn a_walled_admin_cannot_act_for_a_user_on_the_walled_matter() {
    let setup = firm();
    let wanda = session(&setup, "wanda");
    let reset = setup.service.set_user_password(
        &wanda,
        "alice",
        &reset_password("wanda knows this one", Some("alice asked me to")),
    );
    assert!(matches!(reset, Err(ServiceError::Forbidden)), "{reset:?}");
    assert!(can_log_in(&setup, "alice", PASSWORD));
    let key = setup.service.create_key(
        &wanda,
        &key_request("for alice", Some("alice"), Some("alice asked me to")),
    );
    assert!(matches!(key, Err(ServiceError::Forbidden)), "{key:?}");
    assert!(setup
        .service
        .auth()
        .list_keys(Some("alice"))
        .unwrap_or_default()
        .iter()
        .all(|key| key.name != "for alice"));
}

#[test]
fn a_walled_admin_cannot_grant_what_the_wall_denies_them() {
    let setup = firm();
    let wanda = session(&setup, "wanda");
    // Onto the walled matter's team; an unwalled administrator (who could then act for alice).
    for (name, roles, groups) in [
        ("sock", &[][..], &["matter-1234"][..]),
        ("sock2", &["admin"][..], &[][..]),
        ("sock3", &["records"][..], &[][..]),
    ] {
        let added = setup
            .service
            .add_user(&wanda, &new_user(name, roles, groups));
        assert!(
            matches!(added, Err(ServiceError::Forbidden)),
            "{name}: {added:?}"
        );
        assert!(
            !can_log_in(&setup, name, "a sock puppet's password"),
            "{name}"
        );
    }
    // Accounts behind the same wall are fine.
    setup
        .service
        .add_user(
            &wanda,
            &new_user(
                "dora",
                &["attorney"],
                &["matter-5678", "walled-matter-1234"],
            ),
        )
        .unwrap_or_else(|err| panic!("walled account: {err}"));
}

#[test]
fn acting_for_another_user_needs_a_reason_and_is_audited() {
    let setup = firm();
    let root = session(&setup, "root");
    let unexplained = setup.service.set_user_password(
        &root,
        "alice",
        &reset_password("root's choice of password", None),
    );
    assert!(
        matches!(unexplained, Err(ServiceError::BadRequest(_))),
        "{unexplained:?}"
    );
    let unexplained = setup
        .service
        .create_key(&root, &key_request("for alice", Some("alice"), None));
    assert!(
        matches!(unexplained, Err(ServiceError::BadRequest(_))),
        "{unexplained:?}"
    );
    assert!(can_log_in(&setup, "alice", PASSWORD));
    setup
        .service
        .set_user_password(
            &root,
            "alice",
            &reset_password("root's choice of password", Some("ticket 7: locked out")),
        )
        .unwrap_or_else(|err| panic!("reset: {err}"));
    setup
        .service
        .create_key(
            &root,
            &key_request("for alice", Some("alice"), Some("ticket 8: scanner")),
        )
        .unwrap_or_else(|err| panic!("key for alice: {err}"));

    setup.audit.shutdown().unwrap_or_else(|err| panic!("{err}"));
    let records =
        vellum_audit::read_records(&setup.data.join("audit")).unwrap_or_else(|err| panic!("{err}"));
    for reason in ["ticket 7: locked out", "ticket 8: scanner"] {
        let record = records
            .iter()
            .find(|record| record.detail.get("reason").map(String::as_str) == Some(reason))
            .unwrap_or_else(|| panic!("no audit record with the reason {reason:?}"));
        assert_eq!(record.principal.as_deref(), Some("root"));
        assert_eq!(record.outcome.as_deref(), Some("ok"));
        assert_eq!(
            record.detail.get("act_for").map(String::as_str),
            Some("alice")
        );
        let decision = record
            .decision
            .as_ref()
            .unwrap_or_else(|| panic!("no decision: {record:?}"));
        assert!(
            decision.allowed && decision.policies == ["admins-may-manage-accounts"],
            "{decision:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 6: concurrent wrong passwords are throttled.

#[test]
fn concurrent_wrong_passwords_for_one_account_are_throttled() {
    let setup = firm();
    let barrier = std::sync::Barrier::new(30);
    let outcomes: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..30)
            .map(|n| {
                let (service, barrier) = (&setup.service, &barrier);
                scope.spawn(move || {
                    let request = LoginRequest {
                        user: "alice".into(),
                        password: format!("wrong password number {n}"),
                    };
                    barrier.wait();
                    // From 30 addresses: the account's limit must hold on its own.
                    match service.login(&request, &format!("10.9.0.{n}")) {
                        Ok(_) => "ok".to_string(),
                        Err(ServiceError::Unauthenticated) => "401".to_string(),
                        Err(ServiceError::Throttled(_)) => "429".to_string(),
                        Err(other) => format!("{other:?}"),
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| "panic".to_string()))
            .collect()
    });
    let count = |what: &str| outcomes.iter().filter(|o| *o == what).count();
    // Five free failures, and the sixth attempt (which starts the first delay) is checked too:
    // at most six passwords reach argon2, as when the same guesses come one after another.
    assert_eq!(count("401") + count("429"), 30, "{outcomes:?}");
    assert!(
        count("401") <= 6,
        "{} reached argon2: {outcomes:?}",
        count("401")
    );
    assert!(count("429") >= 24, "{outcomes:?}");
}
