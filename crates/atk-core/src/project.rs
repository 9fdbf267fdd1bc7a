use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::catalog::Catalog;
use crate::entitlement::Entitlement;
use crate::ids::{DisplayName, ProjectId};

/// The demo project every fresh deployment starts with, as in the preview.
pub const DEMO_PROJECT_ID: &str = "project_identity_demo";
pub const DEMO_PROJECT_NAME: &str = "Identity demo project";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Project {
    #[schema(value_type = String, example = "project_identity_demo")]
    pub project_id: ProjectId,
    #[schema(value_type = String)]
    pub name: DisplayName,
    pub created_at: DateTime<Utc>,
}

/// The entitlement table a new project starts with (the catalog's
/// `initial_entitlement` of every product).
pub fn initial_entitlements(catalog: &Catalog, now: DateTime<Utc>) -> Vec<Entitlement> {
    catalog
        .products
        .iter()
        .map(|product| Entitlement {
            product: product.id.clone(),
            status: product.initial_entitlement,
            trial_ends_at: None,
            updated_at: now,
        })
        .collect()
}
