//! `POST embeddings`: Vellum's embedder, float or base64.

use super::*;

#[derive(Debug, Deserialize)]
struct EmbeddingsRequest {
    model: String,
    input: EmbeddingInput,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum EmbeddingInput {
    One(String),
    Many(Vec<String>),
    Other(serde::de::IgnoredAny),
}

/// Standard base64 (with padding) of little-endian float32s: `encoding_format: "base64"`,
/// which the `openai` Python client asks for by default.
fn base64_floats(vector: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= group.len() {
                out.push(ALPHABET[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `POST /openai/v1/embeddings`.
pub(super) async fn embeddings(
    service: Shared,
    authenticated: Result<Authenticated, ApiError>,
    body: Result<Bytes, actix_web::Error>,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller(authenticated)?;
    let body: EmbeddingsRequest = parse(body)?;
    if body.model != EMBEDDING_MODEL {
        return Err(OpenAiError::model_not_found(&body.model));
    }
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(OpenAiError::invalid(
                "encoding_format",
                format!("encoding_format {other:?} is not supported: use float or base64"),
            ))
        }
    };
    let inputs = match body.input {
        EmbeddingInput::One(text) => vec![text],
        EmbeddingInput::Many(texts) => texts,
        EmbeddingInput::Other(_) => {
            return Err(OpenAiError::invalid(
                "input",
                "input must be a string or a list of strings (token arrays are not supported)",
            ))
        }
    };
    let embedded = blocking(move || service.embed(&caller, &inputs))
        .await
        .map_err(|err| err.with_model(EMBEDDING_MODEL))?;
    if let Some(dimensions) = body.dimensions {
        let dim = embedded.vectors.first().map_or(0, Vec::len);
        if dimensions as usize != dim {
            return Err(OpenAiError::invalid(
                "dimensions",
                format!("{EMBEDDING_MODEL} gives {dim} dimensions; it cannot shorten them"),
            ));
        }
    }
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                Value::from(base64_floats(vector))
            } else {
                Value::from(vector.clone())
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "object": "list",
        "data": data,
        "model": EMBEDDING_MODEL,
        "usage": {"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens},
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        // 1.0f32 = 00 00 80 3F; 2.0f32 = 00 00 00 40.
        assert_eq!(base64_floats(&[1.0]), "AACAPw==");
        assert_eq!(base64_floats(&[1.0, 2.0]), "AACAPwAAAEA=");
        assert_eq!(base64_floats(&[]), "");
    }
}
