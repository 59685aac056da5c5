//! Signed calls of libvms (production mode): what a caller signs, how a host checks it, what the log keeps, and
//! how anyone audits it later.
//!
//! - [`jcs`]: RFC 8785 canonical JSON of a call's arguments (refusing -0, NaN, lone surrogates).
//! - [`call`]: the domain-separated bytes a caller signs, Ed25519 signing and checking, the log entry's fields.
//! - [`audit`]: the walk over a signed VM's log that names the first entry whose signature or sequence is wrong.
//! - [`receipt`]: a reply's receipt (the log's own signed tree head) checked against a log, and fork proofs.
#![forbid(unsafe_code)]

pub mod audit;
pub mod call;
pub mod jcs;
pub mod receipt;
pub mod strict;

pub use audit::{walk, Audit};
pub use call::{entry_fields, generate_key_pair, signed_bytes, SignedCall, MAX_SEQ};
pub use receipt::{check_fork, Head, Receipt};
