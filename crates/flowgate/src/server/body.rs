//! Request bodies: JSON of a documented maximum size, read into a type that
//! refuses unknown fields. A refused body is the API's JSON error naming what
//! is wrong (the field, the size, the content type), never axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::{AppState, RequestId};

/// The largest JSON body the API reads, in bytes. Every write the API takes
/// (an approval, a pin) fits in a few hundred bytes; 64 KiB leaves room for
/// long reasons and flow lists, and bounds what one request can make the
/// server hold.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON body as `T`, or the API's error for it.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let request_id = request.extensions().get::<RequestId>().cloned().unwrap_or_default();
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(refused(request_id, &rejection)),
        }
    }
}

fn refused(request_id: RequestId, rejection: &JsonRejection) -> ApiError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::payload_too_large(request_id, BODY_LIMIT),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::bad_request(
            request_id,
            "the body must be JSON, sent with `Content-Type: application/json`".to_string(),
        ),
        // serde's message names the field and what it expected: "unknown
        // field `colour`, expected one of ...", "missing field `reason`".
        _ => ApiError::bad_request(request_id, format!("the JSON body: {}", rejection.body_text())),
    }
}
