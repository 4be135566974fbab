-- chatbox schema, MySQL 8 / MariaDB 10.11. The SQLite twin is migrations/sqlite/0001_schema.sql:
-- keep the two in step (same tables, columns, keys and index names).

CREATE TABLE users (
    id            BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(40)  NOT NULL,
    email         VARCHAR(254) NOT NULL,
    password_hash VARCHAR(255) NOT NULL,
    created_at    DATETIME(6)  NOT NULL,
    UNIQUE KEY uq_users_email (email),
    UNIQUE KEY uq_users_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Bearer tokens for scripts and socket clients; only the SHA-256 of a token is kept.
CREATE TABLE api_tokens (
    id           BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id      BIGINT      NOT NULL,
    token_hash   CHAR(64)    NOT NULL,
    created_at   DATETIME(6) NOT NULL,
    UNIQUE KEY uq_api_tokens_token_hash (token_hash),
    KEY ix_api_tokens_user (user_id),
    CONSTRAINT fk_api_tokens_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Browser sessions (tower-sessions records, JSON).
CREATE TABLE sessions (
    id          VARCHAR(64) NOT NULL PRIMARY KEY,
    data        MEDIUMBLOB  NOT NULL,
    expiry_date DATETIME(6) NOT NULL,
    KEY ix_sessions_expiry (expiry_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- `groups` is a reserved word in MySQL 8, hence chat_groups. "All" has no owner and is_all = 1.
CREATE TABLE chat_groups (
    id         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    owner_id   BIGINT       NULL,
    is_all     BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at DATETIME(6)  NOT NULL,
    KEY ix_chat_groups_name (name),
    CONSTRAINT fk_chat_groups_owner FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE group_members (
    group_id  BIGINT      NOT NULL,
    user_id   BIGINT      NOT NULL,
    joined_at DATETIME(6) NOT NULL,
    PRIMARY KEY (group_id, user_id),
    KEY ix_group_members_user (user_id),
    CONSTRAINT fk_group_members_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE,
    CONSTRAINT fk_group_members_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One-to-one messages have recipient_id (and pair_lo < pair_hi, the two participants, for history paging);
-- group messages have group_id. Ids grow with time. (sender_id, client_id) makes retried sends idempotent.
CREATE TABLE messages (
    id           BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    sender_id    BIGINT      NOT NULL,
    recipient_id BIGINT      NULL,
    group_id     BIGINT      NULL,
    pair_lo      BIGINT      NULL,
    pair_hi      BIGINT      NULL,
    body         TEXT        NOT NULL,
    client_id    VARCHAR(64) NULL,
    created_at   DATETIME(6) NOT NULL,
    UNIQUE KEY uq_messages_client (sender_id, client_id),
    KEY ix_messages_pair (pair_lo, pair_hi, id),
    KEY ix_messages_recipient (recipient_id, id),
    KEY ix_messages_group (group_id, id),
    CONSTRAINT fk_messages_sender FOREIGN KEY (sender_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_recipient FOREIGN KEY (recipient_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per-user delivery cursors: the newest message id a user acknowledged, per channel kind
-- ('individual' or 'group'); backlog is everything after it.
CREATE TABLE delivery_cursors (
    user_id      BIGINT      NOT NULL,
    kind         VARCHAR(16) NOT NULL,
    last_id      BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, kind),
    CONSTRAINT fk_delivery_cursors_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Per-user read marks per conversation (for unread counts): conversation is 'u:{userId}' or 'g:{groupId}'.
CREATE TABLE read_marks (
    user_id      BIGINT      NOT NULL,
    conversation VARCHAR(32) NOT NULL,
    last_read_id BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, conversation),
    CONSTRAINT fk_read_marks_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE friends (
    user_id    BIGINT      NOT NULL,
    friend_id  BIGINT      NOT NULL,
    created_at DATETIME(6) NOT NULL,
    PRIMARY KEY (user_id, friend_id),
    CONSTRAINT fk_friends_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_friends_friend FOREIGN KEY (friend_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Long-polling notification centre: rows wait here until fetched (cursor = id).
CREATE TABLE notifications (
    id         BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    user_id    BIGINT      NOT NULL,
    payload    TEXT        NOT NULL,
    created_at DATETIME(6) NOT NULL,
    KEY ix_notifications_user (user_id, id),
    CONSTRAINT fk_notifications_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Transactional outbox: a broadcast job written in the same transaction as the message it announces.
-- A row is deleted once its job is on the queue; rows left behind (queue down, crash) are re-enqueued.
CREATE TABLE outbox (
    id         BIGINT      NOT NULL AUTO_INCREMENT PRIMARY KEY,
    job        TEXT        NOT NULL,
    created_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

INSERT INTO chat_groups (id, name, owner_id, is_all, created_at) VALUES (1, 'All', NULL, TRUE, UTC_TIMESTAMP(6));
