//! Page Help over HTTP (SPEC section 6). Anyone may ask; a credential (the
//! admin token, a service role key or a console session) only adds the
//! project's own data (`page_data`), and only for a project the caller may
//! read, decided by the same access rules as the API.

use atk_api::help::{AskRequest, GlobalAskRequest, HelpRoutes};
use atk_core::ids::ProjectId;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::source_ip;
use super::console::session_token;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use crate::help::{HelpAnswer, HelpError, sources};
use crate::service::Caller;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(help_routes))
        .routes(routes!(ask))
        .routes(routes!(global_ask))
}

/// Longest question accepted, in characters.
const MAX_QUESTION_CHARS: usize = 1000;

/// The caller if a credential came with the request: a bearer credential
/// must be valid (401 otherwise); a console session that has ended counts
/// as none.
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            return Caller::from_request_parts(parts, state)
                .await
                .map(|caller| Self(Some(caller)));
        }
        let Some(token) = session_token(&parts.headers) else {
            return Ok(Self(None));
        };
        let signed_in = state
            .accounts
            .session(token, source_ip(parts))
            .await
            .map_err(ApiError::from)?;
        Ok(Self(signed_in.map(|user| user.caller)))
    }
}

/// Every help route: title, surface, platform step, allowed sources and
/// suggested questions.
#[utoipa::path(get, path = "/v1/help/routes", tag = "help",
    responses((status = 200, description = "The help routes", body = HelpRoutes)))]
async fn help_routes(State(state): State<AppState>) -> Json<HelpRoutes> {
    Json(HelpRoutes {
        items: state.help.routes(),
        next_cursor: None,
    })
}

/// Answers a question about one console page from its approved sources,
/// or with the exact fallback and no sources.
#[utoipa::path(post, path = "/v1/help/ask", tag = "help",
    request_body = AskRequest,
    responses(
        (status = 200, description = "An answer quoted from a source, or the fallback", body = HelpAnswer),
        (status = 400, description = "Unknown route, question too long, malformed project id", body = ErrorBody),
        (status = 401, description = "A bearer credential was sent and is not valid", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
async fn ask(
    State(state): State<AppState>,
    MaybeCaller(caller): MaybeCaller,
    ApiJson(body): ApiJson<AskRequest>,
) -> Result<Json<HelpAnswer>, ApiError> {
    if body.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::invalid(format!(
            "question is limited to {MAX_QUESTION_CHARS} characters"
        )));
    }
    let project = body
        .project_id
        .as_deref()
        .map(ProjectId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let page_data = match (&caller, &project) {
        (Some(caller), Some(project)) if state.help.uses_page_data(&body.route) => {
            let label = state.help.page_data_label(&body.route);
            sources::page_data(&state.service, caller, project, &label).await?
        }
        _ => Vec::new(),
    };
    let (answer, _) = state
        .help
        .ask(&body.route, &body.question, project.as_ref(), page_data)
        .map_err(|error| match error {
            HelpError::UnknownRoute(_) => ApiError::invalid(error.to_string()),
        })?;
    if let (false, Some(caller), Some(project)) = (answer.in_scope, &caller, &project) {
        state
            .help_gaps
            .record(caller, project, &body.route, &body.question)
            .await;
    }
    Ok(Json(answer))
}

/// Answers from the Knowledge Hub only (the shipped documents and the
/// operator's `--knowledge-dir`), naming the document and section, or with
/// exactly `I don't see that in the Knowledge Hub yet.` and no sources.
#[utoipa::path(post, path = "/v1/help/global/ask", tag = "help",
    request_body = GlobalAskRequest,
    responses(
        (status = 200, description = "A passage of a Knowledge Hub document, or the fallback", body = HelpAnswer),
        (status = 400, description = "Question too long or malformed body", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
    ))]
async fn global_ask(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<GlobalAskRequest>,
) -> Result<Json<HelpAnswer>, ApiError> {
    if body.question.chars().count() > MAX_QUESTION_CHARS {
        return Err(ApiError::invalid(format!(
            "question is limited to {MAX_QUESTION_CHARS} characters"
        )));
    }
    Ok(Json(state.help.ask_hub(&body.question).0))
}
