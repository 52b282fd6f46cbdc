//! The OpenAI-compatible API (`/openai/v1`) in-process: the whole HTTP application over a real
//! service (a CUAD contract in matter-1234, the real embedder and SmolLM2, the law-firm policies
//! plus one rule that lets attorneys chat with the plain model, a real audit log). Shapes,
//! error mapping, the same Cedar decisions and audit records as `/v1`. The real `openai`
//! Python client runs against the real binary in tests/openai/ (deploy/test.sh).

mod common;

use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::test::{self, TestRequest};
use actix_web::web;
use serde_json::{json, Value};
use vellum_models::Embedder;
use vellum_server::{create_app, TrustedProxies};

const MATTER: &str = "matter-1234";
const CONTRACT: &str = "legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF";
const PLAIN_CHAT_POLICY: &str = r#"
@id("attorneys-may-chat-without-documents")
permit (
    principal in Vellum::Role::"attorney",
    action == Vellum::Action::"ask",
    resource == Vellum::Collection::"vellum:model"
);
"#;

const ALICE: usize = 0;
const PETE: usize = 1;

/// The law-firm policies plus the plain-chat rule, in a folder of the test's own.
fn policies(work: &std::path::Path) -> std::path::PathBuf {
    let dir = work.join("policies");
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("{err}"));
    for entry in
        std::fs::read_dir(common::policies("law-firm")).unwrap_or_else(|err| panic!("{err}"))
    {
        let path = entry.unwrap_or_else(|err| panic!("{err}")).path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, dir.join(name)).unwrap_or_else(|err| panic!("{err}"));
        }
    }
    std::fs::write(dir.join("plain-chat.cedar"), PLAIN_CHAT_POLICY)
        .unwrap_or_else(|err| panic!("{err}"));
    dir
}

async fn body_json(response: ServiceResponse<impl MessageBody>) -> Value {
    let bytes = test::read_body(response).await;
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
}

fn post(uri: &str, key: &str, body: Value) -> actix_web::test::TestRequest {
    TestRequest::post()
        .uri(uri)
        .peer_addr(
            "127.0.0.1:40000"
                .parse()
                .unwrap_or_else(|err| panic!("{err}")),
        )
        .insert_header(("authorization", format!("Bearer {key}")))
        .insert_header(("host", "vellum.example:8443"))
        .set_json(body)
}

fn get(uri: &str, key: &str) -> actix_web::test::TestRequest {
    TestRequest::get()
        .uri(uri)
        .peer_addr(
            "127.0.0.1:40000"
                .parse()
                .unwrap_or_else(|err| panic!("{err}")),
        )
        .insert_header(("authorization", format!("Bearer {key}")))
}

fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .map(|models| {
            models
                .iter()
                .filter_map(|model| model["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn floats(value: &Value) -> Vec<f32> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|x| x.as_f64())
                .map(|x| x as f32)
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn openai_shapes_errors_authorization_and_audit() {
    let work = tempfile::tempdir().unwrap_or_else(|err| panic!("{err}"));
    let policy_dir = policies(work.path());
    let setup = common::setup(
        policy_dir.to_str().unwrap_or_default(),
        &[(MATTER, "", CONTRACT)],
        &[
            ("alice", &["attorney"], &[MATTER]),
            ("pete", &["paralegal"], &["matter-9999"]),
        ],
    );
    let alice = setup.keys[ALICE].clone();
    let pete = setup.keys[PETE].clone();
    let data = setup.data.clone();
    let audit = setup.audit.clone();
    let app = test::init_service(create_app(
        web::Data::new(setup.service),
        TrustedProxies::default(),
    ))
    .await;

    // Models: what each caller may use, nothing else.
    let response = test::call_service(&app, get("/openai/v1/models", &alice).to_request()).await;
    assert_eq!(response.status(), 200);
    let list = body_json(response).await;
    assert_eq!(list["object"], "list");
    assert_eq!(list["data"][0]["object"], "model");
    assert_eq!(list["data"][0]["owned_by"], "vellum");
    let alice_models = ids(&list);
    assert!(alice_models.contains(&"vellum:all".to_string()), "{list}");
    assert!(alice_models.contains(&format!("vellum:{MATTER}")), "{list}");
    assert!(alice_models.contains(&"vellum-embed".to_string()), "{list}");
    let plain = alice_models
        .iter()
        .find(|id| id.starts_with("SmolLM2"))
        .cloned()
        .unwrap_or_else(|| panic!("no plain model for alice: {list}"));
    let pete_models = ids(&body_json(
        test::call_service(&app, get("/openai/v1/models", &pete).to_request()).await,
    )
    .await);
    assert_eq!(
        pete_models,
        ["vellum:all"],
        "pete may ask nothing and search nothing"
    );

    // Authentication, in OpenAI's shape.
    let response =
        test::call_service(&app, get("/openai/v1/models", "vk_not-a-key").to_request()).await;
    assert_eq!(response.status(), 401);
    let error = body_json(response).await;
    assert_eq!(error["error"]["code"], "invalid_api_key", "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(error["error"].get("param").is_some());

    // A collection one may not ask about does not exist for that caller.
    let question =
        json!([{"role": "user", "content": "Who are the parties to the joint venture?"}]);
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &pete,
            json!({"model": format!("vellum:{MATTER}"), "messages": question, "max_tokens": 8}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 404);
    let error = body_json(response).await;
    assert_eq!(error["error"]["code"], "model_not_found", "{error}");
    assert!(error["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(&format!("vellum:{MATTER}"))));
    // So is plain chat without the permission: 403.
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &pete,
            json!({"model": plain, "messages": question, "max_tokens": 8}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        body_json(response).await["error"]["type"],
        "permission_error"
    );

    // What Vellum cannot do is refused by name.
    for (extra, param) in [
        (json!({"n": 2}), "n"),
        (
            json!({"tools": [{"type": "function", "function": {"name": "f"}}]}),
            "tools",
        ),
        (json!({"logprobs": true}), "logprobs"),
        (
            json!({"response_format": {"type": "json_object"}}),
            "response_format",
        ),
        (json!({"max_tokens": 5000}), "max_tokens"),
        (json!({"temperature": 3.5}), "temperature"),
    ] {
        let mut body = json!({"model": "vellum:all", "messages": question});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = test::call_service(
            &app,
            post("/openai/v1/chat/completions", &alice, body).to_request(),
        )
        .await;
        assert_eq!(response.status(), 400, "{param}");
        let error = body_json(response).await;
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": "gpt-4o", "messages": question}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        body_json(response).await["error"]["code"],
        "model_not_found"
    );
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": "vellum:all"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = test::call_service(&app, get("/openai/v1/nothing", &alice).to_request()).await;
    assert_eq!(response.status(), 404);
    assert_eq!(body_json(response).await["error"]["code"], "unknown_url");
    let response = test::call_service(
        &app,
        get("/openai/v1/chat/completions", &alice).to_request(),
    )
    .await;
    assert_eq!(response.status(), 405);
    assert_eq!(
        body_json(response).await["error"]["code"],
        "method_not_allowed"
    );

    // A grounded answer, not streamed: sources as annotations and in `vellum_sources`.
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": format!("vellum:{MATTER}"), "messages": question, "max_tokens": 24}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let completion = body_json(response).await;
    assert_eq!(completion["object"], "chat.completion", "{completion}");
    assert!(completion["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    let message = &completion["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    assert!(message["content"].as_str().is_some_and(|c| !c.is_empty()));
    let sources = message["vellum_sources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!sources.is_empty(), "{completion}");
    for source in &sources {
        for field in [
            "n",
            "document_id",
            "title",
            "page",
            "chunk_id",
            "quote",
            "cited",
            "url",
        ] {
            assert!(source.get(field).is_some(), "{field} missing: {source}");
        }
        assert!(source["url"]
            .as_str()
            .is_some_and(|url| url.starts_with("https://vellum.example:8443/#/document/")));
    }
    // Every source is an annotation: at its markers, or unplaced (0..0) if never cited.
    assert!(
        message["annotations"]
            .as_array()
            .is_some_and(|a| a.len() >= sources.len()),
        "{completion}"
    );
    let content: Vec<char> = message["content"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .collect();
    for annotation in message["annotations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        assert_eq!(annotation["type"], "url_citation");
        let citation = &annotation["url_citation"];
        let start = citation["start_index"].as_u64().unwrap_or(0) as usize;
        let end = citation["end_index"].as_u64().unwrap_or(0) as usize;
        if start == end {
            assert_eq!(start, 0);
            continue;
        }
        let marker: String = content[start..end].iter().collect();
        assert!(marker.starts_with('[') && marker.ends_with(']'), "{marker}");
    }
    let usage = &completion["usage"];
    assert!(
        usage["prompt_tokens"].as_u64().is_some_and(|n| n > 0),
        "{usage}"
    );
    assert!(usage["completion_tokens"]
        .as_u64()
        .is_some_and(|n| (1..=24).contains(&n)));

    // Streamed: sources in the first chunk and again in the last, then [DONE].
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": "vellum:all", "messages": question, "max_tokens": 16,
                   "stream": true, "stream_options": {"include_usage": true}}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let text = String::from_utf8_lossy(&test::read_body(response).await).into_owned();
    let lines: Vec<&str> = text
        .split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .collect();
    assert_eq!(lines.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = lines
        .iter()
        .filter(|line| **line != "[DONE]")
        .map(|line| serde_json::from_str(line).unwrap_or(Value::Null))
        .collect();
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant", "{text}");
    assert!(
        first["vellum_sources"]
            .as_array()
            .is_some_and(|s| !s.is_empty()),
        "{text}"
    );
    assert!(
        first["annotations"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{text}"
    );
    let finished = chunks
        .iter()
        .find(|chunk| !chunk["choices"][0]["finish_reason"].is_null())
        .unwrap_or_else(|| panic!("no finish_reason: {text}"));
    assert!(finished["choices"][0]["delta"]["vellum_sources"]
        .as_array()
        .is_some_and(|s| !s.is_empty()));
    let usage_chunk = chunks.last().cloned().unwrap_or_default();
    assert_eq!(usage_chunk["choices"], json!([]), "{text}");
    assert!(usage_chunk["usage"]["completion_tokens"]
        .as_u64()
        .is_some_and(|n| n > 0));
    assert!(chunks
        .iter()
        .all(|chunk| chunk["object"] == "chat.completion.chunk"));

    // A follow-up: the earlier user/assistant pair goes with the question (the receipt in the
    // audit log keeps it, for replay).
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": format!("vellum:{MATTER}"), "max_tokens": 8, "messages": [
                {"role": "system", "content": "Ignored for grounded answers."},
                {"role": "user", "content": "Who are the parties to the joint venture?"},
                {"role": "assistant", "content": "Accelerated Technologies and its partner [1]."},
                {"role": "user", "content": "What does each of them contribute?"}
            ]}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let _ = body_json(response).await;

    // Plain chat for alice, whom the added rule permits.
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/chat/completions",
            &alice,
            json!({"model": plain, "max_completion_tokens": 8, "seed": 7, "messages": [
                {"role": "system", "content": "You are brief."},
                {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}
            ]}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let completion = body_json(response).await;
    let message = &completion["choices"][0]["message"];
    assert!(
        message["content"].as_str().is_some_and(|c| !c.is_empty()),
        "{completion}"
    );
    assert!(message.get("vellum_sources").is_none());
    assert_eq!(
        completion["usage"]["completion_tokens"]
            .as_u64()
            .map(|n| n <= 8),
        Some(true)
    );

    // Embeddings: exactly Vellum's embedder, as floats and as base64.
    let texts = [
        "Either party may terminate this Agreement.",
        "Governing law: Delaware.",
    ];
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/embeddings",
            &alice,
            json!({"model": "vellum-embed", "input": texts}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let embedded = body_json(response).await;
    assert_eq!(embedded["object"], "list");
    assert_eq!(embedded["model"], "vellum-embed");
    assert!(embedded["usage"]["prompt_tokens"]
        .as_u64()
        .is_some_and(|n| n > 4));
    let models_dir = std::env::var_os("VELLUM_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::workspace().join("models"));
    let embedder = Embedder::load(&models_dir.join("all-MiniLM-L6-v2"))
        .unwrap_or_else(|err| panic!("embedder: {err}"));
    let own = embedder
        .embed(&texts)
        .unwrap_or_else(|err| panic!("embed: {err}"));
    for (index, vector) in own.iter().enumerate() {
        let served = floats(&embedded["data"][index]["embedding"]);
        assert_eq!(embedded["data"][index]["index"], index);
        assert_eq!(served.len(), vector.len());
        assert!(cosine(&served, vector) > 0.99999, "{index}");
    }
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/embeddings",
            &alice,
            json!({"model": "vellum-embed", "input": texts[0], "encoding_format": "base64"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 200);
    let encoded = body_json(response).await;
    assert!(encoded["data"][0]["embedding"]
        .as_str()
        .is_some_and(|text| text.len() == (own[0].len() * 4).div_ceil(3) * 4));
    // Pete may search nothing: 403.
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/embeddings",
            &pete,
            json!({"model": "vellum-embed", "input": "x"}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 403);
    assert_eq!(
        body_json(response).await["error"]["code"],
        "permission_denied"
    );
    let response = test::call_service(
        &app,
        post(
            "/openai/v1/embeddings",
            &alice,
            json!({"model": "vellum-embed", "input": [1, 2]}),
        )
        .to_request(),
    )
    .await;
    assert_eq!(response.status(), 400);

    // The audit log has every call: the grounded answers as `ask` with what the model read.
    audit.shutdown().unwrap_or_else(|err| panic!("{err}"));
    let records =
        vellum_audit::read_records(&data.join("audit")).unwrap_or_else(|err| panic!("{err}"));
    let by = |action: &str, who: &str| {
        records
            .iter()
            .filter(|record| {
                record.action.as_deref() == Some(action) && record.principal.as_deref() == Some(who)
            })
            .count()
    };
    assert!(by("model.list", "alice") >= 1 && by("model.list", "pete") >= 1);
    let asked = records.iter().find(|record| {
        record.action.as_deref() == Some("ask")
            && record.principal.as_deref() == Some("alice")
            && !record.reads.is_empty()
    });
    assert!(asked.is_some(), "no ask record with reads");
    assert!(by("ask.answer", "alice") >= 3);
    let follow_up = records.iter().any(|record| {
        record.action.as_deref() == Some("ask")
            && record.receipt.as_ref().is_some_and(|receipt| {
                receipt["history"][0]["question"] == "Who are the parties to the joint venture?"
                    && receipt["history"][0]["answer"]
                        == "Accelerated Technologies and its partner [1]."
            })
    });
    assert!(follow_up, "no ask record with the earlier turn");
    assert!(records
        .iter()
        .any(|record| record.action.as_deref() == Some("ask")
            && record.principal.as_deref() == Some("pete")
            && record.outcome.as_deref() == Some("not_found")
            && record.resource.as_deref() == Some(MATTER)));
    assert!(records
        .iter()
        .any(|record| record.action.as_deref() == Some("chat")
            && record.principal.as_deref() == Some("pete")
            && record.outcome.as_deref() == Some("denied")));
    assert_eq!(by("chat.answer", "alice"), 1);
    assert!(by("embed", "alice") >= 2);
    assert!(records
        .iter()
        .any(|record| record.action.as_deref() == Some("embed")
            && record.principal.as_deref() == Some("pete")
            && record.outcome.as_deref() == Some("denied")));
}
