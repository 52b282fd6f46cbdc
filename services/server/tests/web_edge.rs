//! The web app's edge, through the whole HTTP application in-process over a real service (real
//! CUAD contract, real embedder and SmolLM2, law-firm policies, audit log): the session cookie
//! and its cross-site checks, the security headers, conversations (ownership, follow-ups,
//! export, withholding what is no longer readable), the admin reads, search paging and the
//! document viewer's endpoints. The browser tests (tests/browser) drive the pages themselves.

mod common;

use std::net::SocketAddr;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use serde_json::{json, Value};
use vellum_server::{create_app, TrustedProxies};

const MATTER: &str = "matter-1234";
const CONTRACT: &str = "legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF";
const PASSWORD: &str = "a long enough password";
const HOST: &str = "vellum.example:8443";

/// alice (attorney on the matter), adam (admin), rita (records clerk), pete (another matter).
fn law_firm() -> common::Setup {
    common::setup(
        "law-firm",
        &[(MATTER, "", CONTRACT)],
        &[
            ("alice", &["attorney"], &[MATTER]),
            ("adam", &["admin"], &[]),
            ("rita", &["records"], &[]),
            ("pete", &["paralegal"], &["matter-9999"]),
        ],
    )
}

const ALICE: usize = 0;
const ADAM: usize = 1;
const PETE: usize = 3;

macro_rules! app {
    ($service:expr) => {
        test::init_service(create_app($service, TrustedProxies::default())).await
    };
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

async fn body_json(response: ServiceResponse<impl MessageBody>) -> Value {
    let bytes = test::read_body(response).await;
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn header(response: &ServiceResponse<impl MessageBody>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The SSE frames of an answer stream: (event, data).
fn frames(stream: &str) -> Vec<(String, Value)> {
    stream
        .split("\n\n")
        .filter_map(|frame| {
            let (event, data) = frame.split_once('\n')?;
            Some((
                event.strip_prefix("event: ")?.to_string(),
                serde_json::from_str(data.strip_prefix("data: ")?).ok()?,
            ))
        })
        .collect()
}

#[actix_web::test]
async fn browser_sessions_ride_in_a_strict_cookie_and_need_the_page_token() {
    let setup = law_firm();
    let app = app!(web::Data::new(setup.service));

    // The page and every answer carry the security headers.
    let page = test::call_service(
        &app,
        TestRequest::get().uri("/").peer_addr(peer()).to_request(),
    )
    .await;
    assert_eq!(page.status(), 200);
    let csp = header(&page, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(header(&page, "x-frame-options"), "DENY");
    assert_eq!(header(&page, "referrer-policy"), "no-referrer");
    assert!(header(&page, "strict-transport-security").contains("max-age="));
    let escape = test::call_service(
        &app,
        TestRequest::get()
            .uri("/assets/../Cargo.toml")
            .peer_addr(peer())
            .to_request(),
    )
    .await;
    assert_eq!(escape.status(), 404);

    // A sign-in from another origin is refused before the password is checked.
    let forged = test::call_service(
        &app,
        TestRequest::post()
            .uri("/web/session")
            .insert_header(("host", HOST))
            .insert_header(("origin", "https://evil.example"))
            .peer_addr(peer())
            .set_json(json!({"user": "alice", "password": PASSWORD}))
            .to_request(),
    )
    .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(body_json(forged).await["code"], "csrf");

    let signed_in = test::call_service(
        &app,
        TestRequest::post()
            .uri("/web/session")
            .insert_header(("host", HOST))
            .insert_header(("origin", format!("https://{HOST}")))
            .peer_addr(peer())
            .set_json(json!({"user": "alice", "password": PASSWORD}))
            .to_request(),
    )
    .await;
    assert_eq!(signed_in.status(), 200);
    let cookie = header(&signed_in, "set-cookie");
    for flag in [
        "__Host-vellum_session=vs_",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let session = body_json(signed_in).await;
    assert!(
        !session.to_string().contains("vs_"),
        "the token reached the page's script: {session}"
    );
    // Emergency access opens nothing under the law-firm policies: no prompt to offer.
    assert_eq!(session["break_glass"], false, "{session}");
    let csrf = session["csrf"].as_str().unwrap_or_default().to_string();
    assert_eq!(csrf.len(), 64, "{session}");
    let cookie_pair = cookie.split(';').next().unwrap_or_default().to_string();

    let search = |token: Option<&str>, origin: Option<&str>| {
        let mut request = TestRequest::post()
            .uri("/v1/search")
            .insert_header(("host", HOST))
            .insert_header(("cookie", cookie_pair.clone()))
            .peer_addr(peer())
            .set_json(json!({"query": "joint venture"}));
        if let Some(token) = token {
            request = request.insert_header(("x-csrf-token", token.to_string()));
        }
        if let Some(origin) = origin {
            request = request.insert_header(("origin", origin.to_string()));
        }
        request.to_request()
    };
    // The cookie alone (what another site can make the browser send) changes nothing.
    let without = test::call_service(&app, search(None, None)).await;
    assert_eq!(without.status(), 403);
    assert_eq!(body_json(without).await["code"], "csrf");
    let wrong = test::call_service(&app, search(Some(&"0".repeat(64)), None)).await;
    assert_eq!(wrong.status(), 403);
    let foreign = test::call_service(&app, search(Some(&csrf), Some("https://evil.example"))).await;
    assert_eq!(foreign.status(), 403);
    let own = format!("https://{HOST}");
    let allowed = test::call_service(&app, search(Some(&csrf), Some(&own))).await;
    assert_eq!(allowed.status(), 200);
    let results = body_json(allowed).await;
    assert!(
        results["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{results}"
    );

    // Reading needs no token; the page learns its session again after a reload.
    let again = test::call_service(
        &app,
        TestRequest::get()
            .uri("/web/session")
            .insert_header(("cookie", cookie_pair.clone()))
            .peer_addr(peer())
            .to_request(),
    )
    .await;
    assert_eq!(again.status(), 200);
    let again = body_json(again).await;
    assert_eq!(again["user"]["name"], "alice");
    assert_eq!(again["csrf"], csrf.as_str());

    // A bearer client is not a browser: no token needed.
    let key = test::call_service(
        &app,
        TestRequest::post()
            .uri("/v1/search")
            .insert_header(bearer(&setup.keys[ALICE]))
            .peer_addr(peer())
            .set_json(json!({"query": "joint venture"}))
            .to_request(),
    )
    .await;
    assert_eq!(key.status(), 200);

    // Signing out needs the token, ends the session and clears the cookie.
    let out = test::call_service(
        &app,
        TestRequest::delete()
            .uri("/web/session")
            .insert_header(("cookie", cookie_pair.clone()))
            .insert_header(("x-csrf-token", csrf.clone()))
            .peer_addr(peer())
            .to_request(),
    )
    .await;
    assert_eq!(out.status(), 204);
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    let after = test::call_service(
        &app,
        TestRequest::get()
            .uri("/web/session")
            .insert_header(("cookie", cookie_pair))
            .peer_addr(peer())
            .to_request(),
    )
    .await;
    assert_eq!(after.status(), 401);
}

#[actix_web::test]
async fn conversations_are_their_owners_alone_and_withhold_what_is_no_longer_readable() {
    let setup = law_firm();
    let keys = setup.keys.clone();
    let data = setup.data.clone();
    let app = app!(web::Data::new(setup.service));
    let call = |method: &str, uri: &str, key: &str, body: Option<Value>| {
        let request = match method {
            "POST" => TestRequest::post(),
            "DELETE" => TestRequest::delete(),
            _ => TestRequest::get(),
        }
        .uri(uri)
        .insert_header(bearer(key))
        .peer_addr(peer());
        match body {
            Some(body) => request.set_json(body).to_request(),
            None => request.to_request(),
        }
    };

    let created = test::call_service(
        &app,
        call(
            "POST",
            "/v1/conversations",
            &keys[ALICE],
            Some(json!({"collections": [MATTER]})),
        ),
    )
    .await;
    assert_eq!(created.status(), 201);
    let id = body_json(created).await["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(id.starts_with("cv_"), "{id}");
    let ask_uri = format!("/v1/conversations/{id}/ask");
    for question in [
        "Who are the parties to the joint venture agreement?",
        "When was it signed?",
    ] {
        let response = test::call_service(
            &app,
            call(
                "POST",
                &ask_uri,
                &keys[ALICE],
                Some(json!({"question": question, "max_tokens": 8})),
            ),
        )
        .await;
        assert_eq!(response.status(), 200);
        let stream = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
        let events = frames(&stream);
        assert_eq!(
            events.first().map(|(event, _)| event.as_str()),
            Some("sources"),
            "{stream}"
        );
        assert_eq!(
            events.last().map(|(event, _)| event.as_str()),
            Some("answer"),
            "{stream}"
        );
    }
    let conversation = body_json(
        test::call_service(
            &app,
            call(
                "GET",
                &format!("/v1/conversations/{id}"),
                &keys[ALICE],
                None,
            ),
        )
        .await,
    )
    .await;
    let turns = conversation["turns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(turns.len(), 2, "{conversation}");
    assert_eq!(
        conversation["title"],
        "Who are the parties to the joint venture agreement?"
    );
    assert!(turns[0]["sources"]
        .as_array()
        .is_some_and(|sources| !sources.is_empty() && sources[0]["text"] != ""));
    // The follow-up carried the first turn into its prompt; the auditor's receipt says so.
    let log = vellum_audit::read_records(&data.join("audit")).unwrap_or_else(|err| panic!("{err}"));
    let last_receipt = log
        .iter()
        .rev()
        .find(|record| record.action.as_deref() == Some("ask.answer"))
        .and_then(|record| record.receipt.clone())
        .unwrap_or_default();
    assert_eq!(
        last_receipt["history"][0]["question"],
        "Who are the parties to the joint venture agreement?",
        "{last_receipt}"
    );
    assert_eq!(
        log.iter()
            .filter(|record| record.action.as_deref() == Some("conversation.turn"))
            .count(),
        2
    );

    // Someone else's conversation does not exist for them, whatever they try.
    for (method, uri) in [
        ("GET", format!("/v1/conversations/{id}")),
        ("GET", format!("/v1/conversations/{id}/export?format=pdf")),
        ("POST", ask_uri.clone()),
        ("DELETE", format!("/v1/conversations/{id}")),
    ] {
        let body = (method == "POST").then(|| json!({"question": "Who are the parties?"}));
        let response = test::call_service(&app, call(method, &uri, &keys[PETE], body)).await;
        assert_eq!(response.status(), 404, "{method} {uri}");
    }
    let listed = body_json(
        test::call_service(&app, call("GET", "/v1/conversations", &keys[PETE], None)).await,
    )
    .await;
    assert_eq!(listed, json!([]));

    // Exports are real files with the question in them.
    for (format, magic) in [("pdf", &b"%PDF-"[..]), ("docx", &b"PK\x03\x04"[..])] {
        let response = test::call_service(
            &app,
            call(
                "GET",
                &format!("/v1/conversations/{id}/export?format={format}"),
                &keys[ALICE],
                None,
            ),
        )
        .await;
        assert_eq!(response.status(), 200, "{format}");
        assert!(header(&response, "content-disposition").starts_with("attachment;"));
        let bytes = test::read_body(response).await;
        assert!(bytes.starts_with(magic), "{format}");
    }

    // The attorney deletes the contract: its passages are withheld from the stored turns.
    let document = turns[0]["sources"][0]["document_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let deleted = test::call_service(
        &app,
        call(
            "DELETE",
            &format!("/v1/documents/{document}"),
            &keys[ALICE],
            None,
        ),
    )
    .await;
    assert_eq!(deleted.status(), 204);
    let after = body_json(
        test::call_service(
            &app,
            call(
                "GET",
                &format!("/v1/conversations/{id}"),
                &keys[ALICE],
                None,
            ),
        )
        .await,
    )
    .await;
    let withheld = &after["turns"][0]["sources"][0];
    assert_eq!(withheld["text"], "", "{after}");
    assert!(withheld["title"]
        .as_str()
        .is_some_and(|title| title.contains("withheld")));

    let gone = test::call_service(
        &app,
        call(
            "DELETE",
            &format!("/v1/conversations/{id}"),
            &keys[ALICE],
            None,
        ),
    )
    .await;
    assert_eq!(gone.status(), 204);
    let listed = body_json(
        test::call_service(&app, call("GET", "/v1/conversations", &keys[ALICE], None)).await,
    )
    .await;
    assert_eq!(listed, json!([]));
}

#[actix_web::test]
async fn admin_reads_are_for_admins_and_readers_get_only_their_documents() {
    let setup = law_firm();
    let keys = setup.keys.clone();
    let document = setup.documents.keys().next().cloned().unwrap_or_default();
    let app = app!(web::Data::new(setup.service));
    let get = |uri: &str, key: &str| {
        TestRequest::get()
            .uri(uri)
            .insert_header(bearer(key))
            .peer_addr(peer())
            .to_request()
    };
    let search = |body: Value| {
        TestRequest::post()
            .uri("/v1/search")
            .insert_header(bearer(&keys[ALICE]))
            .peer_addr(peer())
            .set_json(body)
            .to_request()
    };

    for uri in [
        "/v1/audit",
        "/v1/audit/verify",
        "/v1/quarantine",
        "/v1/status",
    ] {
        let refused = test::call_service(&app, get(uri, &keys[ALICE])).await;
        assert_eq!(refused.status(), 403, "{uri}");
        let allowed = test::call_service(&app, get(uri, &keys[ADAM])).await;
        assert_eq!(allowed.status(), 200, "{uri}");
    }
    let verified =
        body_json(test::call_service(&app, get("/v1/audit/verify", &keys[ADAM])).await).await;
    assert_eq!(verified["ok"], true, "{verified}");
    // The refusal is on record with Cedar's decision.
    let refusals = body_json(
        test::call_service(
            &app,
            get("/v1/audit?action=audit.read&user=alice", &keys[ADAM]),
        )
        .await,
    )
    .await;
    let refusal = &refusals["records"][0];
    assert_eq!(refusal["outcome"], "denied", "{refusals}");
    assert_eq!(refusal["decision"]["allowed"], false, "{refusals}");
    let status = body_json(test::call_service(&app, get("/v1/status", &keys[ADAM])).await).await;
    assert_eq!(status["documents"], 1, "{status}");

    // Paging: two pages of two are the first four, in order; a future day finds nothing.
    let page = |offset: usize, k: usize| json!({"query": "joint venture agreement", "k": k, "offset": offset});
    let four = body_json(test::call_service(&app, search(page(0, 4))).await).await;
    let first = body_json(test::call_service(&app, search(page(0, 2))).await).await;
    let second = body_json(test::call_service(&app, search(page(2, 2))).await).await;
    let ids = |value: &Value| -> Vec<String> {
        value["results"]
            .as_array()
            .map(|hits| {
                hits.iter()
                    .map(|hit| hit["chunk_id"].as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(&four).len(), 4, "{four}");
    assert_eq!([ids(&first), ids(&second)].concat(), ids(&four));
    assert_eq!(first["has_more"], true);
    assert_eq!(second["offset"], 2);
    assert_eq!(four["results"][0]["format"], "pdf");
    let future = body_json(
        test::call_service(
            &app,
            search(json!({"query": "joint venture", "ingested_after": "2999-01-01"})),
        )
        .await,
    )
    .await;
    assert_eq!(future["results"], json!([]), "{future}");
    let bad_day = test::call_service(
        &app,
        search(json!({"query": "joint venture", "ingested_before": "last week"})),
    )
    .await;
    assert_eq!(bad_day.status(), 400);

    // The viewer's endpoints: the original PDF, sandboxed, and the chunks, for readers only.
    let file = test::call_service(
        &app,
        get(&format!("/v1/documents/{document}/file"), &keys[ALICE]),
    )
    .await;
    assert_eq!(file.status(), 200);
    assert_eq!(header(&file, "content-type"), "application/pdf");
    assert!(header(&file, "content-security-policy").starts_with("sandbox"));
    assert!(test::read_body(file).await.starts_with(b"%PDF"));
    let chunks = body_json(
        test::call_service(
            &app,
            get(&format!("/v1/documents/{document}/chunks"), &keys[ALICE]),
        )
        .await,
    )
    .await;
    assert!(
        chunks
            .as_array()
            .is_some_and(|chunks| chunks.len() > 1 && chunks[0]["page"] == 1),
        "{chunks}"
    );
    for part in ["file", "chunks"] {
        let hidden = test::call_service(
            &app,
            get(&format!("/v1/documents/{document}/{part}"), &keys[PETE]),
        )
        .await;
        assert_eq!(hidden.status(), 404, "{part}");
    }
    // The audit page filters by action and shows the reads it recorded.
    let reads = body_json(
        test::call_service(
            &app,
            get("/v1/audit?action=document.read&limit=10", &keys[ADAM]),
        )
        .await,
    )
    .await;
    let records = reads["records"].as_array().cloned().unwrap_or_default();
    assert!(records.len() >= 3, "{reads}");
    assert!(records
        .iter()
        .all(|record| record["action"] == "document.read"));
    assert!(records
        .iter()
        .any(|record| record["principal"] == "pete" && record["outcome"] == "not_found"));
}
