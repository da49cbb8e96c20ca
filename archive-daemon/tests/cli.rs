//! The `archive` binary, run as a real process in temporary folders.

mod bad_input;
mod corruption;
mod crash;
mod harness;
mod hostile_local;
mod hostile_peer;
mod key_move;
mod netns;
mod network;
mod quick_start;
mod schedule;
mod service;
mod upgrade;
mod web_archive;
mod web_browser;
mod web_files;
mod web_http;
mod web_peers;
