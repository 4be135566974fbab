//! Attachments (API.md § Richer messages): `POST /api/attachments` streams one file to storage
//! (never more than `MAX_ATTACHMENT_BYTES` of it, whatever the client announced), sniffs its
//! type, makes a thumbnail of a picture and records it as the uploader's; a message then takes it
//! with `attachment_ids` (`super::messages`). `GET /api/attachments/{id}` (and `/thumbnail`)
//! serve it to whoever may read its message, and answer 404 to everyone else, as for an id that
//! does not exist.
//!
//! Served files never run in the page: the type is one of an allow-list sniffed at upload
//! (HTML and SVG arrive as `text/plain`), `nosniff` keeps browsers from guessing another, only
//! pictures are `inline`, and `Content-Security-Policy: sandbox` disarms whatever is opened
//! directly.

use axum::{
    Router,
    body::Body,
    extract::{
        DefaultBodyLimit, Multipart, Path, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use super::extract::{CurrentUser, Json};
use crate::{
    domain::{FileId, Invalid},
    error::ApiError,
    files::{FileKey, images, kinds},
    state::AppState,
    store::{Attachment, NewAttachment, Readable, StoreError},
};

/// Most uploads one user holds that no message took yet: 20 × 10 MiB bounds what one account
/// can park on disk before sending; the daily sweep frees them.
pub const MAX_PENDING: i64 = 20;

/// Most attachments on one message (an album of photos; more is an archive's job).
pub const MAX_PER_MESSAGE: usize = 10;

/// Room in an upload's body for what is not the file: multipart boundaries and part headers.
const MULTIPART_OVERHEAD: u64 = 16 * 1024;

/// `Content-Security-Policy` of every served file: no scripts, no requests, an opaque origin.
pub const FILE_CSP: &str = "default-src 'none'; sandbox";

pub fn router(max_attachment_bytes: u64) -> Router<AppState> {
    let body_limit = usize::try_from(max_attachment_bytes + MULTIPART_OVERHEAD).unwrap_or(usize::MAX);
    Router::new()
        .route(
            "/api/attachments",
            post(upload).layer(DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/attachments/{id}", get(download))
        .route("/api/attachments/{id}/thumbnail", get(thumbnail))
}

/// The `attachment_ids` of a message, parsed and deduplicated (in their order).
///
/// # Errors
/// 422 `too_many_attachments` past [`MAX_PER_MESSAGE`], `invalid_attachment` for an id that
/// cannot be one.
pub fn parse_ids(raw: &[String]) -> Result<Vec<FileId>, ApiError> {
    if raw.len() > MAX_PER_MESSAGE {
        return Err(Invalid::new(
            "too_many_attachments",
            format!("at most {MAX_PER_MESSAGE} attachments per message"),
        )
        .into());
    }
    let mut ids: Vec<FileId> = Vec::with_capacity(raw.len());
    for r in raw {
        let id: FileId = r.parse().map_err(|()| StoreError::UnusableAttachment)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::bad_request("invalid_multipart", e.body_text())
    }
}

fn files_error(e: std::io::Error) -> ApiError {
    StoreError::Files(e).into()
}

/// `POST /api/attachments` (multipart, the file in field `file`) → 201 `{attachment}`; the
/// caller owns it until a message takes it.
#[utoipa::path(post, path = "/api/attachments", tag = "attachments", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "field `file`: the file (at most MAX_ATTACHMENT_BYTES)"),
    responses((status = 201, description = "{attachment: {id, name, size, content_type, url, thumbnail_url}}", body = Attachment),
        (status = 400, description = "not multipart, or no part named file"), (status = 401, description = "not signed in"),
        (status = 413, description = "larger than MAX_ATTACHMENT_BYTES: nothing is stored"),
        (status = 422, description = "an empty file"), (status = 429, description = "20 uploads wait for a message already")))]
async fn upload(
    State(state): State<AppState>,
    caller: CurrentUser,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut multipart = multipart.map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?;
    if state.store.pending_attachments(caller.id()).await? >= MAX_PENDING {
        return Err(ApiError::TooManyUploads(MAX_PENDING));
    }
    let max = state.config.max_attachment_bytes;
    let files = state.store.files();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let name = kinds::clean_name(field.file_name());
        let mut upload = files.upload().await.map_err(files_error)?;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if upload.len() + chunk.len() as u64 > max {
                // Dropping `upload` deletes what was written.
                return Err(ApiError::PayloadTooLarge);
            }
            upload.write(&chunk).await.map_err(files_error)?;
        }
        if upload.is_empty() {
            return Err(Invalid::new("empty_file", "the file is empty").into());
        }
        let content_type = kinds::sniff(upload.head());
        let size = i64::try_from(upload.len()).unwrap_or(i64::MAX);
        let id = FileId::random();
        upload
            .commit(files, &FileKey::Attachment(id.clone()))
            .await
            .map_err(files_error)?;
        let has_thumbnail = kinds::is_image(content_type) && make_thumbnail(&state, &id).await;
        let new = NewAttachment {
            id: id.clone(),
            owner: caller.id(),
            name,
            size,
            content_type,
            has_thumbnail,
        };
        let recorded = state.store.insert_attachment(&new, MAX_PENDING).await;
        if !matches!(recorded, Ok(true)) {
            files.delete(&FileKey::Attachment(id.clone())).await.ok();
            files.delete(&FileKey::Thumbnail(id.clone())).await.ok();
            recorded?;
            return Err(ApiError::TooManyUploads(MAX_PENDING));
        }
        tracing::info!(attachment_id = %id, user_id = %caller.id(), size, content_type, has_thumbnail, "attachment uploaded");
        let attachment = state
            .store
            .readable_attachment(&id)
            .await?
            .ok_or(ApiError::NotFound("attachment"))?
            .attachment;
        return Ok((StatusCode::CREATED, Json(json!({ "attachment": attachment }))));
    }
    Err(ApiError::bad_request(
        "missing_file",
        "send the file in a multipart field named file",
    ))
}

/// Makes and stores the thumbnail of picture `id`; false when it needs none, cannot be decoded,
/// is over the pixel bound, or the picture pool is full (the picture is then shown as it is).
async fn make_thumbnail(state: &AppState, id: &FileId) -> bool {
    let made = async {
        let slot = state.imaging.slot().await?;
        let files = state.store.files();
        let Some(bytes) = files
            .read(&FileKey::Attachment(id.clone()))
            .await
            .map_err(files_error)?
        else {
            return Ok(None);
        };
        let thumb = slot.run(move || images::thumbnail(&bytes)).await?;
        match thumb {
            Ok(Some(thumb)) => {
                files
                    .put(&FileKey::Thumbnail(id.clone()), &thumb)
                    .await
                    .map_err(files_error)?;
                Ok::<_, ApiError>(Some(()))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                tracing::debug!(attachment_id = %id, error = %e, "no thumbnail");
                Ok(None)
            }
        }
    };
    match made.await {
        Ok(made) => made.is_some(),
        Err(e) => {
            tracing::warn!(attachment_id = %id, error = %e, "thumbnail not made");
            false
        }
    }
}

/// The attachment `raw` names if `caller` may read it: the uploader before a message takes it,
/// then whoever may read the message (its sender and recipient, or its group's members). 404
/// for everyone else, exactly as for an unknown id.
async fn readable(state: &AppState, caller: &CurrentUser, raw: &str) -> Result<Readable, ApiError> {
    let not_found = ApiError::NotFound("attachment");
    let Ok(id) = raw.parse::<FileId>() else {
        return Err(not_found);
    };
    let Some(r) = state.store.readable_attachment(&id).await? else {
        return Err(not_found);
    };
    let me = caller.id();
    let allowed = match (r.attached, r.sender_id, r.recipient_id, r.group_id) {
        (false, ..) => r.owner_id == me,
        (true, Some(sender), Some(recipient), _) => me == sender || me == recipient,
        (true, Some(_), None, Some(group)) => state.store.is_member(group, me).await?,
        // Taken by a message that is gone: deleted with it shortly.
        (true, ..) => false,
    };
    if allowed { Ok(r) } else { Err(not_found) }
}

/// Headers every served file has: its type, how to show it, and no way to run.
pub fn file_headers(content_type: &str, disposition: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let value = |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static(kinds::OCTET_STREAM));
    h.insert(header::CONTENT_TYPE, value(kinds::header_value(content_type)));
    if let Ok(d) = HeaderValue::from_str(disposition) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FILE_CSP));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    // Access is checked per request: shared caches must not keep it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    h
}

/// `GET /api/attachments/{id}`: the file, to those who may read its message.
#[utoipa::path(get, path = "/api/attachments/{id}", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "the file: pictures inline, anything else as a download; nosniff, CSP sandbox"),
        (status = 401, description = "not signed in"), (status = 404, description = "no such attachment, or not one the caller may read")))]
async fn download(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = readable(&state, &caller, &id).await?;
    let a = &r.attachment;
    let key = FileKey::Attachment(a.id.clone());
    let Some((file, len)) = state.store.files().open_file(&key).await.map_err(files_error)? else {
        return Err(ApiError::NotFound("attachment"));
    };
    let inline = kinds::is_image(&a.content_type);
    let mut headers = file_headers(&a.content_type, &kinds::content_disposition(&a.name, inline));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Ok((headers, body).into_response())
}

/// `GET /api/attachments/{id}/thumbnail`: a picture's thumbnail (PNG or JPEG, at most 320 px a
/// side), to those who may read its message.
#[utoipa::path(get, path = "/api/attachments/{id}/thumbnail", tag = "attachments", security(("bearer" = [])), params(("id" = String, Path)),
    responses((status = 200, description = "the thumbnail"), (status = 401, description = "not signed in"),
        (status = 404, description = "no thumbnail, no such attachment, or not one the caller may read")))]
async fn thumbnail(
    State(state): State<AppState>,
    caller: CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let r = readable(&state, &caller, &id).await?;
    if !r.has_thumbnail {
        return Err(ApiError::NotFound("thumbnail"));
    }
    let key = FileKey::Thumbnail(r.attachment.id.clone());
    let Some(bytes) = state.store.files().read(&key).await.map_err(files_error)? else {
        return Err(ApiError::NotFound("thumbnail"));
    };
    let headers = file_headers(
        images::encoded_type(&bytes),
        &kinds::content_disposition(&r.attachment.name, true),
    );
    Ok((headers, bytes).into_response())
}
