//! Running the binary and building test trees.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_archive");

/// A store in a temporary folder, and the means to run `archive` on it.
pub(crate) struct Archive {
    pub(crate) tmp: tempfile::TempDir,
}

impl Archive {
    pub(crate) fn new() -> Self {
        Archive {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn initialised() -> Self {
        let a = Archive::new();
        a.ok(&["init"]);
        a
    }

    /// A store from a committed fixture: `tests/fixtures/<tarball>` unpacked, its folder
    /// `folder` becoming the data folder.
    pub(crate) fn from_fixture(tarball: &str, folder: &str) -> Self {
        let a = Archive::new();
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(tarball);
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&fixture)
            .arg("-C")
            .arg(a.tmp.path())
            .status()
            .unwrap();
        assert!(status.success(), "cannot unpack {}", fixture.display());
        std::fs::rename(a.path(folder), a.data_dir()).unwrap();
        a
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.data_dir()).args(args);
        c.env_remove("ARCHIVE_DIR")
            .env_remove("ARCHIVE_CONFIG")
            .env("RUST_BACKTRACE", "1");
        c
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().unwrap();
        assert_no_panic(&out);
        out
    }

    /// Runs with `input` on its standard input (a password, a passphrase).
    pub(crate) fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_no_panic(&out);
        out
    }

    /// Runs and expects success; returns stdout.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "archive {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure with a one-line error; returns stderr.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "archive {args:?} succeeded");
        let err = String::from_utf8(out.stderr).unwrap();
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("archive: error:"))
            .collect();
        assert!(!errors.is_empty(), "no `archive: error:` line in {err:?}");
        err
    }

    pub(crate) fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

pub(crate) fn assert_no_panic(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace"),
        "panic: {err}"
    );
}

pub(crate) use test_support::pseudo_random;

/// Every regular file under `root`: relative path -> bytes.
pub(crate) fn read_tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                walk(root, &p, out);
            } else if m.is_file() {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
                out.insert(rel, fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

pub(crate) fn write_file(path: &Path, bytes: &[u8]) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, bytes).unwrap();
}

pub(crate) fn b3(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
