-- Attachments and pictures. The SQLite twin is migrations/sqlite/0007_attachments.sql.
--
-- An attachment belongs to its uploader until a message takes it (message_id set, attached
-- true). When the message goes (deleted, or with its group) message_id becomes NULL while
-- attached stays true, and the store deletes the row with its files. Uploads never attached are
-- swept after a day. Files are named by id in ATTACHMENTS_DIR, never by the uploaded name.
CREATE TABLE attachments (
    id            CHAR(32)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    owner_id      BIGINT       NOT NULL,
    message_id    BIGINT       NULL,
    attached      BOOLEAN      NOT NULL DEFAULT FALSE,
    name          VARCHAR(255) NOT NULL,
    size          BIGINT       NOT NULL,
    content_type  VARCHAR(127) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    has_thumbnail BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at    DATETIME(6)  NOT NULL,
    KEY ix_attachments_message (message_id),
    KEY ix_attachments_owner (owner_id, attached),
    CONSTRAINT fk_attachments_owner FOREIGN KEY (owner_id) REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_attachments_message FOREIGN KEY (message_id) REFERENCES messages (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- The file id of the user's avatar (`avatar-{id}` in ATTACHMENTS_DIR); NULL: initials are shown.
ALTER TABLE users ADD COLUMN avatar CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL;
