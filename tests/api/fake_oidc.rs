//! A fake OpenID Connect provider for tests/api/oidc.rs, served on 127.0.0.1: a discovery
//! document, a key set (RSA keys made once per run), and a token endpoint that checks the client's
//! secret (HTTP Basic), the redirect URL and the PKCE verifier against the challenge a code was
//! issued for, then answers with the ID token the test chose.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    routing::{get, post},
};
use chrono::{Duration, Utc};
use openidconnect::{
    AccessToken, Audience, AuthUrl, EmptyAdditionalClaims, EmptyAdditionalProviderMetadata, EndUserEmail, EndUserName,
    IssuerUrl, JsonWebKeyId, JsonWebKeySetUrl, LocalizedClaim, Nonce, PkceCodeChallenge, PkceCodeVerifier,
    PrivateSigningKey, ResponseTypes, StandardClaims, SubjectIdentifier, TokenUrl,
    core::{
        CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata,
        CoreResponseType, CoreRsaPrivateSigningKey, CoreSubjectIdentifierType,
    },
};
use rsa::pkcs1::EncodeRsaPrivateKey;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "chatbox-test-client";
pub const CLIENT_SECRET: &str = "client-secret-known-to-the-fake-provider";
pub const REDIRECT_URL: &str = "http://localhost/auth/oidc/callback";

/// PKCS#1 PEMs of two RSA keys, made once per test run: the provider's, and another one.
static KEYS: LazyLock<[String; 2]> = LazyLock::new(|| {
    [0, 1].map(|_| {
        let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("RSA key");
        key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).expect("PEM").to_string()
    })
});

fn signing_key(which: usize, kid: &str) -> CoreRsaPrivateSigningKey {
    CoreRsaPrivateSigningKey::from_pem(&KEYS[which], Some(JsonWebKeyId::new(kid.into()))).expect("key")
}

/// A code the provider will exchange once: for the PKCE challenge it was issued against.
struct Grant {
    challenge: String,
    id_token: String,
}

/// What the provider's handlers share.
#[derive(Clone)]
struct Provider {
    issuer: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    /// The key the provider publishes: `(key, kid)`.
    published: Arc<Mutex<(usize, &'static str)>>,
}

/// The fake provider, serving until the test ends.
pub struct FakeProvider {
    pub issuer: String,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    published: Arc<Mutex<(usize, &'static str)>>,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let issuer = format!("http://{}", listener.local_addr().expect("addr"));
        let provider = Provider {
            issuer: issuer.clone(),
            grants: Arc::default(),
            published: Arc::new(Mutex::new((0, "key-1"))),
        };
        let (grants, published) = (provider.grants.clone(), provider.published.clone());
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .with_state(provider);
        tokio::spawn(async move { axum::serve(listener, app).await.expect("fake provider serves") });
        Self {
            issuer,
            grants,
            published,
        }
    }

    /// Publishes another key in place of the current one, as a provider rotating its keys does.
    pub fn rotate_to(&self, key: usize, kid: &'static str) {
        *self.published.lock().unwrap() = (key, kid);
    }

    /// Makes `code` exchangeable once for `id_token`, by the verifier of `challenge`.
    pub fn grant(&self, code: &str, challenge: &str, id_token: String) {
        let grant = Grant {
            challenge: challenge.to_owned(),
            id_token,
        };
        self.grants.lock().unwrap().insert(code.to_owned(), grant);
    }
}

async fn discovery(State(p): State<Provider>) -> Json<CoreProviderMetadata> {
    let url = |path: &str| format!("{}{path}", p.issuer);
    let meta = CoreProviderMetadata::new(
        IssuerUrl::new(p.issuer.clone()).unwrap(),
        AuthUrl::new(url("/authorize")).unwrap(),
        JsonWebKeySetUrl::new(url("/jwks")).unwrap(),
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
        EmptyAdditionalProviderMetadata {},
    )
    .set_token_endpoint(Some(TokenUrl::new(url("/token")).unwrap()));
    Json(meta)
}

async fn jwks(State(p): State<Provider>) -> Json<CoreJsonWebKeySet> {
    let (key, kid) = *p.published.lock().unwrap();
    Json(CoreJsonWebKeySet::new(vec![
        signing_key(key, kid).as_verification_key(),
    ]))
}

/// The token endpoint: the client's secret (HTTP Basic), a known code (once), the redirect URL
/// and a PKCE verifier whose S256 challenge is the one the code was issued for.
async fn token(
    State(p): State<Provider>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": error })));
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(decode_basic);
    if auth != Some((CLIENT_ID.to_owned(), CLIENT_SECRET.to_owned())) {
        return refuse("invalid_client");
    }
    let field = |name: &str| form.get(name).cloned().unwrap_or_default();
    if field("grant_type") != "authorization_code" || field("redirect_uri") != REDIRECT_URL {
        return refuse("invalid_request");
    }
    let Some(grant) = p.grants.lock().unwrap().remove(&field("code")) else {
        return refuse("invalid_grant");
    };
    let verifier = PkceCodeVerifier::new(field("code_verifier"));
    if PkceCodeChallenge::from_code_verifier_sha256(&verifier).as_str() != grant.challenge {
        return refuse("invalid_grant");
    }
    let answer = json!({
        "access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 3600, "id_token": grant.id_token,
    });
    (StatusCode::OK, Json(answer))
}

const ACCESS_TOKEN: &str = "access-token-of-the-fake-provider";

/// HTTP Basic credentials as the oauth2 crate sends them (each part form-urlencoded).
fn decode_basic(value: &str) -> Option<(String, String)> {
    use base64::Engine;
    let encoded = value.strip_prefix("Basic ")?;
    let text = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={s}"))
            .ok()?
            .pop()
            .map(|(_, v)| v)
    };
    Some((unescape(id)?, unescape(secret)?))
}

/// What the provider puts in the ID token it issues.
pub struct Claims {
    pub subject: String,
    pub email: Option<String>,
    pub verified: bool,
    pub name: Option<String>,
    pub audience: String,
    pub expires_in: Duration,
    /// `None`: the nonce of the authorization request.
    pub nonce: Option<String>,
    /// 0: the provider's key; 1: another key.
    pub key: usize,
    /// The key id the token names (a forged token names the key it pretends to be).
    pub kid: &'static str,
}

impl Claims {
    pub fn of(subject: &str) -> Self {
        Self {
            subject: subject.to_owned(),
            email: None,
            verified: false,
            name: Some("Ann Lee".into()),
            audience: CLIENT_ID.into(),
            expires_in: Duration::minutes(5),
            nonce: None,
            key: 0,
            kid: "key-1",
        }
    }

    pub fn email(mut self, email: &str, verified: bool) -> Self {
        self.email = Some(email.into());
        self.verified = verified;
        self
    }

    pub fn sign(&self, issuer: &str, request_nonce: &str) -> String {
        let mut standard = StandardClaims::new(SubjectIdentifier::new(self.subject.clone()))
            .set_email(self.email.clone().map(EndUserEmail::new))
            .set_email_verified(self.email.as_ref().map(|_| self.verified));
        if let Some(name) = &self.name {
            standard = standard.set_name(Some(LocalizedClaim::from(EndUserName::new(name.clone()))));
        }
        let now = Utc::now();
        let nonce = self.nonce.clone().unwrap_or_else(|| request_nonce.to_owned());
        let claims = CoreIdTokenClaims::new(
            IssuerUrl::new(issuer.to_owned()).unwrap(),
            vec![Audience::new(self.audience.clone())],
            now + self.expires_in,
            now - Duration::minutes(1),
            standard,
            EmptyAdditionalClaims {},
        )
        .set_nonce(Some(Nonce::new(nonce)));
        let access = AccessToken::new(ACCESS_TOKEN.into());
        CoreIdToken::new(
            claims,
            &signing_key(self.key, self.kid),
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            Some(&access),
            None,
        )
        .expect("sign the ID token")
        .to_string()
    }
}
