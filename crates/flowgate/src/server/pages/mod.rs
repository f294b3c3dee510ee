//! The dashboard: HTML pages rendered on the server, for the people who watch
//! releases without a terminal; the only script is the few lines that keep a
//! rollout page live. A page's caller signs in as
//! for the API (`Authorization: Bearer`), through a trusted single sign-on
//! proxy's user header, or with the session cookie the sign-in page sets;
//! without any a page sends the browser to the sign-in page.
//! Every string a user controls is escaped where it is written into HTML.

mod actions;
mod build;
mod diff;
mod history;
mod html;
mod matrix;
mod rollout;
mod session;
mod sso;
mod which;

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
pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(matrix::projects))
        .route("/projects/{project}", get(matrix::matrix))
        .route("/projects/{project}/flows/{flow}/envs/{env}", get(history::history))
        .route("/projects/{project}/builds/{build}", get(build::build))
        .route("/projects/{project}/builds/{build}/approve", post(build::approve))
        .route("/projects/{project}/diff", get(diff::diff))
        .route("/projects/{project}/which", get(which::which))
        .route("/projects/{project}/envs/{env}/rollout", get(rollout::rollout))
        .route("/projects/{project}/envs/{env}/rollout/events", get(rollout::events))
        .route("/projects/{project}/flows/{flow}/envs/{env}/rollback", post(actions::rollback))
        .route("/projects/{project}/envs/{env}/promote", post(actions::promote))
        .route("/projects/{project}/envs/{env}/rollout/start", post(actions::start_rollout))
        .route("/projects/{project}/envs/{env}/rollout/abort", post(actions::abort_rollout))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), sso::with_form_cookie))
        .layer(axum::middleware::from_fn(refuse_cross_site_forms))
}

/// Every form post another site made is refused (403) before anything else
/// looks at it, signed in or not.
async fn refuse_cross_site_forms(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let reads = [axum::http::Method::GET, axum::http::Method::HEAD];
    if !reads.contains(request.method()) {
        if let Some(refused) = session::cross_site(request.headers()) {
            return refused;
        }
    }
    next.run(request).await
}

/// The verified caller of a page: from the `Authorization` header, else from
/// the session cookie. Without a valid one the browser is sent to sign in.
pub struct PageCaller(pub Caller, pub FormToken);

/// What a page's forms carry so a post proves it came from one of them: the
/// session's form token when the caller signed in with the cookie a browser
/// sends by itself; nothing when it sent its own `Authorization` header,
/// which no other site can make a browser send.
#[derive(Clone)]
pub struct FormToken(Option<String>);

impl FromRequestParts<AppState> for PageCaller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let request_id = parts.extensions.get::<RequestId>().cloned().unwrap_or_default();
        // The proxy's header first: behind single sign-on it names who is
        // there now, whatever session cookie an earlier visit left.
        if bearer(parts).is_none() {
            if let Some(caller) = sso::caller(parts, state, request_id.clone()) {
                return Ok(Self(caller, FormToken(Some(sso::form_token(parts)))));
            }
        }
        let (credential, form_token) = match (bearer(parts), session::cookie(parts)) {
            (Some(bearer), _) => (bearer, FormToken(None)),
            (None, Some(cookie)) => (cookie, FormToken(Some(session::form_token(cookie)))),
            (None, None) => return Err(Redirect::to("/login").into_response()),
        };
        match Caller::verify(state, credential, request_id).await {
            Ok(caller) => Ok(Self(caller, form_token)),
            // A revoked or expired token: sign in again.
            Err(_) => Err(Redirect::to("/login").into_response()),
        }
    }
}

impl FormToken {
    /// The hidden field every form of the page carries.
    pub fn field(&self) -> String {
        let value = self.0.as_deref().unwrap_or("");
        format!("<input type=\"hidden\" name=\"form_token\" value=\"{}\">", html::escape(value))
    }

    /// The refusal (403) of a posted form that does not carry this session's
    /// token (a post from another site was refused before it got here).
    pub fn refuse_forged(&self, posted: &str) -> Option<Response> {
        let expected = self.0.as_deref()?;
        (expected.is_empty() || !session::same_secret(expected, posted)).then(|| {
            problem(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form does not carry this session's form token: reload the page and try again.",
            )
        })
    }
}

/// A page saying what went wrong, with its status (404 naming the value, 403
/// naming the missing right).
fn problem(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!("<h1>{}</h1>\n<p class=\"problem\">{}</p>\n", escape(title), escape(message));
    (status, html::page(title, None, &body)).into_response()
}
