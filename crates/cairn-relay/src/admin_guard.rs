//! Who may use the admin listener: the checks every request passes before
//! a handler sees it (see [`crate::admin`] for why).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Json, Response};
use subtle::ConstantTimeEq;

/// The admin listener's port and the operator's token.
#[derive(Debug, Clone)]
pub struct Guard {
    port: u16,
    token: Arc<str>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names something other than this listener by IP or
    /// `localhost`: a page's host name rebound to this address.
    ForeignHost,
    /// An `/admin/` request without the operator's token.
    NoToken,
    /// A request that changes something, not sent as JSON.
    NotJson,
}

impl Guard {
    /// A guard for a listener on `port` whose token is `token`.
    pub fn new(port: u16, token: String) -> Self {
        Self {
            port,
            token: token.into(),
        }
    }

    /// Judges a request by its method, path and headers.
    pub fn judge(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), Refusal> {
        if !self.host_is_this_listener(headers) {
            return Err(Refusal::ForeignHost);
        }
        if !path.starts_with("/admin/") {
            return Ok(());
        }
        if !self.carries_token(headers) {
            return Err(Refusal::NoToken);
        }
        if changes_something(method) && !is_json(headers) {
            return Err(Refusal::NotJson);
        }
        Ok(())
    }

    /// `Host` must be `localhost` or an IP literal, with this port: no
    /// DNS name, so no DNS rebinding.
    fn host_is_this_listener(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        if let Some(port) = host.strip_prefix("localhost:") {
            return port.parse() == Ok(self.port);
        }
        host.parse::<SocketAddr>()
            .is_ok_and(|addr| addr.port() == self.port)
    }

    fn carries_token(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
        else {
            return false;
        };
        bool::from(given.as_bytes().ct_eq(self.token.as_bytes()))
    }
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// The middleware: refuses what [`Guard::judge`] refuses, with a JSON
/// error, before any handler runs.
pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.judge(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(
                ?refusal,
                path = request.uri().path(),
                "admin request refused"
            );
            refuse(refusal)
        }
    }
}

fn refuse(refusal: Refusal) -> Response {
    let (status, message) = match refusal {
        Refusal::ForeignHost => (
            StatusCode::MISDIRECTED_REQUEST,
            "Host must name this listener by IP address or localhost",
        ),
        Refusal::NoToken => (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token: send `Authorization: Bearer TOKEN` with the token from admin.json in the data directory",
        ),
        Refusal::NotJson => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change something must be sent as application/json",
        ),
    };
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use axum::http::HeaderValue;

    use super::*;

    const TOKEN: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn guard() -> Guard {
        Guard::new(7440, TOKEN.to_owned())
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn operator(extra: &[(header::HeaderName, &str)]) -> HeaderMap {
        let bearer = format!("Bearer {TOKEN}");
        let mut all = vec![
            (header::HOST, "127.0.0.1:7440"),
            (header::AUTHORIZATION, bearer.as_str()),
        ];
        all.extend_from_slice(extra);
        headers(&all)
    }

    #[test]
    fn hosts_by_ip_or_localhost_with_this_port_pass() {
        for host in [
            "127.0.0.1:7440",
            "[::1]:7440",
            "localhost:7440",
            "192.0.2.7:7440",
        ] {
            let h = headers(&[(header::HOST, host)]);
            assert_eq!(
                guard().judge(&Method::GET, "/metrics", &h),
                Ok(()),
                "{host}"
            );
        }
    }

    #[test]
    fn rebound_names_other_ports_and_no_host_are_refused() {
        for host in [
            "evil.example",
            "evil.example:7440",
            "localhost:80",
            "127.0.0.1:8080",
            "localhost",
        ] {
            let h = headers(&[(header::HOST, host)]);
            let verdict = guard().judge(&Method::GET, "/metrics", &h);
            assert_eq!(verdict, Err(Refusal::ForeignHost), "{host}");
        }
        let verdict = guard().judge(&Method::GET, "/healthz", &HeaderMap::new());
        assert_eq!(verdict, Err(Refusal::ForeignHost));
    }

    #[test]
    fn admin_requests_need_the_token() {
        let host_only = headers(&[(header::HOST, "127.0.0.1:7440")]);
        let verdict = guard().judge(&Method::GET, "/admin/stats", &host_only);
        assert_eq!(verdict, Err(Refusal::NoToken));
        let wrong = headers(&[
            (header::HOST, "127.0.0.1:7440"),
            (header::AUTHORIZATION, "Bearer 0011"),
        ]);
        let verdict = guard().judge(&Method::GET, "/admin/users", &wrong);
        assert_eq!(verdict, Err(Refusal::NoToken));
        let verdict = guard().judge(&Method::GET, "/admin/stats", &operator(&[]));
        assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn changes_must_be_json() {
        let path = "/admin/devices/x/ban";
        let form = operator(&[(header::CONTENT_TYPE, "application/x-www-form-urlencoded")]);
        assert_eq!(
            guard().judge(&Method::POST, path, &form),
            Err(Refusal::NotJson)
        );
        assert_eq!(
            guard().judge(&Method::POST, path, &operator(&[])),
            Err(Refusal::NotJson)
        );
        let json = operator(&[(header::CONTENT_TYPE, "application/json; charset=utf-8")]);
        assert_eq!(guard().judge(&Method::POST, path, &json), Ok(()));
    }
}
