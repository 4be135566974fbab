//! Typed ids: a user id can never be passed where a group id is meant.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type)]
        #[sqlx(transparent)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = ();
            /// Accepts a positive decimal id in its one canonical spelling (no sign, no leading
            /// zero), as it appears in paths and channel names: `01` is not another name of `1`.
            fn from_str(s: &str) -> Result<Self, ()> {
                let canonical = s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
                match s.parse::<i64>() {
                    Ok(n) if n > 0 && canonical => Ok(Self(n)),
                    _ => Err(()),
                }
            }
        }
    };
}

id_type!(
    /// A registered user.
    UserId
);
id_type!(
    /// A group; `GroupId::ALL` is the "All" group every user belongs to.
    GroupId
);
id_type!(
    /// A stored message; ids grow with time.
    MessageId
);

impl GroupId {
    /// The "All" group, seeded by the first migration.
    pub const ALL: GroupId = GroupId(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_positive_decimals_only() {
        assert_eq!("42".parse::<UserId>(), Ok(UserId(42)));
        assert!("0".parse::<UserId>().is_err());
        assert!("-3".parse::<UserId>().is_err());
        assert!("+3".parse::<UserId>().is_err());
        assert!("3a".parse::<UserId>().is_err());
        assert!("01".parse::<UserId>().is_err(), "one spelling per id");
        assert!("007".parse::<GroupId>().is_err());
        assert!(" 1".parse::<UserId>().is_err());
        assert!("99999999999999999999".parse::<UserId>().is_err());
    }
}
