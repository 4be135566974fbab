-- Security (SECURITY.md). The SQLite twin is migrations/sqlite/0003_security.sql.
--
-- Columns that the code compares compare exactly what the code compares: e-mails are stored
-- lower-cased by the application and compared byte for byte (utf8mb4_unicode_ci made
-- `ánn@example.com` find `ann@example.com`); names are unique by `name_key`, the application's
-- lower-case form; token hashes and session ids are case-sensitive.
ALTER TABLE users
    MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    MODIFY name VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ADD COLUMN name_key VARCHAR(80) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    -- Granted by an operator only (`chatbox admin grant`).
    ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE users SET name_key = LOWER(name);
ALTER TABLE users
    MODIFY name_key VARCHAR(80) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    DROP INDEX uq_users_name,
    ADD UNIQUE KEY uq_users_name_key (name_key);

ALTER TABLE api_tokens
    MODIFY token_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    ADD KEY ix_api_tokens_created (created_at);

-- Sessions name their user, so "sign out everywhere" can end them all.
ALTER TABLE sessions
    MODIFY id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    ADD COLUMN user_id BIGINT NULL,
    ADD KEY ix_sessions_user (user_id);

-- Values the server makes for itself once (the generated Pusher secret of a server started
-- without PUSHER_APP_SECRET).
CREATE TABLE app_settings (
    name  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    value VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL
) ENGINE=InnoDB;
