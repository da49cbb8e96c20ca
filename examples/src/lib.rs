//! Runnable examples of embedding the archive crates live in `src/bin/`; see each file's
//! header for the command. `tests/run_examples.rs` runs every one of them.

/// The Rust blocks of the workspace README, compiled and run as doctests, so the README's
/// library section cannot drift from the API.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
