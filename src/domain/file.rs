//! Ids of stored files (attachments, avatars): 128 random bits in lower-case hex. They name the
//! files on disk, so nothing a client sends ever becomes part of a path, and they cannot be
//! guessed or counted (access is checked as well; an unguessable id only adds to it).

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A stored file's id: exactly 32 lower-case hex digits (one spelling per id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type)]
#[sqlx(transparent)]
#[serde(try_from = "String", into = "String")]
pub struct FileId(String);

impl FileId {
    /// Hex digits in an id.
    pub const LEN: usize = 32;

    /// A fresh id from the OS-seeded CSPRNG.
    pub fn random() -> Self {
        let mut bytes = [0u8; Self::LEN / 2];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        Self(hex::encode(bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for FileId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let canonical = s.len() == Self::LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if canonical { Ok(Self(s.to_owned())) } else { Err(()) }
    }
}

impl TryFrom<String> for FileId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|()| format!("not a file id: {s:?}"))
    }
}

impl From<FileId> for String {
    fn from(id: FileId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_32_lower_case_hex_digits() {
        let id = FileId::random();
        assert_eq!(id.as_str().parse::<FileId>(), Ok(id.clone()));
        assert_ne!(FileId::random(), id);
        assert!("0123456789abcdef0123456789abcdef".parse::<FileId>().is_ok());
        assert!(
            "0123456789ABCDEF0123456789abcdef".parse::<FileId>().is_err(),
            "one spelling"
        );
        assert!("0123456789abcdef0123456789abcde".parse::<FileId>().is_err());
        assert!("../../../../etc/passwd0123456789".parse::<FileId>().is_err());
        assert!(serde_json::from_str::<FileId>("\"x\"").is_err());
    }
}
