-- Attachments and pictures. The MySQL twin is migrations/mysql/0007_attachments.sql.
--
-- An attachment belongs to its uploader until a message takes it (message_id set, attached
-- true). When the message goes (deleted, or with its group) message_id becomes NULL while
-- attached stays true, and the store deletes the row with its files. Uploads never attached are
-- swept after a day. Files are named by id in ATTACHMENTS_DIR, never by the uploaded name.
CREATE TABLE attachments (
    id            TEXT PRIMARY KEY NOT NULL,
    owner_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message_id    INTEGER NULL REFERENCES messages (id) ON DELETE SET NULL,
    attached      BOOLEAN NOT NULL DEFAULT FALSE,
    name          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    has_thumbnail BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL
);
CREATE INDEX ix_attachments_message ON attachments (message_id);
CREATE INDEX ix_attachments_owner ON attachments (owner_id, attached);

-- The file id of the user's avatar (`avatar-{id}` in ATTACHMENTS_DIR); NULL: initials are shown.
ALTER TABLE users ADD COLUMN avatar TEXT NULL;
