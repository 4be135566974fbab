-- Security (SECURITY.md). The MySQL twin is migrations/mysql/0003_security.sql.
--
-- Names are unique by `name_key`, the application's lower-case form (NOCASE folded ASCII only,
-- and MySQL's collation folded accents too: the two backends disagreed). E-mails, token hashes
-- and session ids already compare byte for byte here.
ALTER TABLE users ADD COLUMN name_key TEXT NOT NULL DEFAULT '';
-- Granted by an operator only (`chatbox admin grant`).
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
UPDATE users SET name_key = lower(name);
DROP INDEX uq_users_name;
CREATE UNIQUE INDEX uq_users_name_key ON users (name_key);
CREATE INDEX ix_api_tokens_created ON api_tokens (created_at);

-- Sessions name their user, so "sign out everywhere" can end them all.
ALTER TABLE sessions ADD COLUMN user_id INTEGER NULL;
CREATE INDEX ix_sessions_user ON sessions (user_id);

-- Values the server makes for itself once (the generated Pusher secret of a server started
-- without PUSHER_APP_SECRET).
CREATE TABLE app_settings (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
