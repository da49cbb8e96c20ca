//! The messenger's scenario tests.

mod attachments;
mod blocklist;
mod clocks;
mod common;
mod direct;
mod feed;
mod fuzz_seeds;
mod history;
mod hostile;
mod live;
mod live_common;
mod model;
mod moderation;
mod partition;
mod people;
mod reads;
mod search;
