//! Rules for collection names, keys and snapshot names.
//!
//! Keys become paths on `export`, and they arrive from peers, so a key can never climb out of
//! the export folder or name something a file system cannot hold.

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// The longest collection or snapshot name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// Why a name or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The key is not a safe relative path.
    #[error("invalid key `{key}`: {reason}")]
    Key {
        /// The refused key (shortened).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The collection or snapshot name breaks the naming rules.
    #[error("invalid {what} name `{name}`: {reason}")]
    Name {
        /// "collection" or "snapshot".
        what: &'static str,
        /// The refused name (shortened).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

fn shorten(s: &str) -> String {
    s.chars().take(100).collect()
}

/// A key is a relative path: `/`-separated, non-empty components that are not `.` or `..`,
/// no NUL, at most [`MAX_KEY_LEN`] bytes.
pub fn validate_key(key: &str) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError::Key {
            key: shorten(key),
            reason,
        })
    };
    if key.is_empty() {
        return fail("it is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return fail("it is longer than 4096 bytes");
    }
    if key.contains('\0') {
        return fail("it contains a NUL byte");
    }
    for part in key.split('/') {
        match part {
            "" => return fail("it has an empty path component (leading, trailing or double `/`)"),
            "." | ".." => return fail("it has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

fn validate_name(what: &'static str, name: &str, allow_slash: bool) -> Result<(), NameError> {
    let fail = |reason| {
        Err(NameError::Name {
            what,
            name: shorten(name),
            reason,
        })
    };
    if name.is_empty() {
        return fail("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return fail("it is longer than 128 bytes");
    }
    let ok_char = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (allow_slash && c == '/')
    };
    if !name.chars().all(ok_char) {
        return fail(if allow_slash {
            "use only letters, digits, `-`, `_`, `.` and `/`"
        } else {
            "use only letters, digits, `-`, `_` and `.`"
        });
    }
    if name
        .split('/')
        .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return fail("it has an empty, `.` or `..` component");
    }
    Ok(())
}

/// A collection name: ASCII letters, digits, `-_./`, `/`-separated parts, 1 to 128 bytes
/// (for example `library` or `websites/2026`).
pub fn validate_collection(name: &str) -> Result<(), NameError> {
    validate_name("collection", name, true)
}

/// A snapshot name: ASCII letters, digits, `-_.`, 1 to 128 bytes.
pub fn validate_snapshot_name(name: &str) -> Result<(), NameError> {
    validate_name("snapshot", name, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_or_be_empty() {
        for bad in ["", "/abs", "a/", "a//b", "../x", "a/../b", "./a", "a\0b"] {
            assert!(validate_key(bad).is_err(), "{bad:?} accepted");
        }
        for good in [
            "a",
            "dir/file.txt",
            "ünïcode/名前",
            "a b/c",
            "...",
            "a/.hidden",
        ] {
            assert!(validate_key(good).is_ok(), "{good:?} refused");
        }
        assert!(validate_key(&"a".repeat(MAX_KEY_LEN + 1)).is_err());
    }

    #[test]
    fn collection_names() {
        assert!(validate_collection("websites/2026").is_ok());
        assert!(validate_collection("default").is_ok());
        for bad in ["", "a b", "/x", "x/", "a/../b", "ü"] {
            assert!(validate_collection(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_snapshot_name("v1.0").is_ok());
        assert!(validate_snapshot_name("a/b").is_err());
        assert_eq!(
            validate_collection("a b").unwrap_err().to_string(),
            "invalid collection name `a b`: use only letters, digits, `-`, `_`, `.` and `/`"
        );
    }
}
