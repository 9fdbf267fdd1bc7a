//! Form posts (`application/x-www-form-urlencoded`), with repeated fields
//! (checkbox groups) kept, which serde's flat forms cannot express.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;

use super::page::PageError;

#[derive(Debug, Default)]
pub struct Form(Vec<(String, String)>);

impl<S: Send + Sync> FromRequest<S> for Form {
    type Rejection = PageError;

    async fn from_request(request: Request, state: &S) -> Result<Self, PageError> {
        let is_form = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(PageError::BadRequest(
                "Console forms are sent as application/x-www-form-urlencoded.".into(),
            ));
        }
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| PageError::BadRequest("The form is too large.".into()))?;
        Ok(Self(
            form_urlencoded::parse(&body)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        ))
    }
}

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `name`, or empty.
    pub fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    /// Every value of `name`, in order (a checkbox group).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}
