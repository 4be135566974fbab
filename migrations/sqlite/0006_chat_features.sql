-- Chat features: edits, mentions, anonymous questions. The MySQL twin is
-- migrations/mysql/0006_chat_features.sql.

-- `edited_at` is the "edited" mark (NULL: never edited). An anonymous question keeps its sender
-- (for abuse handling) but is shown only with `pseudonym`, an opaque per-group HMAC of the sender.
ALTER TABLE messages ADD COLUMN edited_at TEXT NULL;
ALTER TABLE messages ADD COLUMN anonymous BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE messages ADD COLUMN pseudonym TEXT NULL;
CREATE INDEX ix_messages_group_pseudonym ON messages (group_id, pseudonym);

-- The owner lets members ask anonymously.
ALTER TABLE chat_groups ADD COLUMN questions BOOLEAN NOT NULL DEFAULT FALSE;

-- Anonymous askers the owner muted, by pseudonym only.
CREATE TABLE group_muted (
    group_id  INTEGER NOT NULL REFERENCES chat_groups (id) ON DELETE CASCADE,
    pseudonym TEXT NOT NULL,
    muted_at  TEXT NOT NULL,
    PRIMARY KEY (group_id, pseudonym)
);

-- Members named with @name in a group message.
CREATE TABLE message_mentions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (message_id, user_id)
);

-- Notification rows about one message (mentions) go with it when it is deleted.
ALTER TABLE notifications ADD COLUMN message_id INTEGER NULL;
CREATE INDEX ix_notifications_message ON notifications (message_id);
