//! `GET models`: what the caller may use, as OpenAI model objects.

use super::*;

/// When this process started: the `created` of every model it lists.
fn started() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(unix_now)
}

/// The ids of the models in a catalog, in the order they are listed.
fn model_ids(catalog: &ModelCatalog) -> Vec<String> {
    let mut ids = vec![ALL_MODEL.to_string()];
    ids.extend(
        catalog
            .collections
            .iter()
            .map(|collection| format!("{COLLECTION_MODEL_PREFIX}{collection}")),
    );
    ids.extend(catalog.plain_chat.clone());
    if catalog.embeddings {
        ids.push(EMBEDDING_MODEL.to_string());
    }
    ids
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": started(), "owned_by": "vellum"})
}

/// `GET /openai/v1/models`: the models the caller may use.
pub(super) async fn list_models(
    service: Shared,
    authenticated: Result<Authenticated, ApiError>,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller(authenticated)?;
    let catalog = blocking(move || service.models(&caller)).await?;
    let data: Vec<Value> = model_ids(&catalog)
        .iter()
        .map(|id| model_object(id))
        .collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// `GET /openai/v1/models/{model}`: one of them, or 404.
pub(super) async fn get_model(
    service: Shared,
    authenticated: Result<Authenticated, ApiError>,
    model: web::Path<String>,
) -> Result<HttpResponse, OpenAiError> {
    let caller = caller(authenticated)?;
    let model = model.into_inner();
    let catalog = blocking(move || service.models(&caller)).await?;
    if model_ids(&catalog).contains(&model) {
        Ok(HttpResponse::Ok().json(model_object(&model)))
    } else {
        Err(OpenAiError::model_not_found(&model))
    }
}
