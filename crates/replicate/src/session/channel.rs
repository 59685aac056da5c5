//! One channel: a core opened on a stream, what the peer said it holds, and our requests in flight.

use std::collections::HashMap;

use libvms_errors::Result;

use crate::core_handle::ReplCore;
use crate::messages::{Data, Sync};

#[derive(Default)]
pub(super) struct Remote {
    pub(super) sync: Option<Sync>,
    /// Sorted, disjoint [start, end) runs the peer said it has.
    pub(super) has: Vec<(u64, u64)>,
}

impl Remote {
    pub(super) fn add(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.has.push((start, end));
        self.has.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.has.len());
        for &(s, e) in &self.has {
            match out.last_mut() {
                Some(l) if s <= l.1 => l.1 = l.1.max(e),
                _ => out.push((s, e)),
            }
        }
        self.has = out;
    }

    pub(super) fn remove(&mut self, i: u64) {
        let mut out = Vec::with_capacity(self.has.len() + 1);
        for &(s, e) in &self.has {
            if i < s || i >= e {
                out.push((s, e));
                continue;
            }
            if s < i {
                out.push((s, i));
            }
            if i + 1 < e {
                out.push((i + 1, e));
            }
        }
        self.has = out;
    }

    pub(super) fn has(&self, i: u64) -> bool {
        let p = self.has.partition_point(|r| r.1 <= i);
        p < self.has.len() && self.has[p].0 <= i
    }
}

pub(super) enum Pending {
    Block(u64),
    Upgrade,
}

pub(super) struct Channel {
    pub(super) local_id: u64,
    pub(super) remote_id: Option<u64>,
    pub(super) core: ReplCore,
    pub(super) remote: Remote,
    pub(super) inflight: HashMap<u64, Pending>,
    pub(super) next_id: u64,
    pub(super) upgrade_inflight: bool,
    /// First index that may still be missing (everything below is held).
    pub(super) scan_from: u64,
    /// What we last told the peer: our length and how far our contiguous range went.
    pub(super) sent_length: Option<u64>,
    pub(super) sent_contig: u64,
    pub(super) sent_want: bool,
    /// Block answers read but not stored yet: stored together (`apply_blocks`) before the next requests.
    pub(super) received: Vec<Data>,
}

impl Channel {
    pub(super) fn new(local_id: u64, core: ReplCore) -> Channel {
        Channel {
            local_id,
            remote_id: None,
            core,
            remote: Remote::default(),
            inflight: HashMap::new(),
            next_id: 1,
            upgrade_inflight: false,
            scan_from: 0,
            sent_length: None,
            sent_contig: 0,
            sent_want: false,
            received: Vec::new(),
        }
    }

    pub(super) fn open(&self) -> bool {
        self.remote_id.is_some()
    }

    pub(super) fn id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    pub(super) fn release_all(&mut self) {
        for (_, p) in self.inflight.drain() {
            if let Pending::Block(i) = p {
                self.core.release(i);
            }
        }
        self.upgrade_inflight = false;
        for d in self.received.drain(..) {
            if let Some(b) = &d.proof.block {
                self.core.release(b.index);
            }
        }
    }

    /// Verify and store the block answers received since the last call, all in one ledger batch.
    /// Their claims are released afterwards, so no other session asks for them meanwhile.
    pub(super) fn apply_received(&mut self) -> Result<()> {
        if self.received.is_empty() {
            return Ok(());
        }
        let received = std::mem::take(&mut self.received);
        let res = self.core.with(|c| c.apply_blocks(&received.iter().map(|d| &d.proof).collect::<Vec<_>>()));
        for d in &received {
            if let Some(b) = &d.proof.block {
                self.core.release(b.index);
            }
        }
        res?;
        self.core.refresh()?;
        Ok(())
    }
}
