-- Sign-in with OpenID Connect (README § Sign in with Google). The MySQL twin is
-- migrations/mysql/0004_oidc.sql.
--
-- An account signed in through a provider is found by the provider's (issuer, subject), never by
-- its e-mail: the subject is the one identifier a provider promises never to reassign.
CREATE TABLE oidc_identities (
    issuer     TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT    NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX ix_oidc_identities_user ON oidc_identities (user_id);

-- Sign-ins under way: between the redirect to the provider and its callback. Found by the hash
-- of `state`, bound to the browser by the hash of a cookie, taken once; kept 10 minutes.
CREATE TABLE oidc_logins (
    state_hash    TEXT NOT NULL PRIMARY KEY,
    browser_hash  TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX ix_oidc_logins_created ON oidc_logins (created_at);
