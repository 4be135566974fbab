//! Account fields: e-mail, display name, password. Each is checked once, here.

use super::Invalid;

/// A lower-cased e-mail address of plausible shape (`local@domain.tld`, at most 254 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// # Errors
    /// `invalid_email` when the address is empty, too long or not of the form `local@domain.tld`.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("invalid_email", "email must look like name@example.com");
        // Bounded before anything is copied: a 64 KiB "e-mail" is refused, not lower-cased.
        if raw.len() > 4 * 254 {
            return Err(bad());
        }
        let e = raw.trim().to_lowercase();
        if e.is_empty() || e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(e))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's display name, also the handle friends are added by: 1 to 40 characters after
/// trimming, no control characters. Unique, case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 40;

    /// # Errors
    /// `invalid_name` when empty, over 40 characters or holding control characters.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let n = raw.trim();
        let count = n.chars().count();
        if count == 0 || count > Self::MAX_CHARS || n.chars().any(|c| c.is_control() || is_invisible(c)) {
            return Err(Invalid::new(
                "invalid_name",
                format!(
                    "name must be 1 to {} characters, without control, zero-width or direction characters",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(Self(n.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What names are unique by and looked up by: the lower-case form, compared byte for byte
    /// on both backends.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Characters that show nothing or reorder what follows (Unicode format characters): in a name
/// they make `ann` and `a\u{200B}nn` two people, or turn a name around on screen.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

/// A password as typed: 8 to 128 characters (the upper bound keeps hashing cost bounded).
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 128;

    /// # Errors
    /// `invalid_password` when shorter than 8 or longer than 128 characters.
    pub fn parse(raw: String) -> Result<Self, Invalid> {
        let count = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&count) {
            return Err(Invalid::new(
                "invalid_password",
                format!("password must be {} to {} characters", Self::MIN_CHARS, Self::MAX_CHARS),
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lowercased() {
        assert_eq!(Email::parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.y",
            "ann@localhost",
            "a b@x.y",
            "a@x..y",
            "a@@x.y",
            "a@x.y.",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().code, "invalid_email", "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@x.y", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_are_bounded() {
        assert_eq!(UserName::parse(" Ann ").unwrap().as_str(), "Ann");
        assert!(UserName::parse("   ").is_err());
        assert!(UserName::parse(&"é".repeat(40)).is_ok());
        assert!(UserName::parse(&"é".repeat(41)).is_err());
        assert!(UserName::parse("a\u{7}b").is_err());
        for hidden in [
            "a\u{200B}nn",
            "\u{202E}nna",
            "ann\u{2066}",
            "\u{FEFF}ann",
            "a\u{00AD}nn",
        ] {
            assert!(UserName::parse(hidden).is_err(), "{hidden:?}");
        }
        assert!(UserName::parse("Zoë 🙂").is_ok(), "ordinary letters and emoji are fine");
    }

    #[test]
    fn passwords_are_bounded() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("long enough".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("long enough".into()).unwrap()),
            "Password(***)"
        );
    }
}
