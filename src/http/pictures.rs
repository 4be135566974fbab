//! Pictures (API.md § Richer messages): `PUT /api/me/avatar` takes a picture (the body itself, or
//! multipart field `file`), crops it to a square, re-encodes it without metadata and makes it the
//! caller's `avatar_url`; `DELETE /api/me/avatar` goes back to initials. A group's `picture_url`
//! is made on request from up to four members' avatars (initials for those without), and kept
//! per group under a fingerprint of what it shows, so a change of members or avatars makes a new
//! one by itself and the browser revalidates with `ETag`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    accounts::UserView,
    attachments::file_headers,
    extract::{CurrentUser, Json, path_id},
};
use crate::{
    domain::{FileId, GroupId, Invalid, UserId},
    error::ApiError,
    files::images::{self, Tile},
    state::AppState,
    store::PictureMember,
};

/// Groups whose picture is kept in memory; past that the cache starts over (a picture is a few
/// tens of KB: at most some 100 MB, and rebuilding one costs a query and four small reads).
const CACHED_PICTURES: usize = 2_000;

/// `Content-Security-Policy` of group pictures: their avatars are embedded as data URLs.
const PICTURE_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox";

pub fn router(max_picture_bytes: u64) -> Router<AppState> {
    let body_limit = usize::try_from(max_picture_bytes + 16 * 1024).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/api/me/avatar",
            put(set_avatar)
                .delete(clear_avatar)
                .layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/users/{id}/avatar/{avatar}", get(avatar))
        .route("/api/groups/{id}/picture", get(group_picture))
}

/// Group pictures by group: `(fingerprint, svg)`.
#[derive(Default)]
pub struct PictureCache(Mutex<HashMap<GroupId, (String, Arc<str>)>>);

impl PictureCache {
    fn get(&self, group: GroupId, fingerprint: &str) -> Option<Arc<str>> {
        let map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&group)
            .filter(|(f, _)| f == fingerprint)
            .map(|(_, svg)| svg.clone())
    }

    fn put(&self, group: GroupId, fingerprint: String, svg: Arc<str>) {
        let mut map = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= CACHED_PICTURES && !map.contains_key(&group) {
            map.clear();
        }
        map.insert(group, (fingerprint, svg));
    }
}

/// The picture's bytes from the request: the body itself, or the multipart field `file`.
async fn picture_bytes(state: &AppState, req: Request) -> Result<Bytes, ApiError> {
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let too_large = |status: StatusCode| status == StatusCode::PAYLOAD_TOO_LARGE;
    if !multipart {
        return Bytes::from_request(req, state).await.map_err(|e| {
            if too_large(e.status()) {
                ApiError::PayloadTooLarge
            } else {
                ApiError::bad_request("unreadable_body", e.body_text())
            }
        });
    }
    let mut parts = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if too_large(e.status()) {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_request("invalid_multipart", e.body_text())
        }
    };
    while let Some(field) = parts.next_field().await.map_err(part_error)? {
        if field.name() == Some("file") {
            return field.bytes().await.map_err(part_error);
        }
    }
    Err(ApiError::bad_request(
        "missing_file",
        "send the picture in a multipart field named file",
    ))
}

/// `PUT /api/me/avatar` (a PNG, JPEG, GIF or WebP picture: the body, or multipart field `file`)
/// → `{user}` with the new `avatar_url`.
#[utoipa::path(put, path = "/api/me/avatar", tag = "pictures", security(("bearer" = [])),
    request_body(content_type = "image/*", description = "the picture (or multipart/form-data, field `file`); at most MAX_ATTACHMENT_BYTES and 40 megapixels"),
    responses((status = 200, description = "{user}: cropped to 256 × 256, re-encoded without metadata"),
        (status = 401, description = "not signed in"), (status = 413, description = "larger than MAX_ATTACHMENT_BYTES"),
        (status = 422, description = "not a picture, or over 40 megapixels"), (status = 503, description = "picture work is at its bound; retry")))]
async fn set_avatar(State(state): State<AppState>, caller: CurrentUser, req: Request) -> Result<Json<Value>, ApiError> {
    // The slot first: it bounds how many pictures are held in memory, not only decoded.
    let slot = state.imaging.slot().await?;
    let bytes = picture_bytes(&state, req).await?;
    let avatar = slot
        .run(move || images::avatar(&bytes))
        .await?
        .map_err(|e| Invalid::new("invalid_picture", e.to_string()))?;
    drop(slot);
    let id = state.store.set_avatar(caller.id(), &avatar).await?;
    tracing::info!(user_id = %caller.id(), "avatar set");
    let mut user = caller.user.clone();
    user.avatar = Some(id);
    announce_avatar(&state, &user).await;
    Ok(Json(json!({ "user": UserView::of(&user, Some(&user)) })))
}

/// Tells everyone that `user`'s avatar changed (`App\Events\UserUpdated`), so lists update live.
async fn announce_avatar(state: &AppState, user: &crate::store::User) {
    let url = crate::store::avatar_url(user.id, user.avatar.as_ref());
    state
        .announce(Some(crate::queue::Job::Event {
            to: crate::queue::Audience::Everyone,
            event: crate::worker::USER_UPDATED.to_owned(),
            data: json!({ "user": { "id": user.id, "name": user.name, "avatar_url": url } }),
        }))
        .await;
}

/// `DELETE /api/me/avatar` → 204: initials are shown again.
#[utoipa::path(delete, path = "/api/me/avatar", tag = "pictures", security(("bearer" = [])),
    responses((status = 204, description = "removed (also when there was none)"), (status = 401, description = "not signed in")))]
async fn clear_avatar(State(state): State<AppState>, caller: CurrentUser) -> Result<StatusCode, ApiError> {
    if state.store.clear_avatar(caller.id()).await? {
        let mut user = caller.user.clone();
        user.avatar = None;
        announce_avatar(&state, &user).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/users/{id}/avatar/{avatar}` (a user's `avatar_url`): the avatar, to signed-in users.
/// The URL names the file, so it is cached for good; a new avatar has a new URL.
#[utoipa::path(get, path = "/api/users/{id}/avatar/{avatar}", tag = "pictures", security(("bearer" = [])),
    params(("id" = i64, Path), ("avatar" = String, Path)),
    responses((status = 200, description = "PNG or JPEG, 256 × 256"), (status = 401, description = "not signed in"),
        (status = 404, description = "no such user, or not its current avatar")))]
async fn avatar(
    State(state): State<AppState>,
    _caller: CurrentUser,
    Path((id, avatar)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let user: UserId = path_id(&id, "avatar")?;
    let wanted: FileId = path_id(&avatar, "avatar")?;
    if state.store.avatar_of(user).await?.as_ref() != Some(&wanted) {
        return Err(ApiError::NotFound("avatar"));
    }
    let bytes = state
        .store
        .avatar_bytes(&wanted)
        .await?
        .ok_or(ApiError::NotFound("avatar"))?;
    let mut headers = file_headers(images::encoded_type(&bytes), "inline");
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    Ok((headers, bytes).into_response())
}

/// What a group picture shows, as an `ETag` value.
fn fingerprint(members: &[PictureMember]) -> String {
    let mut h = Sha256::new();
    for m in members {
        h.update(format!(
            "{}\0{}\0{}\n",
            m.id,
            m.name,
            m.avatar.as_ref().map_or("", FileId::as_str)
        ));
    }
    format!("\"{}\"", hex::encode(&h.finalize()[..16]))
}

/// `GET /api/groups/{id}/picture` (a group's `picture_url`): up to four members' avatars in a
/// 2 × 2 grid, initials for members without one, as SVG; members only.
#[utoipa::path(get, path = "/api/groups/{id}/picture", tag = "pictures", security(("bearer" = [])), params(("id" = i64, Path)),
    responses((status = 200, description = "image/svg+xml, with an ETag"), (status = 304, description = "unchanged since the ETag sent"),
        (status = 401, description = "not signed in"), (status = 403, description = "not a member"), (status = 404, description = "no such group")))]
async fn group_picture(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
    request_headers: HeaderMap,
) -> Result<Response, ApiError> {
    let group = super::groups::member_of(&state, &caller, &id).await?;
    let members = state.store.picture_members(group).await?;
    let etag = fingerprint(&members);
    let mut headers = file_headers("image/svg+xml", "inline");
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PICTURE_CSP));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    let unchanged = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if unchanged {
        return Ok((StatusCode::NOT_MODIFIED, headers).into_response());
    }
    let svg = match state.pictures.get(group, &etag) {
        Some(svg) => svg,
        None => {
            let mut tiles = Vec::with_capacity(members.len());
            for m in &members {
                let bytes = match &m.avatar {
                    Some(a) => state.store.avatar_bytes(a).await?,
                    None => None,
                };
                tiles.push(match bytes {
                    Some(b) => Tile::Avatar(b),
                    None => Tile::initials(m.id.0, &m.name),
                });
            }
            let svg: Arc<str> = images::group_picture(&tiles).into();
            state.pictures.put(group, etag, svg.clone());
            svg
        }
    };
    Ok((headers, svg.to_string()).into_response())
}
