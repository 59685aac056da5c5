//! Path rules of the archive: "/"-rooted, `\` and `/` both separate, `.`/`..` resolved. Unlike JS (which
//! clamps), a `..` above the root is an error, as are NUL bytes and the empty path.

use libvms_errors::{err, Result};

/// Key prefix of every file entry (hyperdrive's `SubEncoder('files')`).
pub const FILES: &[u8] = b"files\0";

/// "/a/b" form; "/" for the root.
pub fn normalize(path: &str) -> Result<String> {
    if path.is_empty() {
        return Err(err::invalid_path("empty path"));
    }
    if path.contains('\0') {
        return Err(err::invalid_path("path contains a NUL byte"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(err::invalid_path(format!(
                        "{path:?} escapes the archive root"
                    )));
                }
            }
            s => parts.push(s),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Bee key of a normalised path.
pub fn key(path: &str) -> Vec<u8> {
    let mut k = FILES.to_vec();
    k.extend_from_slice(path.as_bytes());
    k
}

/// Path of a bee key, if it is a file entry key.
pub fn from_key(key: &[u8]) -> Option<String> {
    key.strip_prefix(FILES)
        .and_then(|p| std::str::from_utf8(p).ok())
        .map(str::to_string)
}

/// Key range (gte, lt) of everything strictly inside directory `path`.
pub fn children_range(path: &str) -> (Vec<u8>, Vec<u8>) {
    let mut lo = FILES.to_vec();
    if path != "/" {
        lo.extend_from_slice(path.as_bytes());
    }
    lo.push(b'/');
    let mut hi = lo.clone();
    *hi.last_mut().expect("non-empty") = b'/' + 1;
    (lo, hi)
}

/// "/a/b" → "/a"; "/a" → "/"; "/" → None.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/').expect("normalised paths start with /");
    Some(if i == 0 { "/" } else { &path[..i] })
}

/// `path` relative to directory `dir` ("/a", "/a/b/c" → "b/c").
pub fn relative<'a>(dir: &str, path: &'a str) -> &'a str {
    let skip = if dir == "/" { 1 } else { dir.len() + 1 };
    &path[skip.min(path.len())..]
}

/// Whether `path` is `dir` or inside it.
pub fn is_within(path: &str, dir: &str) -> bool {
    dir == "/"
        || path == dir
        || (path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_hyperdrive() {
        assert_eq!(normalize("a//b").unwrap(), "/a/b");
        assert_eq!(normalize("/a/./b/../c/").unwrap(), "/a/c");
        assert_eq!(normalize("\\x\\y").unwrap(), "/x/y");
        assert_eq!(normalize("/").unwrap(), "/");
        assert_eq!(normalize("/a/..").unwrap(), "/");
        for bad in ["", "..", "/a/../..", "a\0b"] {
            assert_eq!(
                normalize(bad).unwrap_err().code,
                libvms_errors::ErrorCode::InvalidPath,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(
            children_range("/"),
            (b"files\0/".to_vec(), b"files\x000".to_vec())
        );
        assert_eq!(
            children_range("/d"),
            (b"files\0/d/".to_vec(), b"files\0/d0".to_vec())
        );
        assert_eq!(relative("/", "/a/b"), "a/b");
        assert_eq!(relative("/a", "/a/b/c"), "b/c");
        assert!(is_within("/a/b", "/a") && is_within("/a", "/a") && !is_within("/ab", "/a"));
    }
}
