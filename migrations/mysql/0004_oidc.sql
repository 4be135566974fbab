-- Sign-in with OpenID Connect (README § Sign in with Google). The SQLite twin is
-- migrations/sqlite/0004_oidc.sql.
--
-- An account signed in through a provider is found by the provider's (issuer, subject), never by
-- its e-mail: the subject is the one identifier a provider promises never to reassign. Both
-- compare byte for byte (a case-insensitive collation would make `abc` and `ABC` one person).
CREATE TABLE oidc_identities (
    issuer     VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    subject    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    user_id    BIGINT      NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (issuer, subject),
    KEY ix_oidc_identities_user (user_id),
    CONSTRAINT fk_oidc_identities_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Sign-ins under way: between the redirect to the provider and its callback. Found by the hash
-- of `state`, bound to the browser by the hash of a cookie, taken once; kept 10 minutes.
CREATE TABLE oidc_logins (
    state_hash    CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    browser_hash  CHAR(64)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    nonce         VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    pkce_verifier VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    KEY ix_oidc_logins_created (created_at)
) ENGINE=InnoDB;
