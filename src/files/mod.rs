//! Files beside the database: attachments, their thumbnails and avatars. [`Storage`] is the small
//! interface the store writes through (put, read, delete by key); the filesystem is its one
//! implementation. File names come from [`FileKey`], built from random ids only: nothing a client
//! sends becomes part of a path. Every write goes to a temporary file first and is renamed into
//! place, so a reader never sees half a file and a crash leaves only a temporary file behind
//! (swept after [`STALE_TEMP`]).
//!
//! [`kinds`] sniffs content types and makes safe download names; [`images`] decodes, resizes and
//! re-encodes pictures (blocking work: callers run it off the async runtime).

pub mod images;
pub mod kinds;

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use tokio::{fs, io::AsyncWriteExt};

use crate::domain::FileId;

/// Temporary files older than this are left from a crash or a cut-off upload: an upload must
/// arrive within HTTP_BODY_TIMEOUT_SECS (at most an hour), so none still in progress is this old.
pub const STALE_TEMP: Duration = Duration::from_secs(2 * 3600);

/// What a stored file is, and so its name on disk.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FileKey {
    /// An attachment as uploaded: `{id}`.
    Attachment(FileId),
    /// An image attachment's thumbnail: `{id}.thumb`.
    Thumbnail(FileId),
    /// A user's avatar: `avatar-{id}`.
    Avatar(FileId),
}

impl FileKey {
    fn file_name(&self) -> String {
        match self {
            Self::Attachment(id) => id.to_string(),
            Self::Thumbnail(id) => format!("{id}.thumb"),
            Self::Avatar(id) => format!("avatar-{id}"),
        }
    }

    /// The key a file name on disk stands for; `None` for anything else.
    fn from_file_name(name: &str) -> Option<Self> {
        if let Some(id) = name.strip_prefix("avatar-") {
            return id.parse().ok().map(Self::Avatar);
        }
        if let Some(id) = name.strip_suffix(".thumb") {
            return id.parse().ok().map(Self::Thumbnail);
        }
        name.parse().ok().map(Self::Attachment)
    }
}

/// Where files are kept. Cheap to clone.
#[derive(Debug, Clone)]
pub enum Storage {
    /// A folder on a local (or shared) filesystem: `ATTACHMENTS_DIR`.
    Fs(FsStorage),
}

/// [`Storage`] in a folder: files by key name, temporary files in `tmp/` inside it (the same
/// filesystem, so the final rename is atomic).
#[derive(Debug, Clone)]
pub struct FsStorage {
    dir: PathBuf,
}

impl Storage {
    /// Storage in the folder `dir`, created when missing.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub async fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join("tmp")).await?;
        Ok(Self::Fs(FsStorage { dir: dir.to_owned() }))
    }

    /// A new temporary file to stream an upload into; see [`Upload`].
    ///
    /// # Errors
    /// The temporary file cannot be created.
    pub async fn upload(&self) -> io::Result<Upload> {
        let Self::Fs(s) = self;
        let path = s.dir.join("tmp").join(format!("{}.part", FileId::random()));
        let file = fs::File::create_new(&path).await?;
        Ok(Upload {
            file: Some(file),
            path,
            written: 0,
            head: Vec::new(),
        })
    }

    /// Stores `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// Writing or renaming failed (nothing is left under `key` then).
    pub async fn put(&self, key: &FileKey, bytes: &[u8]) -> io::Result<()> {
        let mut upload = self.upload().await?;
        upload.write(bytes).await?;
        upload.commit(self, key).await
    }

    /// The whole file under `key`; `None` when there is none. For files known to be small
    /// (thumbnails, avatars) or about to be decoded.
    ///
    /// # Errors
    /// Reading failed.
    pub async fn read(&self, key: &FileKey) -> io::Result<Option<Vec<u8>>> {
        let Self::Fs(s) = self;
        match fs::read(s.dir.join(key.file_name())).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The file under `key` opened for streaming, with its length; `None` when there is none.
    ///
    /// # Errors
    /// Opening failed.
    pub async fn open_file(&self, key: &FileKey) -> io::Result<Option<(fs::File, u64)>> {
        let Self::Fs(s) = self;
        match fs::File::open(s.dir.join(key.file_name())).await {
            Ok(file) => {
                let len = file.metadata().await?.len();
                Ok(Some((file, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes the file under `key`; a missing file is not an error.
    ///
    /// # Errors
    /// Deleting failed.
    pub async fn delete(&self, key: &FileKey) -> io::Result<()> {
        let Self::Fs(s) = self;
        match fs::remove_file(s.dir.join(key.file_name())).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Keys of stored files last written before `before`, at most `limit` (for the sweep of
    /// files whose rows are gone); deletes temporary files older than [`STALE_TEMP`] on the way.
    ///
    /// # Errors
    /// The folder cannot be read.
    pub async fn older_than(&self, before: SystemTime, limit: usize) -> io::Result<Vec<FileKey>> {
        let Self::Fs(s) = self;
        let mut temps = fs::read_dir(s.dir.join("tmp")).await?;
        let stale = SystemTime::now() - STALE_TEMP;
        while let Some(entry) = temps.next_entry().await? {
            if modified(&entry).await.is_some_and(|t| t < stale) {
                let _ = fs::remove_file(entry.path()).await;
            }
        }
        let mut found = Vec::new();
        let mut entries = fs::read_dir(&s.dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if found.len() >= limit {
                break;
            }
            let Some(key) = entry.file_name().to_str().and_then(FileKey::from_file_name) else {
                continue;
            };
            if modified(&entry).await.is_some_and(|t| t < before) {
                found.push(key);
            }
        }
        Ok(found)
    }
}

async fn modified(entry: &fs::DirEntry) -> Option<SystemTime> {
    entry.metadata().await.ok()?.modified().ok()
}

/// How many bytes of an upload are kept for sniffing its type: every signature `infer` knows
/// lies within the first few hundred bytes; 8 KiB also decides "is this text".
const HEAD_BYTES: usize = 8192;

/// A file being written: [`Upload::write`] chunks, then [`Upload::commit`] it under a key.
/// Dropped without committing, the temporary file is deleted.
pub struct Upload {
    file: Option<fs::File>,
    path: PathBuf,
    written: u64,
    head: Vec<u8>,
}

impl Upload {
    /// Appends `chunk`.
    ///
    /// # Errors
    /// Writing failed.
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("upload already committed"))?;
        file.write_all(chunk).await?;
        self.written += chunk.len() as u64;
        let room = HEAD_BYTES.saturating_sub(self.head.len());
        self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        Ok(())
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.written
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.written == 0
    }

    /// The first bytes written (up to 8 KiB), for sniffing the type.
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Flushes the file to disk and renames it to `key`'s name.
    ///
    /// # Errors
    /// Flushing or renaming failed; the temporary file is deleted.
    pub async fn commit(mut self, storage: &Storage, key: &FileKey) -> io::Result<()> {
        let Storage::Fs(s) = storage;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("upload already committed"))?;
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        fs::rename(&self.path, s.dir.join(key.file_name())).await
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        // After a commit the temporary name no longer exists: removing it fails harmlessly.
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_nothing_else_is_a_key() {
        let id = FileId::random();
        for key in [
            FileKey::Attachment(id.clone()),
            FileKey::Thumbnail(id.clone()),
            FileKey::Avatar(id.clone()),
        ] {
            assert_eq!(FileKey::from_file_name(&key.file_name()), Some(key));
        }
        assert_eq!(FileKey::from_file_name("tmp"), None);
        assert_eq!(FileKey::from_file_name("avatar-x"), None);
        assert_eq!(FileKey::from_file_name(".thumb"), None);
    }

    #[tokio::test]
    async fn puts_are_whole_and_dropped_uploads_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).await.unwrap();
        let key = FileKey::Attachment(FileId::random());
        storage.put(&key, b"hello").await.unwrap();
        assert_eq!(storage.read(&key).await.unwrap().as_deref(), Some(&b"hello"[..]));
        let mut upload = storage.upload().await.unwrap();
        upload.write(b"half").await.unwrap();
        drop(upload);
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
        storage.delete(&key).await.unwrap();
        storage.delete(&key).await.unwrap();
        assert_eq!(storage.read(&key).await.unwrap(), None);
    }
}
