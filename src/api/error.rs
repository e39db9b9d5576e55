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
    /// A fencing token lower than the one the speaker holds for that fence: a newer holder
    /// has acted since; nothing was changed.
    #[error("fence {fence}: token {offered} refused, this speaker holds token {held} (a newer holder of the fence has acted since); nothing was changed")]
    Fenced {
        fence: String,
        held: u64,
        offered: u64,
    },
    /// `require_fence` is on and the call carried no fence headers.
    #[error("{0}")]
    FenceRequired(String),
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
            Self::Fenced { .. } => StatusCode::CONFLICT,
            Self::FenceRequired(_) => StatusCode::PRECONDITION_REQUIRED,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorBody {
            error: self.to_string(),
            field: None,
            fence: None,
            held_token: None,
            offered_token: None,
        };
        match &self {
            Self::Invalid { field, .. } => body.field = Some(field.clone()),
            Self::Fenced {
                fence,
                held,
                offered,
            } => {
                body.fence = Some(fence.clone());
                body.held_token = Some(*held);
                body.offered_token = Some(*offered);
            }
            _ => {}
        }
        (self.status(), Json(body)).into_response()
    }
}
