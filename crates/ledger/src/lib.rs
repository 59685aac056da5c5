//! libvms-ledger: our own implementation of the hypercore 10 core format, byte-compatible with
//! the files of npm `hypercore@10` (10.38.2): oplog header slots and entries, tree, bitfield and
//! data files, compat and manifest (v0/v1) signatures, verified reads and replication proofs.
// `deny` rather than `forbid` only so the one `flock` call in storage.rs can opt out.
#![deny(unsafe_code)]

mod bitfield;
mod core;
pub mod crypto;
pub mod encoding;
pub mod fault;
pub mod flat;
mod journal;
mod oplog;
pub mod proof;
mod range;
mod shared;
mod storage;
mod syncer;
mod tree;

pub use crate::core::{Core, VerifiedProof, LAZY_FLUSH_INTERVAL};
pub use crate::range::BlockRun;
pub use crate::shared::SharedCore;
pub use crate::crypto::{KeyPair, Manifest, Prologue, SignerInfo};
pub use crate::proof::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Proof, ProofRequest, RequestBlock, RequestSeek, RequestUpgrade,
};
pub use crate::storage::{lock_existing_file, Storage};
pub use crate::tree::Node;
pub use libvms_errors::{Error, ErrorCode, Result};

/// Keyed BLAKE2b-256 of "hypercore" under the core key (the replication topic).
pub fn discovery_key(key: &[u8; 32]) -> [u8; 32] {
    crypto::discovery_key(key)
}

#[cfg(test)]
fn _assert_send() {
    fn is_send<T: Send>() {}
    is_send::<Core>();
    fn is_sync<T: Send + Sync>() {}
    is_sync::<SharedCore>();
}
