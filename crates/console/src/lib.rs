//! Rampart's web console, served from the binary.
//!
//! The UI is TypeScript (Preact) under `web/`, bundled by Vite into this crate's
//! `assets/` directory, which [`rust_embed`] puts into the binary (debug builds too),
//! so nothing is read from disk or fetched from anywhere at run time. The API's HTTP
//! server hands every `GET`/`HEAD` that is not an API route to [`respond`]: hashed
//! files under `/assets/` are served with a year's cache, anything else without a
//! file extension gets `index.html` (the single-page fallback: the console's routes
//! are deep links). The static files need no token; every API call the console makes
//! carries one.
//!
//! **Why the built assets are committed** (as the BPF objects are): `cargo build`
//! must work on a machine without node, and a build script running npm would need the
//! registry during every clean build. `scripts/build-console` (run by `scripts/run`
//! when node is present) runs `npm ci` and `vite build`, and writes
//! `assets.sources.sha256`, a digest of the web sources the assets were built from;
//! this crate's test `assets_match_the_web_sources` fails when the sources changed
//! and the assets were not rebuilt, so a stale console cannot pass CI.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The content security policy of every console response: scripts, styles and
/// connections to this origin only (no CDN), no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What is served when `assets/index.html` is missing from the build.
const NOT_BUILT: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<title>Rampart</title></head><body><main><h1>The web console was not built</h1>\
<p>This binary was built without the console's assets. Run <code>scripts/build-console</code> \
(node 20 and npm) and rebuild. The API itself is served as usual.</p></main></body></html>";

/// Whether a path is the console's rather than the API's: everything but versioned
/// API paths (`/v1/…`, `/v2…`: an unknown API route stays a JSON 404), gRPC service
/// paths and `/openapi.json`.
pub fn owns_path(path: &str) -> bool {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    let versioned = first
        .strip_prefix('v')
        .and_then(|n| n.split(':').next())
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    !(versioned || path == "/openapi.json" || first.starts_with("rampart."))
}

/// Whether the console's assets are in this build.
pub fn built() -> bool {
    Assets::get("index.html").is_some()
}

fn with_security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn not_found(path: &str) -> Response {
    with_security_headers(
        (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no console file {path}\n"),
        )
            .into_response(),
    )
}

/// Serves one console request (`GET` or `HEAD`; anything else is 405).
pub fn respond(method: &Method, path: &str, headers: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut r = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{path} takes GET\n"),
        )
            .into_response();
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return with_security_headers(r);
    }
    let rel = path.trim_start_matches('/');
    // `..` never reaches the embedded table (it holds only what the build wrote), but
    // refuse it plainly rather than rely on that.
    if rel.split('/').any(|s| s == "..") {
        return not_found(path);
    }
    let last = rel.rsplit('/').next().unwrap_or_default();
    let (file, spa) = match Assets::get(rel) {
        Some(f) if !rel.is_empty() => (Some(f), false),
        // No extension: a console route (`/alerts`, …): the single page answers.
        _ if !last.contains('.') => (Assets::get("index.html"), true),
        _ => return not_found(path),
    };
    let Some(file) = file else {
        return with_security_headers(
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                NOT_BUILT,
            )
                .into_response(),
        );
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()[..16]));
    let cache = if !spa && rel.starts_with("assets/") {
        // Vite names these by content hash: they never change under one name.
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::CACHE_CONTROL, cache);
    let r = if fresh {
        builder.status(StatusCode::NOT_MODIFIED).body(Body::empty())
    } else {
        let mime = file.metadata.mimetype();
        let mime = if mime.starts_with("text/") || mime.ends_with("javascript") {
            format!("{mime}; charset=utf-8")
        } else {
            mime.to_string()
        };
        builder = builder
            .header(header::CONTENT_TYPE, mime)
            .header(header::CONTENT_LENGTH, file.data.len());
        let body = if method == Method::HEAD {
            Body::empty()
        } else {
            Body::from(file.data.into_owned())
        };
        builder.status(StatusCode::OK).body(body)
    };
    match r {
        Ok(r) => with_security_headers(r),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The files in this build (for tests and `rampart` diagnostics).
pub fn files() -> Vec<String> {
    Assets::iter().map(|p| p.into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn get(path: &str) -> Response {
        respond(&Method::GET, path, &HeaderMap::new())
    }

    #[test]
    fn routes_get_the_page_files_get_themselves_and_missing_files_404() {
        assert!(
            built(),
            "assets/index.html is missing: run scripts/build-console"
        );
        for path in ["/", "/alerts", "/alerts/abc", "/workloads/Image/-/busybox"] {
            let r = get(path);
            assert_eq!(r.status(), 200, "{path}");
            assert!(r.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"));
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(r.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'"));
        }
        let js = files()
            .into_iter()
            .find(|f| f.starts_with("assets/") && f.ends_with(".js"))
            .expect("a script in the build");
        let r = get(&format!("/{js}"));
        assert_eq!(r.status(), 200);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript"));
        assert!(r.headers()[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("immutable"));
        let etag = r.headers()[header::ETAG].clone();
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(respond(&Method::GET, &format!("/{js}"), &h).status(), 304);
        assert_eq!(get("/assets/nope-123.js").status(), 404);
        assert_eq!(get("/assets/../index.html").status(), 404);
        assert_eq!(respond(&Method::POST, "/", &HeaderMap::new()).status(), 405);
        assert!(!owns_path("/v1/alerts"));
        assert!(!owns_path("/v2/nothing"));
        assert!(owns_path("/vault"));
        assert!(!owns_path("/openapi.json"));
        assert!(!owns_path("/rampart.v1.AlertService/ListAlerts"));
        assert!(owns_path("/alerts"));
    }

    /// The digest `web/stamp.mjs` writes: SHA-256 over each source file's path
    /// (relative to web/, sorted) and contents, each followed by a NUL.
    fn web_sources_digest(web: &Path) -> String {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut files: Vec<PathBuf> = [
            "index.html",
            "package.json",
            "package-lock.json",
            "tsconfig.json",
            "vite.config.ts",
        ]
        .iter()
        .map(|f| web.join(f))
        .collect();
        walk(&web.join("src"), &mut files);
        let mut rel: Vec<(String, PathBuf)> = files
            .into_iter()
            .map(|p| {
                (
                    p.strip_prefix(web).unwrap().to_string_lossy().into_owned(),
                    p,
                )
            })
            .collect();
        rel.sort();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for (name, path) in rel {
            ctx.update(name.as_bytes());
            ctx.update(b"\0");
            ctx.update(&std::fs::read(&path).unwrap());
            ctx.update(b"\0");
        }
        hex(ctx.finish().as_ref())
    }

    #[test]
    fn assets_match_the_web_sources() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let web = root.join("../../web");
        let stamp = std::fs::read_to_string(root.join("assets.sources.sha256"))
            .expect("crates/console/assets.sources.sha256: run scripts/build-console");
        assert_eq!(
            stamp.split_whitespace().next().unwrap_or_default(),
            web_sources_digest(&web),
            "web/ changed since crates/console/assets was built: run scripts/build-console and commit the assets"
        );
    }
}
