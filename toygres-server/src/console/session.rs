//! Console sessions: a signed cookie that says who is signed in, and the CSRF token bound to it.
//!
//! The cookie holds no secret: a version, the session's kind, a random session id, a keyed
//! reference to the API token it was signed in with (an HMAC of the token's id, so it lets no one
//! test guesses of a token), and its expiry, signed with HMAC-SHA256 under a subkey of the
//! server's secret key ([`MacKey`], label [`SESSION_KEY_LABEL`]). So it needs no storage, holds
//! across restarts and replicas that share the key, and dies with the token: a session whose
//! token is no longer configured (or has another role) is refused at once. Signing out forgets
//! the session in this process until it expires ([`Sessions::revoke`]).
//!
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, and with TLS `Secure` under the
//! `__Host-` prefix. Every change the console makes carries the session's CSRF token, an HMAC of
//! the session id under the same subkey: a page of another site can neither read it nor make the
//! browser send the cookie.

use crate::http::api::auth::Authentication;
use crate::http::api::cross_site::Scheme;
use crate::security::tokens::Role;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use std::collections::HashMap;
use std::sync::Mutex;
use subtle::ConstantTimeEq as _;
use toygres_activities::seal::SecretKey;
use toygres_activities::subkey::MacKey;

/// The HKDF label of the key that signs session cookies and CSRF tokens.
pub const SESSION_KEY_LABEL: &str = "toygres console session v1";
/// How long a session lasts after sign-in (absolute, not renewed).
pub const SESSION_SECONDS: i64 = 12 * 60 * 60;
/// How long the sign-in form's pre-session lasts.
pub const SIGN_IN_SECONDS: i64 = 30 * 60;

/// Who a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// No tokens are configured: the one local user (the server listens on loopback only).
    Local,
    /// Signed in with a token of this role; `token_ref` names the token (keyed, see the module).
    Token {
        /// The token's role.
        role: Role,
        /// HMAC of the token's id, truncated.
        token_ref: [u8; 16],
    },
    /// Nobody yet: the pre-session of the sign-in form, which only binds its CSRF token.
    SigningIn,
}

impl Principal {
    /// Whether this principal may change things (create, delete).
    pub fn may_change(self) -> bool {
        matches!(
            self,
            Principal::Local
                | Principal::Token {
                    role: Role::Admin,
                    ..
                }
        )
    }

    fn code(self) -> &'static str {
        match self {
            Principal::Local => "l",
            Principal::Token {
                role: Role::Admin, ..
            } => "a",
            Principal::Token {
                role: Role::ReadOnly,
                ..
            } => "r",
            Principal::SigningIn => "s",
        }
    }
}

/// One valid session, as read from (or just put into) a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Random, 128 bits.
    pub id: [u8; 16],
    /// Who it belongs to.
    pub principal: Principal,
    /// Unix seconds after which it is refused.
    pub expires_at: i64,
}

/// Which of the two cookies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieKind {
    /// The session of a signed-in (or, without tokens, local) user.
    Session,
    /// The sign-in form's pre-session. Kept apart so that opening the sign-in page never
    /// replaces a session.
    SignIn,
}

/// Issues, reads and revokes sessions.
pub struct Sessions {
    key: MacKey,
    authentication: Authentication,
    secure: bool,
    revoked: Mutex<HashMap<[u8; 16], i64>>,
}

impl Sessions {
    /// Sessions signed with a subkey of `secret`, for a server with `authentication` served
    /// over `scheme` (`Secure` cookies with TLS).
    pub fn new(secret: &SecretKey, authentication: Authentication, scheme: Scheme) -> Self {
        Self {
            key: MacKey::derive(secret, SESSION_KEY_LABEL),
            authentication,
            secure: scheme == Scheme::Https,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the server has tokens, so that the console needs a sign-in.
    pub fn needs_sign_in(&self) -> bool {
        matches!(self.authentication, Authentication::Tokens(_))
    }

    /// The cookie's name: `__Host-` prefixed when `Secure`.
    pub fn cookie_name(&self, kind: CookieKind) -> &'static str {
        match (kind, self.secure) {
            (CookieKind::Session, true) => "__Host-toygres-session",
            (CookieKind::Session, false) => "toygres-session",
            (CookieKind::SignIn, true) => "__Host-toygres-sign-in",
            (CookieKind::SignIn, false) => "toygres-sign-in",
        }
    }

    /// The valid session of `kind` the request carries, if any: signed by this server's key,
    /// not expired, not revoked, and (for a token) of a token still configured with that role.
    pub fn read(&self, headers: &HeaderMap, kind: CookieKind) -> Option<Session> {
        let name = self.cookie_name(kind);
        let value = cookie_values(headers, name).find_map(|value| self.decode(value))?;
        let wanted = match kind {
            CookieKind::Session => value.principal != Principal::SigningIn,
            CookieKind::SignIn => value.principal == Principal::SigningIn,
        };
        (wanted && self.is_current(&value)).then_some(value)
    }

    /// A new session for `principal` and the `Set-Cookie` value that hands it over.
    pub fn issue(&self, principal: Principal) -> (Session, HeaderValue) {
        let mut id = [0u8; 16];
        rand::rng().fill_bytes(&mut id);
        let (kind, lifetime) = match principal {
            Principal::SigningIn => (CookieKind::SignIn, SIGN_IN_SECONDS),
            _ => (CookieKind::Session, SESSION_SECONDS),
        };
        let session = Session {
            id,
            principal,
            expires_at: now() + lifetime,
        };
        let cookie = self.set_cookie(kind, &self.encode(&session), Some(lifetime));
        (session, cookie)
    }

    /// The `Set-Cookie` value that removes the cookie of `kind`.
    pub fn clear(&self, kind: CookieKind) -> HeaderValue {
        self.set_cookie(kind, "", Some(0))
    }

    /// The principal a presented API token signs in as, or `None` when it is no configured
    /// token (or the server has no tokens).
    pub fn sign_in(&self, presented: &str) -> Option<Principal> {
        let Authentication::Tokens(tokens) = &self.authentication else {
            return None;
        };
        let (role, id) = tokens.identify(presented)?;
        Some(Principal::Token {
            role,
            token_ref: self.token_ref(id.as_bytes()),
        })
    }

    /// Forgets `session` in this process until it would have expired (signing out). Other
    /// replicas learn nothing of it: the cookie is removed from the browser, and the session
    /// ends with its token, or at its expiry.
    pub fn revoke(&self, session: &Session) {
        if let Ok(mut revoked) = self.revoked.lock() {
            let now = now();
            revoked.retain(|_, expires_at| *expires_at > now);
            revoked.insert(session.id, session.expires_at);
        }
    }

    /// The CSRF token of `session`: what every change made with it must carry.
    pub fn csrf_token(&self, session: &Session) -> String {
        URL_SAFE_NO_PAD.encode(self.key.mac(&[b"csrf\0", &session.id]))
    }

    /// Whether `presented` is the CSRF token of `session` (compared in constant time).
    pub fn csrf_matches(&self, session: &Session, presented: &str) -> bool {
        let expected = self.csrf_token(session);
        expected.len() == presented.len()
            && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    fn token_ref(&self, token_id: &[u8; 32]) -> [u8; 16] {
        let mac = self.key.mac(&[b"token\0", token_id]);
        let mut reference = [0u8; 16];
        reference.copy_from_slice(&mac[..16]);
        reference
    }

    fn is_current(&self, session: &Session) -> bool {
        if session.expires_at <= now() {
            return false;
        }
        if self
            .revoked
            .lock()
            .map(|revoked| revoked.contains_key(&session.id))
            .unwrap_or(true)
        {
            return false;
        }
        match (session.principal, &self.authentication) {
            (Principal::Local, Authentication::Disabled) => true,
            (Principal::SigningIn, Authentication::Tokens(_)) => true,
            (Principal::Token { role, token_ref }, Authentication::Tokens(tokens)) => {
                tokens.ids().any(|(configured, id)| {
                    configured == role
                        && bool::from(self.token_ref(id.as_bytes()).ct_eq(&token_ref))
                })
            }
            _ => false,
        }
    }

    fn encode(&self, session: &Session) -> String {
        let token_ref = match session.principal {
            Principal::Token { token_ref, .. } => URL_SAFE_NO_PAD.encode(token_ref),
            _ => "-".to_string(),
        };
        let payload = format!(
            "1.{}.{}.{}.{}",
            session.principal.code(),
            URL_SAFE_NO_PAD.encode(session.id),
            token_ref,
            session.expires_at
        );
        let signature = URL_SAFE_NO_PAD.encode(self.key.mac(&[payload.as_bytes()]));
        format!("{payload}.{signature}")
    }

    fn decode(&self, value: &str) -> Option<Session> {
        let (payload, signature) = value.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let expected = self.key.mac(&[payload.as_bytes()]);
        if signature.len() != expected.len() || !bool::from(signature.ct_eq(&expected)) {
            return None;
        }
        let mut fields = payload.split('.');
        let (Some("1"), Some(code), Some(id), Some(token_ref), Some(expires_at), None) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return None;
        };
        let id: [u8; 16] = URL_SAFE_NO_PAD.decode(id).ok()?.try_into().ok()?;
        let token_ref =
            || -> Option<[u8; 16]> { URL_SAFE_NO_PAD.decode(token_ref).ok()?.try_into().ok() };
        let principal = match code {
            "l" => Principal::Local,
            "s" => Principal::SigningIn,
            "a" => Principal::Token {
                role: Role::Admin,
                token_ref: token_ref()?,
            },
            "r" => Principal::Token {
                role: Role::ReadOnly,
                token_ref: token_ref()?,
            },
            _ => return None,
        };
        Some(Session {
            id,
            principal,
            expires_at: expires_at.parse().ok()?,
        })
    }

    fn set_cookie(&self, kind: CookieKind, value: &str, max_age: Option<i64>) -> HeaderValue {
        let mut cookie = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie_name(kind)
        );
        if self.secure {
            cookie.push_str("; Secure");
        }
        if let Some(max_age) = max_age {
            cookie.push_str(&format!("; Max-Age={max_age}"));
        }
        // Only base64url, digits, '.', '-' and the fixed attributes: always a valid header.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }
}

/// The values of every cookie named `name` in the request's `Cookie` headers.
fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(move |pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name).then_some(value)
        })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::tokens::ApiTokens;
    use std::sync::Arc;

    const ADMIN: &str = "admin-token-0123456789";
    const READER: &str = "reader-token-0123456789";

    fn with_tokens(secret: &SecretKey, raw: &str) -> Sessions {
        let tokens = ApiTokens::parse(raw).map(Arc::new);
        let authentication = match tokens {
            Ok(tokens) => Authentication::Tokens(tokens),
            Err(_) => Authentication::Disabled,
        };
        Sessions::new(secret, authentication, Scheme::Http)
    }

    fn carrying(sessions: &Sessions, kind: CookieKind, cookie: &HeaderValue) -> HeaderMap {
        let pair = cookie
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&format!("other=1; {pair}")) {
            headers.insert(header::COOKIE, value);
        }
        assert!(pair.starts_with(sessions.cookie_name(kind)));
        headers
    }

    #[test]
    fn a_token_session_round_trips_and_dies_with_its_token() {
        let secret = SecretKey::generate();
        let both = format!("admin:{ADMIN},readonly:{READER}");
        let sessions = with_tokens(&secret, &both);
        let admin = sessions.sign_in(ADMIN);
        assert!(admin.is_some_and(Principal::may_change));
        let reader = sessions.sign_in(READER);
        assert!(reader.is_some_and(|reader| !reader.may_change()));
        assert!(sessions.sign_in("not-a-token-at-all-0000").is_none());
        let Some(principal) = admin else { return };
        let (session, cookie) = sessions.issue(principal);
        let cookie_text = cookie.to_str().unwrap_or_default().to_string();
        assert!(cookie_text.contains("HttpOnly") && cookie_text.contains("SameSite=Strict"));
        assert!(!cookie_text.contains(ADMIN) && !cookie_text.contains("Secure"));
        let headers = carrying(&sessions, CookieKind::Session, &cookie);
        assert_eq!(sessions.read(&headers, CookieKind::Session), Some(session));
        assert_eq!(sessions.read(&headers, CookieKind::SignIn), None);
        // The same key, the admin token gone: the session is refused.
        let without_admin = with_tokens(&secret, &format!("readonly:{READER}"));
        assert_eq!(without_admin.read(&headers, CookieKind::Session), None);
        // Another key: refused.
        let other_key = with_tokens(&SecretKey::generate(), &both);
        assert_eq!(other_key.read(&headers, CookieKind::Session), None);
        // Without tokens a token session means nothing.
        let local = Sessions::new(&secret, Authentication::Disabled, Scheme::Http);
        assert_eq!(local.read(&headers, CookieKind::Session), None);
    }

    #[test]
    fn tampered_expired_and_revoked_sessions_are_refused() {
        let secret = SecretKey::generate();
        let sessions = with_tokens(&secret, &format!("admin:{ADMIN},readonly:{READER}"));
        let Some(reader) = sessions.sign_in(READER) else {
            panic!("the reader token signs in");
        };
        let (session, cookie) = sessions.issue(reader);
        let text = cookie.to_str().unwrap_or_default().to_string();
        // A read-only session edited into an admin one: the signature no longer matches.
        let forged = text.replacen("=1.r.", "=1.a.", 1);
        let forged = HeaderValue::from_str(&forged).unwrap_or(cookie.clone());
        let headers = carrying(&sessions, CookieKind::Session, &forged);
        assert_eq!(sessions.read(&headers, CookieKind::Session), None);
        // An expired one.
        let stale = Session {
            expires_at: now() - 1,
            ..session.clone()
        };
        let encoded = sessions.encode(&stale);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("toygres-session={encoded}"))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(sessions.read(&headers, CookieKind::Session), None);
        // Revoked.
        let headers = carrying(&sessions, CookieKind::Session, &cookie);
        assert!(sessions.read(&headers, CookieKind::Session).is_some());
        sessions.revoke(&session);
        assert_eq!(sessions.read(&headers, CookieKind::Session), None);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session() {
        let secret = SecretKey::generate();
        let sessions = Sessions::new(&secret, Authentication::Disabled, Scheme::Https);
        let (first, cookie) = sessions.issue(Principal::Local);
        let (second, _) = sessions.issue(Principal::Local);
        let token = sessions.csrf_token(&first);
        assert!(sessions.csrf_matches(&first, &token));
        assert!(!sessions.csrf_matches(&second, &token));
        assert!(!sessions.csrf_matches(&first, ""));
        assert!(!sessions.csrf_matches(&first, &token[1..]));
        let text = cookie.to_str().unwrap_or_default();
        assert!(text.starts_with("__Host-toygres-session=") && text.contains("; Secure"));
        let headers = carrying(&sessions, CookieKind::Session, &cookie);
        assert_eq!(sessions.read(&headers, CookieKind::Session), Some(first));
    }

    #[test]
    fn the_sign_in_pre_session_is_no_session() {
        let secret = SecretKey::generate();
        let sessions = with_tokens(&secret, &format!("admin:{ADMIN}"));
        let (pre, cookie) = sessions.issue(Principal::SigningIn);
        let headers = carrying(&sessions, CookieKind::SignIn, &cookie);
        assert_eq!(sessions.read(&headers, CookieKind::SignIn), Some(pre));
        assert_eq!(sessions.read(&headers, CookieKind::Session), None);
        assert!(!Principal::SigningIn.may_change());
    }
}
