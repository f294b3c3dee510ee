//! The API's OpenAPI document, made from the handlers' `#[utoipa::path]`
//! annotations as the router is built, so every served route is documented.
//! It is served at `/api/v1/openapi.json` and checked in as
//! `docs/api/openapi.json`; a test fails when the two differ.

use std::sync::OnceLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

/// The document's fixed parts; the paths and schemas come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "flowgate server API",
        description = "The ledger of which build each flow runs in each environment, for every project of one \
                       ledger. Every route but the health check and this document needs an API token \
                       (`Authorization: Bearer fgt_...`) whose roles allow it.",
    ),
    modifiers(&ApiToken),
)]
pub struct ApiDoc;

/// The `api_token` security scheme the routes name.
struct ApiToken;

impl Modify for ApiToken {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("An API token made by `flowgate admin token create`"))
            .build();
        components.add_security_scheme("api_token", SecurityScheme::Http(scheme));
    }
}

/// The document as served and checked in: pretty JSON with a final newline.
pub fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let (_, document) = super::api_router().split_for_parts();
        let mut json = document.to_pretty_json().expect("an OpenAPI document is JSON");
        json.push('\n');
        json
    })
}

/// This document. Needs no credential.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = OK, description = "This OpenAPI document", content_type = "application/json")))]
pub async fn openapi_json() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], document_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHECKED_IN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api/openapi.json");

    #[test]
    fn the_checked_in_document_is_the_served_one() {
        let made = document_json();
        if std::env::var("FLOWGATE_UPDATE_OPENAPI").as_deref() == Ok("1") {
            std::fs::write(CHECKED_IN, made).expect("write docs/api/openapi.json");
            return;
        }
        let checked_in = std::fs::read_to_string(CHECKED_IN).unwrap_or_default();
        assert!(
            checked_in == made,
            "docs/api/openapi.json is not the API's document; after changing the API, write it with \
             `FLOWGATE_UPDATE_OPENAPI=1 cargo nextest run -p flowgate openapi` and review the diff"
        );
    }

    #[test]
    fn every_route_but_health_and_the_document_needs_a_token() {
        let document: serde_json::Value = serde_json::from_str(document_json()).expect("JSON");
        let paths = document["paths"].as_object().expect("paths");
        assert!(paths.len() >= 4, "{paths:?}");
        for (path, item) in paths {
            let public = ["/api/v1/health", "/api/v1/openapi.json"].contains(&path.as_str());
            for (method, operation) in item.as_object().expect("a path item") {
                assert_eq!(operation["security"].is_null(), public, "{method} {path}: {operation}");
            }
        }
    }
}
