//! Who an HTTP request is (SPEC §11.1): anonymous, or the user of the token
//! it presents (`Authorization: Bearer sp_…`, or `?token=` where a browser
//! cannot set headers: `EventSource`, WebSocket).
//!
//! Anonymous requests are the fixed identity `@http`, which no access list
//! can name and which may neither set nor change one, so an HTTP client can
//! no longer claim a list for every other HTTP client. A request with a
//! token acts as its user would over SSH, within the token's scope.

use axum::http::{HeaderMap, header};
use tokio_util::sync::CancellationToken;

use super::error::HttpError;
use super::query::Params;
use crate::app::App;
use crate::identity::{AuthMode, Identity, is_anonymous_name};
use crate::tokens::Grant;
use crate::topic::TopicRef;

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    /// The user part of client ids in `ls`: `http`, or `alice(token ci)`.
    pub shown: String,
    /// `None`: anonymous.
    pub grant: Option<Grant>,
    /// Cancelled when the server shuts down or the token is revoked: every
    /// stream of this request ends with it.
    pub stop: CancellationToken,
}

/// The identity of every HTTP client without a token. `@` makes it an
/// invalid user name, so no access list can name it and no namespace can
/// be its own.
pub fn http_identity() -> Identity {
    Identity {
        name: "@http".to_string(),
        fingerprint: String::new(),
        admin: false,
        anonymous: true,
    }
}

/// The token a request presents, if any: the `Authorization` header wins
/// over `?token=`.
fn presented<'a>(headers: &'a HeaderMap, params: &'a Params) -> Result<Option<&'a str>, HttpError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("");
        let token = text
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return match token {
            Some(t) => Ok(Some(t)),
            None => Err(HttpError::Unauthorized(
                "use Authorization: Bearer TOKEN".into(),
            )),
        };
    }
    Ok(params.get("token").filter(|t| !t.is_empty()))
}

/// Who is asking; 401 for a bad token, or for none when anonymous HTTP is off.
pub fn identify(app: &App, headers: &HeaderMap, params: &Params) -> Result<Caller, HttpError> {
    let Some(secret) = presented(headers, params)? else {
        if !app.http_anonymous {
            return Err(HttpError::Unauthorized(
                "a token is needed: Authorization: Bearer TOKEN (ssh HOST token create)".into(),
            ));
        }
        return Ok(Caller {
            identity: http_identity(),
            shown: "http".into(),
            grant: None,
            stop: app.shutdown.clone(),
        });
    };
    let grant = app
        .tokens
        .authenticate(secret)
        .map_err(|e| HttpError::Unauthorized(e.to_string()))?;
    let user = grant.record.user.clone();
    // A user taken out of the users file loses their tokens with their keys.
    if app.auth == AuthMode::Users && !app.users.is_user(&user) {
        return Err(HttpError::Unauthorized("invalid token".into()));
    }
    Ok(Caller {
        identity: Identity {
            admin: app.users.is_admin(&user),
            anonymous: is_anonymous_name(&user),
            fingerprint: grant.record.fingerprint.clone(),
            name: user.clone(),
        },
        shown: format!("{user}(token {})", grant.record.name),
        stop: grant.ended.clone(),
        grant: Some(grant),
    })
}

impl Caller {
    /// May this caller do this to `topic`? `sends`: POST, or a socket that
    /// sends; `access`: the request sets or clears an access list.
    pub fn check(&self, topic: &TopicRef, sends: bool, access: bool) -> Result<(), HttpError> {
        let Some(grant) = &self.grant else {
            if access {
                return Err(HttpError::Forbidden("access lists need a token".into()));
            }
            return Ok(());
        };
        if !grant.record.allows(&topic.full) {
            return Err(HttpError::Forbidden(format!(
                "token out of scope: {}",
                topic.full
            )));
        }
        if sends && grant.record.read_only {
            return Err(HttpError::Forbidden("read-only token".into()));
        }
        Ok(())
    }

    /// Anonymous callers only reach public topics; token callers choose,
    /// as over SSH (`?public=true` is `-p`).
    pub fn public(&self, params: &Params) -> Result<bool, HttpError> {
        match self.grant {
            None => Ok(true),
            Some(_) => params.flag("public"),
        }
    }

    /// Why `stop` fired, if it was the token (revoked or expired) and not
    /// the server shutting down.
    pub fn token_ended(&self, app: &App) -> Option<&'static str> {
        if !self.stop.is_cancelled() || app.shutdown.is_cancelled() {
            return None;
        }
        let expired = self
            .grant
            .as_ref()
            .is_some_and(|g| g.record.expired(crate::tokens::now_ms()));
        Some(if expired {
            "token expired"
        } else {
            "token revoked"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_header_wins_and_only_bearer_is_a_token() {
        let params = Params::parse(Some("token=sp_query")).unwrap_or_default();
        let none = Params::default();
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(v));
            h
        };
        let empty = HeaderMap::new();
        assert!(matches!(presented(&empty, &none), Ok(None)));
        assert!(matches!(presented(&empty, &params), Ok(Some("sp_query"))));
        assert!(matches!(
            presented(&with("Bearer sp_h"), &params),
            Ok(Some("sp_h"))
        ));
        assert!(matches!(
            presented(&with("bearer  sp_h "), &none),
            Ok(Some("sp_h"))
        ));
        assert!(matches!(
            presented(&with("Basic dXNlcjpwdw=="), &params),
            Err(HttpError::Unauthorized(_))
        ));
    }
}
