//! Rules for collection names, keys and snapshot names.
//!
//! Keys become paths on `export`, and they arrive from peers, so a key can never climb out of
//! the export folder or name something a file system cannot hold.

/// The longest key, in bytes.
pub const MAX_KEY_LEN: usize = 4096;
/// The longest component of a key (between `/`), in bytes: what Linux file systems hold in
/// one file name (`NAME_MAX`), so every key can be exported.
pub const MAX_KEY_COMPONENT_LEN: usize = 255;
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

/// A name as it may be shown in an error: at most 100 characters, control characters escaped
/// (a refused key is often refused *because* of them).
fn shorten(s: &str) -> String {
    s.chars().take(100).flat_map(char::escape_debug).collect()
}

/// A key is a relative path: `/`-separated components that are not empty, `.` or `..`, each
/// at most [`MAX_KEY_COMPONENT_LEN`] bytes, with no control characters (NUL, newline, escape,
/// DEL, C1 controls: they would forge lines or send terminal escapes when a key is printed),
/// at most [`MAX_KEY_LEN`] bytes in all.
///
/// This is the one rule for keys: local adds, entries from peers and exports all apply it.
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
    if key.chars().any(char::is_control) {
        return fail("it contains a control character (such as NUL, a newline or an escape)");
    }
    for part in key.split('/') {
        match part {
            "" => return fail("it has an empty path component (leading, trailing or double `/`)"),
            "." | ".." => return fail("it has a `.` or `..` component"),
            p if p.len() > MAX_KEY_COMPONENT_LEN => {
                return fail("a path component is longer than 255 bytes")
            }
            _ => {}
        }
    }
    Ok(())
}

/// The folders a key lies in, innermost last: `a/b/c` gives `a` and `a/b`. A view never holds
/// a file at a key that is also a folder of another of its keys.
pub(crate) fn parent_folders(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').map(move |(i, _)| &key[..i])
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

/// A person's account name, as the messenger's entries carry it: ASCII letters, digits,
/// `-_.`, 1 to 128 bytes.
pub fn validate_person(name: &str) -> Result<(), NameError> {
    validate_name("person", name, false)
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
        let long_component = format!("d/{}", "x".repeat(MAX_KEY_COMPONENT_LEN + 1));
        for bad in [
            "",
            "/abs",
            "a/",
            "a//b",
            "../x",
            "a/../b",
            "./a",
            "a\0b",
            "line\nforged  0 B  key",
            "bell\u{7}",
            "esc\u{1b}[31mred",
            "del\u{7f}",
            "c1\u{9b}31m",
            "tab\there",
            long_component.as_str(),
        ] {
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
        // A component of exactly 255 bytes (a real file name's limit) is a valid key.
        assert!(validate_key(&format!("d/{}", "é".repeat(127) + "x")).is_ok());
        assert!(validate_key(&"ab/".repeat(1365)[..4094]).is_ok());
    }

    #[test]
    fn refusals_escape_what_they_quote() {
        let err = validate_key("a\u{1b}[2Jb").unwrap_err().to_string();
        assert!(!err.contains('\u{1b}'), "{err:?}");
        assert!(err.contains("a\\u{1b}[2Jb"), "{err:?}");
    }

    #[test]
    fn parent_folders_of_a_key() {
        assert_eq!(parent_folders("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(parent_folders("a").count(), 0);
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
