//! Every example runs to the end as a newcomer would start it (each checks its own results
//! with assertions and exits non-zero if one fails).

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> String {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("start the example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{bin} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn sync_folder_demo_adds_changes_and_removes() {
    let out = run(env!("CARGO_BIN_EXE_sync_folder"), &[]);
    assert!(out.contains("second pass"), "{out}");
}

#[test]
fn sync_folder_on_a_folder_and_a_store_of_ones_own() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("folder");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("a.txt"), "a").unwrap();
    std::fs::write(folder.join("sub/b.txt"), "b").unwrap();
    let store = tmp.path().join("store");
    let args = [folder.to_str().unwrap(), store.to_str().unwrap()];
    let bin = env!("CARGO_BIN_EXE_sync_folder");
    assert_eq!(
        run(bin, &args).trim(),
        "2 added or changed, 0 unchanged, 0 removed"
    );
    std::fs::remove_file(folder.join("a.txt")).unwrap();
    assert_eq!(
        run(bin, &args).trim(),
        "0 added or changed, 1 unchanged, 1 removed"
    );
}

#[test]
fn serve_and_fetch_syncs_two_servers_over_loopback() {
    let out = run(env!("CARGO_BIN_EXE_serve_and_fetch"), &[]);
    assert!(out.contains("B received 2 entries"), "{out}");
}

#[test]
fn list_huge_lists_every_key_page_by_page() {
    let out = run(env!("CARGO_BIN_EXE_list_huge"), &["--entries", "25000"]);
    assert!(out.starts_with("listed 25000 keys in "), "{out}");
}

#[test]
fn reconcile_two_stores_finds_the_difference() {
    let out = run(env!("CARGO_BIN_EXE_reconcile_two_stores"), &[]);
    assert!(out.contains("A lacks 1 entries, B lacks 1"), "{out}");
}

#[test]
fn terminal_chat_delivers_both_ways() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_terminal_chat"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = "a: the bread is ready\nb: on my way\nc: nobody\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    for want in [
        "[on b] ana@riverside: the bread is ready",
        "[on a] ana: the bread is ready",
        "[on a] bo@hilltop: on my way",
    ] {
        assert!(stdout.contains(want), "no `{want}` in {stdout}");
    }
    assert!(
        stdout.contains("both servers show the same 2 messages"),
        "{stdout}"
    );
    assert!(
        stderr.contains("start the line with `a:` or `b:`"),
        "{stderr}"
    );
}

#[test]
fn a_wrong_argument_is_refused_with_the_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_list_huge"))
        .args(["--entries", "many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
