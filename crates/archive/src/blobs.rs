//! Hyperblobs 2 (FORMAT.md §2.3): a blob is a run of 65,536-byte blocks on the content log, appended
//! at most 16 blocks per batch. Reads can stream block by block so big files never sit whole in memory.

use crate::store::BlockStore;
use libvms_errors::{err, Result};

pub const BLOCK_SIZE: usize = 65_536;
pub const BLOCKS_PER_APPEND: usize = 16;

/// Where a blob lives: blocks `[block_offset, block_offset + block_length)`, starting at byte `byte_offset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlobId {
    pub block_offset: u64,
    pub byte_offset: u64,
    pub block_length: u64,
    pub byte_length: u64,
}

/// Writes `data` as one blob.
pub fn put_blob<C: BlockStore>(store: &mut C, data: &[u8]) -> Result<BlobId> {
    // Same blocks and batches as `put_blob_chunks`, sliced from `data` instead of copied.
    let start_blocks = store.len();
    let start_bytes = store.byte_len();
    let blocks: Vec<&[u8]> = data.chunks(BLOCK_SIZE).collect();
    for batch in blocks.chunks(BLOCKS_PER_APPEND) {
        store.append_batch(batch)?;
    }
    Ok(BlobId {
        block_offset: start_blocks,
        byte_offset: start_bytes,
        block_length: store.len() - start_blocks,
        byte_length: store.byte_len() - start_bytes,
    })
}

/// Writes a blob from chunks of any size (re-cut into 64 KiB blocks). An error from the iterator stops the
/// write: blocks already appended stay in the log unreferenced, as in JS.
pub fn put_blob_chunks<C, I>(store: &mut C, chunks: I) -> Result<BlobId>
where
    C: BlockStore,
    I: IntoIterator<Item = Result<Vec<u8>>>,
{
    let start_blocks = store.len();
    let start_bytes = store.byte_len();
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let flush = |store: &mut C, batch: &mut Vec<Vec<u8>>| -> Result<()> {
        if !batch.is_empty() {
            let refs: Vec<&[u8]> = batch.iter().map(|b| b.as_slice()).collect();
            store.append_batch(&refs)?;
            batch.clear();
        }
        Ok(())
    };
    for chunk in chunks {
        let chunk = chunk?;
        let mut rest = chunk.as_slice();
        while !rest.is_empty() {
            if cur.capacity() == 0 {
                cur.reserve_exact(BLOCK_SIZE);
            }
            let take = (BLOCK_SIZE - cur.len()).min(rest.len());
            cur.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if cur.len() == BLOCK_SIZE {
                batch.push(std::mem::take(&mut cur));
                if batch.len() == BLOCKS_PER_APPEND {
                    flush(store, &mut batch)?;
                }
            }
        }
    }
    if !cur.is_empty() {
        batch.push(cur);
    }
    flush(store, &mut batch)?;
    Ok(BlobId {
        block_offset: start_blocks,
        byte_offset: start_bytes,
        block_length: store.len() - start_blocks,
        byte_length: store.byte_len() - start_bytes,
    })
}

/// Reads a whole blob.
pub fn read_blob<C: BlockStore>(store: &mut C, id: &BlobId) -> Result<Vec<u8>> {
    // Never trust a stored length for the allocation size.
    let mut out = Vec::with_capacity(id.byte_length.min(64 << 20) as usize);
    for chunk in read_blob_chunks(store, *id) {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Streams a blob one block at a time; checks the blocks exist and add up to `byte_length`.
pub fn read_blob_chunks<C: BlockStore>(store: &mut C, id: BlobId) -> BlobChunks<'_, C> {
    BlobChunks {
        store,
        id,
        next: 0,
        bytes: 0,
        failed: false,
    }
}

pub struct BlobChunks<'a, C: BlockStore> {
    store: &'a mut C,
    id: BlobId,
    next: u64,
    bytes: u64,
    failed: bool,
}

impl<C: BlockStore> BlobChunks<'_, C> {
    fn step(&mut self) -> Result<Option<Vec<u8>>> {
        if self.next == self.id.block_length {
            if self.bytes != self.id.byte_length {
                return Err(err::corrupt(format!(
                    "blob blocks hold {} bytes, entry says {}",
                    self.bytes, self.id.byte_length
                )));
            }
            return Ok(None);
        }
        let index = self
            .id
            .block_offset
            .checked_add(self.next)
            .filter(|&i| i < self.store.len());
        let Some(index) = index else {
            return Err(err::corrupt(format!(
                "blob block {} is past the content log",
                self.id.block_offset + self.next
            )));
        };
        let block = self.store.get(index)?;
        self.next += 1;
        self.bytes += block.len() as u64;
        if self.bytes > self.id.byte_length {
            return Err(err::corrupt("blob blocks are longer than the entry says"));
        }
        Ok(Some(block))
    }
}

impl<C: BlockStore> Iterator for BlobChunks<'_, C> {
    type Item = Result<Vec<u8>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let r = self.step();
        self.failed = r.is_err();
        r.transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    #[test]
    fn vector_block_sizes() {
        let mut s = MemoryStore::new();
        let a = put_blob(&mut s, b"hello").unwrap();
        assert_eq!(
            a,
            BlobId {
                block_offset: 0,
                byte_offset: 0,
                block_length: 1,
                byte_length: 5
            }
        );
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        let b = put_blob(&mut s, &data).unwrap();
        assert_eq!(
            b,
            BlobId {
                block_offset: 1,
                byte_offset: 5,
                block_length: 3,
                byte_length: 150_000
            }
        );
        let lens: Vec<usize> = s.blocks().iter().map(|b| b.len()).collect();
        assert_eq!(lens, [5, 65536, 65536, 18928]);
        assert_eq!(read_blob(&mut s, &b).unwrap(), data);
        let empty = put_blob(&mut s, b"").unwrap();
        assert_eq!(
            empty,
            BlobId {
                block_offset: 4,
                byte_offset: 150_005,
                block_length: 0,
                byte_length: 0
            }
        );
        assert_eq!(read_blob(&mut s, &empty).unwrap(), b"");
    }

    #[test]
    fn chunked_write_and_read_agree_and_batches_hold_16_blocks() {
        struct Counting(MemoryStore, Vec<usize>);
        impl BlockStore for Counting {
            fn len(&self) -> u64 {
                self.0.len()
            }
            fn byte_len(&self) -> u64 {
                self.0.byte_len()
            }
            fn get(&mut self, i: u64) -> Result<Vec<u8>> {
                self.0.get(i)
            }
            fn append_batch(&mut self, b: &[&[u8]]) -> Result<u64> {
                self.1.push(b.len());
                self.0.append_batch(b)
            }
        }
        let mut s = Counting(MemoryStore::new(), vec![]);
        let total = 40 * BLOCK_SIZE + 7;
        let chunks = (0..total)
            .step_by(10_000)
            .map(|o| Ok((o..(o + 10_000).min(total)).map(|i| i as u8).collect()));
        let id = put_blob_chunks(&mut s, chunks).unwrap();
        assert_eq!(s.1, [16, 16, 9]);
        assert_eq!(id.block_length, 41);
        let mut n = 0;
        for c in read_blob_chunks(&mut s, id) {
            let c = c.unwrap();
            assert!(c.iter().enumerate().all(|(j, &b)| b == (n + j) as u8));
            n += c.len();
        }
        assert_eq!(n, total);
    }

    #[test]
    fn sliced_and_chunked_writes_make_the_same_blocks() {
        let data: Vec<u8> = (0..(33 * BLOCK_SIZE + 5)).map(|i| (i % 253) as u8).collect();
        for len in [0, 1, BLOCK_SIZE, 16 * BLOCK_SIZE, 16 * BLOCK_SIZE + 1, data.len()] {
            let (mut a, mut b) = (MemoryStore::new(), MemoryStore::new());
            let ia = put_blob(&mut a, &data[..len]).unwrap();
            let ib = put_blob_chunks(&mut b, data[..len].chunks(7_000).map(|c| Ok(c.to_vec()))).unwrap();
            assert_eq!(ia, ib);
            assert_eq!(a.blocks(), b.blocks());
            assert_eq!(read_blob(&mut a, &ia).unwrap(), &data[..len]);
        }
    }

    #[test]
    fn bad_ids_are_errors() {
        let mut s = MemoryStore::new();
        let id = put_blob(&mut s, b"abc").unwrap();
        let long = BlobId {
            byte_length: 4,
            ..id
        };
        assert!(read_blob(&mut s, &long).is_err());
        let past = BlobId {
            block_length: 2,
            ..id
        };
        assert!(read_blob(&mut s, &past).is_err());
        let huge = BlobId {
            block_offset: u64::MAX,
            block_length: 2,
            byte_length: u64::MAX,
            ..id
        };
        assert!(read_blob(&mut s, &huge).is_err());
    }
}
