//! The files archive of a VM, in the on-disk format of JavaScript Hyperdrive 11: a Hyperbee 2 B-tree of
//! entries on one block log (metadata) and Hyperblobs content on a second one, plus Corestore 6 key helpers.
#![forbid(unsafe_code)]

pub mod bee;
pub mod blobs;
pub mod corestore;
pub mod digest;
pub mod disk;
pub mod drive;
pub mod shared;
mod store;

pub use shared::SharedDrive;
pub use store::{BlockStore, MemoryStore};
pub use bee::Bee;
pub use blobs::BlobId;
pub use digest::{content_diff, ContentDiff};
pub use drive::{fixed_clock, system_clock, Clock, Drive, DriveEntry, HistoryRecord, PutOptions, Stat};
