//! libvms-replicate: the hypercore@10 replication protocol for our ledger cores.
//!
//! Layers, bottom up: `framing` (uint24le) → `noise` (XX, Ed25519 DH) + `secret_stream`
//! (XChaCha20-Poly1305 secretstream) = `stream` → `mux` (protomux) → `messages`
//! (`hypercore/alpha`) → `session` (one connection, many cores) → `host` (serve over TCP) and
//! `fetch` (download from peers).
#![deny(unsafe_code)]

pub mod framing;
pub mod noise;
pub mod secret_stream;
pub mod stream;
pub mod mux;
pub mod messages;
pub mod core_handle;
pub mod session;
pub mod link;
pub mod served;

pub use core_handle::{Progress, ReplCore};
pub use link::{Link, LinkHandle};
pub use session::{core_set, is_peer_fault, CoreSet, SessionOptions, Tamper};
pub mod fetch;
pub mod host;

pub use fetch::{Fetch, FetchOptions};
pub use host::{serve, Host};
pub mod archive;
pub use archive::{fetch_archive, fetch_archive_from, fetch_archive_live, fetch_archive_with};
pub mod fetch_path;
pub use fetch_path::{Need, SparseArchive};
pub mod log;
pub use log::fetch_log_from;
