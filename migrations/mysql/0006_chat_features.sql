-- Chat features: edits, mentions, anonymous questions. The SQLite twin is
-- migrations/sqlite/0006_chat_features.sql.

-- `edited_at` is the "edited" mark (NULL: never edited). An anonymous question keeps its sender
-- (for abuse handling) but is shown only with `pseudonym`, an opaque per-group HMAC of the sender.
ALTER TABLE messages
    ADD COLUMN edited_at DATETIME(6) NULL,
    ADD COLUMN anonymous BOOLEAN NOT NULL DEFAULT FALSE,
    ADD COLUMN pseudonym VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL,
    ADD KEY ix_messages_group_pseudonym (group_id, pseudonym);

-- The owner lets members ask anonymously.
ALTER TABLE chat_groups ADD COLUMN questions BOOLEAN NOT NULL DEFAULT FALSE;

-- Anonymous askers the owner muted, by pseudonym only.
CREATE TABLE group_muted (
    group_id  BIGINT      NOT NULL,
    pseudonym VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    muted_at  DATETIME(6) NOT NULL,
    PRIMARY KEY (group_id, pseudonym),
    CONSTRAINT fk_group_muted_group FOREIGN KEY (group_id) REFERENCES chat_groups (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Members named with @name in a group message.
CREATE TABLE message_mentions (
    message_id BIGINT NOT NULL,
    user_id    BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id),
    KEY ix_message_mentions_user (user_id),
    CONSTRAINT fk_message_mentions_message FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE CASCADE,
    CONSTRAINT fk_message_mentions_user FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Notification rows about one message (mentions) go with it when it is deleted.
ALTER TABLE notifications
    ADD COLUMN message_id BIGINT NULL,
    ADD KEY ix_notifications_message (message_id);
