//! `POST chat/completions`: grounded answers over collections (the service's `ask`) and plain
//! chat, with sources as annotations, streamed or not.

use super::*;

#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    seed: Option<i64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<u64>,
    // Accepted only when absent, null or neutral: each has its own clear 400.
    #[serde(default)]
    tools: Option<Value>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default)]
    functions: Option<Value>,
    #[serde(default)]
    function_call: Option<Value>,
    #[serde(default)]
    logprobs: Option<bool>,
    #[serde(default)]
    top_logprobs: Option<u64>,
    #[serde(default)]
    logit_bias: Option<Value>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default)]
    frequency_penalty: Option<f64>,
    #[serde(default)]
    presence_penalty: Option<f64>,
    #[serde(default)]
    audio: Option<Value>,
    #[serde(default)]
    modalities: Option<Vec<String>>,
    #[serde(default)]
    prediction: Option<Value>,
    #[serde(default)]
    web_search_options: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
    #[serde(default)]
    tool_calls: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

/// Whether a JSON value asks for something (not null, false, an empty list or object).
fn is_set(value: &Option<Value>) -> bool {
    match value {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(fields)) => !fields.is_empty(),
        Some(_) => true,
    }
}

/// Refuses what Vellum cannot do, naming the field, instead of quietly ignoring it.
fn refuse_unsupported(request: &ChatRequest) -> Result<(), OpenAiError> {
    if request.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::invalid(
            "n",
            "n must be 1: Vellum writes one answer per request",
        ));
    }
    if is_set(&request.tools) || is_set(&request.functions) || is_set(&request.function_call) {
        let param = if is_set(&request.tools) {
            "tools"
        } else if is_set(&request.functions) {
            "functions"
        } else {
            "function_call"
        };
        return Err(OpenAiError::unsupported(param, "Tool and function calling"));
    }
    if let Some(choice) = &request.tool_choice {
        if !matches!(choice, Value::Null)
            && choice.as_str() != Some("none")
            && choice.as_str() != Some("auto")
        {
            return Err(OpenAiError::unsupported("tool_choice", "Tool calling"));
        }
    }
    if request.logprobs == Some(true) || request.top_logprobs.is_some_and(|n| n > 0) {
        return Err(OpenAiError::unsupported("logprobs", "Log probabilities"));
    }
    if is_set(&request.logit_bias) {
        return Err(OpenAiError::unsupported("logit_bias", "Logit bias"));
    }
    if let Some(format) = &request.response_format {
        let kind = format.get("type").and_then(Value::as_str);
        if !format.is_null() && kind != Some("text") {
            return Err(OpenAiError::unsupported(
                "response_format",
                "A response format other than text (JSON mode, schemas)",
            ));
        }
    }
    if request.frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(OpenAiError::unsupported(
            "frequency_penalty",
            "A frequency penalty",
        ));
    }
    if request.presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(OpenAiError::unsupported(
            "presence_penalty",
            "A presence penalty",
        ));
    }
    if is_set(&request.audio)
        || request
            .modalities
            .as_ref()
            .is_some_and(|modalities| modalities.iter().any(|m| m != "text"))
    {
        return Err(OpenAiError::unsupported("modalities", "Audio output"));
    }
    if is_set(&request.prediction) {
        return Err(OpenAiError::unsupported("prediction", "Predicted output"));
    }
    if is_set(&request.web_search_options) {
        return Err(OpenAiError::unsupported(
            "web_search_options",
            "Web search (Vellum never leaves this machine)",
        ));
    }
    Ok(())
}

/// Sampling settings from the request (defaults: Vellum's, greedy with seed 42).
fn sampling(request: &ChatRequest) -> Result<(GenerationParams, usize), OpenAiError> {
    let mut params = GenerationParams::default();
    if let Some(temperature) = request.temperature {
        if !(0.0..=2.0).contains(&temperature) {
            return Err(OpenAiError::invalid(
                "temperature",
                "temperature must be 0-2",
            ));
        }
        params.temperature = temperature;
    }
    if let Some(top_p) = request.top_p {
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(OpenAiError::invalid(
                "top_p",
                "top_p must be above 0 and at most 1",
            ));
        }
        params.top_p = (top_p < 1.0).then_some(top_p);
    }
    if let Some(seed) = request.seed {
        params.seed = u64::try_from(seed)
            .map_err(|_| OpenAiError::invalid("seed", "seed must not be negative"))?;
    }
    params.stop = match &request.stop {
        None => Vec::new(),
        Some(Stop::One(stop)) => vec![stop.clone()],
        Some(Stop::Many(stops)) => stops.clone(),
    };
    if params.stop.len() > 4
        || params
            .stop
            .iter()
            .any(|stop| stop.is_empty() || stop.len() > 256)
    {
        return Err(OpenAiError::invalid(
            "stop",
            "stop takes at most 4 sequences of 1-256 bytes",
        ));
    }
    let (param, max_tokens) = match (request.max_completion_tokens, request.max_tokens) {
        (Some(max), _) => ("max_completion_tokens", Some(max)),
        (None, max) => ("max_tokens", max),
    };
    let max_tokens = match max_tokens {
        None => params.max_tokens,
        Some(max) if (1..=1024).contains(&max) => max as usize,
        Some(_) => {
            return Err(OpenAiError::invalid(
                param,
                format!("{param} must be 1-1024"),
            ))
        }
    };
    params.max_tokens = max_tokens;
    Ok((params, max_tokens))
}

/// A message's text: a string, or its text parts joined by new lines.
fn message_text(message: &InMessage) -> Result<String, OpenAiError> {
    match &message.content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text.clone()),
        Some(Content::Parts(parts)) => {
            let mut texts = Vec::new();
            for part in parts {
                match (part.kind.as_str(), &part.text) {
                    ("text", Some(text)) => texts.push(text.as_str()),
                    (kind, _) => {
                        return Err(OpenAiError::invalid(
                            "messages",
                            format!("content parts of type {kind:?} are not supported: send text"),
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
    }
}

/// The conversation as the generator takes it (`developer` counts as `system`).
fn conversation(messages: &[InMessage]) -> Result<Vec<ChatMessage>, OpenAiError> {
    messages
        .iter()
        .map(|message| {
            if is_set(&message.tool_calls) || matches!(message.role.as_str(), "tool" | "function") {
                return Err(OpenAiError::unsupported("messages", "Tool calling"));
            }
            let role = match message.role.as_str() {
                "developer" => "system",
                other => other,
            };
            Ok(ChatMessage::new(role, message_text(message)?))
        })
        .collect()
}

/// Earlier turns the application layer takes with a question: each user message with the
/// assistant message after it (if any), oldest first, the last [`MAX_HISTORY`]; `system`
/// messages, and assistant messages no question precedes, are left out.
fn history(earlier: &[ChatMessage]) -> Vec<HistoryTurn> {
    let mut turns = Vec::new();
    let mut question: Option<String> = None;
    for message in earlier {
        match message.role.as_str() {
            "user" => {
                if let Some(unanswered) = question.replace(message.content.clone()) {
                    turns.push((unanswered, String::new()));
                }
            }
            "assistant" => {
                if let Some(asked) = question.take() {
                    turns.push((asked, message.content.clone()));
                }
            }
            _ => {}
        }
    }
    turns.extend(question.map(|unanswered| (unanswered, String::new())));
    turns.retain(|(question, _)| !question.trim().is_empty());
    let skip = turns.len().saturating_sub(MAX_HISTORY);
    turns
        .into_iter()
        .skip(skip)
        .map(|(question, answer)| HistoryTurn { question, answer })
        .collect()
}

/// Earlier turns passed on (the most `AskRequest::history` takes; the application layer puts
/// the last 3 into the prompt).
const MAX_HISTORY: usize = 20;

/// What a chat model does.
enum Job {
    /// A grounded answer (`vellum:all` or `vellum:<collection>`).
    Grounded {
        request: AskRequest,
        generation: GenerationParams,
    },
    /// The generation model alone.
    Plain {
        messages: Vec<ChatMessage>,
        generation: GenerationParams,
    },
}

/// Decodes the request into the job its model names.
fn job(service: &Service, request: &ChatRequest) -> Result<Job, OpenAiError> {
    refuse_unsupported(request)?;
    let (generation, max_tokens) = sampling(request)?;
    let messages = conversation(&request.messages)?;
    let model = request.model.as_str();
    let collection = if model == ALL_MODEL {
        Some(None)
    } else {
        model
            .strip_prefix(COLLECTION_MODEL_PREFIX)
            .filter(|name| !name.trim().is_empty())
            .map(|name| Some(name.to_string()))
    };
    if let Some(collection) = collection {
        // The last user message is the question; the user/assistant pairs before it are the
        // conversation's earlier turns, as the web app's conversations send them.
        let (question, earlier) = match messages.split_last() {
            Some((last, earlier)) if last.role == "user" => (last.content.clone(), earlier),
            _ => {
                return Err(OpenAiError::invalid(
                    "messages",
                    "the last message must be the user's question",
                ))
            }
        };
        return Ok(Job::Grounded {
            request: AskRequest {
                question,
                collections: collection.map(|name| vec![name]),
                max_tokens: Some(max_tokens),
                history: history(earlier),
                ..AskRequest::default()
            },
            generation,
        });
    }
    if service.generation_model_name().as_deref() == Some(model) {
        return Ok(Job::Plain {
            messages,
            generation,
        });
    }
    if model == EMBEDDING_MODEL {
        return Err(OpenAiError::invalid(
            "model",
            format!(
                "{EMBEDDING_MODEL} is an embedding model: use POST {PREFIX}/embeddings, or chat \
                 with {ALL_MODEL} or vellum:<collection>"
            ),
        ));
    }
    Err(OpenAiError::model_not_found(model))
}

/// What the worker sends the response, in order: sources (grounded answers, before the first
/// token), tokens, then the end or a failure.
enum Piece {
    Sources(Vec<SourceView>),
    Token(String),
    Done(Finish),
    Failed(ServiceError),
}

/// The end of an answer.
struct Finish {
    /// The whole answer (grounded: with markers that point to no source removed).
    text: String,
    finish_reason: &'static str,
    prompt_tokens: usize,
    completion_tokens: usize,
    /// Source numbers the answer cites (grounded answers).
    cited: Vec<usize>,
    grounded: bool,
}

fn finish_reason(stop: Option<vellum_app::openai::StopReason>) -> &'static str {
    match stop {
        Some(vellum_app::openai::StopReason::MaxTokens) => "length",
        _ => "stop",
    }
}

/// Runs the job on this (blocking) thread, sending its pieces as they come.
fn run(
    service: &Service,
    caller: &Caller,
    job: Job,
    cancel: &CancelFlag,
    send: &mut dyn FnMut(Piece),
) -> Result<Finish, ServiceError> {
    match job {
        Job::Grounded {
            request,
            generation,
        } => {
            let mut view = None;
            let answer = service.ask_in_collections(
                caller,
                &request,
                &generation,
                cancel,
                &mut |event| match event {
                    AskEvent::Sources(sources) => send(Piece::Sources(sources)),
                    // The model's draft is not the answer: only its sentences that the sources
                    // support are, with the quoted lead sentences; the whole answer is sent
                    // at the end.
                    AskEvent::Token(_) => {}
                    AskEvent::Answer(answer) => view = Some(*answer),
                },
            )?;
            let generation = answer.generation.as_ref();
            Ok(Finish {
                text: view.map_or_else(|| answer.text.clone(), |view| view.text),
                finish_reason: finish_reason(generation.map(|g| g.stop_reason)),
                prompt_tokens: generation.map_or(0, |g| g.num_prompt_tokens),
                completion_tokens: generation.map_or(0, |g| g.num_generated_tokens),
                cited: answer.cited.clone(),
                grounded: true,
            })
        }
        Job::Plain {
            messages,
            mut generation,
        } => {
            generation.cancel = cancel.clone();
            let result = service.chat(caller, &messages, &generation, &mut |token| {
                send(Piece::Token(token.to_string()))
            })?;
            Ok(Finish {
                text: result.text,
                finish_reason: finish_reason(Some(result.stop_reason)),
                prompt_tokens: result.num_prompt_tokens,
                completion_tokens: result.num_generated_tokens,
                cited: Vec::new(),
                grounded: false,
            })
        }
    }
}

/// The host the client reached us by, for links into the web app: the `Host` header (or the
/// HTTP/2 authority) if it looks like a host name, else `localhost`.
fn public_host(request: &HttpRequest) -> String {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_string()));
    match host {
        Some(host)
            if (1..=255).contains(&host.len())
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) =>
        {
            host
        }
        _ => "localhost".to_string(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The web app's page of a source: `https://HOST/#/document/ID?page=P&chunk=C`.
fn source_url(host: &str, source: &SourceView) -> String {
    format!(
        "https://{host}/#/document/{}?page={}&chunk={}",
        encode_component(&source.document_id),
        source.page,
        encode_component(&source.chunk_id)
    )
}

fn source_title(source: &SourceView) -> String {
    let title = if source.title.trim().is_empty() {
        source.document_id.as_str()
    } else {
        source.title.as_str()
    };
    format!("{title} (p. {})", source.page)
}

/// The documented extra field: every source given to the model, cited or not.
fn vellum_sources(host: &str, sources: &[SourceView], cited: Option<&[usize]>) -> Value {
    Value::Array(
        sources
            .iter()
            .map(|source| {
                let mut item = json!({
                    "n": source.n,
                    "document_id": source.document_id,
                    "title": source.title,
                    "page": source.page,
                    "chunk_id": source.chunk_id,
                    "quote": source.text,
                    "content_sha256": source.content_sha256,
                    "score": source.score,
                    "url": source_url(host, source),
                });
                if let (Some(cited), Some(object)) = (cited, item.as_object_mut()) {
                    object.insert("cited".into(), cited.contains(&source.n).into());
                }
                item
            })
            .collect(),
    )
}

fn annotation(host: &str, source: &SourceView, start: usize, end: usize) -> Value {
    json!({
        "type": "url_citation",
        "url_citation": {
            "url": source_url(host, source),
            "title": source_title(source),
            "start_index": start,
            "end_index": end,
        }
    })
}

/// The citation markers of a text: `[n]` or `[n, m, ...]`, as (first character, one past the
/// last, numbers), counted in Unicode code points (Python's string indices).
fn citation_markers(text: &str) -> Vec<(usize, usize, Vec<usize>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut markers = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        if chars[at] != '[' {
            at += 1;
            continue;
        }
        let mut pos = at + 1;
        let mut numbers = Vec::new();
        let parsed = loop {
            while pos < chars.len() && chars[pos].is_whitespace() {
                pos += 1;
            }
            let digits_start = pos;
            while pos < chars.len() && chars[pos].is_ascii_digit() {
                pos += 1;
            }
            let digits: String = chars[digits_start..pos].iter().collect();
            if digits.is_empty() || digits.len() > 4 {
                break false;
            }
            numbers.push(digits.parse::<usize>().unwrap_or(0));
            while pos < chars.len() && chars[pos].is_whitespace() {
                pos += 1;
            }
            match chars.get(pos) {
                Some(',') => pos += 1,
                Some(']') => break true,
                _ => break false,
            }
        };
        if parsed {
            markers.push((at, pos + 1, numbers));
            at = pos + 1;
        } else {
            at += 1;
        }
    }
    markers
}

/// The sources as `url_citation`s: one per valid source number of each marker in `text`,
/// spanning the marker, then one for every source the text never cites, not placed (start =
/// end = 0). Every source given to the model is there, cited or not.
fn placed_annotations(host: &str, text: &str, sources: &[SourceView]) -> Vec<Value> {
    let mut cited = Vec::new();
    let mut annotations: Vec<Value> = citation_markers(text)
        .into_iter()
        .flat_map(|(start, end, numbers)| {
            numbers
                .into_iter()
                .filter_map(|n| sources.iter().find(|source| source.n == n))
                .map(|source| (source, start, end))
                .collect::<Vec<_>>()
        })
        .map(|(source, start, end)| {
            cited.push(source.n);
            annotation(host, source, start, end)
        })
        .collect();
    annotations.extend(
        sources
            .iter()
            .filter(|source| !cited.contains(&source.n))
            .map(|source| annotation(host, source, 0, 0)),
    );
    annotations
}

/// Every source as a `url_citation` not yet placed in the text (start = end = 0): the first
/// chunk of a stream, before the answer is written.
fn unplaced_annotations(host: &str, sources: &[SourceView]) -> Vec<Value> {
    sources
        .iter()
        .map(|source| annotation(host, source, 0, 0))
        .collect()
}

fn usage(finish: &Finish) -> Value {
    json!({
        "prompt_tokens": finish.prompt_tokens,
        "completion_tokens": finish.completion_tokens,
        "total_tokens": finish.prompt_tokens + finish.completion_tokens,
    })
}

/// `POST /openai/v1/chat/completions`.
pub(super) async fn chat_completions(
    service: Shared,
    request: HttpRequest,
    authenticated: Result<Authenticated, ApiError>,
    body: Result<Bytes, actix_web::Error>,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller(authenticated)?;
    let body: ChatRequest = parse(body)?;
    let model = body.model.clone();
    let job = job(&service, &body)?;
    let host = public_host(&request);
    let header = Header {
        id: completion_id(),
        created: unix_now(),
        model: model.clone(),
    };
    if body.stream == Some(true) {
        let include_usage = body
            .stream_options
            .as_ref()
            .and_then(|options| options.include_usage)
            .unwrap_or(false);
        return stream(service, caller, job, header, host, include_usage).await;
    }
    let flag = CancelFlag::new();
    let mut cancel = CancelOnDrop(Some(flag.clone()));
    let outcome = blocking(move || {
        let mut sources = Vec::new();
        let finish = run(&service, &caller, job, &flag, &mut |piece| {
            if let Piece::Sources(given) = piece {
                sources = given;
            }
        })?;
        Ok((sources, finish))
    })
    .await;
    cancel.0 = None;
    let (sources, finish) = outcome.map_err(|err| err.with_model(&model))?;
    let mut message = json!({
        "role": "assistant",
        "content": finish.text,
        "refusal": null,
        "annotations": placed_annotations(&host, &finish.text, &sources),
    });
    if finish.grounded {
        if let Some(object) = message.as_object_mut() {
            object.insert(
                "vellum_sources".into(),
                vellum_sources(&host, &sources, Some(&finish.cited)),
            );
        }
    }
    Ok(HttpResponse::Ok().json(json!({
        "id": header.id,
        "object": "chat.completion",
        "created": header.created,
        "model": header.model,
        "system_fingerprint": null,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish.finish_reason,
        }],
        "usage": usage(&finish),
    })))
}

/// Raises its flag when dropped: a handler future dropped before it finished (the client went
/// away) stops the model at its next token.
struct CancelOnDrop(Option<CancelFlag>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.cancel();
        }
    }
}

/// What every chunk of one completion repeats.
struct Header {
    id: String,
    created: u64,
    model: String,
}

/// Turns the worker's pieces into `data: {chunk}` lines.
struct Chunker {
    header: Header,
    host: String,
    include_usage: bool,
    sources: Vec<SourceView>,
    /// The text sent so far: the last chunk's annotations point into it.
    streamed: String,
    started: bool,
    finished: bool,
}

impl Chunker {
    fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> Bytes {
        data(&json!({
            "id": self.header.id,
            "object": "chat.completion.chunk",
            "created": self.header.created,
            "model": self.header.model,
            "system_fingerprint": null,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        }))
    }

    /// A delta that opens with the role if nothing was sent yet.
    fn delta(&mut self, mut fields: Value) -> Value {
        if !self.started {
            self.started = true;
            if let Some(object) = fields.as_object_mut() {
                object.insert("role".into(), "assistant".into());
            }
        }
        fields
    }

    fn frames(&mut self, piece: Piece) -> Bytes {
        match piece {
            Piece::Sources(sources) => {
                self.sources = sources;
                let delta = self.delta(json!({
                    "content": "",
                    "annotations": unplaced_annotations(&self.host, &self.sources),
                    "vellum_sources": vellum_sources(&self.host, &self.sources, None),
                }));
                self.chunk(delta, None)
            }
            Piece::Token(text) => {
                self.streamed.push_str(&text);
                let delta = self.delta(json!({ "content": text }));
                self.chunk(delta, None)
            }
            Piece::Done(finish) => {
                self.finished = true;
                let mut out = Vec::new();
                if self.streamed.is_empty() && !finish.text.is_empty() {
                    // A grounded answer (checked against its sources) or nothing generated (no
                    // relevant sources): the whole answer in one piece.
                    self.streamed = finish.text.clone();
                    let delta = self.delta(json!({ "content": finish.text }));
                    out.extend_from_slice(&self.chunk(delta, None));
                }
                let last = if finish.grounded {
                    json!({
                        "annotations":
                            placed_annotations(&self.host, &self.streamed, &self.sources),
                        "vellum_sources":
                            vellum_sources(&self.host, &self.sources, Some(&finish.cited)),
                    })
                } else {
                    json!({})
                };
                let last = self.delta(last);
                out.extend_from_slice(&self.chunk(last, Some(finish.finish_reason)));
                if self.include_usage {
                    out.extend_from_slice(&data(&json!({
                        "id": self.header.id,
                        "object": "chat.completion.chunk",
                        "created": self.header.created,
                        "model": self.header.model,
                        "system_fingerprint": null,
                        "choices": [],
                        "usage": usage(&finish),
                    })));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                Bytes::from(out)
            }
            Piece::Failed(err) => {
                // After the first chunk the status is sent: the failure travels as an `error`
                // object, which the openai client raises as an APIError.
                self.finished = true;
                data(&OpenAiError::from(err).body())
            }
        }
    }
}

fn data(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// A streamed completion: the worker runs on the blocking pool and sends pieces through a
/// channel; failures before the first piece keep their own status code.
async fn stream(
    service: Shared,
    caller: Caller,
    job: Job,
    header: Header,
    host: String,
    include_usage: bool,
) -> Result<HttpResponse, OpenAiError> {
    let model = header.model.clone();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let worker = service.into_inner();
    actix_web::rt::task::spawn_blocking(move || {
        let pieces = sender.clone();
        let cancel = CancelFlag::new();
        let result = run(&worker, &caller, job, &cancel, &mut |piece| {
            // The receiver is dropped when the client goes away: stop the model.
            if pieces.send(piece).is_err() {
                cancel.cancel();
            }
        });
        let _ = sender.send(match result {
            Ok(finish) => Piece::Done(finish),
            Err(err) => Piece::Failed(err),
        });
    });
    let first = receiver.recv().await.ok_or_else(|| {
        OpenAiError::from(ServiceError::Internal(
            "chat completion ended without a result".into(),
        ))
    })?;
    if let Piece::Failed(err) = first {
        return Err(OpenAiError::from(err).with_model(&model));
    }
    let mut chunker = Chunker {
        header,
        host,
        include_usage,
        sources: Vec::new(),
        streamed: String::new(),
        started: false,
        finished: false,
    };
    let opening = chunker.frames(first);
    let rest = futures::stream::unfold(
        (receiver, chunker),
        |(mut receiver, mut chunker)| async move {
            if chunker.finished {
                return None;
            }
            let piece = receiver.recv().await?;
            let bytes = chunker.frames(piece);
            Some((Ok::<_, Infallible>(bytes), (receiver, chunker)))
        },
    );
    let body = futures::stream::once(async move { Ok::<_, Infallible>(opening) }).chain(rest);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: usize) -> SourceView {
        SourceView {
            n,
            document_id: format!("doc{n}"),
            title: format!("Contract {n}"),
            page: 3,
            chunk_id: format!("doc{n}#7"),
            text: "quoted".into(),
            content_sha256: String::new(),
            score: 0.5,
        }
    }

    #[test]
    fn markers_are_found_in_code_points() {
        let text = "Ünï term [1]. Both [2, 3] and [x] and [12345].";
        let markers = citation_markers(text);
        assert_eq!(
            markers,
            vec![(9, 12, vec![1]), (19, 25, vec![2, 3])],
            "{text}"
        );
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[9..12].iter().collect::<String>(), "[1]");
    }

    #[test]
    fn annotations_point_at_valid_markers_and_list_every_source() {
        let placed = placed_annotations(
            "vellum.example:8443",
            "A [1]. B [2, 9]. C [9].",
            &[source(1), source(2), source(3)],
        );
        assert_eq!(placed.len(), 3);
        // Never cited: listed, not placed.
        assert_eq!(placed[2]["url_citation"]["title"], "Contract 3 (p. 3)");
        assert_eq!(placed[2]["url_citation"]["end_index"], 0);
        assert_eq!(placed[0]["url_citation"]["start_index"], 2);
        assert_eq!(placed[0]["url_citation"]["end_index"], 5);
        assert_eq!(
            placed[1]["url_citation"]["url"],
            "https://vellum.example:8443/#/document/doc2?page=3&chunk=doc2%237"
        );
        assert_eq!(placed[1]["url_citation"]["title"], "Contract 2 (p. 3)");
    }

    #[test]
    fn earlier_messages_become_history_turns() {
        let messages = [
            ChatMessage::system("Be brief."),
            ChatMessage::assistant("Hello! Ask me about your matters."),
            ChatMessage::user("Who are the parties?"),
            ChatMessage::assistant("Acme and Beta [1]."),
            ChatMessage::user("  "),
            ChatMessage::user("And the term?"),
        ];
        let turns = history(&messages);
        let pairs: Vec<(&str, &str)> = turns
            .iter()
            .map(|turn| (turn.question.as_str(), turn.answer.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("Who are the parties?", "Acme and Beta [1]."),
                ("And the term?", "")
            ]
        );
        let long: Vec<ChatMessage> = (0..30)
            .flat_map(|i| {
                [
                    ChatMessage::user(format!("q{i}")),
                    ChatMessage::assistant("a"),
                ]
            })
            .collect();
        let turns = history(&long);
        assert_eq!(turns.len(), MAX_HISTORY);
        assert_eq!(turns[0].question, "q10");
    }
}
