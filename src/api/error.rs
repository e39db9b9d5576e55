//! API errors and their HTTP status, in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::types::ErrorBody;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request is wrong; the message says which field and why.
    #[error("{0}")]
    BadRequest(String),
    /// One field of the request is wrong: `field` is its path in the body (`routes[0].prefix`)
    /// or the query/path parameter; the message says why.
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("missing or wrong bearer token: send `Authorization: Bearer <token from speaker.api_token_file>`")]
    Unauthorized,
    /// The client did not send the whole request body in time; the connection is closed.
    #[error("{0}")]
    RequestTimeout(String),
    /// A limit of the server is reached (e.g. too many open event streams); try again later.
    #[error("{0}")]
    Unavailable(String),
    /// The speaker could not do it (e.g. persisting the desired routes failed).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status(),
            Json(ErrorBody {
                error: self.to_string(),
                field: match &self {
                    Self::Invalid { field, .. } => Some(field.clone()),
                    _ => None,
                },
            }),
        )
            .into_response()
    }
}
