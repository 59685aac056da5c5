//! Verified reads of a run of blocks, for streaming (replay, verification, export).
//!
//! A run is cut into aligned subtrees (at most `CHUNK_LEAVES` blocks each). For each, the subtree's
//! node is checked against the signed tree once, the leaf sizes and the data are read with one file
//! access each, and the blocks are hashed and folded up to that node. That is two hashes per block and
//! two reads per chunk, instead of a climb through the tree per block as `get` does.

use libvms_errors::{err, Result};

use crate::core::Core;
use crate::crypto::{leaf_node, parent_node};
use crate::flat;
use crate::tree::Node;

/// Largest subtree verified in one step (bounds memory: the leaf nodes and data of one chunk).
const CHUNK_LEAVES: u64 = 1024;

/// Blocks `start..start + len()` in one buffer.
#[derive(Clone, Debug, Default)]
pub struct BlockRun {
    pub start: u64,
    pub data: Vec<u8>,
    /// End offset in `data` of each block.
    pub ends: Vec<usize>,
}

impl BlockRun {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `k`-th block of the run.
    pub fn block(&self, k: usize) -> &[u8] {
        let from = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.data[from..self.ends[k]]
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |k| self.block(k))
    }
}

impl Core {
    /// Verified read of blocks `start..end`. On a mismatch, the error names the first bad block, as `get` does.
    pub fn read_run(&mut self, start: u64, end: u64) -> Result<BlockRun> {
        if start > end {
            return Err(err::bad_argument("start is after end"));
        }
        if end > self.length() {
            return Err(err::out_of_bounds(format!("block {} is past the end ({})", end - 1, self.length())).at(self.length()));
        }
        let mut run = BlockRun { start, data: Vec::new(), ends: Vec::with_capacity((end - start) as usize) };
        let mut at = start;
        while at < end {
            let leaves = chunk_leaves(at, end);
            self.read_subtree(at, leaves, &mut run)?;
            at += leaves;
        }
        Ok(run)
    }

    /// Append the `leaves` blocks starting at `first` (an aligned subtree) to `run`, verified.
    fn read_subtree(&mut self, first: u64, leaves: u64, run: &mut BlockRun) -> Result<()> {
        let depth = leaves.trailing_zeros();
        let top = flat::index(depth, first >> depth);
        let held = self.contiguous_length() >= first + leaves || (first..first + leaves).all(|i| self.has(i));
        let trusted = if held { self.trusted_subtree(top)? } else { None };
        let Some(trusted) = trusted else {
            // Not held, or not provably part of the signed tree: let `get` name the first bad block.
            return self.read_one_by_one(first, leaves, run);
        };
        let nodes = self.tree_span(2 * first, 2 * leaves - 1)?;
        let mut sizes = Vec::with_capacity(leaves as usize);
        for k in 0..leaves as usize {
            match nodes[2 * k] {
                Some(n) => sizes.push(n.size),
                None => return self.read_one_by_one(first, leaves, run),
            }
        }
        let total: u64 = sizes.iter().sum();
        if total != trusted.size {
            return self.read_one_by_one(first, leaves, run);
        }
        let offset = self.byte_offset(first)?;
        let base = run.data.len();
        run.data.resize(base + total as usize, 0);
        if self.read_data_at(offset, &mut run.data[base..])? < total as usize {
            run.data.truncate(base);
            return self.read_one_by_one(first, leaves, run);
        }
        // Hash the leaves and fold them up to the subtree's top.
        let mut level: Vec<Node> = Vec::with_capacity(leaves as usize);
        let mut pos = base;
        let ends_before = run.ends.len();
        for (k, size) in sizes.iter().enumerate() {
            let next = pos + *size as usize;
            level.push(leaf_node(2 * (first + k as u64), &run.data[pos..next]));
            run.ends.push(next);
            pos = next;
        }
        while level.len() > 1 {
            let mut up = Vec::with_capacity(level.len() / 2);
            for pair in level.chunks(2) {
                match parent_node(flat::parent(pair[0].index), &pair[0], &pair[1]) {
                    Some(p) => up.push(p),
                    None => break,
                }
            }
            if up.len() * 2 != level.len() {
                break;
            }
            level = up;
        }
        if level.len() != 1 || level[0].hash != trusted.hash || level[0].size != trusted.size {
            run.data.truncate(base);
            run.ends.truncate(ends_before);
            return self.read_one_by_one(first, leaves, run);
        }
        Ok(())
    }

    /// The slow path: one verified `get` per block (exact error for the first bad one).
    fn read_one_by_one(&mut self, first: u64, leaves: u64, run: &mut BlockRun) -> Result<()> {
        for i in first..first + leaves {
            let block = self.get(i)?;
            run.data.extend_from_slice(&block);
            run.ends.push(run.data.len());
        }
        Ok(())
    }
}

/// Size of the largest aligned subtree starting at `at` that ends at or before `end`.
fn chunk_leaves(at: u64, end: u64) -> u64 {
    let mut n = if at == 0 { CHUNK_LEAVES } else { (1u64 << at.trailing_zeros()).min(CHUNK_LEAVES) };
    while at + n > end {
        n >>= 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::Storage;

    fn core_with(n: usize) -> Core {
        let mut core = Core::create(Storage::Memory).unwrap();
        let blocks: Vec<Vec<u8>> = (0..n).map(|i| format!("block-{i}-{}", "x".repeat(i % 7)).into_bytes()).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
        for chunk in refs.chunks(333) {
            core.append_batch(chunk).unwrap();
        }
        core
    }

    #[test]
    fn chunks_are_aligned_and_cover_the_range() {
        for (start, end) in [(0u64, 1u64), (0, 1024), (3, 1000), (1023, 3000), (5, 6), (0, 5000)] {
            let mut at = start;
            while at < end {
                let n = chunk_leaves(at, end);
                assert!(n.is_power_of_two() && at % n == 0 && at + n <= end);
                at += n;
            }
        }
    }

    #[test]
    fn read_run_matches_get_for_any_range() {
        let mut core = core_with(2500);
        for (start, end) in [(0u64, 2500u64), (0, 0), (1, 2), (7, 1030), (1024, 2048), (2047, 2500)] {
            let run = core.read_run(start, end).unwrap();
            assert_eq!(run.len() as u64, end - start);
            for (k, block) in run.iter().enumerate() {
                assert_eq!(block, core.get(start + k as u64).unwrap().as_slice());
            }
        }
    }

    #[test]
    fn read_run_refuses_past_the_end() {
        let mut core = core_with(10);
        assert!(core.read_run(5, 11).is_err());
        assert!(core.read_run(6, 5).is_err());
    }

    #[test]
    fn a_corrupt_block_is_named() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut core = Core::create(Storage::Disk(dir.path().to_path_buf())).unwrap();
            let blocks: Vec<Vec<u8>> = (0..100).map(|i| format!("entry {i:04}").into_bytes()).collect();
            let refs: Vec<&[u8]> = blocks.iter().map(|b| b.as_slice()).collect();
            core.append_batch(&refs).unwrap();
            core.close().unwrap();
        }
        // Every block is 10 bytes: flip a byte of block 42.
        let path = dir.path().join("data");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[42 * 10 + 3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let mut core = Core::open(dir.path()).unwrap();
        let e = core.read_run(0, 100).unwrap_err();
        assert_eq!(e.index, Some(42));
        assert_eq!(core.read_run(0, 42).unwrap().len(), 42);
    }
}
