//! Runnable examples live in `src/bin/`; see each file's header for the command.
