//! The storage seam: the archive only needs an append-only log of blocks (a hypercore). The ledger's
//! `Core` implements this through an adapter; `MemoryStore` serves tests and in-memory archives.

use libvms_errors::{err, Result};
use std::sync::{Arc, Mutex};

/// An append-only log of blocks (one hypercore).
pub trait BlockStore {
    fn len(&self) -> u64;
    fn byte_len(&self) -> u64;
    fn get(&mut self, index: u64) -> Result<Vec<u8>>;
    /// Appends all blocks as one durable batch; returns the new length.
    fn append_batch(&mut self, blocks: &[&[u8]]) -> Result<u64>;
    /// Drops every block from `length` on, durably (a fork of the log); returns how many were dropped.
    fn truncate(&mut self, length: u64) -> Result<u64> {
        let _ = length;
        Err(err::not_writable("this store cannot be truncated"))
    }
    /// False for a core opened without its secret key: drive writes then fail with ArchiveNotWritable.
    fn is_writable(&self) -> bool {
        true
    }
    /// Whether block `index` is held locally (for `stat().downloaded`).
    fn has(&mut self, index: u64) -> bool {
        index < self.len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Default)]
struct Inner {
    blocks: Vec<Vec<u8>>,
    byte_len: u64,
}

/// In-memory store. Clones share the same blocks (like two sessions on one core), so a checkout can hold
/// its own handle; `read_only()` gives a handle that refuses writes.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    read_only: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store pre-filled with `blocks` (e.g. blocks written by JavaScript).
    pub fn from_blocks(blocks: Vec<Vec<u8>>) -> Self {
        let byte_len = blocks.iter().map(|b| b.len() as u64).sum();
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner { blocks, byte_len })),
            read_only: false,
        }
    }

    /// Another handle on the same blocks that refuses appends.
    pub fn read_only(&self) -> Self {
        MemoryStore {
            inner: self.inner.clone(),
            read_only: true,
        }
    }

    /// A copy of every block (tests, debugging).
    pub fn blocks(&self) -> Vec<Vec<u8>> {
        self.lock().blocks.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-append of plain Vec pushes: data is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl BlockStore for MemoryStore {
    fn len(&self) -> u64 {
        self.lock().blocks.len() as u64
    }
    fn byte_len(&self) -> u64 {
        self.lock().byte_len
    }
    fn get(&mut self, index: u64) -> Result<Vec<u8>> {
        let inner = self.lock();
        usize::try_from(index)
            .ok()
            .and_then(|i| inner.blocks.get(i))
            .cloned()
            .ok_or_else(|| {
                err::out_of_bounds(format!(
                    "block {index} is past the end ({})",
                    inner.blocks.len()
                ))
            })
    }
    fn append_batch(&mut self, blocks: &[&[u8]]) -> Result<u64> {
        if self.read_only {
            return Err(err::not_writable("memory store opened read-only"));
        }
        let mut inner = self.lock();
        for b in blocks {
            inner.byte_len += b.len() as u64;
            inner.blocks.push(b.to_vec());
        }
        Ok(inner.blocks.len() as u64)
    }
    fn truncate(&mut self, length: u64) -> Result<u64> {
        if self.read_only {
            return Err(err::not_writable("memory store opened read-only"));
        }
        let mut inner = self.lock();
        let keep = usize::try_from(length).unwrap_or(usize::MAX).min(inner.blocks.len());
        let dropped = inner.blocks.split_off(keep);
        inner.byte_len -= dropped.iter().map(|b| b.len() as u64).sum::<u64>();
        Ok(dropped.len() as u64)
    }
    fn is_writable(&self) -> bool {
        !self.read_only
    }
}
