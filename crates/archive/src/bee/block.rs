//! A decoded Node block and a bounded cache of them. Blocks are immutable once appended, so a decoded
//! block stays valid for every later version and every checkout.

use super::messages::{LevelMsg, NodeMsg, YoloIndex};
use libvms_errors::{err, Result};
use prost::Message;
use std::collections::HashMap;
use std::sync::Arc;

/// Pointer to a tree node: `levels[offset]` of block `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodePtr {
    pub seq: u64,
    pub offset: u64,
}

/// One tree node as stored: key seqs, and child pointers (empty for a leaf, keys+1 otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Level {
    pub keys: Vec<u64>,
    pub children: Vec<NodePtr>,
}

impl Level {
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

#[derive(Debug)]
pub struct Block {
    pub seq: u64,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub levels: Vec<Level>,
}

impl Block {
    /// Decodes and checks the shape, so that walks cannot loop: a child pointer must go to an earlier block,
    /// or to a later level of the same block (pre-order), and every key seq must be an earlier-or-same put.
    pub fn decode(seq: u64, bytes: &[u8]) -> Result<Block> {
        let bad = |m: String| err::corrupt(m).at(seq);
        let node = NodeMsg::decode(bytes).map_err(|e| bad(format!("bad node block: {e}")))?;
        let index =
            YoloIndex::decode(node.index.as_slice()).map_err(|e| bad(format!("bad index: {e}")))?;
        let mut levels = Vec::with_capacity(index.levels.len());
        for (j, l) in index.levels.into_iter().enumerate() {
            if l.children.len() % 2 != 0
                || (!l.children.is_empty() && l.children.len() / 2 != l.keys.len() + 1)
            {
                return Err(bad(format!(
                    "level {j}: {} keys but {} child words",
                    l.keys.len(),
                    l.children.len()
                )));
            }
            if l.keys.iter().any(|&k| k == 0 || k > seq) {
                return Err(bad(format!("level {j}: key seq out of range")));
            }
            let children: Vec<NodePtr> = l
                .children
                .chunks(2)
                .map(|c| NodePtr {
                    seq: c[0],
                    offset: c[1],
                })
                .collect();
            for c in &children {
                let ok = c.seq >= 1 && (c.seq < seq || (c.seq == seq && c.offset > j as u64));
                if !ok {
                    return Err(bad(format!(
                        "level {j}: child pointer ({}, {}) goes forward",
                        c.seq, c.offset
                    )));
                }
            }
            levels.push(Level {
                keys: l.keys,
                children,
            });
        }
        Ok(Block {
            seq,
            key: node.key,
            value: node.value,
            levels,
        })
    }

    pub fn level(&self, offset: u64) -> Result<&Level> {
        usize::try_from(offset)
            .ok()
            .and_then(|o| self.levels.get(o))
            .ok_or_else(|| {
                err::corrupt(format!(
                    "block {} has no tree node at offset {offset}",
                    self.seq
                ))
                .at(self.seq)
            })
    }

    /// A deletion: no value, and its own seq is in none of its nodes (FORMAT.md §1.5).
    pub fn is_del(&self) -> bool {
        self.value.is_none() && !self.levels.iter().any(|l| l.keys.contains(&self.seq))
    }
}

/// Encodes a Node block.
pub fn encode_node(key: &[u8], value: Option<&[u8]>, levels: &[Level]) -> Vec<u8> {
    let index = YoloIndex {
        levels: levels
            .iter()
            .map(|l| LevelMsg {
                keys: l.keys.clone(),
                children: l.children.iter().flat_map(|c| [c.seq, c.offset]).collect(),
            })
            .collect(),
    };
    NodeMsg {
        index: index.encode_to_vec(),
        key: key.to_vec(),
        value: value.map(|v| v.to_vec()),
    }
    .encode_to_vec()
}

/// Bounded cache: two generations of maps; when the young one is full it becomes the old one.
/// Memory stays under 2 × CAP decoded blocks, and hot blocks (the root path) survive by promotion.
pub struct BlockCache {
    young: HashMap<u64, Arc<Block>>,
    old: HashMap<u64, Arc<Block>>,
    cap: usize,
}

impl BlockCache {
    pub fn new(cap: usize) -> Self {
        BlockCache {
            young: HashMap::new(),
            old: HashMap::new(),
            cap: cap.max(1),
        }
    }

    pub fn get(&mut self, seq: u64) -> Option<Arc<Block>> {
        if let Some(b) = self.young.get(&seq) {
            return Some(b.clone());
        }
        let b = self.old.remove(&seq)?;
        self.insert(b.clone());
        Some(b)
    }

    pub fn insert(&mut self, b: Arc<Block>) {
        if self.young.len() >= self.cap {
            self.old = std::mem::take(&mut self.young);
        }
        self.young.insert(b.seq, b);
    }
}
