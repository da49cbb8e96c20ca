//! archive-core integration tests: everything through the public API.

mod certificates;
mod common;
mod corruption;
mod entries;
mod file_meta;
mod fuzz_seeds;
mod gc;
mod open;
mod purge;
mod quick_check;
mod reading;
mod reconcile;
mod roundtrip;
mod rules;
mod shares;
mod sync_index;
mod view_model;
