//! The generator's tokenizer, rebuilt from a GGUF file's `tokenizer.ggml.*` metadata (no
//! `tokenizer.json` needed), following llama.cpp's rules so that prompts tokenize the way the
//! model was converted to expect.
//!
//! Two vocabulary kinds are supported:
//! - `gpt2`: byte-level BPE (SmolLM2, Llama 3, Qwen2). Plain text goes through a
//!   `tokenizers::Tokenizer` built from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, with
//!   the pre-tokenizer regex llama.cpp uses for `tokenizer.ggml.pre`.
//! - `llama`: SentencePiece with scores and byte fallback (Llama 2, Mistral, Phi-3), a port of
//!   llama.cpp's `llm_tokenizer_spm` (tokenizers has no score-driven BPE).
//!
//! Control and user-defined tokens (`<|im_start|>`, `<|eot_id|>`) are matched as whole tokens
//! before the text is split, as llama.cpp does with `parse_special = true`. Message contents can be
//! escaped with [`GgufTokenizer::escape_special_text`] so that text a user or a document supplies
//! can never become a control token (prompt injection through `<|im_start|>system`).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use candle_core::quantized::gguf_file::Value;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::Split;
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer};

/// Marks, inside text to be tokenized, that the special-token text right after it is plain text.
/// A Unicode noncharacter: it never occurs in interchanged text, and it is removed from the text
/// before tokenization (and from message contents before escaping).
const ESCAPE_MARK: char = '\u{FDD0}';

/// llama.cpp's `tokenizer.ggml.token_type` values.
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
const TOKEN_TYPE_BYTE: i32 = 6;

/// Token texts llama.cpp treats as end of generation, and as control tokens, whatever type the
/// file gives them (`llama-vocab.cpp`).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<｜end▁of▁sentence｜>",
];

/// llama.cpp's regex for `tokenizer.ggml.pre` = `llama-bpe` (Llama 3).
const LLAMA3_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// llama.cpp's regex for `tokenizer.ggml.pre` = `qwen2`.
const QWEN2_PATTERN: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A piece of a prompt: text to tokenize, or a special token matched whole.
#[derive(Debug, PartialEq)]
enum Fragment {
    Text(String),
    Token(u32),
}

/// How plain text becomes token ids.
enum TextEncoder {
    /// Byte-level BPE; `tokenizers` holds no added tokens (special tokens are split off first).
    BytePairs(Box<Tokenizer>),
    /// SentencePiece with scores, llama.cpp style.
    SentencePiece(SentencePiece),
}

struct SentencePiece {
    token_ids: HashMap<String, u32>,
    scores: Vec<f32>,
    byte_token_ids: Vec<Option<u32>>,
    unknown_token_id: Option<u32>,
    add_space_prefix: bool,
}

/// Tokenizer and detokenizer of one GGUF model.
pub(crate) struct GgufTokenizer {
    encoder: TextEncoder,
    /// The bytes each token id decodes to; empty for control tokens.
    token_bytes: Vec<Vec<u8>>,
    token_texts: Vec<String>,
    /// Special tokens matched whole in prompts, by first byte, longest first.
    special_tokens_by_first_byte: HashMap<u8, Vec<(String, u32)>>,
    end_of_generation_ids: HashSet<u32>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<u32>,
    add_bos_token: bool,
}

impl GgufTokenizer {
    /// Builds the tokenizer from GGUF metadata; the error is the reason, for `Error::ModelFile`.
    pub(crate) fn from_metadata(
        metadata: &HashMap<String, Value>,
    ) -> std::result::Result<Self, String> {
        let model_kind = metadata_string(metadata, "tokenizer.ggml.model")
            .ok_or("no tokenizer.ggml.model in the metadata")?;
        let token_texts = metadata_strings(metadata, "tokenizer.ggml.tokens")?;
        if token_texts.is_empty() {
            return Err("tokenizer.ggml.tokens is empty".to_string());
        }
        if u32::try_from(token_texts.len()).is_err() {
            return Err("tokenizer.ggml.tokens has more than 2^32 entries".to_string());
        }
        let token_types = match metadata.get("tokenizer.ggml.token_type") {
            Some(value) => {
                let types = value
                    .to_vec()
                    .map_err(|_| "tokenizer.ggml.token_type is not an array".to_string())?
                    .iter()
                    .map(|value| value.to_i32().or_else(|_| value.to_u32().map(|v| v as i32)))
                    .collect::<candle_core::Result<Vec<i32>>>()
                    .map_err(|_| "tokenizer.ggml.token_type holds non-integers".to_string())?;
                if types.len() != token_texts.len() {
                    return Err(format!(
                        "tokenizer.ggml.token_type has {} entries for {} tokens",
                        types.len(),
                        token_texts.len()
                    ));
                }
                types
            }
            None => vec![1; token_texts.len()],
        };
        let token_id = |key: &str| -> std::result::Result<Option<u32>, String> {
            match metadata.get(key) {
                None => Ok(None),
                Some(value) => {
                    let id = value
                        .to_u32()
                        .or_else(|_| value.to_i32().map(|v| v as u32))
                        .map_err(|_| format!("{key} is not an integer"))?;
                    // Some converters write -1 (u32::MAX) for "none".
                    Ok(((id as usize) < token_texts.len()).then_some(id))
                }
            }
        };
        let bos_token_id = token_id("tokenizer.ggml.bos_token_id")?;
        let eos_token_id = token_id("tokenizer.ggml.eos_token_id")?;
        let unknown_token_id = token_id("tokenizer.ggml.unknown_token_id")?;

        let (encoder, token_bytes, default_add_bos) = match model_kind {
            "gpt2" => {
                let pre = metadata_string(metadata, "tokenizer.ggml.pre").unwrap_or("default");
                let merges = metadata_strings(metadata, "tokenizer.ggml.merges")?;
                let tokenizer = byte_pair_tokenizer(&token_texts, &merges, pre)?;
                let byte_of_char = byte_level_char_to_byte();
                let token_bytes = token_texts
                    .iter()
                    .zip(&token_types)
                    .map(|(text, &token_type)| match token_type {
                        TOKEN_TYPE_CONTROL => Vec::new(),
                        // llama.cpp outputs user-defined tokens as written, not byte-level decoded.
                        TOKEN_TYPE_USER_DEFINED => text.as_bytes().to_vec(),
                        _ => byte_level_decode(text, &byte_of_char),
                    })
                    .collect();
                let add_bos_default = is_llama3_pre(pre);
                (
                    TextEncoder::BytePairs(Box::new(tokenizer)),
                    token_bytes,
                    add_bos_default,
                )
            }
            "llama" => {
                let scores = match metadata.get("tokenizer.ggml.scores") {
                    Some(value) => value
                        .to_vec()
                        .map_err(|_| "tokenizer.ggml.scores is not an array".to_string())?
                        .iter()
                        .map(|value| value.to_f32())
                        .collect::<candle_core::Result<Vec<f32>>>()
                        .map_err(|_| "tokenizer.ggml.scores holds non-floats".to_string())?,
                    None => vec![0.0; token_texts.len()],
                };
                let add_space_prefix = metadata
                    .get("tokenizer.ggml.add_space_prefix")
                    .and_then(|value| value.to_bool().ok())
                    .unwrap_or(true);
                let mut byte_token_ids = vec![None; 256];
                let mut token_bytes = Vec::with_capacity(token_texts.len());
                for (idx, (text, &token_type)) in token_texts.iter().zip(&token_types).enumerate() {
                    let bytes = match token_type {
                        TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => Vec::new(),
                        TOKEN_TYPE_BYTE => match parse_byte_token(text) {
                            Some(byte) => {
                                if let Some(slot) = byte_token_ids.get_mut(usize::from(byte)) {
                                    *slot = Some(idx as u32);
                                }
                                vec![byte]
                            }
                            None => text.as_bytes().to_vec(),
                        },
                        _ => text.replace('\u{2581}', " ").into_bytes(),
                    };
                    token_bytes.push(bytes);
                }
                let token_ids = token_texts
                    .iter()
                    .enumerate()
                    .map(|(idx, text)| (text.clone(), idx as u32))
                    .collect();
                let encoder = TextEncoder::SentencePiece(SentencePiece {
                    token_ids,
                    scores,
                    byte_token_ids,
                    unknown_token_id,
                    add_space_prefix,
                });
                (encoder, token_bytes, true)
            }
            other => {
                return Err(format!(
                    "unsupported tokenizer.ggml.model {other:?} (supported: gpt2, llama)"
                ))
            }
        };
        let add_bos_token = metadata
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|value| value.to_bool().ok())
            .unwrap_or(default_add_bos)
            && bos_token_id.is_some();

        let mut special_tokens_by_first_byte: HashMap<u8, Vec<(String, u32)>> = HashMap::new();
        let mut end_of_generation_ids = HashSet::new();
        for (idx, (text, &token_type)) in token_texts.iter().zip(&token_types).enumerate() {
            let id = idx as u32;
            let is_end_text = END_OF_GENERATION_TEXTS.contains(&text.as_str());
            let is_special =
                is_end_text || matches!(token_type, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED);
            if is_special {
                if let Some(&first_byte) = text.as_bytes().first() {
                    special_tokens_by_first_byte
                        .entry(first_byte)
                        .or_default()
                        .push((text.clone(), id));
                }
            }
            // Any control token other than BOS ends the answer: the model has left the text of its
            // turn (`<|im_end|>`, `<|eot_id|>`, `<|endoftext|>`, or a header of a new turn).
            let is_control_end = token_type == TOKEN_TYPE_CONTROL && Some(id) != bos_token_id;
            if is_control_end || is_end_text {
                end_of_generation_ids.insert(id);
            }
        }
        for tokens in special_tokens_by_first_byte.values_mut() {
            tokens.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        }
        for key in [
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
            "tokenizer.ggml.eom_token_id",
        ] {
            if let Some(id) = token_id(key)? {
                end_of_generation_ids.insert(id);
            }
        }

        Ok(GgufTokenizer {
            encoder,
            token_bytes,
            token_texts,
            special_tokens_by_first_byte,
            end_of_generation_ids,
            bos_token_id,
            eos_token_id,
            add_bos_token,
        })
    }

    /// Returns the number of tokens in the vocabulary.
    pub(crate) fn vocab_size(&self) -> usize {
        self.token_texts.len()
    }

    /// Returns the text of the BOS token, for chat templates (`bos_token`).
    pub(crate) fn bos_text(&self) -> &str {
        self.token_text(self.bos_token_id)
    }

    /// Returns the text of the EOS token, for chat templates (`eos_token`).
    pub(crate) fn eos_text(&self) -> &str {
        self.token_text(self.eos_token_id)
    }

    fn token_text(&self, id: Option<u32>) -> &str {
        id.and_then(|id| self.token_texts.get(id as usize))
            .map_or("", String::as_str)
    }

    /// Returns whether sampling `id` ends the generation.
    pub(crate) fn is_end_of_generation(&self, id: u32) -> bool {
        self.end_of_generation_ids.contains(&id)
    }

    /// The tokens that end a generation.
    pub(crate) fn end_of_generation_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.end_of_generation_ids.iter().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Returns the bytes `id` stands for in generated text (empty for control tokens and
    /// out-of-vocabulary ids).
    pub(crate) fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Returns whether the decoder drops the space SentencePiece put in front of the first word.
    pub(crate) fn strips_leading_space(&self) -> bool {
        matches!(&self.encoder, TextEncoder::SentencePiece(spm) if spm.add_space_prefix)
    }

    /// Tokenizes a prompt the way llama.cpp does with `parse_special = true`: special-token text
    /// becomes that token (unless escaped), BOS is prepended when the model wants one and the
    /// prompt does not already start with it.
    pub(crate) fn encode_prompt(&self, prompt: &str) -> std::result::Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        let mut is_previous_special = true;
        for fragment in self.split_special(prompt) {
            match fragment {
                Fragment::Token(id) => {
                    ids.push(id);
                    is_previous_special = true;
                }
                Fragment::Text(text) => {
                    self.encode_text(&text, is_previous_special, &mut ids)?;
                    is_previous_special = false;
                }
            }
        }
        if self.add_bos_token {
            if let Some(bos) = self.bos_token_id {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// Tokenizes `text` as plain text: special-token text counts as ordinary characters, no BOS.
    pub(crate) fn encode_plain(&self, text: &str) -> std::result::Result<Vec<u32>, String> {
        let mut ids = Vec::new();
        let text: String = text.chars().filter(|&c| c != ESCAPE_MARK).collect();
        self.encode_text(&text, true, &mut ids)?;
        Ok(ids)
    }

    /// Returns `text` with every special-token text in it marked as plain text, for message
    /// contents placed in a chat template before [`Self::encode_prompt`].
    pub(crate) fn escape_special_text(&self, text: &str) -> String {
        let mut escaped = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(first) = rest.chars().next() {
            if first == ESCAPE_MARK {
                rest = &rest[first.len_utf8()..];
                continue;
            }
            if let Some((special_text, _)) = self.match_special(rest) {
                escaped.push(ESCAPE_MARK);
                escaped.push_str(special_text);
                rest = &rest[special_text.len()..];
            } else {
                escaped.push(first);
                rest = &rest[first.len_utf8()..];
            }
        }
        escaped
    }

    fn match_special<'t>(&'t self, text: &str) -> Option<(&'t str, u32)> {
        let first_byte = text.as_bytes().first()?;
        self.special_tokens_by_first_byte
            .get(first_byte)?
            .iter()
            .find(|(special_text, _)| text.starts_with(special_text.as_str()))
            .map(|(special_text, id)| (special_text.as_str(), *id))
    }

    fn split_special(&self, prompt: &str) -> Vec<Fragment> {
        let mut fragments = Vec::new();
        let mut text = String::new();
        let mut rest = prompt;
        let mut is_escaped = false;
        while let Some(first) = rest.chars().next() {
            if first == ESCAPE_MARK {
                is_escaped = true;
                rest = &rest[first.len_utf8()..];
                continue;
            }
            let special = if is_escaped {
                None
            } else {
                self.match_special(rest)
            };
            is_escaped = false;
            match special {
                Some((special_text, id)) => {
                    if !text.is_empty() {
                        fragments.push(Fragment::Text(std::mem::take(&mut text)));
                    }
                    fragments.push(Fragment::Token(id));
                    rest = &rest[special_text.len()..];
                }
                None => {
                    text.push(first);
                    rest = &rest[first.len_utf8()..];
                }
            }
        }
        if !text.is_empty() {
            fragments.push(Fragment::Text(text));
        }
        fragments
    }

    fn encode_text(
        &self,
        text: &str,
        is_after_special: bool,
        ids: &mut Vec<u32>,
    ) -> std::result::Result<(), String> {
        match &self.encoder {
            TextEncoder::BytePairs(tokenizer) => {
                let encoding = tokenizer
                    .encode(text, false)
                    .map_err(|err| format!("cannot tokenize: {err}"))?;
                ids.extend_from_slice(encoding.get_ids());
            }
            TextEncoder::SentencePiece(spm) => {
                // llama.cpp prefixes a space to text that starts the prompt or follows a special
                // token, then writes spaces as U+2581.
                let mut escaped = String::with_capacity(text.len() + 3);
                if spm.add_space_prefix && is_after_special {
                    escaped.push('\u{2581}');
                }
                escaped.extend(text.chars().map(|c| if c == ' ' { '\u{2581}' } else { c }));
                spm.encode(&escaped, ids);
            }
        }
        Ok(())
    }
}

/// Builds the byte-level BPE tokenizer for plain text (no added tokens).
fn byte_pair_tokenizer(
    token_texts: &[String],
    merges: &[String],
    pre: &str,
) -> std::result::Result<Tokenizer, String> {
    let vocab: Vocab = token_texts
        .iter()
        .enumerate()
        .map(|(idx, text)| (text.clone(), idx as u32))
        .collect();
    let merges = merges
        .iter()
        .map(|merge| {
            // llama.cpp splits at the first space after the first byte (a merge's left part is
            // never empty).
            let split_at = merge
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(idx, _)| idx)
                .ok_or_else(|| format!("merge {merge:?} has no space"))?;
            Ok((
                merge[..split_at].to_string(),
                merge[split_at + 1..].to_string(),
            ))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    // Llama 3 looks whole words up before merging (`ignore_merges` in its tokenizer.json).
    let ignore_merges = is_llama3_pre(pre);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|err| format!("invalid BPE vocabulary or merges: {err}"))?;

    // The pre-tokenizer regexes of llama.cpp's `llama_vocab::impl::load`, by `tokenizer.ggml.pre`.
    let byte_level_with_regex = || ByteLevel::new(false, false, true);
    let split_then_byte_level =
        |pattern: &str| -> std::result::Result<PreTokenizerWrapper, String> {
            let split = Split::new(
                tokenizers::pre_tokenizers::split::SplitPattern::Regex(pattern.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|err| format!("invalid pre-tokenizer regex: {err}"))?;
            Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Split(split),
                PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, false)),
            ])))
        };
    let pre_tokenizer = match pre {
        _ if is_llama3_pre(pre) => split_then_byte_level(LLAMA3_PATTERN)?,
        "dbrx" | "smaug-bpe" => split_then_byte_level(LLAMA3_PATTERN)?,
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "stablelm2" | "megrez" | "hunyuan" => {
            split_then_byte_level(QWEN2_PATTERN)?
        }
        // llama.cpp: `\p{N}` first (every digit its own word), then the GPT-2 regex.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => {
            PreTokenizerWrapper::Sequence(Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level_with_regex()),
            ]))
        }
        "gpt-2" | "gpt2" | "default" => PreTokenizerWrapper::ByteLevel(byte_level_with_regex()),
        other => {
            tracing::warn!(
                pre = other,
                "unknown tokenizer.ggml.pre, using the GPT-2 pre-tokenizer"
            );
            PreTokenizerWrapper::ByteLevel(byte_level_with_regex())
        }
    };
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    Ok(tokenizer)
}

/// Returns whether llama.cpp treats `tokenizer.ggml.pre` as Llama 3's pre-tokenizer (which also
/// means `ignore_merges` and, unless the file says otherwise, a BOS token).
fn is_llama3_pre(pre: &str) -> bool {
    matches!(
        pre,
        "llama3"
            | "llama-v3"
            | "llama-bpe"
            | "falcon3"
            | "falcon-h1"
            | "pixtral"
            | "midm-2.0"
            | "lfm2"
    )
}

/// GPT-2's `bytes_to_unicode` inverted: the byte each byte-level character stands for.
fn byte_level_char_to_byte() -> HashMap<char, u8> {
    let is_printable = |byte: u8| matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut next_unprintable = 0u32;
    for byte in 0..=255u8 {
        let c = if is_printable(byte) {
            char::from(byte)
        } else {
            let c = char::from_u32(256 + next_unprintable).unwrap_or(char::REPLACEMENT_CHARACTER);
            next_unprintable += 1;
            c
        };
        map.insert(c, byte);
    }
    map
}

/// Decodes a byte-level token text; characters outside the byte-level alphabet (only in malformed
/// vocabularies) are kept as their UTF-8 bytes.
fn byte_level_decode(text: &str, byte_of_char: &HashMap<char, u8>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        match byte_of_char.get(&c) {
            Some(&byte) => bytes.push(byte),
            None => {
                let mut buf = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    bytes
}

/// Parses SentencePiece's byte tokens, `<0x0A>`.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}

fn metadata_string<'m>(metadata: &'m HashMap<String, Value>, key: &str) -> Option<&'m str> {
    metadata
        .get(key)
        .and_then(|value| value.to_string().ok())
        .map(String::as_str)
}

fn metadata_strings(
    metadata: &HashMap<String, Value>,
    key: &str,
) -> std::result::Result<Vec<String>, String> {
    let values = metadata
        .get(key)
        .ok_or_else(|| format!("no {key} in the metadata"))?
        .to_vec()
        .map_err(|_| format!("{key} is not an array"))?;
    values
        .iter()
        .map(|value| value.to_string().cloned())
        .collect::<candle_core::Result<Vec<String>>>()
        .map_err(|_| format!("{key} holds non-strings"))
}

/// A candidate merge of two adjacent symbols, ordered like llama.cpp's `llm_bigram_spm`:
/// highest score first, then leftmost.
struct SymbolPair {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for SymbolPair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for SymbolPair {}
impl PartialOrd for SymbolPair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SymbolPair {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// A run of text in the SentencePiece merge loop; `len == 0` once merged into its left neighbour.
#[derive(Clone, Copy)]
struct Symbol {
    start: usize,
    len: usize,
    prev: Option<usize>,
    next: Option<usize>,
}

impl SentencePiece {
    /// Port of llama.cpp's `llm_tokenizer_spm_session::tokenize`: repeatedly merge the adjacent
    /// pair whose merged text is the highest-scoring token, then emit each symbol, falling back to
    /// byte tokens for text that is no token.
    fn encode(&self, text: &str, ids: &mut Vec<u32>) {
        let mut symbols: Vec<Symbol> = Vec::with_capacity(text.len());
        for (idx, (start, c)) in text.char_indices().enumerate() {
            symbols.push(Symbol {
                start,
                len: c.len_utf8(),
                prev: idx.checked_sub(1),
                next: Some(idx + 1),
            });
        }
        if let Some(last) = symbols.last_mut() {
            last.next = None;
        }
        let mut queue = BinaryHeap::new();
        for left in 1..symbols.len() {
            self.push_pair(text, &symbols, Some(left - 1), Some(left), &mut queue);
        }
        while let Some(pair) = queue.pop() {
            let (Some(&left), Some(&right)) = (symbols.get(pair.left), symbols.get(pair.right))
            else {
                continue;
            };
            // Stale: one side was merged since this pair was queued.
            if left.len == 0 || right.len == 0 || left.len + right.len != pair.size {
                continue;
            }
            if let Some(symbol) = symbols.get_mut(pair.left) {
                symbol.len += right.len;
                symbol.next = right.next;
            }
            if let Some(symbol) = symbols.get_mut(pair.right) {
                symbol.len = 0;
            }
            if let Some(next) = right.next.and_then(|next| symbols.get_mut(next)) {
                next.prev = Some(pair.left);
            }
            self.push_pair(text, &symbols, left.prev, Some(pair.left), &mut queue);
            self.push_pair(text, &symbols, Some(pair.left), right.next, &mut queue);
        }
        let mut cursor = if symbols.is_empty() { None } else { Some(0) };
        while let Some(idx) = cursor {
            let Some(symbol) = symbols.get(idx) else {
                break;
            };
            let piece = text
                .get(symbol.start..symbol.start + symbol.len)
                .unwrap_or("");
            match self.token_ids.get(piece) {
                Some(&id) => ids.push(id),
                None => {
                    for byte in piece.bytes() {
                        let byte_id = self
                            .byte_token_ids
                            .get(usize::from(byte))
                            .copied()
                            .flatten()
                            .or(self.unknown_token_id);
                        if let Some(id) = byte_id {
                            ids.push(id);
                        }
                    }
                }
            }
            cursor = symbol.next;
        }
    }

    fn push_pair(
        &self,
        text: &str,
        symbols: &[Symbol],
        left: Option<usize>,
        right: Option<usize>,
        queue: &mut BinaryHeap<SymbolPair>,
    ) {
        let (Some(left), Some(right)) = (left, right) else {
            return;
        };
        let (Some(left_symbol), Some(right_symbol)) = (symbols.get(left), symbols.get(right))
        else {
            return;
        };
        let end = right_symbol.start + right_symbol.len;
        let Some(merged) = text.get(left_symbol.start..end) else {
            return;
        };
        if let Some(&id) = self.token_ids.get(merged) {
            let score = self.scores.get(id as usize).copied().unwrap_or(0.0);
            queue.push(SymbolPair {
                score,
                left,
                right,
                size: merged.len(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Value {
        Value::Array(
            values
                .iter()
                .map(|v| Value::String(v.to_string()))
                .collect(),
        )
    }

    /// A tiny byte-level vocabulary: the 256 byte characters, "he", "ll", "hell", "hello",
    /// "Ġw", and three control tokens.
    fn tiny_gpt2_metadata() -> HashMap<String, Value> {
        let byte_of_char = byte_level_char_to_byte();
        let mut byte_chars: Vec<(u8, char)> = byte_of_char.iter().map(|(&c, &b)| (b, c)).collect();
        byte_chars.sort();
        let mut tokens = vec![
            "<|endoftext|>".to_string(),
            "<|im_start|>".to_string(),
            "<|im_end|>".to_string(),
        ];
        tokens.extend(byte_chars.iter().map(|(_, c)| c.to_string()));
        tokens.extend(["he", "ll", "hell", "hello", "Ġw"].map(String::from));
        let mut types = vec![Value::I32(3); 3];
        types.extend(std::iter::repeat_n(Value::I32(1), tokens.len() - 3));
        let token_refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        HashMap::from([
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("gpt2".into()),
            ),
            (
                "tokenizer.ggml.pre".to_string(),
                Value::String("smollm".into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), strings(&token_refs)),
            ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
            (
                "tokenizer.ggml.merges".to_string(),
                strings(&["h e", "l l", "he ll", "hell o", "Ġ w"]),
            ),
            ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
            ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
        ])
    }

    fn decode(tokenizer: &GgufTokenizer, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| tokenizer.token_bytes(id).to_vec())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn byte_level_alphabet_covers_every_byte_once() {
        let map = byte_level_char_to_byte();
        assert_eq!(map.len(), 256);
        let bytes: HashSet<u8> = map.values().copied().collect();
        assert_eq!(bytes.len(), 256);
        assert_eq!(map.get(&'Ġ'), Some(&b' '));
        assert_eq!(map.get(&'Ċ'), Some(&b'\n'));
        assert_eq!(map.get(&'a'), Some(&b'a'));
    }

    #[test]
    fn gpt2_vocabulary_merges_and_round_trips() -> std::result::Result<(), String> {
        let tokenizer = GgufTokenizer::from_metadata(&tiny_gpt2_metadata())?;
        let ids = tokenizer.encode_plain("hello world é")?;
        let hello = tokenizer.token_texts.iter().position(|t| t == "hello");
        assert_eq!(ids.first().map(|&id| id as usize), hello);
        assert_eq!(decode(&tokenizer, &ids), "hello world é");
        Ok(())
    }

    #[test]
    fn special_tokens_match_whole_unless_escaped() -> std::result::Result<(), String> {
        let tokenizer = GgufTokenizer::from_metadata(&tiny_gpt2_metadata())?;
        let ids = tokenizer.encode_prompt("<|im_start|>hello<|im_end|>")?;
        assert_eq!(ids.first(), Some(&1));
        assert_eq!(ids.last(), Some(&2));
        assert_eq!(ids.len(), 3);

        let escaped = tokenizer.escape_special_text("hello<|im_end|>");
        let ids = tokenizer.encode_prompt(&format!("<|im_start|>{escaped}"))?;
        assert_eq!(ids.first(), Some(&1));
        assert!(
            !ids[1..].contains(&2),
            "escaped <|im_end|> became a control token: {ids:?}"
        );
        assert_eq!(decode(&tokenizer, &ids[1..]), "hello<|im_end|>");
        Ok(())
    }

    #[test]
    fn control_tokens_end_generation_and_decode_to_nothing() -> std::result::Result<(), String> {
        let tokenizer = GgufTokenizer::from_metadata(&tiny_gpt2_metadata())?;
        assert!(tokenizer.is_end_of_generation(2));
        assert!(tokenizer.is_end_of_generation(0));
        assert!(
            !tokenizer.is_end_of_generation(1),
            "BOS does not end generation"
        );
        assert!(tokenizer.token_bytes(2).is_empty());
        assert!(tokenizer.token_bytes(u32::MAX).is_empty());
        assert_eq!(tokenizer.bos_text(), "<|im_start|>");
        assert_eq!(tokenizer.eos_text(), "<|im_end|>");
        Ok(())
    }

    #[test]
    fn sentencepiece_prefers_high_scores_and_falls_back_to_bytes() -> std::result::Result<(), String>
    {
        let mut tokens = vec!["<unk>", "<s>", "</s>"];
        let byte_tokens: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
        tokens.extend(byte_tokens.iter().map(String::as_str));
        tokens.extend(["▁", "a", "b", "▁a", "ab", "▁ab"]);
        let mut types = vec![Value::I32(2), Value::I32(3), Value::I32(3)];
        types.extend(std::iter::repeat_n(Value::I32(6), 256));
        types.extend(std::iter::repeat_n(Value::I32(1), 6));
        let mut scores = vec![Value::F32(0.0); 3 + 256];
        scores.extend([-1.0, -2.0, -2.0, -3.0, -1.5, -0.5].map(Value::F32));
        let metadata = HashMap::from([
            (
                "tokenizer.ggml.model".to_string(),
                Value::String("llama".into()),
            ),
            ("tokenizer.ggml.tokens".to_string(), strings(&tokens)),
            ("tokenizer.ggml.token_type".to_string(), Value::Array(types)),
            ("tokenizer.ggml.scores".to_string(), Value::Array(scores)),
            ("tokenizer.ggml.bos_token_id".to_string(), Value::U32(1)),
            ("tokenizer.ggml.eos_token_id".to_string(), Value::U32(2)),
            ("tokenizer.ggml.unknown_token_id".to_string(), Value::U32(0)),
        ]);
        let tokenizer = GgufTokenizer::from_metadata(&metadata)?;
        let id_of = |text: &str| tokens.iter().position(|t| *t == text).map(|id| id as u32);
        // "▁ab" via "ab" (score -1.5 beats "▁a" at -3), then "▁"+"ab" = "▁ab"; "é" is no token.
        let ids = tokenizer.encode_prompt("ab é")?;
        let expected: Vec<u32> = [
            id_of("<s>"),
            id_of("▁ab"),
            id_of("▁"),
            id_of("<0xC3>"),
            id_of("<0xA9>"),
        ]
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(ids, expected);
        assert_eq!(decode(&tokenizer, &ids), " ab é");
        assert!(tokenizer.strips_leading_space());
        Ok(())
    }

    #[test]
    fn unsupported_vocabulary_kind_is_an_error() {
        let mut metadata = tiny_gpt2_metadata();
        metadata.insert(
            "tokenizer.ggml.model".to_string(),
            Value::String("t5".into()),
        );
        let err = GgufTokenizer::from_metadata(&metadata)
            .err()
            .unwrap_or_default();
        assert!(err.contains("t5"), "{err}");
    }
}
