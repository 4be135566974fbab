-- chatbox schema, SQLite. The MySQL twin is migrations/mysql/0001_schema.sql:
-- keep the two in step (same tables, columns, keys and index names).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL COLLATE NOCASE,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_users_email ON users (email);
CREATE UNIQUE INDEX uq_users_name ON users (name);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_api_tokens_token_hash ON api_tokens (token_hash);
CREATE INDEX ix_api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    id          TEXT PRIMARY KEY NOT NULL,
    data        BLOB NOT NULL,
    expiry_date TEXT NOT NULL
);
CREATE INDEX ix_sessions_expiry ON sessions (expiry_date);

CREATE TABLE chat_groups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL COLLATE NOCASE,
    owner_id   INTEGER NULL REFERENCES users (id) ON DELETE SET NULL,
    is_all     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_chat_groups_name ON chat_groups (name);

CREATE TABLE group_members (
    group_id  INTEGER NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX ix_group_members_user ON group_members (user_id);

CREATE TABLE messages (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id INTEGER NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id     INTEGER NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    pair_lo      INTEGER NULL,
    pair_hi      INTEGER NULL,
    body         TEXT NOT NULL,
    client_id    TEXT NULL,
    created_at   TEXT NOT NULL
);
CREATE UNIQUE INDEX uq_messages_client ON messages (sender_id, client_id);
CREATE INDEX ix_messages_pair ON messages (pair_lo, pair_hi, id);
CREATE INDEX ix_messages_recipient ON messages (recipient_id, id);
CREATE INDEX ix_messages_group ON messages (group_id, id);

CREATE TABLE delivery_cursors (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    last_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE read_marks (
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation TEXT NOT NULL,
    last_read_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, conversation)
);

CREATE TABLE friends (
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX ix_notifications_user ON notifications (user_id, id);

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job        TEXT NOT NULL,
    created_at TEXT NOT NULL
);

INSERT INTO chat_groups (id, name, owner_id, is_all, created_at) VALUES (1, 'All', NULL, TRUE, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
