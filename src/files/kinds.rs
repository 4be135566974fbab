//! What an uploaded file is, decided from its bytes and never from what the client claims, and
//! how it is named when served.

/// Types an attachment may be served as; anything else is `application/octet-stream`. Images are
/// shown inline (and get thumbnails); the rest is always a download. HTML, SVG and scripts are
/// not on the list: as text they become `text/plain`, so a browser never renders them.
const ALLOWED: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "application/zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "audio/mpeg",
    "video/mp4",
];

/// The type of everything not on the allow-list.
pub const OCTET_STREAM: &str = "application/octet-stream";
const TEXT: &str = "text/plain";

/// Longest stored file name, in characters.
const MAX_NAME_CHARS: usize = 200;

/// The content type of a file from its first bytes (see [`ALLOWED`]); UTF-8 text without control
/// characters is `text/plain`.
pub fn sniff(head: &[u8]) -> &'static str {
    if let Some(kind) = infer::get(head) {
        return ALLOWED
            .iter()
            .find(|a| **a == kind.mime_type())
            .copied()
            .unwrap_or(OCTET_STREAM);
    }
    if !head.is_empty() && is_text(head) {
        TEXT
    } else {
        OCTET_STREAM
    }
}

/// UTF-8 (the last character may be cut by the end of `head`) with no control characters other
/// than tab, line feed, form feed and carriage return.
fn is_text(head: &[u8]) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        // A character cut at the end of the sniffed head is still text.
        Err(e) if e.error_len().is_none() && head.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c'))
}

/// Whether files of this (sniffed) type are pictures: shown inline, with a thumbnail.
pub fn is_image(content_type: &str) -> bool {
    matches!(content_type, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// The `Content-Type` header for a stored type (text says its charset: it was checked as UTF-8).
pub fn header_value(content_type: &str) -> &str {
    if content_type == TEXT {
        "text/plain; charset=utf-8"
    } else {
        content_type
    }
}

/// The name to show for an upload: the last path segment of what the client sent, without
/// control or format characters, at most 200 characters; `file` when nothing is left. It is only
/// ever shown, never used as a path.
pub fn clean_name(raw: Option<&str>) -> String {
    let last = raw.unwrap_or_default().rsplit(['/', '\\']).next().unwrap_or_default();
    let name: String = last
        .chars()
        .filter(|c| !c.is_control() && !crate::domain::is_invisible(*c))
        .take(MAX_NAME_CHARS)
        .collect();
    let name = name.trim();
    if name.is_empty() || name == "." || name == ".." {
        "file".to_owned()
    } else {
        name.to_owned()
    }
}

/// `Content-Disposition` for serving `name` (RFC 6266): `inline` or `attachment`, an ASCII
/// `filename` fallback with anything unsafe replaced by `_`, and the exact name as UTF-8 in
/// `filename*` (RFC 8187 percent-encoding).
pub fn content_disposition(name: &str, inline: bool) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '%' | ';') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(PNG), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff("héllo\nwörld".as_bytes()), "text/plain");
        for markup in [
            &b"<html><script>alert(1)</script></html>"[..],
            b"<!DOCTYPE html><p>hi",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"></svg>",
            b"<?xml version=\"1.0\"?><svg/>",
        ] {
            let kind = sniff(markup);
            assert!(kind == "text/plain" || kind == OCTET_STREAM, "{kind} for markup");
        }
        assert_eq!(sniff(b"\x7fELF\x02\x01\x01"), OCTET_STREAM, "known but not allowed");
        assert_eq!(sniff(b"\0\x01\x02binary"), OCTET_STREAM);
        assert_eq!(sniff(b""), OCTET_STREAM);
        let cut = "aé".as_bytes();
        assert_eq!(sniff(&cut[..2]), "text/plain", "a character cut at the end of the head");
    }

    #[test]
    fn names_are_cleaned_and_encoded_safely() {
        assert_eq!(clean_name(Some("C:\\Users\\ann\\photo.png")), "photo.png");
        assert_eq!(clean_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(clean_name(Some("a\u{202e}gnp.exe\r\n")), "agnp.exe");
        assert_eq!(clean_name(Some("..")), "file");
        assert_eq!(clean_name(None), "file");
        assert_eq!(clean_name(Some(&"x".repeat(300))).len(), 200);
        assert_eq!(
            content_disposition("résumé \"final\".pdf", false),
            "attachment; filename=\"r_sum_ _final_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
        assert!(content_disposition("cat.png", true).starts_with("inline; filename=\"cat.png\""));
    }
}
