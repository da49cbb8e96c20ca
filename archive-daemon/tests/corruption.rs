//! A flipped byte in stored data: verify names the key, get refuses wrong bytes.

use std::fs;
use std::path::PathBuf;

use crate::harness::{pseudo_random, write_file, Archive};

/// The pack holding `needle` (bytes of some stored content) and where in it.
fn find_in_packs(a: &Archive, needle: &[u8]) -> (PathBuf, usize) {
    for pack in fs::read_dir(a.data_dir().join("packs")).unwrap() {
        let pack = pack.unwrap().path();
        let bytes = fs::read(&pack).unwrap();
        if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
            return (pack, at);
        }
    }
    panic!("the content is in no pack");
}

#[test]
fn verify_names_the_damaged_key_and_get_fails() {
    let a = Archive::initialised();
    let big = pseudo_random(3 << 20, 3);
    let single = pseudo_random(500_000, 4);
    write_file(&a.path("src/big.bin"), &big);
    write_file(&a.path("src/single.bin"), &single);
    write_file(&a.path("src/ok.txt"), b"fine");
    a.ok(&["add", a.path("src").to_str().unwrap(), "--as", ""]);
    assert!(a.ok(&["verify"]).contains("all intact"));

    // A byte flipped inside a pack: in the middle of the one-blob file, then in chunks at the
    // start, middle and end of the chunked one.
    let places = [
        &single[250_000..250_064],
        &big[1000..1064],
        &big[1_500_000..1_500_064],
        &big[big.len() - 64..],
    ];
    for needle in places {
        let (victim, at) = find_in_packs(&a, needle);
        let original = fs::read(&victim).unwrap();
        let mut bytes = original.clone();
        bytes[at + 10] ^= 0x01;
        fs::write(&victim, &bytes).unwrap();

        let out = a.run(&["verify"]);
        assert_eq!(out.status.code(), Some(1));
        let report = String::from_utf8(out.stdout).unwrap();
        let damaged = if report.contains("`single.bin`") {
            "single.bin"
        } else {
            "big.bin"
        };
        assert!(
            report.contains(&format!("damaged: `{damaged}`")),
            "{report}"
        );
        assert!(!report.contains("`ok.txt`"), "{report}");
        let json = a.json_failing(&["verify"]);
        assert_eq!(json["ok"], false);
        assert_eq!(json["damaged_keys"][0]["key"], damaged);

        // get to a file: fails, and leaves no file.
        let out_path = a.path("out.bin");
        let err = a.fails(&["get", damaged, "-o", out_path.to_str().unwrap()]);
        assert!(err.contains("corrupt"), "{err}");
        assert!(!out_path.exists());
        // get to stdout: fails; whatever was written before is verified, correct bytes.
        let out = a.run(&["get", damaged]);
        assert!(!out.status.success());
        let expected = if damaged == "big.bin" { &big } else { &single };
        assert!(expected.starts_with(&out.stdout) && out.stdout.len() < expected.len());

        fs::write(&victim, &original).unwrap();
    }
    assert!(a.ok(&["verify"]).contains("all intact"));
}

impl Archive {
    fn json_failing(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_slice(&self.run(&all).stdout).unwrap()
    }
}
