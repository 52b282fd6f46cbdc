//! A [`Generator`] that talks to an on-premise inference server through the OpenAI-compatible
//! chat-completions API (streamed as Server-Sent Events): llama.cpp's server, vLLM, Ollama,
//! LM Studio, MLC LLM, TensorRT-LLM through Triton's OpenAI frontend, mlx_lm.server.
//!
//! Only the documented common subset is used: `POST {base}/chat/completions` and
//! `POST {base}/completions` with `stream: true`, `max_tokens`, `temperature`, `top_p`, `seed`
//! and `stop`. The base URL includes the version path (`http://10.0.0.5:8000/v1`), as every
//! one of those servers documents it.
//!
//! Transport: `https://`, or plain `http://` only to an engine on this machine (loopback) and
//! only with [`RemoteConfig::allow_plain_http`]: anywhere else the prompts (document text) and
//! the API key would cross the network in clear. Credentials in the URL are refused too.
//!
//! Failures: connection errors (refused, reset, DNS, TLS) are retried with a short back-off
//! *before* the first token arrives (never after: the caller has already shown those tokens);
//! an HTTP 4xx or 5xx answer is an error naming the status and the server's own message; every
//! request has a connect timeout and a whole-request timeout.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ChatMessage, Generation, GenerationParams, Generator, ModelIdentity, StopReason};
use crate::error::{Error, Result};

/// How to reach a remote engine.
#[derive(Clone, Serialize, Deserialize)]
pub struct RemoteConfig {
    /// Base URL including the API version, e.g. `https://engine.example:8443/v1`.
    pub base_url: String,
    /// The model name the server expects in requests.
    pub model: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub api_key: Option<String>,
    /// Tokens (prompt plus answer) the served model handles; used to batch summaries.
    pub context_length: usize,
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole generation, streaming included.
    pub request_timeout: Duration,
    /// Further attempts after a connection error (0 = try once).
    pub max_retries: u32,
    /// Accept a plain `http://` base URL whose host is loopback (127.0.0.0/8, ::1, localhost).
    /// A plain `http://` URL to any other host is refused even with this set.
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl std::fmt::Debug for RemoteConfig {
    // Hand-written so that the API key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("context_length", &self.context_length)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl RemoteConfig {
    /// A configuration with the defaults: 4,096-token context, 5 s to connect, 300 s per
    /// generation, 2 retries.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            context_length: 4096,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(300),
            max_retries: 2,
            allow_plain_http: false,
        }
    }
}

impl RemoteConfig {
    /// The host and port prompts are sent to, when that is another machine (`None`: the engine
    /// listens on loopback, so nothing leaves this one). For the start-up `egress:` line.
    pub fn outside_host(&self) -> Option<String> {
        let url = match reqwest::Url::parse(&self.base_url) {
            Ok(url) => url,
            // Refused later by `check_base_url`; until then, name it as configured.
            Err(_) => return Some(without_credentials(&self.base_url)),
        };
        let host = url.host_str().unwrap_or_default();
        if is_loopback(host) {
            return None;
        }
        Some(match url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        })
    }
}

/// Checks the base URL before any client exists: http(s), no credentials in it, and plain http
/// only to this machine and only when allowed. Errors never echo a password from the URL.
fn check_base_url(config: &RemoteConfig) -> Result<()> {
    let shown = without_credentials(&config.base_url);
    let url = reqwest::Url::parse(&config.base_url)
        .map_err(|err| Error::InvalidRequest(format!("remote engine URL {shown:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidRequest(format!(
            "remote engine URL {shown:?} must start with https:// (or http:// to this machine)"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidRequest(format!(
            "remote engine URL {shown:?} carries a user name or password: remove it and put the \
             API key in VELLUM_REMOTE_API_KEY (sent as a bearer token)"
        )));
    }
    if url.scheme() == "http" {
        if !is_loopback(url.host_str().unwrap_or_default()) {
            return Err(Error::InvalidRequest(format!(
                "remote engine URL {shown:?} is plain http:// to another machine: the prompts \
                 (document text) and the API key would cross the network in clear. Use \
                 https:// (put a TLS-terminating proxy in front of the engine if it has none)"
            )));
        }
        if !config.allow_plain_http {
            return Err(Error::InvalidRequest(format!(
                "remote engine URL {shown:?} is plain http://: use https://, or, since the engine \
                 is on this machine, allow it explicitly with --remote-allow-http \
                 (VELLUM_REMOTE_ALLOW_HTTP=1)"
            )));
        }
    }
    Ok(())
}

/// 127.0.0.0/8, ::1 (also IPv4-mapped) or `localhost`: traffic that never leaves the machine.
fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    // IPv6 hosts come bracketed from the URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|ip| ip.is_loopback())
        }
        Err(_) => false,
    }
}

/// The URL for messages, with any `user:password@` replaced by `***@`.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_string(),
    }
}

/// A generator backed by an OpenAI-compatible server.
pub struct RemoteGenerator {
    config: RemoteConfig,
    client: reqwest::Client,
    /// The HTTP client is async; generation is not, so each call blocks on this runtime (do
    /// not call from inside another Tokio runtime: use `spawn_blocking` there).
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RemoteGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteGenerator")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Bytes of text counted as one token when the server cannot be asked: 3 undercounts no
/// tokenizer we know of on English or legal text (they average 3.5-4.5), so batches built on
/// this estimate fit the context.
const BYTES_PER_TOKEN_ESTIMATE: usize = 3;

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(flatten)]
    sampling: Sampling<'a>,
}

#[derive(Serialize)]
struct CompletionRequest<'a> {
    model: &'a str,
    prompt: &'a str,
    #[serde(flatten)]
    sampling: Sampling<'a>,
}

#[derive(Serialize)]
struct Sampling<'a> {
    stream: bool,
    max_tokens: usize,
    temperature: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    seed: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    /// Always sent as 0 (OpenAI's default): llama-cpp-python's server otherwise applies a
    /// penalty of its own that turned SmolLM2's greedy "The capital of France is Paris." into
    /// French gibberish in our test, which would make answers differ from the in-process model.
    frequency_penalty: f64,
    presence_penalty: f64,
}

impl<'a> Sampling<'a> {
    fn of(params: &'a GenerationParams) -> Self {
        Sampling {
            stream: true,
            max_tokens: params.max_tokens,
            temperature: params.temperature,
            top_p: params.top_p,
            seed: params.seed,
            stop: &params.stop,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
        }
    }
}

/// One streamed event of either endpoint.
#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    /// Chat completions.
    delta: Option<Delta>,
    /// Text completions.
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<usize>,
    completion_tokens: Option<usize>,
}

impl RemoteGenerator {
    /// Prepares a client for `config`; no request is made until the first generation.
    pub fn new(config: RemoteConfig) -> Result<RemoteGenerator> {
        check_base_url(&config)?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            // An inference server on the customer's network: never follow redirects elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| Error::Runtime(format!("cannot build the HTTP client: {err}")))?;
        // One worker drives the connections, so any number of threads may block on it at once.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("vellum-remote-http")
            .enable_all()
            .build()
            .map_err(|err| Error::Runtime(format!("cannot start the HTTP runtime: {err}")))?;
        Ok(RemoteGenerator {
            config,
            client,
            runtime,
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}/{path}", self.config.base_url.trim_end_matches('/'))
    }

    /// Posts `body` to `path` and streams the answer into `on_token`.
    fn stream<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        cancel: &super::CancelFlag,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        let url = self.endpoint(path);
        self.runtime.block_on(async {
            let started = std::time::Instant::now();
            let response = self.send_with_retries(&url, body).await?;
            // Prompt time is the time to the first token (servers send headers at once).
            let mut first_token_at = None;
            let mut events = SseLines::default();
            let mut text = String::new();
            let mut finish_reason = None;
            let mut usage = None;
            let mut num_pieces = 0usize;
            let mut response = response;
            'stream: loop {
                let chunk = response
                    .chunk()
                    .await
                    .map_err(|err| self.remote_error(&url, format!("stream broke off: {err}")))?;
                let Some(chunk) = chunk else { break };
                // Dropping the response closes the stream, which stops the remote engine.
                if cancel.is_cancelled() {
                    finish_reason = Some("cancelled".into());
                    break;
                }
                for data in events.push(&chunk) {
                    if data == "[DONE]" {
                        break 'stream;
                    }
                    let event: StreamChunk = serde_json::from_str(&data).map_err(|err| {
                        self.remote_error(&url, format!("unreadable stream event: {err}"))
                    })?;
                    if let Some(reported) = event.usage {
                        usage = Some(reported);
                    }
                    for choice in event.choices {
                        let piece = choice
                            .delta
                            .and_then(|delta| delta.content)
                            .or(choice.text)
                            .unwrap_or_default();
                        if !piece.is_empty() {
                            first_token_at.get_or_insert_with(std::time::Instant::now);
                            num_pieces += 1;
                            on_token(&piece);
                            text.push_str(&piece);
                        }
                        if choice.finish_reason.is_some() {
                            finish_reason = choice.finish_reason;
                        }
                    }
                }
            }
            // The OpenAI protocol reports an end-of-text token and a stop sequence alike as
            // `stop`, so a remote generation never says StopSequence.
            let stop_reason = match finish_reason.as_deref() {
                Some("length") => StopReason::MaxTokens,
                Some("cancelled") => StopReason::Cancelled,
                _ => StopReason::EndOfText,
            };
            Ok(Generation {
                text,
                num_prompt_tokens: usage
                    .as_ref()
                    .and_then(|usage| usage.prompt_tokens)
                    .unwrap_or(0),
                num_generated_tokens: usage
                    .as_ref()
                    .and_then(|usage| usage.completion_tokens)
                    .unwrap_or(num_pieces),
                stop_reason,
                prompt_seconds: first_token_at
                    .unwrap_or_else(std::time::Instant::now)
                    .duration_since(started)
                    .as_secs_f64(),
                generation_seconds: first_token_at
                    .map_or(0.0, |first| first.elapsed().as_secs_f64()),
                // The server keeps its own prompt cache (llama.cpp's `cache_prompt`) and does
                // not report it here.
                num_cached_prompt_tokens: 0,
            })
        })
    }

    async fn send_with_retries<B: Serialize>(
        &self,
        url: &str,
        body: &B,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0u32;
        loop {
            let mut request = self.client.post(url).json(body);
            if let Some(key) = &self.config.api_key {
                request = request.bearer_auth(key);
            }
            match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let detail = response.text().await.unwrap_or_default();
                    return Err(self
                        .remote_error(url, format!("HTTP {status}: {}", server_message(&detail))));
                }
                Err(err) if is_retryable(&err) && attempt < self.config.max_retries => {
                    attempt += 1;
                    let pause = Duration::from_millis(250 * 2u64.pow(attempt - 1));
                    tracing::warn!(url, attempt, error = %err, "remote engine unreachable, retrying");
                    tokio::time::sleep(pause).await;
                }
                Err(err) => {
                    let tries = attempt + 1;
                    return Err(
                        self.remote_error(url, format!("{} ({tries} attempt(s))", describe(&err)))
                    );
                }
            }
        }
    }

    fn remote_error(&self, url: &str, reason: String) -> Error {
        Error::Remote {
            url: url.to_string(),
            reason,
        }
    }
}

/// Connection-level failures are worth another try; an answer from the server is not.
fn is_retryable(err: &reqwest::Error) -> bool {
    err.is_connect() || (err.is_request() && !err.is_timeout() && err.status().is_none())
}

/// Says what went wrong without reqwest's nested debug text.
fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timed out".to_string()
    } else if err.is_connect() {
        let mut message = String::from("cannot connect");
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            message = format!("cannot connect: {cause}");
            source = cause.source();
        }
        message
    } else {
        err.to_string()
    }
}

/// Extracts `error.message` (OpenAI's error body) or returns the first 300 characters.
fn server_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: ErrorDetail,
    }
    #[derive(Deserialize)]
    struct ErrorDetail {
        message: String,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(parsed) => parsed.error.message,
        Err(_) => body.chars().take(300).collect(),
    }
}

/// Splits a Server-Sent Events byte stream into the `data:` payloads of complete events.
#[derive(Default)]
struct SseLines {
    pending: Vec<u8>,
    data: String,
}

impl SseLines {
    /// Adds bytes and returns the payloads of the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut complete = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !self.data.is_empty() {
                    complete.push(std::mem::take(&mut self.data));
                }
            } else if let Some(value) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
            // Comments (`:`) and other fields (`event:`, `id:`, `retry:`) carry nothing we use.
        }
        complete
    }
}

impl Generator for RemoteGenerator {
    fn generate(
        &self,
        messages: &[ChatMessage],
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        super::validate(params)?;
        let body = ChatRequest {
            model: &self.config.model,
            messages,
            sampling: Sampling::of(params),
        };
        self.stream("chat/completions", &body, &params.cancel, on_token)
    }

    fn generate_raw(
        &self,
        prompt: &str,
        params: &GenerationParams,
        on_token: &mut dyn FnMut(&str),
    ) -> Result<Generation> {
        super::validate(params)?;
        let body = CompletionRequest {
            model: &self.config.model,
            prompt,
            sampling: Sampling::of(params),
        };
        self.stream("completions", &body, &params.cancel, on_token)
    }

    /// The server applies its own template; what identifies the prompt on our side is the
    /// exact message list, so that is what this returns (as JSON).
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        serde_json::to_string(messages).map_err(|err| Error::Runtime(err.to_string()))
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.len().div_ceil(BYTES_PER_TOKEN_ESTIMATE))
    }

    fn context_length(&self) -> usize {
        self.config.context_length
    }

    fn model_name(&self) -> &str {
        &self.config.model
    }

    fn identity(&self) -> ModelIdentity {
        ModelIdentity {
            name: self.config.model.clone(),
            engine: format!("remote {}", self.config.base_url),
            architecture: String::new(),
            file_sha256: String::new(),
            template_sha256: String::new(),
            requantized_to_q8_0: false,
            // The server's hardware is not ours to see.
            device: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_split_across_chunk_boundaries() {
        let mut lines = SseLines::default();
        assert!(lines.push(b"data: {\"a\"").is_empty());
        assert_eq!(
            lines.push(b":1}\r\n\r\n: keep-alive\n\ndata: [DO"),
            vec!["{\"a\":1}"]
        );
        assert_eq!(lines.push(b"NE]\n\n"), vec!["[DONE]"]);
    }

    #[test]
    fn multi_line_data_is_joined() {
        let mut lines = SseLines::default();
        assert_eq!(lines.push(b"event: x\ndata: a\ndata: b\n\n"), vec!["a\nb"]);
    }

    #[test]
    fn server_errors_show_the_server_message() {
        assert_eq!(
            server_message(r#"{"error":{"message":"model not found","type":"x"}}"#),
            "model not found"
        );
        assert_eq!(server_message("plain text"), "plain text");
    }

    #[test]
    fn api_key_is_redacted_from_debug_output() {
        let mut config = RemoteConfig::new("http://127.0.0.1:1/v1", "m");
        config.api_key = Some("sk-secret-value".into());
        let shown = format!("{config:?}");
        assert!(!shown.contains("sk-secret-value"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.9.8.7",
            "[::1]",
            "[::ffff:127.0.0.1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "",
            "0.0.0.0",
            "10.0.0.5",
            "[::]",
            "localhost.example",
            "127.0.0.1.nip.io",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn outside_host_names_only_other_machines() {
        let config = |url: &str| RemoteConfig::new(url.to_string(), "m".to_string());
        assert_eq!(config("http://127.0.0.1:8080/v1").outside_host(), None);
        assert_eq!(config("http://[::1]:8080/v1").outside_host(), None);
        assert_eq!(config("https://localhost/v1").outside_host(), None);
        assert_eq!(
            config("https://gpu1.example/v1").outside_host().as_deref(),
            Some("gpu1.example:443")
        );
        assert_eq!(
            config("https://10.0.0.7:8443/v1").outside_host().as_deref(),
            Some("10.0.0.7:8443")
        );
    }

    #[test]
    fn credentials_are_cut_from_shown_urls() {
        assert_eq!(
            without_credentials("https://u:p@host:8443/v1?x=a@b"),
            "https://***@host:8443/v1?x=a@b"
        );
        assert_eq!(without_credentials("https://host/v1"), "https://host/v1");
        assert_eq!(without_credentials("not a url"), "not a url");
    }

    #[test]
    fn plain_http_is_loopback_and_opt_in_only() {
        let config = |url: &str, allow: bool| {
            let mut config = RemoteConfig::new(url, "m");
            config.allow_plain_http = allow;
            config
        };
        assert!(RemoteGenerator::new(config("http://127.0.0.1:8080/v1", true)).is_ok());
        assert!(RemoteGenerator::new(config("http://localhost:8080/v1", true)).is_ok());
        assert!(RemoteGenerator::new(config("https://10.0.0.5:8443/v1", false)).is_ok());
        assert!(RemoteGenerator::new(config("http://127.0.0.1:8080/v1", false)).is_err());
        assert!(RemoteGenerator::new(config("http://10.0.0.5:8000/v1", true)).is_err());
    }

    #[test]
    fn bad_urls_are_rejected_before_any_request() {
        for url in ["not a url", "ftp://host/v1"] {
            let err = RemoteGenerator::new(RemoteConfig::new(url, "m")).expect_err(url);
            assert!(err.to_string().contains(url), "{err}");
        }
    }
}
