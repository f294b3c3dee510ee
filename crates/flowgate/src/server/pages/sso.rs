//! Single sign-on through a reverse proxy (the common oauth2-proxy setup): the
//! proxy signs a person in and passes who they are in a header, which the
//! server believes only on a connection from a configured proxy address. The
//! person's roles come from `[[access]]` rules whose issuer is `sso`, matching
//! the `email` and `groups` claims. Such a browser carries no flowgate cookie
//! to derive a form token from, so its forms carry a random one that is also
//! set in a `flowgate_form` cookie (SameSite=Strict, HttpOnly): another site
//! can neither read nor set it.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use flowgate_core::grants_for;

use super::session::named_cookie;
use crate::server::auth::{Caller, Identity};
use crate::server::config::SSO_ISSUER;
use crate::server::{AppState, RequestId};

/// The cookie holding the form token of a browser signed in by the proxy.
const FORM_COOKIE: &str = "flowgate_form";

/// The form token a new browser gets, until its cookie comes back.
#[derive(Clone)]
struct NewFormToken(String);

/// The caller the proxy's header names, when the request came from a trusted
/// proxy and carries it; None otherwise (the header of anyone else is ignored).
pub fn caller(parts: &Parts, state: &AppState, request_id: RequestId) -> Option<Caller> {
    let sso = state.sso.as_deref()?;
    let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>()?.0.ip();
    if !sso.trusted_proxies.contains(&peer) {
        return None;
    }
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let user = header(&sso.user_header).filter(|u| !u.is_empty())?.to_string();
    let mut claims = BTreeMap::from([("email".to_string(), user.clone())]);
    if let Some(groups) = sso.groups_header.as_deref().and_then(header) {
        let groups: Vec<&str> = groups.split(',').map(str::trim).filter(|g| !g.is_empty()).collect();
        claims.insert("groups".into(), format!(",{},", groups.join(",")));
    }
    let grants = grants_for(&state.access, SSO_ISSUER, &claims);
    Some(Caller { subject: user, identity: Identity::Sso(claims), grants, request_id })
}

/// The form token of this browser: its `flowgate_form` cookie, or the one
/// the middleware made for this response.
pub fn form_token(parts: &Parts) -> String {
    match named_cookie(&parts.headers, FORM_COOKIE) {
        Some(token) => token.to_string(),
        None => parts.extensions.get::<NewFormToken>().map(|t| t.0.clone()).unwrap_or_default(),
    }
}

/// Gives a browser without a form cookie a new random token, in the request
/// (for the page's forms) and in a cookie on the response; only where single
/// sign-on is configured (other browsers derive theirs from the session).
pub async fn with_form_cookie(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let has_cookie = named_cookie(request.headers(), FORM_COOKIE).is_some();
    let mut bytes = [0u8; 32];
    if state.sso.is_none() || has_cookie || getrandom::fill(&mut bytes).is_err() {
        return next.run(request).await;
    }
    let token = hex::encode(bytes);
    request.extensions_mut().insert(NewFormToken(token.clone()));
    let mut response = next.run(request).await;
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{FORM_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}
