//! Static pages and directories for demo front ends. Nothing outside the
//! registered directory is ever served: `..` and dot-files are refused before
//! touching the disk, and the final path (symlinks followed, `index.html`
//! included) must still lie inside the directory. Only regular files are
//! served, streamed in chunks; `HEAD` is answered from their metadata.

use std::io;
use std::path::{Path, PathBuf};

use http::header::{self, HeaderValue};
use http::Response;
use percent_encoding::percent_decode_str;

use crate::body::{FileBody, ResponseBody};
use crate::error::{Error, Result};

/// A file to serve at one path, checked at registration.
pub(crate) fn checked_file(file: &Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(file).map_err(|source| Error::File {
        path: file.to_owned(),
        source,
    })?;
    if !canonical.is_file() {
        return Err(Error::File {
            path: file.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        });
    }
    Ok(canonical)
}

/// A directory to serve under a prefix, checked at registration.
pub(crate) fn checked_dir(dir: &Path) -> Result<PathBuf> {
    let canonical = std::fs::canonicalize(dir).map_err(|source| Error::File {
        path: dir.to_owned(),
        source,
    })?;
    if !canonical.is_dir() {
        return Err(Error::File {
            path: dir.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        });
    }
    Ok(canonical)
}

/// Maps the part of a request path below the prefix to a file inside `dir`,
/// or `None` if it would leave `dir` or does not exist. A directory maps to
/// its `index.html`.
pub(crate) async fn resolve(dir: &Path, relative: &str) -> Option<PathBuf> {
    let mut path = dir.to_path_buf();
    for segment in relative.split('/') {
        let segment = percent_decode_str(segment).decode_utf8().ok()?;
        if segment.is_empty() {
            continue;
        }
        // Decoding may produce separators or dot-segments; refuse them, and
        // dot-files (`.env`, `.git`) too.
        if segment.starts_with('.') || segment.contains(['/', '\\', '\0']) {
            return None;
        }
        path.push(&*segment);
    }
    let canonical = contained(dir, &path).await?;
    if tokio::fs::metadata(&canonical).await.ok()?.is_dir() {
        // `index.html` may itself be a link out of the directory.
        return contained(dir, &canonical.join("index.html")).await;
    }
    Some(canonical)
}

/// `path` with every link followed, if that still lies inside `dir`.
async fn contained(dir: &Path, path: &Path) -> Option<PathBuf> {
    let canonical = tokio::fs::canonicalize(path).await.ok()?;
    canonical.starts_with(dir).then_some(canonical)
}

/// The response for the file at `path`, or `None` (404) if it is missing or
/// not a regular file. The file is opened without blocking (a FIFO would
/// otherwise wait for a writer forever), and its type is checked on the
/// open file, not the path. (Containment was checked on the path just
/// before: someone who can write inside the served directory could still
/// swap in a link between the two.)
pub(crate) async fn respond(path: &Path, head_only: bool) -> Option<Response<ResponseBody>> {
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    options.custom_flags(libc::O_NONBLOCK);
    let file = match options.open(path).await {
        Ok(file) => file,
        Err(err) => {
            tracing::warn!(file = %path.display(), error = %err, "cannot open file");
            return None;
        }
    };
    let metadata = file.metadata().await.ok()?;
    if !metadata.is_file() {
        tracing::warn!(file = %path.display(), "not a regular file; not served");
        return None;
    }
    let length = metadata.len();
    let mut response = Response::new(if head_only {
        ResponseBody::empty()
    } else {
        ResponseBody::File(FileBody::new(file, length))
    });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Some(response)
}

/// The `Content-Type` for a file, by extension.
pub(crate) fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|ext| ext.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_every_way_out_of_the_directory() {
        let root = std::env::temp_dir().join(format!("tidings-files-{}", std::process::id()));
        let dir = root.join("public");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.txt"), "a").unwrap();
        std::fs::write(root.join("secret.txt"), "s").unwrap();
        std::fs::write(dir.join(".env"), "s").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("secret.txt"), dir.join("link.txt")).unwrap();
        let dir = checked_dir(&dir).unwrap();

        assert!(resolve(&dir, "a.txt").await.is_some());
        for attempt in [
            "../secret.txt",
            "%2e%2e/secret.txt",
            "%2E%2E%2Fsecret.txt",
            "..%5csecret.txt",
            ".env",
            "link.txt",
            "missing.txt",
            "a.txt%00",
        ] {
            assert_eq!(resolve(&dir, attempt).await, None, "{attempt}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(
            content_type(Path::new("x.HTML")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("x.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("x")), "application/octet-stream");
    }
}
