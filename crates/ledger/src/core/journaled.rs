//! The core's use of its journal (journal.rs): an append's one sync, the points where the data and oplog files
//! must catch up with it, and the redo at open.

use std::path::Path;

use libvms_errors::Result;

use crate::journal::{self, Journal, Target, Write};
use crate::oplog::Oplog;

use super::{Core, Files};

impl Core {
    /// Make an append durable: its data (written at `data_at`) and oplog frame (at `frame_at`) go into one journal
    /// record, synced once. A large batch, or a core in memory, syncs the data and oplog files instead.
    pub(super) fn commit_append(&mut self, data_at: u64, data: &[u8], frame_at: u64, frame: &[u8]) -> Result<()> {
        let slot = self.oplog.slot_id();
        match &mut self.journal {
            Some(j) if data.len() <= journal::MAX_DATA => j.commit(
                &[
                    Write { target: Target::Data, offset: data_at, bytes: data },
                    Write { target: Target::Oplog, offset: frame_at, bytes: frame },
                ],
                slot,
            ),
            _ => self.data.sync_with(&self.oplog.file),
        }
    }

    /// Before a header flush: the blocks the journal's records hold must be durable in `data`, since the flush
    /// drops the oplog entries (and with them, at open, the records: they extend the old slot).
    pub(super) fn journaled_data_durable(&mut self) -> Result<()> {
        if self.journal.as_ref().is_some_and(Journal::has_records) {
            self.data.sync()?;
        }
        Ok(())
    }

    /// Before a write the journal does not cover that reuses offsets its records name (a truncation): the data and
    /// oplog files catch up, then the records are voided, so a redo can never overwrite newer bytes.
    pub(super) fn checkpoint_journal(&mut self) -> Result<()> {
        let Some(j) = &mut self.journal else { return Ok(()) };
        if !j.has_records() {
            return Ok(());
        }
        self.data.sync_with(&self.oplog.file)?;
        j.retire()
    }

    /// Void the journal's records once the files hold all they describe (after a flush).
    pub(super) fn retire_journal(&mut self) -> Result<()> {
        self.journal.as_mut().map_or(Ok(()), Journal::retire)
    }

    /// True when the journal has grown enough that a header flush (which lets it start over) is due.
    pub(super) fn journal_full(&self) -> bool {
        self.journal.as_ref().is_some_and(|j| j.len() >= journal::FLUSH_AT)
    }
}

/// At open, before the oplog is read: redo the records of the journal's current epoch, if they extend the oplog's
/// current header slot (otherwise a flush made them durable already), and make the result durable.
pub(super) fn redo_journal(dir: &Path, files: &mut Files) -> Result<Journal> {
    let (journal, records) = Journal::open(dir)?;
    if records.is_empty() || journal.slot() != Oplog::stored_slot_id(&files.oplog)? {
        return Ok(journal);
    }
    for record in &records {
        for (target, offset, bytes) in &record.writes {
            match target {
                Target::Data => files.data.write_at(*offset, bytes)?,
                Target::Oplog => files.oplog.write_at(*offset, bytes)?,
            }
        }
    }
    files.data.sync_with(&files.oplog)?;
    Ok(journal)
}
