//! The browser UI: files under `static/` are embedded in the binary (so `cargo run` needs nothing
//! else) and served at the same path under `/`, `index.html` at `/`. With `CHATBOX_STATIC_DIR`
//! set, files are read from that folder instead (for working on the UI without rebuilding).

use std::path::{Component, Path, PathBuf};

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

#[derive(rust_embed::Embed)]
#[folder = "static/"]
struct Assets;

/// Fallback for GET requests no route matched: a static file, or 404.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    file(if path.is_empty() { "index.html" } else { path }).await
}

/// The bytes of `static/{path}` with its content type, or a 404.
pub async fn file(path: &str) -> Response {
    let Some(bytes) = read(path).await else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut response = Response::new(Body::from(bytes));
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn read(path: &str) -> Option<Vec<u8>> {
    match std::env::var_os("CHATBOX_STATIC_DIR") {
        Some(dir) => tokio::fs::read(safe_join(Path::new(&dir), path)?).await.ok(),
        None => Assets::get(path).map(|f| f.data.into_owned()),
    }
}

/// `dir/path` when `path` stays inside `dir` (no `..`, no absolute paths).
fn safe_join(dir: &Path, path: &str) -> Option<PathBuf> {
    let rel = Path::new(path);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_escape_the_folder() {
        assert!(safe_join(Path::new("/s"), "app.js").is_some());
        assert!(safe_join(Path::new("/s"), "vendor/x.js").is_some());
        assert!(safe_join(Path::new("/s"), "../etc/passwd").is_none());
        assert!(safe_join(Path::new("/s"), "/etc/passwd").is_none());
    }
}
