//! Signing in to the dashboard with an API token, and out. The session is a
//! cookie holding the token (`HttpOnly`, `SameSite=Strict`, `Secure` unless
//! the server listens on loopback, no expiry: it ends with the browser), so
//! every page is verified as an API call is, a revoked token signs out at
//! once, and replicas share sessions without sharing state. A form post from
//! another site is refused by its `Origin` (and `Sec-Fetch-Site`) headers, and
//! a form must carry the session's form token besides.

use axum::extract::State;
use axum::http::header::{HOST, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{html, problem};
use crate::server::auth::{Caller, SECRET_PREFIX};
use crate::server::{AppState, RequestId};

/// The session cookie's name.
const COOKIE: &str = "flowgate_session";

/// The form token of the session whose cookie holds `secret`: derived from
/// the secret, so every replica computes it without shared state, while a
/// site that cannot read the cookie cannot compute it.
pub fn form_token(secret: &str) -> String {
    hex::encode(blake3::derive_key("flowgate 2026-12 dashboard form token", secret.as_bytes()))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie's token, if the request carries one.
pub fn cookie(parts: &Parts) -> Option<&str> {
    named_cookie(&parts.headers, COOKIE)
}

/// The value of the cookie `name`, if the request carries one that is not empty.
pub fn named_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
        .filter(|value| !value.is_empty())
}

const LOGIN_FORM: &str = "<h1>Sign in</h1>\n<form method=\"post\" action=\"/login\">\
<label>API token <input type=\"password\" name=\"token\" autocomplete=\"off\" size=\"72\" autofocus></label> \
<button>Sign in</button></form>\n<p class=\"muted\">An admin makes one with \
<code>flowgate admin token create --name NAME --role viewer</code>.</p>\n";

pub async fn login_page() -> Response {
    html::page("Sign in", None, LOGIN_FORM).into_response()
}

#[derive(Deserialize)]
pub struct Login {
    token: String,
}

/// Checks the token as the API would and keeps it in the session cookie;
/// a refused one gets the form again (401), the same for every reason.
pub async fn login(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    let token = login.token.trim();
    let verified =
        token.starts_with(SECRET_PREFIX) && Caller::verify(&state, token, RequestId::default()).await.is_ok();
    if !verified {
        let body = format!("<p class=\"problem\">The server refused that token.</p>\n{LOGIN_FORM}");
        return (StatusCode::UNAUTHORIZED, html::page("Sign in", None, &body)).into_response();
    }
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    ([(SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

pub async fn logout(State(state): State<AppState>) -> Response {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}");
    ([(SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// The refusal (403) of a form post another site made: a browser names the
/// page's origin in `Origin` and says `cross-site` in `Sec-Fetch-Site`. A
/// client that sends neither (curl, a script with a token) is no browser to forge with.
pub fn cross_site(headers: &HeaderMap) -> Option<Response> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let cross_site = text("sec-fetch-site") == Some("cross-site");
    let foreign_origin = match (text(ORIGIN.as_str()), text(HOST.as_str())) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, rest)| rest) != Some(host),
        (Some(_), None) => true,
        (None, _) => false,
    };
    (cross_site || foreign_origin).then(|| {
        problem(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was posted from another site; flowgate takes its forms only from its own pages.",
        )
    })
}
