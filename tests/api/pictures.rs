//! Pictures: avatars (cropped, re-encoded without metadata, in user JSON and lists) and group
//! pictures made of members' avatars and initials.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, RgbImage};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::{
    attachments::{get, header_of, multipart, png, post, stored_files},
    helpers::{Backend, TestApp, TestUser, backend_tests, error_code},
    pusher::PusherClient,
};

/// Marker inside the EXIF block of [`jpeg_with_exif`], as a GPS position would be.
const EXIF_SECRET: &[u8] = b"GPS 52.3731N 4.8922E home";

/// A JPEG with an EXIF block (APP1) right after its start marker, holding [`EXIF_SECRET`].
fn jpeg_with_exif(width: u32, height: u32) -> Vec<u8> {
    let mut plain = Vec::new();
    DynamicImage::ImageRgb8(RgbImage::from_fn(width, height, |x, _| {
        image::Rgb([(x % 256) as u8, 90, 160])
    }))
    .write_to(&mut Cursor::new(&mut plain), ImageFormat::Jpeg)
    .unwrap();
    // Exif header, then a big-endian TIFF header whose first IFD has one ASCII entry (0x010E,
    // ImageDescription) pointing at the secret.
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x010Eu16.to_be_bytes());
    tiff.extend_from_slice(&2u16.to_be_bytes());
    tiff.extend_from_slice(&(EXIF_SECRET.len() as u32).to_be_bytes());
    tiff.extend_from_slice(&26u32.to_be_bytes());
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(EXIF_SECRET);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

async fn put_avatar(app: &TestApp, user: &TestUser, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    user.client
        .put(app.url("/api/me/avatar"))
        .bearer_auth(&user.token)
        .header(header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .expect("request")
}

async fn avatars_are_square_and_stripped_of_metadata(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben) = (app.user("ann").await, app.user("ben").await);
    let me: Value = get(&app, &ann, "/api/me").await.json().await.unwrap();
    assert!(me["user"]["avatar_url"].is_null(), "none yet");
    let photo = jpeg_with_exif(600, 400);
    assert!(
        contains(&photo, b"Exif\0\0") && contains(&photo, EXIF_SECRET),
        "the upload has EXIF"
    );
    assert!(image::load_from_memory(&photo).is_ok(), "and is a valid JPEG");
    let mut ben_socket = PusherClient::own_channels(&app, &ben).await;
    let res = put_avatar(&app, &ann, "image/jpeg", photo).await;
    assert_eq!(res.status(), StatusCode::OK);
    let url = res.json::<Value>().await.unwrap()["user"]["avatar_url"]
        .as_str()
        .expect("avatar_url")
        .to_owned();
    let event = ben_socket.expect("App\\Events\\UserUpdated").await;
    assert_eq!(
        event.data["user"],
        json!({ "id": ann.id, "name": "ann", "avatar_url": url }),
        "told live"
    );
    let res = get(&app, &ben, &url).await;
    assert_eq!(res.status(), StatusCode::OK, "others see it");
    assert_eq!(header_of(&res, "x-content-type-options"), "nosniff");
    let stored = res.bytes().await.unwrap();
    assert!(
        !contains(&stored, b"Exif") && !contains(&stored, EXIF_SECRET),
        "no EXIF in the stored avatar"
    );
    let a = image::load_from_memory(&stored).unwrap();
    assert_eq!((a.width(), a.height()), (256, 256));
    let me: Value = get(&app, &ann, "/api/me").await.json().await.unwrap();
    assert_eq!(me["user"]["avatar_url"], url.as_str());
    let users: Value = get(&app, &ben, "/api/users").await.json().await.unwrap();
    let listed = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == ann.id)
        .unwrap()
        .clone();
    assert_eq!(listed["avatar_url"], url.as_str(), "lists show it");

    let (ct, body) = multipart("file", "new.png", "image/png", &png(300, 300));
    let res = put_avatar(&app, &ann, &ct, body).await;
    assert_eq!(res.status(), StatusCode::OK, "multipart works too");
    let newer = res.json::<Value>().await.unwrap()["user"]["avatar_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(newer, url, "a new avatar, a new URL");
    assert_eq!(
        get(&app, &ben, &url).await.status(),
        StatusCode::NOT_FOUND,
        "the old one is gone"
    );
    let res = put_avatar(&app, &ann, "image/png", b"<svg onload=alert(1)/>".to_vec()).await;
    assert_eq!(
        error_code(res, StatusCode::UNPROCESSABLE_ENTITY).await,
        "invalid_picture"
    );
    let res = ann
        .client
        .delete(app.url("/api/me/avatar"))
        .bearer_auth(&ann.token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let me: Value = get(&app, &ann, "/api/me").await.json().await.unwrap();
    assert!(me["user"]["avatar_url"].is_null(), "initials again");
    loop {
        let e = ben_socket.expect("App\\Events\\UserUpdated").await;
        if e.data["user"]["avatar_url"].is_null() {
            break;
        }
        assert_eq!(
            e.data["user"]["avatar_url"],
            newer.as_str(),
            "the multipart avatar, then none"
        );
    }
    assert_eq!(get(&app, &ben, &newer).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(stored_files(app.db()), Vec::<String>::new(), "avatar files deleted");
}

async fn group_pictures_are_made_of_members(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ann, ben, cat) = (app.user("ann").await, app.user("ben").await, app.user("cat").await);
    assert_eq!(
        put_avatar(&app, &ann, "image/png", png(200, 200)).await.status(),
        StatusCode::OK
    );
    let res = post(
        &app,
        &ann,
        "/api/groups",
        json!({ "name": "duo", "member_ids": [ben.id] }),
    )
    .await;
    let group = res.json::<Value>().await.unwrap()["group"].clone();
    let url = group["picture_url"].as_str().expect("picture_url").to_owned();
    let res = get(&app, &ben, &url).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header_of(&res, "content-type"), "image/svg+xml");
    assert_eq!(header_of(&res, "x-content-type-options"), "nosniff");
    assert!(header_of(&res, "content-security-policy").contains("sandbox"));
    let etag = header_of(&res, "etag").to_owned();
    let svg = res.text().await.unwrap();
    assert_eq!(svg.matches("href=\"data:image/").count(), 1, "ann's avatar");
    assert!(svg.contains(">BE</text>"), "ben's initials");
    let again = ben
        .client
        .get(app.url(&url))
        .bearer_auth(&ben.token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        put_avatar(&app, &ben, "image/png", png(120, 90)).await.status(),
        StatusCode::OK
    );
    let res = ben
        .client
        .get(app.url(&url))
        .bearer_auth(&ben.token)
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "a member's new avatar makes a new picture"
    );
    assert_ne!(header_of(&res, "etag"), etag);
    assert_eq!(res.text().await.unwrap().matches("href=\"data:image/").count(), 2);
    assert_eq!(
        get(&app, &cat, &url).await.status(),
        StatusCode::FORBIDDEN,
        "not a member"
    );
    let groups: Value = get(&app, &ben, "/api/groups").await.json().await.unwrap();
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["picture_url"].is_string())
    );
}

backend_tests!(
    avatars_are_square_and_stripped_of_metadata,
    group_pictures_are_made_of_members,
);
