//! The OpenID Connect provider users may sign in with (README § Sign in with Google): discovery,
//! the authorization request (code flow, PKCE S256, `state`, `nonce`) and the code exchange whose
//! ID token the `openidconnect` crate verifies (JWKS signature, `iss`, `aud`, `exp`, `nonce`).
//! Nothing here knows about accounts or HTTP routes: `http::oidc` turns a verified [`Identity`]
//! into a signed-in user.
//!
//! Discovery is lazy: the first sign-in fetches the provider's metadata and keys, which are kept
//! for [`METADATA_TTL`] (keys rotate: Google publishes a new key days before signing with it),
//! and fetched again at once when an ID token names a key they do not hold.
//! A provider that cannot be reached fails that sign-in with [`OidcError::Unavailable`] (the
//! server itself starts and runs without it), and the next attempt tries again.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError,
    TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
};
use tokio::sync::Mutex;

use crate::config;

/// How long discovered metadata and keys are used before they are fetched again.
pub const METADATA_TTL: Duration = Duration::from_secs(60 * 60);

/// Time allowed for one request to the provider (discovery, keys, code exchange). A browser is
/// waiting on the other end; 10 s is far above a healthy provider's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer read from the provider. A discovery document or key set is a few KiB, a token
/// answer about 2 KiB; this bounds what a misbehaving endpoint can make us hold.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Why a sign-in through the provider failed. The messages name the cause for the log and never
/// hold a token or a code.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached or answered nonsense (discovery, keys, token endpoint).
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the code exchange (an unknown, used or expired code, a wrong PKCE
    /// verifier, a wrong client secret).
    #[error("the provider refused the code: {0}")]
    Refused(String),
    /// The ID token is missing or did not verify (signature, issuer, audience, expiry, nonce,
    /// access-token hash).
    #[error("the ID token is not valid: {0}")]
    InvalidToken(String),
}

/// Who the provider says signed in, from a verified ID token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// `email_verified: true` in the claims; anything else (absent, false) is unverified.
    pub email_verified: bool,
    /// `name`, else `given_name`.
    pub name: Option<String>,
}

/// An authorization request to send the browser to, and what its callback needs back.
pub struct Started {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

/// The configured provider, with its discovered metadata once a sign-in needed it.
pub struct Provider {
    settings: config::Oidc,
    http: Http,
    discovered: Mutex<Option<(Instant, Arc<CoreProviderMetadata>)>>,
}

impl Provider {
    /// # Errors
    /// The HTTP client cannot be built (no TLS roots).
    pub fn new(settings: config::Oidc) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            // Following redirects would let a provider's answer send us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        Ok(Self {
            settings,
            http: Http(client),
            discovered: Mutex::new(None),
        })
    }

    /// The provider's name for the sign-in button.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The metadata, discovered now if never or too long ago. Callers wait for one discovery
    /// rather than each starting their own.
    async fn metadata(&self) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        self.metadata_newer_than(None).await
    }

    /// The metadata, discovered again unless what is cached is younger than [`METADATA_TTL`] and
    /// is not `stale` (the copy a caller found wanting).
    async fn metadata_newer_than(
        &self,
        stale: Option<&Arc<CoreProviderMetadata>>,
    ) -> Result<Arc<CoreProviderMetadata>, OidcError> {
        let mut cached = self.discovered.lock().await;
        if let Some((at, meta)) = cached.as_ref()
            && at.elapsed() < METADATA_TTL
            && !stale.is_some_and(|s| Arc::ptr_eq(s, meta))
        {
            return Ok(meta.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| OidcError::Unavailable(e.to_string()))?;
        let meta = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Unavailable(crate::telemetry::chain(&e)))?;
        let meta = Arc::new(meta);
        *cached = Some((Instant::now(), meta.clone()));
        tracing::info!(issuer = %self.settings.issuer, "OpenID Connect provider discovered");
        Ok(meta)
    }

    fn client(
        &self,
        meta: &CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect =
            RedirectUrl::new(self.settings.redirect_url.clone()).map_err(|e| OidcError::Unavailable(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            meta.clone(),
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.expose().to_owned())),
        )
        .set_redirect_uri(redirect))
    }

    /// A fresh authorization request: code flow, scopes `openid email profile`, PKCE S256, a
    /// random `state` and `nonce` (each 16 random bytes from the OS-seeded CSPRNG).
    ///
    /// # Errors
    /// [`OidcError::Unavailable`] when discovery fails.
    pub async fn start(&self) -> Result<Started, OidcError> {
        let meta = self.metadata().await?;
        let client = self.client(&meta)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Started {
            url: url.into(),
            state: state.into_secret(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.into_secret(),
        })
    }

    /// Exchanges `code` (with the PKCE verifier of its request) and verifies the ID token that
    /// comes back against the provider's keys, this client id, the issuer, the clock and `nonce`.
    ///
    /// # Errors
    /// [`OidcError::Unavailable`], [`OidcError::Refused`] or [`OidcError::InvalidToken`].
    pub async fn finish(&self, code: String, pkce_verifier: String, nonce: String) -> Result<Identity, OidcError> {
        let meta = self.metadata().await?;
        let client = self.client(&meta)?;
        let answer = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|e| OidcError::Unavailable(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                openidconnect::RequestTokenError::ServerResponse(r) => OidcError::Refused(r.to_string()),
                other => OidcError::Unavailable(crate::telemetry::chain(&other)),
            })?;
        let token = answer
            .id_token()
            .ok_or_else(|| OidcError::InvalidToken("no ID token in the answer".into()))?;
        let nonce = Nonce::new(nonce);
        // Signed with a key we do not have: the provider rotated its keys since discovery. The
        // token came from the provider itself (the code exchange), so fetching the keys again
        // is not something a browser can make us do at will.
        let unknown_key = matches!(
            token.claims(&client.id_token_verifier(), &nonce),
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey
            ))
        );
        let client = if unknown_key {
            let fresh = self.metadata_newer_than(Some(&meta)).await?;
            tracing::info!("ID token signed with a key not seen before: provider keys fetched again");
            self.client(&fresh)?
        } else {
            client
        };
        let verifier = client.id_token_verifier();
        let claims = token
            .claims(&verifier, &nonce)
            .map_err(|e| OidcError::InvalidToken(crate::telemetry::chain(&e)))?;
        if let Some(expected) = claims.access_token_hash() {
            let invalid = |e: &dyn std::error::Error| OidcError::InvalidToken(e.to_string());
            let alg = token.signing_alg().map_err(|e| invalid(&e))?;
            let key = token.signing_key(&verifier).map_err(|e| invalid(&e))?;
            let actual = AccessTokenHash::from_token(answer.access_token(), alg, key).map_err(|e| invalid(&e))?;
            if actual != *expected {
                return Err(OidcError::InvalidToken(
                    "at_hash does not match the access token".into(),
                ));
            }
        }
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or_else(|| {
                claims
                    .given_name()
                    .and_then(|n| n.get(None))
                    .map(|n| n.as_str().to_owned())
            });
        Ok(Identity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            email: claims.email().map(|e| e.as_str().to_owned()),
            email_verified: claims.email_verified() == Some(true),
            name,
        })
    }
}

/// The `openidconnect` HTTP client over this crate's reqwest (rustls): bounded answers, no
/// redirects, a timeout per request.
struct Http(reqwest::Client);

/// A request to the provider that failed before an answer was read.
#[derive(Debug, thiserror::Error)]
enum HttpError {
    #[error(transparent)]
    Reqwest(#[from] reqwest::Error),
    #[error("answer over {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error(transparent)]
    Http(#[from] openidconnect::http::Error),
}

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut response = self.0.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                answer = answer.header(name, value);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                    return Err(HttpError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(answer.body(body)?)
        })
    }
}
