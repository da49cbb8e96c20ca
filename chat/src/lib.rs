//! `chat`: the community messenger (rooms as collections of signed message entries). Not
//! implemented yet: an empty placeholder in the workspace layout. It claims no features.
