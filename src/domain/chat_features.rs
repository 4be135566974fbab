//! Rules of the richer message features that are not HTTP and not SQL: which `@name`s a body may
//! mention, and the opaque per-group pseudonym an anonymous asker is shown as.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{GroupId, Invalid, UserId};

/// Most members one message notifies by `@name`: enough for a real conversation, too few to page
/// a whole group with one post. `@name`s past it stay plain text.
pub const MAX_MENTIONS: usize = 20;

/// Longest name a mention can stand for, in characters (as [`super::UserName::MAX_CHARS`]).
const MAX_NAME_CHARS: usize = super::UserName::MAX_CHARS;

/// The `@` signs of a body that may start a mention, each with the names it could stand for,
/// longest first, as lookup keys (lower case, like [`super::UserName::key`]).
///
/// An `@` starts a mention at the start of the body or after a character that is not a letter or
/// digit (so `ann@example.com` mentions nobody). A name may hold spaces, so every run up to
/// 40 characters that ends at the end of the body or before a character that is not a letter or
/// digit is a candidate; the longest candidate that names a member wins. At most
/// [`MAX_MENTIONS`] `@` signs are looked at.
pub fn mention_candidates(body: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    for (i, c) in chars.iter().enumerate() {
        if out.len() == MAX_MENTIONS {
            break;
        }
        if *c != '@' || (i > 0 && chars[i - 1].is_alphanumeric()) {
            continue;
        }
        let rest = &chars[i + 1..chars.len().min(i + 1 + MAX_NAME_CHARS)];
        let mut keys: Vec<String> = (1..=rest.len())
            .filter(|&end| {
                let boundary = chars.get(i + 1 + end).is_none_or(|n| !n.is_alphanumeric());
                boundary && !rest[end - 1].is_whitespace() && !rest[0].is_whitespace()
            })
            .map(|end| rest[..end].iter().collect::<String>().to_lowercase())
            .collect();
        if !keys.is_empty() {
            keys.reverse();
            out.push(keys);
        }
    }
    out
}

/// The opaque name an anonymous asker has in one group: `anon-` and 12 hex digits of
/// HMAC-SHA256(key, "{group}:{user}"). The same asker keeps it in that group (so the owner can
/// mute them) and has another in every other group; without the key it says nothing about who
/// asked.
pub fn pseudonym(key: &[u8], group: GroupId, user: UserId) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{group}:{user}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("anon-{}", hex::encode(&digest[..6]))
}

/// A pseudonym as clients send it back (to mute): the shape [`pseudonym`] makes.
///
/// # Errors
/// `invalid_pseudonym` for anything else.
pub fn parse_pseudonym(raw: &str) -> Result<String, Invalid> {
    let ok = raw
        .strip_prefix("anon-")
        .is_some_and(|h| h.len() == 12 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Invalid::new(
            "invalid_pseudonym",
            "a pseudonym looks like anon-0123456789ab",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_start_after_a_non_letter_and_end_before_one() {
        let found = mention_candidates("hi @Ann, see @bo b!");
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].last().map(String::as_str),
            Some("ann"),
            "shortest last: {found:?}"
        );
        assert!(found[0].contains(&"ann, see".to_owned()), "names may hold spaces");
        assert!(!found[0].contains(&"an".to_owned()), "a name ends before a non-letter");
        assert_eq!(found[1], ["bo b!", "bo b", "bo"], "longest first");
        assert!(mention_candidates("mail ann@example.com").is_empty());
        assert!(mention_candidates("@ ann").is_empty());
        assert_eq!(mention_candidates("@Zoë."), [["zoë.", "zoë"]]);
    }

    #[test]
    fn mentions_are_bounded() {
        let body = "@a ".repeat(MAX_MENTIONS + 5);
        assert_eq!(mention_candidates(&body).len(), MAX_MENTIONS);
        let long = format!("@{}", "x".repeat(100));
        assert!(
            mention_candidates(&long).is_empty(),
            "no candidate ends at a boundary within 40"
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_group_and_differ_between_groups() {
        let key = b"k".repeat(32);
        let p = pseudonym(&key, GroupId(2), UserId(7));
        assert_eq!(p, pseudonym(&key, GroupId(2), UserId(7)));
        assert_ne!(p, pseudonym(&key, GroupId(3), UserId(7)));
        assert_ne!(p, pseudonym(&key, GroupId(2), UserId(8)));
        assert_ne!(p, pseudonym(b"other", GroupId(2), UserId(7)));
        assert_eq!(parse_pseudonym(&p), Ok(p.clone()));
        assert!(parse_pseudonym("anon-XYZ").is_err());
        assert!(parse_pseudonym("ann").is_err());
    }
}
