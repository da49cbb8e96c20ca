//! The messenger's scenario tests.

mod common;
mod feed;
mod fuzz_seeds;
mod hostile;
mod model;
mod moderation;
