//! The call log: a ledger core shared by many callers (`libvms_ledger::SharedCore`), plus group commit.
//!
//! Appends from any thread are queued to one writer thread, which takes everything queued so far and commits it as
//! one ledger batch (one sync per file). Reads take the core's lock briefly and never wait for a sync in progress
//! longer than one batch.
#![forbid(unsafe_code)]

mod canonical;
mod entry;
mod files_version;
mod shared;

pub use canonical::canonical_json;
pub use entry::{js_json_args, js_number, CallEntry, Ended};
pub use files_version::logged_files_version;
pub use shared::CallLog;
