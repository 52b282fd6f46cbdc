//! `vellum serve` end to end: the real binary on a free loopback port, real documents ingested
//! with the real embedder, the law-firm Cedar policies, and an HTTPS client (reqwest over
//! rustls) that trusts only the certificate the server made. Transport (TLS 1.1 and plain HTTP
//! refused), identity (login, throttling, API keys, revocation) and authorization (matters,
//! ethical wall, paralegal limits, forbidden looks like missing) are checked over the wire.

mod common;
// One copy, shared with the audit crate's full-disk test.
#[path = "../services/audit/tests/common/mount_namespace.rs"]
mod mount_namespace;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{listening_address, shared_dir, vellum_command};
use serde_json::{json, Value};

/// The server process, killed when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn policies(set: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(set)
}

fn start_server(data_dir: &Path, policy_set: &str) -> Server {
    start_server_with(data_dir, policy_set, &[])
}

fn start_server_with(data_dir: &Path, policy_set: &str, extra: &[&str]) -> Server {
    let mut child = vellum_command(data_dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--workers", "2"])
        .args(extra)
        // Small enough to test the limit with a 3 MB body.
        .args(["--max-upload-mb", "1"])
        .arg("--policies")
        .arg(policies(policy_set))
        .env("VELLUM_ADMIN_PASSWORD", "admin password for tests")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn vellum serve: {err}"));
    let address = listening_address(&mut child, Duration::from_secs(120))
        .unwrap_or_else(|| panic!("vellum serve did not start within 120 s"));
    Server {
        child,
        address: address
            .parse()
            .unwrap_or_else(|err| panic!("address {address}: {err}")),
    }
}

fn vellum(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let mut child = vellum_command(data_dir)
        .arg("--json")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawn vellum {args:?}: {err}"));
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .unwrap_or_else(|err| panic!("stdin: {err}"));
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|err| panic!("vellum {args:?}: {err}"));
    assert!(
        output.status.success(),
        "vellum {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

fn add_user(data_dir: &Path, name: &str, roles: &[&str], groups: &[&str]) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    for role in roles {
        args.extend(["--role", role]);
    }
    for group in groups {
        args.extend(["--group", group]);
    }
    vellum(data_dir, &args, Some(&format!("{name}'s long password\n")));
}

/// An HTTPS client that trusts only the server's own certificate.
fn client(data_dir: &Path) -> reqwest::Client {
    let pem = std::fs::read(data_dir.join("tls/cert.pem"))
        .unwrap_or_else(|err| panic!("cert.pem: {err}"));
    let certificate =
        reqwest::Certificate::from_pem(&pem).unwrap_or_else(|err| panic!("certificate: {err}"));
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(certificate)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap_or_else(|err| panic!("client: {err}"))
}

struct Api {
    client: reqwest::Client,
    base: String,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    fn new(data_dir: &Path, server: &Server) -> Api {
        Api {
            client: client(data_dir),
            // The certificate names localhost, so the client checks the name too.
            base: format!("https://localhost:{}/v1", server.address.port()),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|err| panic!("runtime: {err}")),
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .unwrap_or_else(|err| panic!("{method}: {err}"));
        let mut request = self.client.request(method, &url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, text) = self.send(request, &url);
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends a request and reads the whole answer: (status, body text).
    fn send(&self, request: reqwest::RequestBuilder, url: &str) -> (u16, String) {
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .unwrap_or_else(|err| panic!("{url}: {err}"));
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        })
    }

    /// Sends a body as it is, with its content type; answers (status, body text).
    fn send_raw(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let request = self
            .client
            .post(&url)
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body);
        self.send(request, &url)
    }

    /// `POST /documents` with a multipart form written by hand (the form is simple, and
    /// reqwest's multipart feature would rebuild half the dependency graph).
    fn upload(
        &self,
        token: &str,
        collection: &str,
        labels: &str,
        name: &str,
        bytes: &[u8],
    ) -> (u16, Value) {
        let boundary = "vellum-e2e-3f9a1c";
        let mut body = Vec::new();
        for (field, value) in [("collection", collection), ("labels", labels)] {
            body.extend(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(bytes);
        body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
        let (status, text) = self.send_raw(
            "/documents",
            token,
            &format!("multipart/form-data; boundary={boundary}"),
            body,
        );
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `POST /ask`, read to the end: (status, [(event, data)]).
    fn ask(&self, token: &str, body: Value) -> (u16, Vec<(String, Value)>) {
        let (status, text) = self.send_raw(
            "/ask",
            token,
            "application/json",
            body.to_string().into_bytes(),
        );
        let mut events = Vec::new();
        for frame in text.split("\n\n").filter(|frame| !frame.trim().is_empty()) {
            let mut name = String::new();
            let mut data = Value::Null;
            for line in frame.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    name = rest.to_string();
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(rest).unwrap_or(Value::Null);
                }
            }
            if name.is_empty() {
                // Not an event stream: an error body.
                name = "body".into();
                data = serde_json::from_str(frame).unwrap_or(Value::Null);
            }
            events.push((name, data));
        }
        (status, events)
    }

    fn get_text(&self, url: &str, token: Option<&str>) -> (u16, String) {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request, url)
    }

    fn login(&self, user: &str) -> String {
        let (status, body) = self.call(
            "POST",
            "/login",
            None,
            Some(json!({"user": user, "password": format!("{user}'s long password")})),
        );
        assert_eq!(status, 200, "login {user}: {body}");
        body["token"].as_str().unwrap_or_default().to_string()
    }

    fn search(&self, token: &str, query: &str) -> Vec<Value> {
        let (status, body) = self.call(
            "POST",
            "/search",
            Some(token),
            Some(json!({"query": query, "k": 20})),
        );
        assert_eq!(status, 200, "search: {body}");
        body["results"].as_array().cloned().unwrap_or_default()
    }
}

fn collections_of(results: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = results
        .iter()
        .filter_map(|hit| hit["collection"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Ingests a CUAD contract into matter-1234 and two court e-mails into matter-9999.
fn ingest_matters(data_dir: &Path, work: &Path) {
    let corpora = shared_dir().join("corpora");
    let matter_a = work.join("matter-a");
    let matter_b = work.join("matter-b");
    std::fs::create_dir_all(&matter_a).unwrap_or_else(|err| panic!("{err}"));
    std::fs::create_dir_all(&matter_b).unwrap_or_else(|err| panic!("{err}"));
    let contract = corpora.join(
        "legal-cuad-contracts/pdf/ACCELERATEDTECHNOLOGIESHOLDINGCORP_04_24_2003-EX-10.13-JOINT VENTURE AGREEMENT.PDF",
    );
    std::fs::copy(&contract, matter_a.join("joint-venture.pdf"))
        .unwrap_or_else(|err| panic!("{}: {err}", contract.display()));
    for name in ["almd_1.eml", "almd_3_plain.eml"] {
        let email = corpora.join("email-court-notices-pacer/nef").join(name);
        std::fs::copy(&email, matter_b.join(name))
            .unwrap_or_else(|err| panic!("{}: {err}", email.display()));
    }
    for (folder, collection) in [(&matter_a, "matter-1234"), (&matter_b, "matter-9999")] {
        let status = vellum_command(data_dir)
            .arg("ingest")
            .arg(folder)
            .args(["--collection", collection])
            .stdout(Stdio::null())
            .status()
            .unwrap_or_else(|err| panic!("ingest: {err}"));
        assert!(status.success(), "ingest {collection}");
    }
}

fn raw_exchange(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap_or_else(|err| panic!("connect: {err}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|err| panic!("{err}"));
    stream
        .write_all(bytes)
        .unwrap_or_else(|err| panic!("write: {err}"));
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// A TLS 1.1 ClientHello (no supported_versions extension), offering two TLS 1.0-1.2 suites.
fn tls_1_1_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version TLS 1.1
    body.extend([0x42; 32]); // random
    body.push(0); // no session id
    body.extend([0x00, 0x04, 0xC0, 0x13, 0x00, 0x2F]); // ECDHE-RSA-AES128-SHA, RSA-AES128-SHA
    body.extend([0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, body.len() as u8];
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01, 0x00, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[test]
fn https_service_end_to_end() {
    let work = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let data_dir = work.path().join("data");
    ingest_matters(&data_dir, work.path());
    // Accounts are made with the CLI before the server starts: the CLI's changes are audited
    // too, and a running server holds the audit log (the API makes accounts while it runs).
    vellum(
        &data_dir,
        &[
            "user",
            "add",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        Some("admin password for tests\n"),
    );
    add_user(&data_dir, "alice", &["attorney"], &["matter-1234"]);
    add_user(&data_dir, "pete", &["paralegal"], &["matter-1234"]);
    add_user(
        &data_dir,
        "walt",
        &["attorney"],
        &["matter-1234", "walled-matter-1234"],
    );
    add_user(&data_dir, "carol", &["attorney"], &["matter-9999"]);
    add_user(&data_dir, "tess", &["attorney"], &["matter-9999"]);
    let server = start_server(&data_dir, "law-firm");
    // The server holds the audit log: a CLI command says so at once instead of waiting.
    let refused = vellum_command(&data_dir)
        .arg("documents")
        .output()
        .unwrap_or_else(|err| panic!("run vellum: {err}"));
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("`vellum serve (pid"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let api = Api::new(&data_dir, &server);

    // Transport: HTTPS works; plain HTTP and TLS 1.1 get no HTTP answer and no ServerHello.
    let (status, body) = api.call("GET", "/health", None, None);
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let plain = raw_exchange(
        server.address,
        b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    assert!(!plain.starts_with(b"HTTP/"), "plain HTTP was answered");
    let tls11 = raw_exchange(server.address, &tls_1_1_client_hello());
    assert!(
        tls11.is_empty() || tls11[0] == 0x15,
        "TLS 1.1 was not refused with an alert: {:02x?}",
        &tls11[..tls11.len().min(16)]
    );
    assert!(
        tls11.first() != Some(&0x16),
        "TLS 1.1 got a handshake reply"
    );

    // Identity: no token, a forged token, a wrong password.
    assert_eq!(api.call("GET", "/me", None, None).0, 401);
    let forged = format!("vs_{}_{}", "0".repeat(12), "0".repeat(64));
    assert_eq!(api.call("GET", "/me", Some(&forged), None).0, 401);
    let alice = api.login("alice");
    let (status, me) = api.call("GET", "/me", Some(&alice), None);
    assert_eq!((status, me["name"].as_str()), (200, Some("alice")));

    // Throttling: five free failures, then the account waits, even with the right password.
    let wrong = json!({"user": "tess", "password": "not tess's password"});
    for attempt in 1..=6 {
        let (status, _) = api.call("POST", "/login", None, Some(wrong.clone()));
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, body) = api.call("POST", "/login", None, Some(wrong));
    assert_eq!(status, 429, "{body}");
    let right = json!({"user": "tess", "password": "tess's long password"});
    assert_eq!(api.call("POST", "/login", None, Some(right)).0, 429);

    // API keys work until revoked (made and revoked over the API, from a session).
    let carol_session = api.login("carol");
    let (status, created) = api.call(
        "POST",
        "/keys",
        Some(&carol_session),
        Some(json!({"name": "e2e scanner"})),
    );
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap_or_default().to_string();
    let key_id = created["info"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, me) = api.call("GET", "/me", Some(&key), None);
    assert_eq!((status, me["via"].as_str()), (200, Some("api_key")));
    let (status, _) = api.call(
        "DELETE",
        &format!("/keys/{key_id}"),
        Some(&carol_session),
        None,
    );
    assert_eq!(status, 204);
    assert_eq!(api.call("GET", "/me", Some(&key), None).0, 401);

    // Logout ends the session.
    let short_lived = api.login("carol");
    assert_eq!(api.call("POST", "/logout", Some(&short_lived), None).0, 204);
    assert_eq!(api.call("GET", "/me", Some(&short_lived), None).0, 401);

    // Authorization: each caller sees exactly its matters, in results and in listings.
    let carol = api.login("carol");
    let pete = api.login("pete");
    let walt = api.login("walt");
    let admin = {
        let (status, body) = api.call(
            "POST",
            "/login",
            None,
            Some(json!({"user": "admin", "password": "admin password for tests"})),
        );
        assert_eq!(status, 200, "{body}");
        body["token"].as_str().unwrap_or_default().to_string()
    };
    let query = "agreement court notice parties";
    let alice_hits = api.search(&alice, query);
    assert!(!alice_hits.is_empty(), "alice found nothing");
    assert_eq!(collections_of(&alice_hits), ["matter-1234"]);
    let carol_hits = api.search(&carol, query);
    assert!(!carol_hits.is_empty(), "carol found nothing");
    assert_eq!(collections_of(&carol_hits), ["matter-9999"]);
    assert_eq!(collections_of(&api.search(&pete, query)), ["matter-1234"]);
    assert!(
        api.search(&walt, query).is_empty(),
        "the ethical wall leaked"
    );
    assert!(
        api.search(&admin, query).is_empty(),
        "admins administer, they do not read"
    );
    // Asking for someone else's matter by name gives nothing, not an error.
    let (status, body) = api.call(
        "POST",
        "/search",
        Some(&alice),
        Some(json!({"query": query, "collections": ["matter-9999"]})),
    );
    assert_eq!(status, 200);
    assert_eq!(body["results"].as_array().map(Vec::len), Some(0));

    let (status, listed) = api.call("GET", "/documents", Some(&alice), None);
    assert_eq!(status, 200);
    let alice_docs: Vec<Value> = listed.as_array().cloned().unwrap_or_default();
    assert_eq!(alice_docs.len(), 1, "{listed}");
    assert_eq!(collections_of(&alice_docs), ["matter-1234"]);
    let contract_id = alice_docs[0]["id"].as_str().unwrap_or_default().to_string();
    let (_, walt_docs) = api.call("GET", "/documents", Some(&walt), None);
    assert_eq!(walt_docs.as_array().map(Vec::len), Some(0));
    let (_, carol_collections) = api.call("GET", "/collections", Some(&carol), None);
    assert_eq!(carol_collections[0]["name"].as_str(), Some("matter-9999"));
    assert_eq!(carol_collections.as_array().map(Vec::len), Some(1));

    // A forbidden document and a missing one give the same answer.
    let forbidden = api.call(
        "GET",
        &format!("/documents/{contract_id}"),
        Some(&carol),
        None,
    );
    let missing = api.call("GET", "/documents/no-such-document", Some(&carol), None);
    assert_eq!(forbidden.0, 404);
    assert_eq!(forbidden, missing);
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/documents/{contract_id}"),
            Some(&carol),
            None
        ),
        missing
    );

    // Paralegals may read but not delete; attorneys may delete.
    assert_eq!(
        api.call(
            "GET",
            &format!("/documents/{contract_id}"),
            Some(&pete),
            None
        )
        .0,
        200
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/documents/{contract_id}"),
            Some(&pete),
            None
        )
        .0,
        403
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/documents/{contract_id}"),
            Some(&alice),
            None
        )
        .0,
        204
    );
    assert_eq!(
        api.call(
            "GET",
            &format!("/documents/{contract_id}"),
            Some(&alice),
            None
        )
        .0,
        404
    );
    assert!(
        api.search(&alice, query).is_empty(),
        "deleted document still found"
    );

    // Errors are JSON with a code, never a stack trace or a path.
    let (status, body) = api.call("POST", "/search", Some(&alice), Some(json!({"qurey": "x"})));
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, body) = api.call("GET", "/nope", Some(&alice), None);
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    uploads_and_answers(&api, &data_dir, &alice, &pete, &carol);
    administration(&api, &alice, &carol, &admin);
    audit_trail(&api, &data_dir, &alice, &carol);
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// (chunk id, SHA-256) pairs of an audit record's reads.
fn reads_of(record: &Value) -> Vec<(String, String)> {
    record["reads"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|read| {
            (
                read["chunk_id"].as_str().unwrap_or_default().to_string(),
                read["sha256"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A scripted session (login, upload, search, ask, a denied read, delete), then the audit log
/// read offline: each action is there, with the hashes of exactly the chunks that were
/// returned or given to the model; the query is only an HMAC; the log verifies.
fn audit_trail(api: &Api, data_dir: &Path, alice: &str, carol: &str) {
    let text = b"Minute order: the status conference in matter 1234 moves to March 3.";
    let (status, uploaded) = api.upload(alice, "matter-1234", "", "minute-order.txt", text);
    assert_eq!(status, 201, "{uploaded}");
    let document = uploaded["document"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let query = "status conference minute order";
    let hits = api.search(alice, query);
    assert!(!hits.is_empty());
    let returned: Vec<(String, String)> = hits
        .iter()
        .map(|hit| {
            (
                hit["chunk_id"].as_str().unwrap_or_default().to_string(),
                sha256_hex(hit["text"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    let (status, events) = api.ask(
        alice,
        json!({"question": "When is the status conference?", "max_tokens": 8}),
    );
    assert_eq!(status, 200);
    let given: Vec<(String, String)> = events[0].1["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|source| {
            (
                source["chunk_id"].as_str().unwrap_or_default().to_string(),
                source["content_sha256"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    // A summary discloses the chunks its items quote: those, with their hashes, are its reads.
    let (status, summary) = api.call(
        "POST",
        "/summarize",
        Some(alice),
        Some(json!({"document_id": document, "kind": "general"})),
    );
    assert_eq!(status, 200, "{summary}");
    let (status, chunks) = api.call(
        "GET",
        &format!("/documents/{document}/chunks"),
        Some(alice),
        None,
    );
    assert_eq!(status, 200, "{chunks}");
    let mut quoted: Vec<(String, String)> = chunks
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|chunk| {
            summary["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|item| item["chunk_id"] == chunk["chunk_id"])
            })
        })
        .map(|chunk| {
            (
                chunk["chunk_id"].as_str().unwrap_or_default().to_string(),
                sha256_hex(chunk["text"].as_str().unwrap_or_default()),
            )
        })
        .collect();
    quoted.sort();
    assert!(!quoted.is_empty(), "the summary quotes nothing: {summary}");
    assert_eq!(
        api.call("GET", &format!("/documents/{document}"), Some(carol), None)
            .0,
        404
    );
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/documents/{document}"),
            Some(alice),
            None
        )
        .0,
        204
    );

    let records = vellum(data_dir, &["audit", "export"], None);
    let records = records.as_array().cloned().unwrap_or_default();
    let find = |action: &str, principal: &str, test: &dyn Fn(&Value) -> bool| {
        records
            .iter()
            .rev()
            .find(|record| {
                record["action"] == json!(action)
                    && record["principal"] == json!(principal)
                    && test(record)
            })
            .cloned()
    };
    assert!(
        find("login", "alice", &|r| r["outcome"] == json!("ok")).is_some(),
        "no login"
    );
    assert!(
        find("document.upload", "alice", &|r| r["resource"]
            == json!(document))
        .is_some(),
        "no upload record"
    );
    let search = find("search", "alice", &|r| reads_of(r) == returned)
        .unwrap_or_else(|| panic!("no search record with the returned chunks' hashes"));
    // The query is kept as an HMAC, not as text.
    assert!(search["query"]["hmac_sha256"].is_string(), "{search}");
    assert!(
        !search.to_string().contains(query),
        "the query is in the log in plain text"
    );
    let ask = find("ask", "alice", &|r| reads_of(r) == given)
        .unwrap_or_else(|| panic!("no ask record with the sources' hashes"));
    let summarized = find("summarize", "alice", &|r| {
        let mut reads = reads_of(r);
        reads.sort();
        reads == quoted
    })
    .unwrap_or_else(|| panic!("no summarize record with the quoted chunks' hashes"));
    assert_eq!(
        summarized["detail"]["kind"],
        json!("general"),
        "{summarized}"
    );
    assert!(ask["receipt"]["model"]["file_sha256"].is_string(), "{ask}");
    assert!(
        find("ask.answer", "alice", &|_| true).is_some(),
        "no answer record"
    );
    let denied = find("document.read", "carol", &|r| {
        r["resource"] == json!(document)
    })
    .unwrap_or_else(|| panic!("no record of the denied read"));
    assert_eq!(denied["outcome"], json!("not_found"));
    assert_eq!(denied["decision"]["allowed"], json!(false));
    let deleted = find("document.delete", "alice", &|r| {
        r["resource"] == json!(document)
    })
    .unwrap_or_else(|| panic!("no delete record"));
    assert_eq!(deleted["outcome"], json!("ok"));
    // "Who searched for X": by the HMAC of the exact text.
    let hits = vellum(data_dir, &["audit", "search", "--query-text", query], None);
    assert!(
        hits.as_array()
            .is_some_and(|found| found.iter().any(|r| r["principal"] == json!("alice"))),
        "{hits}"
    );
    // The log verifies with the public key the server printed (also readable offline).
    let key = vellum(data_dir, &["audit", "public-key"], None);
    let key = key["public_key"].as_str().unwrap_or_default().to_string();
    let report = vellum(data_dir, &["audit", "verify", "--public-key", &key], None);
    assert!(report["problem"].is_null(), "{report}");
}

/// Upload (labels, duplicates, limits, refusals), ask over Server-Sent Events, summarize.
fn uploads_and_answers(api: &Api, data_dir: &Path, alice: &str, pete: &str, carol: &str) {
    let pdf = std::fs::read(
        shared_dir().join("corpora/legal-court-documents-freelaw/recap_documents/ca2_1-1.pdf"),
    )
    .unwrap_or_else(|err| panic!("pdf: {err}"));
    let (status, created) = api.upload(alice, "matter-1234", "Privileged", "order.pdf", &pdf);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["duplicate"], json!(false));
    assert_eq!(created["document"]["labels"], json!(["privileged"]));
    let id = created["document"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, again) = api.upload(alice, "matter-1234", "privileged", "copy.pdf", &pdf);
    assert_eq!(
        (status, &again["document"]["id"]),
        (200, &json!(id)),
        "{again}"
    );
    assert_eq!(again["duplicate"], json!(true));
    // Attorneys on the matter find the privileged upload; the paralegal does not, and the
    // other matter's attorney may not add to this matter.
    let query = "court of appeals order";
    assert!(api
        .search(alice, query)
        .iter()
        .any(|hit| hit["document_id"] == json!(id)));
    assert!(!api
        .search(pete, query)
        .iter()
        .any(|hit| hit["document_id"] == json!(id)));
    let (status, body) = api.upload(carol, "matter-1234", "", "x.pdf", &pdf);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    // Junk is kept out with a reason; a body over the limit is refused while it streams.
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let (status, body) = api.upload(alice, "matter-1234", "", "junk.bin", &junk);
    assert_eq!(
        (status, body["code"].as_str()),
        (422, Some("unprocessable")),
        "{body}"
    );
    let big = vec![b'a'; 3 << 20];
    let (status, body) = api.upload(alice, "matter-1234", "", "big.txt", &big);
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("too_large")),
        "{body}"
    );
    // Nothing is left half-received.
    let partial = std::fs::read_dir(data_dir.join("uploads/.partial"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(partial, 0, "partial uploads left behind");

    // Ask: sources first (only the caller's matter), tokens, then the answer with its receipt.
    let (status, events) = api.ask(
        alice,
        json!({"question": "What did the court of appeals order?", "max_tokens": 24}),
    );
    assert_eq!(status, 200, "{events:?}");
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"sources"), "{names:?}");
    assert_eq!(names.last(), Some(&"answer"), "{names:?}");
    let sources = events[0].1["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!sources.is_empty(), "no sources");
    for source in &sources {
        let document = source["document_id"].as_str().unwrap_or_default();
        let (status, seen) = api.call("GET", &format!("/documents/{document}"), Some(alice), None);
        assert_eq!(
            (status, seen["collection"].as_str()),
            (200, Some("matter-1234"))
        );
    }
    let answer = &events[events.len() - 1].1;
    assert!(
        answer["receipt"]["model"]["file_sha256"].is_string(),
        "{answer}"
    );
    // Errors before the stream starts keep their status code.
    let (status, events) = api.ask(alice, json!({"question": "  "}));
    assert_eq!(status, 400, "{events:?}");
    disconnect_mid_answer(api, data_dir, alice);

    // Summaries: the uploaded order for its attorney; the other matter's attorney sees 404.
    let (status, summary) = api.call(
        "POST",
        "/summarize",
        Some(alice),
        Some(json!({"document_id": id, "max_tokens": 32})),
    );
    assert_eq!(status, 200, "{summary}");
    assert!(!summary["text"].as_str().unwrap_or_default().is_empty());
    let (status, _) = api.call(
        "POST",
        "/summarize",
        Some(carol),
        Some(json!({"document_id": id})),
    );
    assert_eq!(status, 404);
}

/// A client that goes away after the first token stops the model: the answer's `ask.answer`
/// record says `cancelled`, where a model left running would have written up to 1,024 tokens
/// for nobody and recorded `ok`.
fn disconnect_mid_answer(api: &Api, data_dir: &Path, alice: &str) {
    let answers = || -> Vec<Value> {
        vellum(data_dir, &["audit", "export"], None)
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|record| {
                record["action"] == json!("ask.answer") && record["principal"] == json!("alice")
            })
            .collect()
    };
    let before = answers().len();
    let url = format!("{}/ask", api.base);
    let question = "Explain at length, step by step and in full detail, everything the court of \
                    appeals ordered and why, with every date and every party.";
    api.runtime.block_on(async {
        let mut response = api
            .client
            .post(&url)
            .bearer_auth(alice)
            .json(&json!({"question": question, "max_tokens": 1024}))
            .send()
            .await
            .unwrap_or_else(|err| panic!("{url}: {err}"));
        assert_eq!(response.status().as_u16(), 200);
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("event: token") {
            match response.chunk().await {
                Ok(Some(chunk)) => seen.extend_from_slice(&chunk),
                other => panic!("the answer ended before its first token: {other:?}"),
            }
        }
        // Dropping the unfinished response makes the client close the connection; that
        // happens in the client's connection task, which runs only while this runtime is
        // driven, so drive it a moment longer.
        drop(response);
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    // The record is written when the generation ends; wait for it (a deadline, not a timing).
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let record = loop {
        let records = answers();
        if records.len() > before {
            break records[records.len() - 1].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ask.answer record 180 s after the client went away"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(record["outcome"], json!("cancelled"), "{record}");
}

/// Users and keys over the API, metrics, readiness and the OpenAPI description.
fn administration(api: &Api, alice: &str, carol: &str, admin: &str) {
    assert_eq!(api.call("GET", "/users", Some(alice), None).0, 403);
    let (status, users) = api.call("GET", "/users", Some(admin), None);
    assert_eq!(status, 200);
    assert!(
        users.as_array().is_some_and(|list| list.len() >= 5),
        "{users}"
    );
    let (status, dave) = api.call(
        "POST",
        "/users",
        Some(admin),
        Some(json!({"name": "dave", "password": "dave's long password",
                    "roles": ["attorney"], "groups": ["matter-9999"]})),
    );
    assert_eq!(status, 201, "{dave}");
    let dave = api.login("dave");
    assert_eq!(
        api.call(
            "PUT",
            "/users/dave/disabled",
            Some(admin),
            Some(json!({"disabled": true}))
        )
        .0,
        204
    );
    assert_eq!(
        api.call("GET", "/me", Some(&dave), None).0,
        401,
        "disabled user kept access"
    );

    // Own keys: created, used, and only revocable by their owner (or an admin).
    let (status, key) = api.call(
        "POST",
        "/keys",
        Some(alice),
        Some(json!({"name": "laptop"})),
    );
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().unwrap_or_default().to_string();
    let id = key["info"]["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(api.call("GET", "/me", Some(&secret), None).0, 200);
    assert_eq!(
        api.call("DELETE", &format!("/keys/{id}"), Some(carol), None)
            .0,
        404
    );
    assert_eq!(
        api.call("DELETE", &format!("/keys/{id}"), Some(alice), None)
            .0,
        204
    );
    assert_eq!(api.call("GET", "/me", Some(&secret), None).0, 401);
    let (status, _) = api.call(
        "POST",
        "/keys",
        Some(alice),
        Some(json!({"name": "x", "user": "carol"})),
    );
    assert_eq!(status, 403, "a user made a key for someone else");

    // Metrics: admins only; per route pattern, never a document id.
    let origin = api.base.trim_end_matches("/v1").to_string();
    assert_eq!(
        api.get_text(&format!("{origin}/metrics"), Some(alice)).0,
        403
    );
    let (status, metrics) = api.get_text(&format!("{origin}/metrics"), Some(admin));
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            r#"vellum_http_requests_total{route="/v1/search",method="POST",status="200"}"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/v1/documents/{id}""#),
        "{metrics}"
    );
    assert!(metrics.contains("vellum_model_load_seconds"), "{metrics}");
    assert!(metrics.contains("vellum_ingest_queue_depth 0"), "{metrics}");

    let (status, ready) = api.call("GET", "/ready", None, None);
    assert_eq!(
        (status, ready["ready"].as_bool()),
        (200, Some(true)),
        "{ready}"
    );
    let (status, spec) = api.call("GET", "/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(
        spec["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{spec}"
    );
    assert!(spec["paths"]["/v1/ask"]["post"].is_object());
}

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|err| err.to_string())?;
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|err| err.to_string())?;
        if output.status.success() {
            Ok(Tmpfs(path.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Fail closed over HTTPS: the audit log lives on a small tmpfs; once it is full, searches and
/// answers get 503 and no data. Runs in a private mount namespace (see `mount_namespace`): it
/// fails where none can be made, unless `VELLUM_ALLOW_NO_MOUNT=1` says to report it as not run
/// (the service-level test with /dev/full always runs).
#[test]
fn a_full_audit_disk_serves_nothing() {
    if !mount_namespace::enter("a_full_audit_disk_serves_nothing") {
        return;
    }
    let work = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let data_dir = work.path().join("data");
    let audit_fs = Tmpfs::mount(&work.path().join("audit-fs"), "256k")
        .unwrap_or_else(|reason| panic!("mount -t tmpfs in the namespace failed: {reason}"));
    let notices = work.path().join("notices");
    std::fs::create_dir_all(&notices).unwrap_or_else(|err| panic!("{err}"));
    let email = shared_dir().join("corpora/email-court-notices-pacer/nef/almd_1.eml");
    std::fs::copy(&email, notices.join("almd_1.eml")).unwrap_or_else(|err| panic!("{err}"));
    let status = vellum_command(&data_dir)
        .arg("ingest")
        .arg(&notices)
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|err| panic!("ingest: {err}"));
    assert!(status.success());
    let audit_dir = audit_fs.0.join("audit");
    let server = start_server_with(
        &data_dir,
        "default",
        &[
            "--no-generation",
            "--audit-dir",
            audit_dir.to_str().unwrap_or_default(),
        ],
    );
    let api = Api::new(&data_dir, &server);
    let (status, body) = api.call(
        "POST",
        "/login",
        None,
        Some(json!({"user": "admin", "password": "admin password for tests"})),
    );
    assert_eq!(status, 200, "{body}");
    let admin = body["token"].as_str().unwrap_or_default().to_string();
    assert!(!api.search(&admin, "notice of electronic filing").is_empty());

    // Fill the file system, as a runaway process or a full disk would.
    let mut filler = std::fs::File::create(audit_fs.0.join("filler"))
        .unwrap_or_else(|err| panic!("filler: {err}"));
    let block = vec![0u8; 4096];
    while filler.write_all(&block).is_ok() {}
    // The segment's last page may still hold a record or two; then every request fails.
    let mut answered = 1; // the search before the disk filled
    let mut refused = 0;
    for _ in 0..20 {
        let (status, body) = api.call(
            "POST",
            "/search",
            Some(&admin),
            Some(json!({"query": "notice of electronic filing"})),
        );
        match status {
            200 => {
                assert_eq!(refused, 0, "served after a refusal: {body}");
                answered += 1;
            }
            503 => {
                assert_eq!(body["code"].as_str(), Some("unavailable"), "{body}");
                assert!(
                    body.get("results").is_none(),
                    "results without a record: {body}"
                );
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(
        refused >= 15,
        "only {refused} of 20 searches refused on a full disk"
    );
    let (status, body) = api.call("GET", "/documents", Some(&admin), None);
    assert_eq!(status, 503, "{body}");
    // Every search that was answered has its record; none that was refused does.
    let records = vellum(
        &data_dir,
        &[
            "audit",
            "export",
            audit_dir.to_str().unwrap_or_default(),
            "--action",
            "search",
        ],
        None,
    );
    assert_eq!(
        records.as_array().map(Vec::len),
        Some(answered),
        "answered {answered}, recorded {records}"
    );
    drop(server);
    drop(audit_fs);
}
