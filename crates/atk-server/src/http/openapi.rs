//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::OpenApi as Document31;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "AuthToolkit Keys",
        description = "Issues, verifies and governs AuthToolkit API keys. Management calls take \
            `Authorization: Bearer <admin token or service role key>`; `POST /v1/keys/verify` \
            takes no credential."
    ),
    modifiers(&BearerAuth),
    components(schemas(super::error::ErrorBody)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "catalog", description = "Products, actions, kinds, expirations, confirmations"),
        (name = "projects", description = "Projects and their Commerce entitlements"),
        (name = "keys", description = "Keys: create, list, rotate, revoke, expire, usage"),
        (name = "audit", description = "The append-only audit log"),
        (name = "verify", description = "Verifying a key for a product action"),
        (name = "help", description = "Page Help: answers about a console page from its approved sources"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut Document31) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The platform admin token or a service role key"))
                    .build(),
            ),
        );
    }
}

pub fn base() -> Document31 {
    ApiDoc::openapi()
}

mod rules;

/// The whole document, for tests and tools that want it without a server.
pub fn document() -> serde_json::Value {
    finish(&super::api_router().split_for_parts().1)
}

/// The generated document with the server's own input rules written in
/// (see [`rules`]), links between operations, and this server as the base.
fn finish(generated: &Document31) -> serde_json::Value {
    let mut document = serde_json::to_value(generated).expect("the OpenAPI document serializes");
    rules::apply(&mut document, &crate::help::route_ids());
    rules::add_links(&mut document);
    document["servers"] = serde_json::json!([{"url": "/", "description": "This deployment"}]);
    document
}

/// The serialized document, rendered on first use and kept.
fn rendered() -> &'static str {
    static RENDERED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    RENDERED.get_or_init(|| {
        serde_json::to_string_pretty(&document()).expect("the OpenAPI document serializes")
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], rendered())
}
