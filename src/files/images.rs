//! Pictures: bounded decoding, thumbnails, avatars and group pictures. Everything here is
//! blocking CPU work; callers run it on the blocking pool behind a bound
//! (`crate::http::imaging`).
//!
//! Decoding is bounded before it starts: the header gives the size, and an image over
//! [`MAX_PIXELS`] is refused without allocating for it (a 100-byte PNG can claim to be
//! 60,000 × 60,000). Re-encoding writes pixels only, so metadata such as EXIF (GPS position,
//! camera serial) is gone from avatars and thumbnails; the EXIF orientation is applied first so
//! pictures stand the right way up.

use std::io::Cursor;

use base64::Engine;
use image::{
    DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits,
    codecs::{jpeg::JpegEncoder, png::PngEncoder},
    imageops::FilterType,
};

/// Largest picture decoded: 40 megapixels, above the 12–24 MP of phone cameras and the 33 MP of
/// 8K frames. Decoded as RGBA that is 160 MB, so with one decode per core memory stays bounded.
pub const MAX_PIXELS: u64 = 40_000_000;

/// Largest side decoded: a 16,384 × 2,441 panorama is fine, a 1 × 40,000,000 strip is not.
const MAX_SIDE: u32 = 16_384;

/// Most bytes a decoder may allocate: the RGBA pixels of [`MAX_PIXELS`] plus room for its tables.
const MAX_ALLOC: u64 = MAX_PIXELS * 4 + 32 * 1024 * 1024;

/// Thumbnails fit in this square (CSS shows them at up to 240 px; 320 stays sharp on most
/// screens and is a few tens of KB).
pub const THUMBNAIL_SIDE: u32 = 320;

/// Avatars are this square, cropped to fill (lists show 32–48 px, the profile up to 128 px on
/// a dense screen).
pub const AVATAR_SIDE: u32 = 256;

/// JPEG quality of re-encoded pictures: no visible loss at thumbnail and avatar sizes.
const JPEG_QUALITY: u8 = 85;

/// Why a picture could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("the picture is {width} × {height}: more than 40 megapixels")]
    TooLarge { width: u32, height: u32 },
    #[error("not a picture in a known format (PNG, JPEG, GIF, WebP)")]
    Unreadable(#[source] image::ImageError),
}

impl From<image::ImageError> for PictureError {
    fn from(e: image::ImageError) -> Self {
        Self::Unreadable(e)
    }
}

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    limits
}

fn reader(bytes: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, PictureError> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| PictureError::Unreadable(e.into()))?;
    reader.limits(limits());
    Ok(reader)
}

/// Decodes `bytes` (its first frame for an animation), upright, refusing more than
/// [`MAX_PIXELS`] before any pixel is decoded.
///
/// # Errors
/// [`PictureError::TooLarge`]; [`PictureError::Unreadable`] for anything else.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, PictureError> {
    let (width, height) = reader(bytes)?.into_dimensions()?;
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PictureError::TooLarge { width, height });
    }
    let mut decoder = reader(bytes)?.into_decoder()?;
    let orientation = decoder.orientation()?;
    let mut image = DynamicImage::from_decoder(decoder)?;
    image.apply_orientation(orientation);
    Ok(image)
}

/// A picture encoded for serving: PNG when it has transparency, JPEG otherwise. Only pixels are
/// written, no metadata.
fn encode(image: &DynamicImage) -> Result<Vec<u8>, PictureError> {
    let mut out = Vec::new();
    if image.color().has_alpha() {
        image.to_rgba8().write_with_encoder(PngEncoder::new(&mut out))?;
    } else {
        image
            .to_rgb8()
            .write_with_encoder(JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY))?;
    }
    Ok(out)
}

/// A thumbnail of an image attachment fitting in [`THUMBNAIL_SIDE`]; `None` when the picture is
/// no larger than that already (it is shown as it is).
///
/// # Errors
/// The picture is too large or cannot be decoded.
pub fn thumbnail(bytes: &[u8]) -> Result<Option<Vec<u8>>, PictureError> {
    let image = decode(bytes)?;
    if image.width() <= THUMBNAIL_SIDE && image.height() <= THUMBNAIL_SIDE {
        return Ok(None);
    }
    encode(&image.thumbnail(THUMBNAIL_SIDE, THUMBNAIL_SIDE)).map(Some)
}

/// An avatar from an uploaded picture: cropped to the centre square, [`AVATAR_SIDE`] on each
/// side, re-encoded without metadata.
///
/// # Errors
/// The picture is too large or cannot be decoded.
pub fn avatar(bytes: &[u8]) -> Result<Vec<u8>, PictureError> {
    let image = decode(bytes)?;
    encode(&image.resize_to_fill(AVATAR_SIDE, AVATAR_SIDE, FilterType::Lanczos3))
}

/// The content type of a picture this module encoded (PNG or JPEG).
pub fn encoded_type(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => "image/png",
        _ => "image/jpeg",
    }
}

/// One tile of a group picture.
pub enum Tile {
    /// A member's avatar, as [`avatar`] encoded it.
    Avatar(Vec<u8>),
    /// A member without one: initials on a colour, as the web client draws them.
    Initials { text: String, hue: u16 },
}

impl Tile {
    /// The initials tile of a user, with the letters and colour the web client uses
    /// (`static/js/format.js`: `initials`, `avatarColor`).
    pub fn initials(user_id: i64, name: &str) -> Self {
        const HUES: [u16; 10] = [210, 160, 30, 280, 340, 190, 100, 250, 0, 50];
        let parts: Vec<&str> = name
            .trim()
            .split(|c: char| c.is_whitespace() || matches!(c, '.' | '_' | '-'))
            .filter(|p| !p.is_empty())
            .collect();
        let text: String = match parts.as_slice() {
            [first, second, ..] => first.chars().take(1).chain(second.chars().take(1)).collect(),
            _ => name.chars().take(2).collect(),
        };
        let hue = HUES[usize::try_from(user_id.rem_euclid(10)).unwrap_or(0)];
        Self::Initials {
            text: text.to_uppercase(),
            hue,
        }
    }
}

/// Side of a group picture, in SVG user units.
const GROUP_SIDE: u32 = 256;

/// A group's picture: up to four members' tiles in a 2 × 2 grid (one fills it; two split it
/// down the middle; three put the first on the left half), as SVG. SVG because initials need a
/// font, which the browser has and the server does not; the avatars are embedded as data URLs,
/// so the picture needs nothing else. Every text is XML-escaped; nothing of a user's enters
/// the document unescaped.
pub fn group_picture(tiles: &[Tile]) -> String {
    let half = GROUP_SIDE / 2;
    let full = GROUP_SIDE;
    // (x, y, width, height) of each tile, by how many there are.
    let cells: &[(u32, u32, u32, u32)] = match tiles.len() {
        0 | 1 => &[(0, 0, full, full)],
        2 => &[(0, 0, half, full), (half, 0, half, full)],
        3 => &[(0, 0, half, full), (half, 0, half, half), (half, half, half, half)],
        _ => &[
            (0, 0, half, half),
            (half, 0, half, half),
            (0, half, half, half),
            (half, half, half, half),
        ],
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" width=\"{full}\" height=\"{full}\">"
    );
    if tiles.is_empty() {
        svg.push_str(&format!(
            "<rect width=\"{full}\" height=\"{full}\" fill=\"hsl(210, 15%, 60%)\"/>"
        ));
    }
    for (tile, &(x, y, w, h)) in tiles.iter().zip(cells) {
        match tile {
            Tile::Avatar(bytes) => svg.push_str(&format!(
                "<image x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" preserveAspectRatio=\"xMidYMid slice\" \
                 href=\"data:{};base64,{}\"/>",
                encoded_type(bytes),
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )),
            Tile::Initials { text, hue } => {
                let size = w.min(h) * 2 / 5;
                svg.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"hsl({hue}, 55%, 45%)\"/>\
                     <text x=\"{}\" y=\"{}\" font-family=\"sans-serif\" font-size=\"{size}\" fill=\"#fff\" \
                     text-anchor=\"middle\" dominant-baseline=\"central\">{}</text>",
                    x + w / 2,
                    y + h / 2,
                    xml_escape(text)
                ));
            }
        }
    }
    if tiles.len() > 1 {
        // Thin white lines between the tiles.
        svg.push_str(&format!(
            "<path d=\"M{half} 0V{full}{}\" stroke=\"#fff\" stroke-width=\"2\"/>",
            match tiles.len() {
                2 => String::new(),
                3 => format!("M{half} {half}H{full}"),
                _ => format!("M0 {half}H{full}"),
            }
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = DynamicImage::new_rgb8(width, height);
        let mut out = Vec::new();
        image.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
        out
    }

    /// CRC-32 as PNG chunks use it (ISO 3309).
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = u32::MAX;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn thumbnails_fit_and_small_pictures_need_none() {
        let thumb = thumbnail(&png(1000, 500)).unwrap().expect("a thumbnail");
        let t = image::load_from_memory(&thumb).unwrap();
        assert_eq!((t.width(), t.height()), (320, 160));
        assert_eq!(encoded_type(&thumb), "image/jpeg", "no alpha: JPEG");
        assert!(thumbnail(&png(200, 100)).unwrap().is_none());
    }

    #[test]
    fn avatars_are_square_crops() {
        let a = image::load_from_memory(&avatar(&png(900, 300)).unwrap()).unwrap();
        assert_eq!((a.width(), a.height()), (AVATAR_SIDE, AVATAR_SIDE));
    }

    #[test]
    fn pictures_over_the_pixel_bound_are_refused_before_decoding() {
        // A valid PNG header that claims 10,000 × 10,000 (100 MP) over a few bytes.
        let mut header = png(1, 1);
        header[16..20].copy_from_slice(&10_000u32.to_be_bytes());
        header[20..24].copy_from_slice(&10_000u32.to_be_bytes());
        let crc = crc32(&header[12..29]);
        header[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            decode(&header),
            Err(PictureError::TooLarge {
                width: 10_000,
                height: 10_000
            })
        ));
        assert!(matches!(decode(b"not a picture"), Err(PictureError::Unreadable(_))));
    }

    #[test]
    fn group_pictures_escape_names_and_embed_avatars() {
        assert!(matches!(Tile::initials(3, "ann lee"), Tile::Initials { ref text, hue: 280 } if text == "AL"));
        assert!(matches!(Tile::initials(12, "bo"), Tile::Initials { ref text, .. } if text == "BO"));
        let svg = group_picture(&[
            Tile::initials(1, "<script>"),
            Tile::Avatar(png(2, 2)),
            Tile::initials(2, "&x"),
        ]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("&lt;S") && !svg.contains("<script") && !svg.contains("<S"));
        assert!(svg.contains("&amp;X"));
        assert!(svg.contains("href=\"data:image/png;base64,"));
    }
}
