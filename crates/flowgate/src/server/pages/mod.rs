//! The dashboard: HTML pages rendered on the server, with no script, for the
//! people who watch releases without a terminal. A page's caller signs in as
//! for the API (`Authorization: Bearer`), or with the session cookie the
//! sign-in page sets; without either a page answers with the sign-in page.
//! Every string a user controls is escaped where it is written into HTML.

mod history;
mod html;
mod matrix;
mod session;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::auth::{bearer, Caller};
use super::{AppState, RequestId};

use html::escape;

/// The pages, beside the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(matrix::projects))
        .route("/projects/{project}", get(matrix::matrix))
        .route("/projects/{project}/flows/{flow}/envs/{env}", get(history::history))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
}

/// The verified caller of a page: from the `Authorization` header, else from
/// the session cookie. Without a valid one the browser is sent to sign in.
pub struct PageCaller(pub Caller);

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let request_id = parts.extensions.get::<RequestId>().cloned().unwrap_or_default();
        let credential = bearer(parts).or_else(|| session::cookie(parts));
        let Some(credential) = credential else { return Err(Redirect::to("/login").into_response()) };
        match Caller::verify(state, credential, request_id).await {
            Ok(caller) => Ok(Self(caller)),
            // A revoked or expired token: sign in again.
            Err(_) => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// A page saying what went wrong, with its status (404 naming the value, 403
/// naming the missing right).
fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!("<h1>{}</h1>\n<p class=\"problem\">{}</p>\n", escape(title), escape(message));
    (status, html::page(title, None, &body)).into_response()
}
