//! The API's one error shape: an HTTP status, a stable code a client can
//! match on, a message naming the value, and the request's id (also in the
//! `x-request-id` header of every response) to find it in the server's log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::RequestId;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub request_id: RequestId,
}

/// Every error response's body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for clients to match on: `bad_request`, `unauthenticated`, `forbidden`, `refused`,
    /// `not_found`, `conflict`, `payload_too_large`, `undetermined`, `bad_gateway`, `internal`.
    code: &'static str,
    /// For people: names the value that was refused.
    message: String,
    /// Also in the `x-request-id` header, and in the server's log line.
    request_id: String,
}

impl ApiError {
    /// No valid credential. Deliberately the same for a missing, malformed,
    /// unknown, expired or revoked token: a caller learns nothing about which.
    pub fn unauthenticated(request_id: RequestId) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthenticated",
            message: "a valid API token or ID token is required: `Authorization: Bearer TOKEN`".into(),
            request_id,
        }
    }

    pub fn forbidden(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "forbidden", message, request_id }
    }

    /// A request the server cannot take as sent: a malformed or unknown
    /// parameter, or a value that names nothing unambiguously.
    pub fn bad_request(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "bad_request", message, request_id }
    }

    /// A body over the documented limit (`body::BODY_LIMIT`): nothing of it was used.
    pub fn payload_too_large(request_id: RequestId, limit: usize) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "payload_too_large",
            message: format!("the request body is over the limit of {limit} bytes"),
            request_id,
        }
    }

    /// A move the env's gates (or the ownership of a deployment) refused; nothing changed.
    pub fn refused(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "refused", message, request_id }
    }

    /// A pointer moved by someone else between read and write; nothing changed.
    pub fn conflict(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::CONFLICT, code: "conflict", message, request_id }
    }

    /// A Prefect server the request needed failed; its message is the caller's to see.
    pub fn bad_gateway(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::BAD_GATEWAY, code: "bad_gateway", message, request_id }
    }

    /// What was asked exists, but the answer cannot be told (`which` of a run
    /// with no pull record and no matching build).
    pub fn unprocessable(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::UNPROCESSABLE_ENTITY, code: "undetermined", message, request_id }
    }

    pub fn not_found(request_id: RequestId, message: String) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message, request_id }
    }

    /// A failure of the server or what it depends on (the ledger). The cause
    /// goes to the log under the request id, not to the caller.
    pub fn internal(request_id: RequestId, error: &anyhow::Error) -> Self {
        tracing::error!(request_id = %request_id.0, "request failed: {error:#}");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "internal",
            message: format!("the server failed; its log has the cause under request id `{}`", request_id.0),
            request_id,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            ErrorBody { error: ErrorDetail { code: self.code, message: self.message, request_id: self.request_id.0 } };
        (self.status, Json(body)).into_response()
    }
}
