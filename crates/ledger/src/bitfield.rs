//! The `bitfield` file: which blocks are held. Bit i is byte i>>3, mask 1<<(i&7); the file is a
//! sequence of 4096-byte pages (32,768 blocks each), any number of them. A page is created when a
//! bit in it is first set, and dirty pages are written whole at flush (lib/bitfield.js).

use std::collections::BTreeSet;

use libvms_errors::Result;

use crate::storage::StoreFile;
use crate::tree::IndexMap;

pub const PAGE_BYTES: usize = 4096;
pub const PAGE_BITS: u64 = (PAGE_BYTES * 8) as u64;

type Page = Box<[u8; PAGE_BYTES]>;

pub struct Bitfield {
    pub file: StoreFile,
    pages: IndexMap<Page>,
    dirty: BTreeSet<u64>,
}

impl Bitfield {
    /// Load the whole file (size rounded down to a multiple of 4, as JS reads a Uint32Array).
    pub fn open(file: StoreFile) -> Result<Self> {
        let mut buf = file.read_all()?;
        buf.truncate(buf.len() & !3);
        let mut pages = IndexMap::default();
        for (i, chunk) in buf.chunks(PAGE_BYTES).enumerate() {
            if chunk.iter().all(|&b| b == 0) {
                continue;
            }
            let mut p: Page = Box::new([0u8; PAGE_BYTES]);
            p[..chunk.len()].copy_from_slice(chunk);
            pages.insert(i as u64, p);
        }
        Ok(Bitfield { file, pages, dirty: BTreeSet::new() })
    }

    #[inline]
    pub fn get(&self, index: u64) -> bool {
        let page = index / PAGE_BITS;
        let bit = (index % PAGE_BITS) as usize;
        match self.pages.get(&page) {
            Some(p) => p[bit >> 3] & (1 << (bit & 7)) != 0,
            None => false,
        }
    }

    pub fn set_range(&mut self, start: u64, length: u64, value: bool) {
        let end = start.saturating_add(length);
        let mut i = start;
        while i < end {
            let page = i / PAGE_BITS;
            let page_end = ((page + 1).saturating_mul(PAGE_BITS)).min(end);
            if !value && !self.pages.contains_key(&page) {
                i = page_end;
                continue;
            }
            let p = self.pages.entry(page).or_insert_with(|| Box::new([0u8; PAGE_BYTES]));
            let mut b = (i % PAGE_BITS) as usize;
            let stop = b + (page_end - i) as usize;
            while b < stop {
                // Whole bytes at once when aligned.
                if b & 7 == 0 && b + 8 <= stop {
                    p[b >> 3] = if value { 0xff } else { 0 };
                    b += 8;
                    continue;
                }
                if value {
                    p[b >> 3] |= 1 << (b & 7);
                } else {
                    p[b >> 3] &= !(1 << (b & 7));
                }
                b += 1;
            }
            self.dirty.insert(page);
            i = page_end;
        }
    }

    /// First index at or after `from` whose bit is clear.
    pub fn first_unset(&self, from: u64) -> u64 {
        let mut i = from;
        loop {
            let page = i / PAGE_BITS;
            let Some(p) = self.pages.get(&page) else { return i };
            let mut b = (i % PAGE_BITS) as usize;
            while b < PAGE_BITS as usize {
                if b & 7 == 0 && p[b >> 3] == 0xff {
                    b += 8;
                    continue;
                }
                if p[b >> 3] & (1 << (b & 7)) == 0 {
                    return page * PAGE_BITS + b as u64;
                }
                b += 1;
            }
            i = (page + 1) * PAGE_BITS;
        }
    }

    /// The first set bit at or after `from`, if any (pages are visited in index order).
    pub fn first_set(&self, from: u64) -> Option<u64> {
        let first_page = from / PAGE_BITS;
        let mut pages: Vec<u64> = self.pages.keys().copied().filter(|&p| p >= first_page).collect();
        pages.sort_unstable();
        for page in pages {
            let p = &self.pages[&page];
            let start = if page == first_page { (from % PAGE_BITS) as usize } else { 0 };
            let mut b = start;
            while b < PAGE_BITS as usize {
                if b & 7 == 0 && p[b >> 3] == 0 {
                    b += 8;
                    continue;
                }
                if p[b >> 3] & (1 << (b & 7)) != 0 {
                    return Some(page * PAGE_BITS + b as u64);
                }
                b += 1;
            }
        }
        None
    }

    pub fn is_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Write every dirty page whole; the caller syncs. Returns whether anything was written.
    pub fn flush(&mut self) -> Result<bool> {
        if self.dirty.is_empty() {
            return Ok(false);
        }
        let dirty = std::mem::take(&mut self.dirty);
        for page in &dirty {
            let zero = [0u8; PAGE_BYTES];
            let data: &[u8; PAGE_BYTES] = self.pages.get(page).map_or(&zero, |p| p);
            if let Err(e) = self.file.write_at(page * PAGE_BYTES as u64, data) {
                self.dirty = dirty;
                return Err(e);
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pages_and_scan() {
        let mut b = Bitfield::open(StoreFile::memory("bitfield")).unwrap();
        b.set_range(0, 3, true);
        assert!(b.get(0) && b.get(2) && !b.get(3));
        b.set_range(5, 100_000, true);
        assert!(b.get(5) && b.get(100_004) && !b.get(100_005));
        assert_eq!(b.first_unset(0), 3);
        assert_eq!(b.first_unset(5), 100_005);
        b.set_range(40_000, 1, false);
        assert_eq!(b.first_unset(5), 40_000);
        b.flush().unwrap();
        assert_eq!(b.file.len().unwrap(), 4 * 4096);
        let again = Bitfield::open(b.file).unwrap();
        assert!(again.get(100_004) && !again.get(40_000) && again.get(0));
        assert_eq!(again.first_unset(3), 3);
        assert_eq!(again.first_set(3), Some(5));
        assert_eq!(again.first_set(100_005), None);
        assert_eq!(again.first_set(40_000), Some(40_001));
    }
}
