//! Arbitrary strings against the one rule for keys (issue 11), written here again from its
//! statement: `/`-separated components, none empty, `.` or `..`, none longer than 255 bytes,
//! no control character, at most 4096 bytes. A key the rule accepts can be a path under an
//! export folder: joined component by component it never leaves it.
#![no_main]

use archive_core::{validate_key, MAX_KEY_COMPONENT_LEN, MAX_KEY_LEN};
use libfuzzer_sys::fuzz_target;

fn model(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.chars().any(|c| c.is_control())
        && key
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != ".." && p.len() <= MAX_KEY_COMPONENT_LEN)
}

fuzz_target!(|data: &[u8]| {
    let Ok(key) = std::str::from_utf8(data) else {
        return;
    };
    let accepted = validate_key(key).is_ok();
    assert_eq!(accepted, model(key), "{key:?}");
    if let Err(e) = validate_key(key) {
        // A refusal never carries the raw control characters it refused.
        assert!(!e.to_string().chars().any(|c| c.is_control()), "{e}");
    } else {
        let root = std::path::Path::new("/export");
        let mut path = root.to_path_buf();
        for part in key.split('/') {
            path.push(part);
        }
        assert!(path.starts_with(root));
        assert_eq!(path.components().count(), key.split('/').count() + 2);
    }
});
