//! Merkle proofs with the shapes hypercore@10's replicator sends and accepts
//! (merkle-tree.js `generateProof`, `verifyTree`, `verifyUpgrade`): block and hash proofs with the
//! requester's missing node count, byte seeks, and upgrades with additional nodes.

use libvms_errors::{err, Error};

use crate::flat::MAX_INDEX;
use crate::tree::Node;

/// Blocks are kept below this so that every flat-tree index fits comfortably in a u64.
pub const MAX_BLOCKS: u64 = MAX_INDEX / 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestBlock {
    pub index: u64,
    pub nodes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestSeek {
    pub bytes: u64,
    pub padding: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RequestUpgrade {
    pub start: u64,
    pub length: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProofRequest {
    pub fork: u64,
    pub block: Option<RequestBlock>,
    pub hash: Option<RequestBlock>,
    pub seek: Option<RequestSeek>,
    pub upgrade: Option<RequestUpgrade>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataBlock {
    pub index: u64,
    pub value: Vec<u8>,
    pub nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataHash {
    pub index: u64,
    pub nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataSeek {
    pub bytes: u64,
    pub nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DataUpgrade {
    pub start: u64,
    pub length: u64,
    pub nodes: Vec<Node>,
    pub additional_nodes: Vec<Node>,
    pub signature: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Proof {
    pub fork: u64,
    pub block: Option<DataBlock>,
    pub hash: Option<DataHash>,
    pub seek: Option<DataSeek>,
    pub upgrade: Option<DataUpgrade>,
}

fn bad(msg: impl Into<String>) -> Error {
    err::invalid_proof(msg)
}

mod generate;
mod verify;

pub use generate::{byte_offset_with, fetch, generate_indexes, ProofIndexes, TreeView};
pub use verify::{sanity_check, verify_tree, verify_upgrade, Batch};
