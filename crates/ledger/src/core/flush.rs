//! Flushing and closing: the header, tree and bitfield written behind the oplog.

use libvms_errors::Result;

use crate::oplog::{self, Header};

use super::Core;

impl Core {
    /// Write the header so the oplog entries can be dropped (JS `core.flush()`).
    pub fn flush(&mut self) -> Result<()> {
        self.check_usable()?;
        self.touched = true;
        self.manifest_flushed = true;
        self.auto_flush = self.flush_interval;
        self.flush_now()
    }

    fn needs_flush(&self) -> bool {
        self.oplog.entries_count > 0 || self.tree.has_unflushed() || self.bitfield.is_dirty() || self.header_dirty
    }

    pub(super) fn flush_now(&mut self) -> Result<()> {
        self.journaled_data_durable()?;
        // Bitfield pages and tree nodes durable before the header that makes them authoritative.
        if self.bitfield.flush()? {
            self.bitfield.file.sync()?;
        }
        if self.tree.flush()? {
            self.tree.file.sync()?;
        }
        let mut body = self.header.encode();
        if self.header.external.is_some() || body.len() + 8 > oplog::PAGE as usize {
            body = self.write_big_header(body)?;
        }
        self.oplog.flush_header(&body)?;
        self.header_dirty = false;
        Ok(())
    }

    /// big-header.js: the full header goes to the `header` file, the slot points at it.
    fn write_big_header(&mut self, mut full: Vec<u8>) -> Result<Vec<u8>> {
        let (old_start, old_len) = self.header.external.unwrap_or((0, 0));
        if self.header.external.is_some() {
            // The encoding above included no external pointer (it is never encoded in full form).
            full = Header { external: None, ..self.header.clone() }.encode();
        }
        let mut start = 0u64;
        if full.len() as u64 > old_start {
            start = old_start + old_len;
            let rem = start & 4095;
            if rem > 0 {
                start += 4096 - rem;
            }
        }
        self.header_file.write_at(start, &full)?;
        self.header_file.sync()?;
        self.header.external = Some((start, full.len() as u64));
        Ok(Header::encode_external(start, full.len() as u64))
    }

    /// Batches between header flushes (at least 1; JS uses 4). A flush also happens whenever the oplog's entries
    /// reach 64 KiB, so a larger interval trades a longer oplog to replay at open for fewer syncs and truncations
    /// per append. Every batch is durable either way (its oplog entry carries the tree nodes and signature).
    pub fn set_flush_interval(&mut self, batches: u32) {
        self.flush_interval = batches.max(1);
        self.auto_flush = self.auto_flush.min(self.flush_interval);
    }

    /// Flush (if this handle changed anything) and release the lock: a handle that only read writes nothing.
    pub fn close(mut self) -> Result<()> {
        if !self.failed && (self.touched || self.header_dirty) && self.needs_flush() {
            self.flush_now()?;
            // The flush holds everything the journal did: a closed core's directory has no live records.
            self.retire_journal()?;
        }
        Ok(())
    }
}
