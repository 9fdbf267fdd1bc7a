//! Page Help and the Knowledge Hub (SPEC section 6).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a passage comes from (SPEC section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    PageCopy,
    PageData,
    MarkdownDoc,
    RouteMetadata,
    KnowledgeHub,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PageCopy => "page_copy",
            Self::PageData => "page_data",
            Self::MarkdownDoc => "markdown_doc",
            Self::RouteMetadata => "route_metadata",
            Self::KnowledgeHub => "knowledge_hub",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// `page_copy`, `page_data`, `markdown_doc` or `route_metadata`.
    pub kind: String,
    pub label: String,
    pub description: String,
}

/// A help route as `GET /v1/help/routes` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RouteInfo {
    #[schema(example = "/project-settings/key-create")]
    pub route: String,
    pub title: String,
    pub surface: String,
    pub platform_step: String,
    pub allowed_sources: Vec<SourceEntry>,
    pub suggested_questions: Vec<String>,
}

/// One quoted source of an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SourceQuote {
    pub kind: SourceKind,
    pub label: String,
    pub text: String,
}

/// The console place an answer is about ("Open related surface").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RelatedSurface {
    pub label: String,
    pub href: String,
}

/// `POST /v1/help/ask`'s answer (SPEC section 6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HelpAnswer {
    pub in_scope: bool,
    pub answer: String,
    pub sources: Vec<SourceQuote>,
    pub related_surface: Option<RelatedSurface>,
    pub suggested_questions: Vec<String>,
}

/// Every help route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HelpRoutes {
    pub items: Vec<RouteInfo>,
    /// Always `null`: every route is on one page.
    #[schema(value_type = Option<String>)]
    pub next_cursor: Option<String>,
}

/// `POST /v1/help/ask`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// A help route id from `GET /v1/help/routes`.
    #[schema(example = "/project-settings/key-create")]
    pub route: String,
    /// Up to 1,000 characters.
    #[schema(example = "What does expiration mean?")]
    pub question: String,
    /// The project the page shows; its data is quoted only for a caller
    /// who may read it.
    #[schema(example = "project_identity_demo")]
    pub project_id: Option<String>,
}

/// `POST /v1/help/global/ask`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalAskRequest {
    /// Up to 1,000 characters.
    #[schema(example = "How do I rotate a key without downtime?")]
    pub question: String,
}
