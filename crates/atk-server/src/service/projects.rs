use atk_core::access::Operation;
use atk_core::audit::AuditAction;
use atk_core::entitlement::{Entitlement, EntitlementStatus};
use atk_core::ids::{DisplayName, ProjectId};
use atk_core::project::{DEMO_PROJECT_ID, DEMO_PROJECT_NAME, Project, initial_entitlements};
use atk_store::StoreError;
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Caller, Service, ServiceError};

impl Service {
    #[tracing::instrument(skip_all)]
    pub async fn create_project(
        &self,
        caller: &Caller,
        project_id: &str,
        name: &str,
    ) -> Result<Project, ServiceError> {
        caller.authorize(Operation::CreateProject, None)?;
        self.admin_token.check("name", name)?;
        let project = Project {
            project_id: ProjectId::parse(project_id)?,
            name: DisplayName::parse(name)?,
            created_at: self.now(),
        };
        let entitlements = initial_entitlements(self.catalog, project.created_at);
        let event = caller.event(
            project.created_at,
            AuditAction::ProjectCreate,
            &project.project_id,
            ("project", project.project_id.as_str()),
            json!({ "name": project.name }),
        );
        match self
            .store
            .create_project(&project, &entitlements, &event)
            .await
        {
            Ok(()) => Ok(project),
            Err(StoreError::Conflict) => Err(ServiceError::Conflict(format!(
                "project {} already exists",
                project.project_id
            ))),
            Err(other) => Err(other.into()),
        }
    }

    /// First start on an empty store: the preview's demo project. Returns
    /// whether it was created (another node may have done it first).
    pub async fn ensure_demo_project(&self) -> Result<bool, ServiceError> {
        if self.store.has_projects().await? {
            return Ok(false);
        }
        match self
            .create_project(&Caller::system(), DEMO_PROJECT_ID, DEMO_PROJECT_NAME)
            .await
        {
            Ok(_) => Ok(true),
            Err(ServiceError::Conflict(_)) => Ok(false),
            Err(other) => Err(other),
        }
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn get_project(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
    ) -> Result<Project, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project_id))?;
        self.existing_project(project_id).await
    }

    /// The projects the caller may see, by id.
    #[tracing::instrument(skip_all)]
    pub async fn list_projects(&self, caller: &Caller) -> Result<Vec<Project>, ServiceError> {
        let all = self.store.list_projects().await?;
        Ok(all
            .into_iter()
            .filter(|project| {
                caller
                    .principal
                    .may(Operation::ReadProject, &project.project_id)
            })
            .collect())
    }

    /// The project, or 404; for callers already authorised.
    pub(super) async fn existing_project(
        &self,
        project_id: &ProjectId,
    ) -> Result<Project, ServiceError> {
        self.store
            .get_project(project_id)
            .await?
            .ok_or(ServiceError::NotFound("project"))
    }

    #[tracing::instrument(skip_all, fields(%project_id))]
    pub async fn list_entitlements(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
    ) -> Result<Vec<Entitlement>, ServiceError> {
        caller.authorize(Operation::ReadProject, Some(project_id))?;
        self.existing_project(project_id).await?;
        Ok(self.store.list_entitlements(project_id).await?)
    }

    #[tracing::instrument(skip_all, fields(%project_id, ?status))]
    pub async fn put_entitlement(
        &self,
        caller: &Caller,
        project_id: &ProjectId,
        product: &str,
        status: EntitlementStatus,
        trial_ends_at: Option<DateTime<Utc>>,
    ) -> Result<Entitlement, ServiceError> {
        caller.authorize(Operation::ChangeEntitlements, Some(project_id))?;
        if self.catalog.product(product).is_none() {
            return Err(ServiceError::NotFound("product"));
        }
        if trial_ends_at.is_some() && status != EntitlementStatus::Trial {
            return Err(ServiceError::field(
                "trial_ends_at",
                "trial_ends_at is only allowed with status trial",
            ));
        }
        self.existing_project(project_id).await?;
        let entitlement = Entitlement {
            product: product.to_owned(),
            status,
            trial_ends_at,
            updated_at: self.now(),
        };
        let event = caller.event(
            entitlement.updated_at,
            AuditAction::EntitlementUpdate,
            project_id,
            ("entitlement", product),
            json!({ "product": product, "status": status, "trial_ends_at": trial_ends_at }),
        );
        self.store
            .put_entitlement(project_id, &entitlement, &event)
            .await?;
        self.verifier.forget_entitlements(project_id);
        Ok(entitlement)
    }
}
