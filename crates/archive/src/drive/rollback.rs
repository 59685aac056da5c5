//! Rolling a drive back to an earlier version (Hypercore truncations of both logs): how a VM undoes the writes of
//! calls its log does not account for (after a crash, or a call stopped by a limit).
//!
//! The content log is cut to where it stood when the metadata log had the target length. Writes made since the
//! drive was opened leave marks (metadata length, content length), so a recent target is exact and cheap; an older
//! one (recovery at open) is found by reading the kept entries: the content log must keep every blob they name.
use std::collections::VecDeque;

use libvms_errors::Result;

use super::{Drive, DriveEntry};
use crate::store::BlockStore;

/// Marks kept (the last writes); older targets fall back to a scan.
const MAX_MARKS: usize = 65536;

/// (metadata length, content length) after each write since open, oldest first.
#[derive(Clone, Default)]
pub(crate) struct Marks(VecDeque<(u64, u64)>);

impl Marks {
    pub(crate) fn record(&mut self, meta_len: u64, content_len: u64) {
        if self.0.back().is_some_and(|&(m, _)| m >= meta_len) {
            // A shorter or equal metadata log than the last mark: after a truncation, marks past it are void.
            while self.0.back().is_some_and(|&(m, _)| m >= meta_len) {
                self.0.pop_back();
            }
        }
        if self.0.len() >= MAX_MARKS {
            self.0.pop_front();
        }
        self.0.push_back((meta_len, content_len));
    }

    fn content_len_at(&self, meta_len: u64) -> Option<u64> {
        let i = self.0.binary_search_by_key(&meta_len, |&(m, _)| m).ok()?;
        Some(self.0[i].1)
    }
}

/// What a rollback dropped: metadata blocks (writes undone) and content blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RolledBack {
    pub writes: u64,
    pub content_blocks: u64,
}

impl<M: BlockStore, C: BlockStore> Drive<M, C> {
    /// The content log's length when the metadata log had `version` blocks, if a write since open left a mark
    /// there (what a host may serve of the content log when the metadata log is served to `version`).
    pub fn content_len_at(&self, version: u64) -> Option<u64> {
        self.marks.content_len_at(version)
    }

    /// Record where both logs stand (after a write, and at open).
    pub(crate) fn mark(&mut self) {
        let (m, c) = (self.bee.store().len(), self.content.len());
        self.marks.record(m, c);
    }

    /// Roll back to Hyperdrive version `version` (metadata length; at least the header stays): both logs are
    /// truncated, durably, the metadata log first (a crash in between leaves unreferenced content blocks, which
    /// the next rollback or nothing at all needs to care about). A no-op at the current version.
    pub fn truncate(&mut self, version: u64) -> Result<RolledBack> {
        let target = version.max(1);
        let meta_len = self.bee.store().len();
        if target > meta_len {
            return Err(libvms_errors::err::bad_argument(format!(
                "cannot roll back to version {version}: the archive is at {}",
                self.version()
            )));
        }
        let content_target = match self.marks.content_len_at(target) {
            Some(c) => c,
            None => self.content_needed(target)?,
        };
        let writes = if target < meta_len { self.bee.truncate(target)? } else { 0 };
        let content_target = content_target.min(self.content.len());
        let content_blocks = if content_target < self.content.len() { self.content.truncate(content_target)? } else { 0 };
        if writes > 0 || content_blocks > 0 {
            // Blob ids below will name new bytes: cached content hashes are void.
            self.hashes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.mark();
        Ok(RolledBack { writes, content_blocks })
    }

    /// Content blocks the first `meta_len` metadata blocks refer to (the end of the furthest blob they name).
    fn content_needed(&mut self, meta_len: u64) -> Result<u64> {
        let mut end = 0u64;
        for seq in 1..meta_len {
            let block = self.bee.block(seq)?;
            let Some(value) = block.value.as_deref() else { continue };
            let Ok(entry) = DriveEntry::decode(value) else { continue };
            if let Some(b) = entry.blob {
                end = end.max(b.block_offset.saturating_add(b.block_length));
            }
        }
        Ok(end)
    }
}
