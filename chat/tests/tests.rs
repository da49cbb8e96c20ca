//! The messenger's scenario tests.

mod common;
mod hostile;
mod model;
mod moderation;
