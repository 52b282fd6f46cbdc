//! Load generator for `vellum serve`: N concurrent HTTPS clients for a fixed time, searching and
//! asking in closed loops, with the server's memory sampled from /proc. Prints one JSON summary.
//!
//! ```text
//! cargo run --release --example load -- --url https://localhost:8443 --cacert DATA/tls/cert.pem \
//!     --user admin --password-env VELLUM_ADMIN_PASSWORD --search-clients 45 --ask-clients 5 \
//!     --seconds 600 --pid SERVER_PID
//! ```
//! `deploy/load-test.sh` sets up a data folder and a server and runs this.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

/// Questions and queries from the legal and medical corpora the benchmark ingests.
const QUERIES: &[&str] = &[
    "termination for convenience",
    "governing law and jurisdiction",
    "indemnification obligations",
    "confidential information disclosure",
    "court of appeals order",
    "notice of electronic filing",
    "motion to dismiss",
    "limitation of liability",
    "assignment without consent",
    "payment terms and invoices",
    "joint venture agreement parties",
    "docket entry judgment",
];

const QUESTIONS: &[&str] = &[
    "What does the agreement say about termination?",
    "Which court issued the order?",
    "Who are the parties to the joint venture?",
    "What law governs the contract?",
];

struct Options {
    url: String,
    cacert: String,
    token: String,
    /// One token per ask client when `--ask-user-prefix` names their accounts.
    ask_tokens: Vec<String>,
    search_clients: usize,
    ask_clients: usize,
    seconds: u64,
    pid: Option<u32>,
    max_iterations: usize,
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<f64>>,
    statuses: BTreeMap<String, u64>,
    errors: Vec<String>,
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn login(
    client: &reqwest::Client,
    url: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{url}/v1/login"))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    anyhow::ensure!(status.is_success(), "login failed: {status} {body}");
    Ok(body["token"].as_str().unwrap_or_default().to_string())
}

async fn one_request(
    client: &reqwest::Client,
    options: &Options,
    kind: &'static str,
    id: usize,
    n: usize,
) -> Result<u16, String> {
    let token = match kind {
        "ask" => options.ask_tokens.get(id).unwrap_or(&options.token),
        _ => &options.token,
    };
    let (path, body) = match kind {
        "search" => (
            "/v1/search",
            json!({"query": QUERIES[n % QUERIES.len()], "k": 10}),
        ),
        _ => (
            "/v1/ask",
            json!({"question": QUESTIONS[n % QUESTIONS.len()], "k": 3, "max_tokens": 32}),
        ),
    };
    let response = client
        .post(format!("{}{path}", options.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|err| format!("{kind}: {err}"))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|err| format!("{kind} body: {err}"))?;
    if status != 200 {
        return Err(format!(
            "{kind}: HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    // A stream that failed mid-way still has status 200: its last event says so.
    if kind == "ask" && !text.contains("event: answer") {
        return Err(format!(
            "ask: no answer event: {}",
            text.chars().take(200).collect::<String>()
        ));
    }
    Ok(status)
}

async fn client_loop(
    client: reqwest::Client,
    options: Arc<Options>,
    tally: Arc<Mutex<Tally>>,
    kind: &'static str,
    id: usize,
    deadline: Instant,
) {
    let mut n = id;
    for _ in 0..options.max_iterations {
        if Instant::now() >= deadline {
            break;
        }
        let started = Instant::now();
        let result = one_request(&client, &options, kind, id, n).await;
        let seconds = started.elapsed().as_secs_f64();
        let mut tally = tally.lock().await;
        match result {
            Ok(status) => {
                tally.latencies.entry(kind).or_default().push(seconds);
                *tally
                    .statuses
                    .entry(format!("{kind} {status}"))
                    .or_default() += 1;
            }
            Err(err) => {
                *tally.statuses.entry(format!("{kind} error")).or_default() += 1;
                if tally.errors.len() < 20 {
                    tally.errors.push(err);
                }
            }
        }
        n += 7;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").unwrap_or_else(|| "https://localhost:8443".into());
    let cacert = arg(&args, "--cacert").unwrap_or_else(|| "vellum-data/tls/cert.pem".into());
    let pem = std::fs::read(&cacert)?;
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem)?)
        .timeout(Duration::from_secs(300))
        .build()?;
    let user = arg(&args, "--user").unwrap_or_else(|| "admin".into());
    let password_env =
        arg(&args, "--password-env").unwrap_or_else(|| "VELLUM_ADMIN_PASSWORD".into());
    let password = std::env::var(&password_env)
        .map_err(|_| anyhow::anyhow!("set {password_env} to {user}'s password"))?;
    let token = login(&client, &url, &user, &password).await?;
    let number = |name: &str, default: u64| -> u64 {
        arg(&args, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let ask_clients = number("--ask-clients", 5) as usize;
    // The server allows each account 2 answers at once: a crowd of askers is several people.
    let mut ask_tokens = Vec::new();
    if let Some(prefix) = arg(&args, "--ask-user-prefix") {
        for id in 0..ask_clients {
            ask_tokens.push(login(&client, &url, &format!("{prefix}{id}"), &password).await?);
        }
    }
    let options = Arc::new(Options {
        url,
        cacert,
        token,
        ask_tokens,
        search_clients: number("--search-clients", 45) as usize,
        ask_clients,
        seconds: number("--seconds", 600),
        pid: arg(&args, "--pid").and_then(|v| v.parse().ok()),
        max_iterations: number("--max-iterations", 1_000_000) as usize,
    });
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let mut tasks = Vec::new();
    for id in 0..options.search_clients {
        tasks.push(tokio::spawn(client_loop(
            client.clone(),
            options.clone(),
            tally.clone(),
            "search",
            id,
            deadline,
        )));
    }
    for id in 0..options.ask_clients {
        tasks.push(tokio::spawn(client_loop(
            client.clone(),
            options.clone(),
            tally.clone(),
            "ask",
            id,
            deadline,
        )));
    }
    // Memory every 10 s while the clients run.
    let mut rss = Vec::new();
    if let Some(pid) = options.pid {
        while Instant::now() < deadline {
            if let Some(kib) = rss_kib(pid) {
                rss.push(json!({"t": started.elapsed().as_secs(), "rss_mib": kib as f64 / 1024.0}));
            }
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    }
    for task in tasks {
        task.await?;
    }
    if let Some(kib) = options.pid.and_then(rss_kib) {
        rss.push(json!({"t": started.elapsed().as_secs(), "rss_mib": kib as f64 / 1024.0}));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let tally = tally.lock().await;
    let mut kinds = serde_json::Map::new();
    for (kind, latencies) in &tally.latencies {
        let mut sorted = latencies.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        kinds.insert(
            kind.to_string(),
            json!({
                "ok": sorted.len(),
                "per_second": sorted.len() as f64 / elapsed,
                "p50_ms": percentile(&sorted, 50.0) * 1000.0,
                "p95_ms": percentile(&sorted, 95.0) * 1000.0,
                "p99_ms": percentile(&sorted, 99.0) * 1000.0,
                "max_ms": sorted.last().copied().unwrap_or(0.0) * 1000.0,
            }),
        );
    }
    let errors: u64 = tally
        .statuses
        .iter()
        .filter(|(key, _)| key.ends_with("error"))
        .map(|(_, count)| *count)
        .sum();
    let summary = json!({
        "url": options.url,
        "cacert": options.cacert,
        "search_clients": options.search_clients,
        "ask_clients": options.ask_clients,
        "seconds": elapsed,
        "requests": kinds,
        "statuses": tally.statuses,
        "errors": errors,
        "first_errors": tally.errors,
        "server_rss": rss,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    anyhow::ensure!(errors == 0, "{errors} requests failed");
    Ok(())
}
