//! `archive-net`: moves `archive-core`'s sync messages and blobs between community servers over
//! iroh. Not implemented yet: this crate is an empty placeholder in the workspace layout until
//! the networking issue fills it. It claims no features.
