//! One replication connection: protomux channels (one per core, several cores per stream),
//! serving requests from our cores' proofs and downloading into replicas with every proof
//! verified by the ledger. Runs as one task; a helper task reads and decrypts frames so that
//! writing never waits for the peer to read.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use libvms_errors::{err, Error, ErrorCode, Result};
use libvms_ledger::{ProofRequest, RequestBlock, RequestUpgrade};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};

use crate::core_handle::ReplCore;
use crate::link::{Incoming, Link};
use crate::messages::{Data, Message, Request, Sync};
use crate::mux::{self, Frame};
use crate::stream::{self, StreamInfo};

mod channel;
mod io;

use channel::{Channel, Pending};
use io::{Inbox, Out};

pub const PROTOCOL: &str = "hypercore/alpha";
const PROTOCOL_ALIAS: &str = "hypercore";
/// Requests in flight per channel: enough to keep a loopback link busy.
const MAX_INFLIGHT: usize = 512;
const TICK: Duration = Duration::from_millis(50);
const KEEPALIVE: Duration = Duration::from_secs(5);
/// JS asks for wants in segments of this many blocks.
const WANT_SEGMENT: u64 = 2_097_152;

/// The cores a session may serve or download, found by discovery key.
pub type CoreSet = Arc<RwLock<HashMap<[u8; 32], ReplCore>>>;

pub fn core_set(cores: impl IntoIterator<Item = ReplCore>) -> CoreSet {
    Arc::new(RwLock::new(cores.into_iter().map(|c| (c.discovery_key(), c)).collect()))
}

/// Testing hook: changes data before it is sent, to play a peer that lies.
pub type Tamper = Arc<dyn Fn(&mut Data) + Send + std::marker::Sync>;

#[derive(Clone)]
pub struct SessionOptions {
    /// Cores to open on this stream right away (a fetch opens what it wants).
    pub open: Vec<ReplCore>,
    /// Cores the remote may open (looked up by discovery key); others are REJECTed.
    pub cores: CoreSet,
    pub tamper: Option<Tamper>,
    /// Cores to open as they are added (a fetch that learns of a core later: an archive's content).
    pub follow: Option<watch::Receiver<Vec<ReplCore>>>,
}

/// Whether an error means the peer sent something false (drop it for good) rather than failed.
pub fn is_peer_fault(e: &Error) -> bool {
    matches!(e.code, ErrorCode::VerificationFailed | ErrorCode::InvalidProof | ErrorCode::InvalidSignature)
}

/// Channel messages queued in one turn go out as protomux batches of about this many bytes: one
/// secretstream message (one MAC, one frame) per batch rather than per message, as JS's `cork` does.
const BATCH_BYTES: usize = 256 * 1024;

struct Session<W> {
    info: StreamInfo,
    w: Out<W>,
    opts: SessionOptions,
    channels: Vec<Channel>,
    next_local: u64,
    last_write: Instant,
    /// Channel messages (channel, type, body) waiting to be sent as one batch.
    out: Vec<(u64, u64, Vec<u8>)>,
    out_bytes: usize,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    /// Queue a channel message; it is sent with the others of this turn in one protomux batch.
    fn send(&mut self, channel: u64, kind: u64, body: Vec<u8>) -> Result<()> {
        self.out_bytes += body.len() + 8;
        self.out.push((channel, kind, body));
        if self.out_bytes >= BATCH_BYTES {
            self.seal()?;
        }
        Ok(())
    }

    fn send_msg(&mut self, channel: u64, m: &Message) -> Result<()> {
        self.send(channel, m.kind(), m.encode())
    }

    /// Encrypt the queued channel messages as one stream message (a batch when more than one).
    fn seal(&mut self) -> Result<()> {
        match self.out.len() {
            0 => {}
            1 => {
                let (c, k, b) = &self.out[0];
                self.w.queue(mux::message(*c, *k, b))?;
            }
            _ => self.w.queue(mux::batch(&self.out))?,
        }
        self.out.clear();
        self.out_bytes = 0;
        Ok(())
    }

    /// A control frame (open, reject) goes after the channel messages queued before it.
    fn control(&mut self, frame: &[u8]) -> Result<()> {
        self.seal()?;
        self.w.queue(frame.to_vec())
    }

    /// Open a channel for each followed core that has none yet.
    fn open_followed(&mut self, cores: Vec<ReplCore>) -> Result<()> {
        for core in cores {
            let dk = core.discovery_key();
            if !self.channels.iter().any(|c| c.core.discovery_key() == dk) {
                self.open_channel(core)?;
            }
        }
        Ok(())
    }

    fn handshake(&self, core: &ReplCore) -> Vec<u8> {
        let mut h = vec![1u8]; // flags: seeks
        h.extend_from_slice(&stream::capability(&self.info.handshake_hash, self.info.is_initiator, &core.key()));
        h
    }

    fn open_channel(&mut self, core: ReplCore) -> Result<usize> {
        let local_id = self.next_local;
        self.next_local += 1;
        let hs = self.handshake(&core);
        self.control(&mux::open(local_id, PROTOCOL, &core.discovery_key(), &hs))?;
        self.channels.push(Channel::new(local_id, core));
        Ok(self.channels.len() - 1)
    }

    fn on_open(&mut self, remote_id: u64, protocol: &str, id: &[u8], handshake: &[u8]) -> Result<()> {
        let dk: Option<[u8; 32]> = id.try_into().ok();
        let known = (protocol == PROTOCOL || protocol == PROTOCOL_ALIAS)
            .then_some(dk)
            .flatten()
            .and_then(|dk| {
                if let Some(i) = self.channels.iter().position(|c| c.core.discovery_key() == dk && c.remote_id.is_none()) {
                    return Some(Ok(i));
                }
                let core = self.opts.cores.read().unwrap_or_else(|p| p.into_inner()).get(&dk).cloned()?;
                Some(self.open_channel(core))
            });
        let Some(idx) = known else {
            return self.control(&mux::reject(remote_id));
        };
        let idx = idx?;
        // flags ‖ capability; the capability proves the remote knows the core key.
        let cap = handshake.get(1..33).ok_or_else(|| err::connection("channel handshake too short"))?;
        let want = stream::capability(&self.info.handshake_hash, !self.info.is_initiator, &self.channels[idx].core.key());
        if cap != want {
            return Err(err::connection("remote capability does not match the core key"));
        }
        self.channels[idx].remote_id = Some(remote_id);
        self.announce(idx, true)
    }

    /// Send sync (and ranges for newly held blocks) when our state changed or `force`.
    fn announce(&mut self, idx: usize, force: bool) -> Result<()> {
        let ch = &mut self.channels[idx];
        if !ch.open() {
            return Ok(());
        }
        let core = ch.core.clone();
        let (fork, served, contig, has_manifest) = ch
            .core
            .with(|c| Ok((c.fork(), core.served_length(c), c.contiguous_length(), !c.compat() && c.manifest().is_some())))?;
        // A limited core (core_handle.rs `limit_served`) announces no more than it may serve.
        let length = served.or(ch.sent_length).unwrap_or(0);
        let contig = contig.min(length);
        let local_id = ch.local_id;
        let mut sync = None;
        if force || ch.sent_length != Some(length) {
            let remote_length = ch.remote.sync.as_ref().filter(|s| s.fork == fork).map_or(0, |s| s.length);
            sync = Some(Message::Sync(Sync { fork, length, remote_length, can_upgrade: true, uploading: true, downloading: true, has_manifest }));
            ch.sent_length = Some(length);
        }
        let mut range = None;
        if contig > ch.sent_contig {
            range = Some(Message::Range { drop: false, start: ch.sent_contig, length: contig - ch.sent_contig });
            ch.sent_contig = contig;
        }
        for m in sync.iter().chain(range.iter()) {
            self.send_msg(local_id, m)?;
        }
        Ok(())
    }

    fn find_remote(&self, remote_id: u64) -> Option<usize> {
        self.channels.iter().position(|c| c.remote_id == Some(remote_id))
    }

    fn on_message(&mut self, idx: usize, m: Message, cancelled: &HashSet<(usize, u64)>) -> Result<()> {
        match m {
            Message::Sync(s) => {
                let core = self.channels[idx].core.clone();
                let sent = self.channels[idx].sent_length;
                let (fork, length) = core.with(|c| Ok((c.fork(), core.served_length(c).or(sent).unwrap_or(0))))?;
                let ch = &mut self.channels[idx];
                if same_fork(fork, length, s.fork) {
                    ch.core.saw_remote_length(s.length);
                }
                let stale_view = s.remote_length != length || length > s.length;
                ch.remote.sync = Some(s);
                if stale_view {
                    self.announce(idx, true)?;
                }
            }
            Message::Range { drop, start, length } => {
                let r = &mut self.channels[idx].remote;
                if drop {
                    for i in start..start.saturating_add(length).min(start + 1_000_000) {
                        r.remove(i);
                    }
                } else {
                    r.add(start, start.saturating_add(length));
                }
            }
            Message::Bitfield { start, bitfield } => {
                let r = &mut self.channels[idx].remote;
                for (w, word) in bitfield.iter().enumerate() {
                    for b in 0..32u64 {
                        if word & (1 << b) != 0 {
                            let i = start + 32 * w as u64 + b;
                            r.add(i, i + 1);
                        }
                    }
                }
            }
            Message::Want { start, length } => self.on_want(idx, start, length)?,
            Message::Request(r) => {
                if !cancelled.contains(&(idx, r.id)) {
                    self.on_request(idx, r)?;
                }
            }
            Message::Data(d) => self.on_data(idx, d)?,
            Message::NoData { request } => {
                let ch = &mut self.channels[idx];
                match ch.inflight.remove(&request) {
                    Some(Pending::Block(i)) => {
                        ch.core.release(i);
                        ch.remote.remove(i);
                    }
                    Some(Pending::Upgrade) => ch.upgrade_inflight = false,
                    None => {}
                }
            }
            // Requests are answered as they arrive; cancels in the same read batch are honoured above.
            Message::Cancel { .. } | Message::Unwant { .. } | Message::Extension { .. } => {}
        }
        Ok(())
    }

    fn on_want(&mut self, idx: usize, start: u64, length: u64) -> Result<()> {
        let ch = &self.channels[idx];
        let (core, sent) = (ch.core.clone(), ch.sent_length.unwrap_or(0));
        let runs = ch.core.with(|c| {
            let end = start.saturating_add(length).min(core.served_length(c).unwrap_or(sent));
            let mut runs = Vec::new();
            let mut i = start;
            while i < end {
                if !c.has(i) {
                    i += 1;
                    continue;
                }
                let s = i;
                while i < end && c.has(i) {
                    i += 1;
                }
                runs.push((s, i - s));
            }
            Ok(runs)
        })?;
        let local_id = ch.local_id;
        for (start, length) in runs {
            self.send_msg(local_id, &Message::Range { drop: false, start, length })?;
        }
        Ok(())
    }

    fn on_request(&mut self, idx: usize, r: Request) -> Result<()> {
        let ch = &self.channels[idx];
        let (core, sent) = (ch.core.clone(), ch.sent_length.unwrap_or(0));
        let proof = ch.core.with(|c| {
            let manifest = if r.manifest { c.manifest().cloned() } else { None };
            // No further than may be served: for a limited core, never a write its VM's log does not account for yet.
            let at = core.served_length(c).unwrap_or(sent);
            Ok(c.proof_at(&r.req, at).ok().map(|p| (p, manifest)))
        })?;
        let m = match proof {
            Some((proof, manifest)) => {
                let mut d = Data { request: r.id, proof, manifest };
                if let Some(t) = &self.opts.tamper {
                    t(&mut d);
                }
                Message::Data(d)
            }
            None => Message::NoData { request: r.id },
        };
        let local_id = ch.local_id;
        self.send_msg(local_id, &m)
    }

    fn on_data(&mut self, idx: usize, d: Data) -> Result<()> {
        let ch = &mut self.channels[idx];
        let Some(p) = ch.inflight.remove(&d.request) else { return Ok(()) }; // unsolicited: dropped as JS does
        match p {
            Pending::Block(i) => {
                if d.proof.block.as_ref().map(|b| b.index) != Some(i) || d.proof.upgrade.is_some() {
                    ch.core.release(i);
                    return Err(err::invalid_proof(format!("peer answered the request for block {i} with something else")));
                }
                // Stored with the other answers of this read (see `apply_received`), still claimed.
                ch.received.push(d);
                return Ok(());
            }
            Pending::Upgrade => {
                ch.upgrade_inflight = false;
                let Some(up) = &d.proof.upgrade else {
                    return Err(err::invalid_proof("peer answered an upgrade request without an upgrade"));
                };
                let start = up.start;
                ch.core.with(|c| {
                    if let Some(m) = &d.manifest {
                        c.set_manifest(m.clone())?;
                    }
                    // Another peer may have upgraded us meanwhile: then this proof is stale, not false.
                    if c.length() != start || !same_fork(c.fork(), c.length(), d.proof.fork) {
                        return Ok(());
                    }
                    c.apply_proof(&d.proof, None)
                })?;
            }
        }
        ch.core.refresh()?;
        Ok(())
    }

    /// Ask for an upgrade and for missing blocks the peer has, up to the in-flight limit.
    fn schedule(&mut self, idx: usize) -> Result<()> {
        let ch = &mut self.channels[idx];
        if !ch.open() || !ch.core.downloads() {
            return Ok(());
        }
        let Some(rs) = ch.remote.sync.clone() else { return Ok(()) };
        let (fork, length, no_manifest) = ch.core.with(|c| Ok((c.fork(), c.length(), c.manifest().is_none())))?;
        if !same_fork(fork, length, rs.fork) {
            return Ok(());
        }
        let mut out: Vec<(u64, u64, Vec<u8>)> = Vec::new();
        if rs.length > length && !ch.upgrade_inflight {
            let id = ch.id();
            let req = ProofRequest { fork: rs.fork, upgrade: Some(RequestUpgrade { start: length, length: rs.length - length }), ..Default::default() };
            ch.inflight.insert(id, Pending::Upgrade);
            ch.upgrade_inflight = true;
            // A replica opened by key has no manifest yet: a core whose key is its manifest's hash
            // (hypercore@11's default) cannot be verified without it.
            let manifest = no_manifest && rs.has_manifest;
            out.push((ch.local_id, crate::messages::REQUEST, Message::Request(Request { id, req, manifest, priority: 0 }).encode()));
        }
        let (start, end) = ch.core.want().unwrap_or((0, u64::MAX));
        let end = end.min(length).min(rs.length);
        if !ch.sent_want && rs.length > 0 && ch.remote.has.is_empty() {
            // The peer announced nothing yet: ask, as JS does, for what it has in the first segment.
            ch.sent_want = true;
            let m = Message::Want { start: 0, length: WANT_SEGMENT };
            out.push((ch.local_id, m.kind(), m.encode()));
        }
        if ch.inflight.len() < MAX_INFLIGHT && start.max(ch.scan_from) < end {
            let budget = MAX_INFLIGHT - ch.inflight.len();
            let from = start.max(ch.scan_from);
            let mut picks: Vec<(u64, u64)> = Vec::new();
            let remote = &ch.remote;
            let core = ch.core.clone();
            let scanned_from_cursor = start <= ch.scan_from;
            let first_missing = core.with(|c| {
                let mut first_missing = None;
                let mut i = from;
                while i < end && picks.len() < budget {
                    if c.has(i) {
                        i += 1;
                        continue;
                    }
                    first_missing.get_or_insert(i);
                    if remote.has(i) && !core.is_claimed(i) && core.claim(i) {
                        picks.push((i, c.missing_nodes(2 * i)?));
                    }
                    i += 1;
                }
                Ok(first_missing.unwrap_or(i))
            })?;
            if scanned_from_cursor {
                // Everything below the first missing block is held: later scans start there.
                ch.scan_from = first_missing;
            }
            for (i, nodes) in picks {
                let id = ch.id();
                ch.inflight.insert(id, Pending::Block(i));
                let req = ProofRequest { fork, block: Some(RequestBlock { index: i, nodes }), ..Default::default() };
                out.push((ch.local_id, crate::messages::REQUEST, Message::Request(Request { id, req, manifest: false, priority: 0 }).encode()));
            }
        }
        for (c, k, b) in out {
            self.send(c, k, b)?;
        }
        Ok(())
    }

    fn remove_channel(&mut self, idx: usize) {
        let mut ch = self.channels.remove(idx);
        ch.release_all();
    }

    fn handle(&mut self, frames: Vec<Frame>) -> Result<()> {
        // Decode first so that a cancel in the same read batch stops its request.
        let mut cancelled = HashSet::new();
        for f in &frames {
            if let Frame::Message { channel, kind: crate::messages::CANCEL, body } = f {
                if let (Some(idx), Ok(Message::Cancel { request })) = (self.find_remote(*channel), Message::decode(crate::messages::CANCEL, body)) {
                    cancelled.insert((idx, request));
                }
            }
        }
        for f in frames {
            match f {
                Frame::Open { remote_id, protocol, id, handshake } => self.on_open(remote_id, &protocol, &id, &handshake)?,
                Frame::Reject { local_id } => {
                    if let Some(i) = self.channels.iter().position(|c| c.local_id == local_id) {
                        self.remove_channel(i);
                    }
                }
                Frame::Close { remote_id } => {
                    if let Some(i) = self.find_remote(remote_id) {
                        self.remove_channel(i);
                    }
                }
                Frame::Message { channel, kind, body } => {
                    let Some(idx) = self.find_remote(channel) else { continue };
                    // Types a later protocol version adds are ignored, as protomux does.
                    if kind > crate::messages::EXTENSION {
                        continue;
                    }
                    let m = Message::decode(kind, &body)?;
                    self.on_message(idx, m, &cancelled)?;
                }
            }
        }
        Ok(())
    }

    /// After any input or tick: advertise local changes (appends, downloads) and request more.
    fn pump(&mut self) -> Result<()> {
        for i in 0..self.channels.len() {
            self.channels[i].apply_received()?;
            self.announce(i, false)?;
            self.schedule(i)?;
        }
        Ok(())
    }
}

/// Run a session over `r`/`w` until EOF, an error, or `stop` turning true. Errors that mean the
/// peer lied are reported with their verification code (see `is_peer_fault`).
pub async fn run<R, W>(r: R, w: W, initiator: bool, opts: SessionOptions, mut stop: watch::Receiver<bool>) -> Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin,
{
    // Frames are read a length prefix at a time: buffered, that is a copy rather than a syscall.
    let r = tokio::io::BufReader::with_capacity(64 * 1024, r);
    let (mut reader, writer, info) = tokio::select! {
        res = stream::connect(r, w, initiator) => res?,
        _ = stop.wait_for(|s| *s) => return Ok(()),
    };
    let (tx, rx) = mpsc::unbounded_channel::<Incoming>();
    let read_task = tokio::spawn(async move {
        loop {
            let m = reader.read().await;
            let end = !matches!(m, Ok(Some(_)));
            if tx.send(m).is_err() || end {
                break;
            }
        }
    });
    let res = drive(Inbox { rx, gauge: None }, Out::Stream(writer), info, opts, stop).await;
    read_task.abort();
    res
}

/// Run a session over a stream someone else holds and encrypts (see `link`), until it ends, an
/// error, or `stop`. The holder closes its stream when `LinkHandle::next` returns `None`.
pub async fn run_link(link: Link, opts: SessionOptions, stop: watch::Receiver<bool>) -> Result<()> {
    let Link { info, inbox, gauge, outbox } = link;
    let out: Out<tokio::io::Sink> = Out::Link { tx: outbox, buf: Vec::new(), bytes: 0 };
    drive(Inbox { rx: inbox, gauge: Some(gauge) }, out, info, opts, stop).await
}

async fn drive<W: AsyncWrite + Unpin>(
    mut rx: Inbox,
    writer: Out<W>,
    info: StreamInfo,
    opts: SessionOptions,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut follow = opts.follow.clone();
    let mut s = Session {
        info,
        w: writer,
        opts: opts.clone(),
        channels: Vec::new(),
        next_local: 1,
        last_write: Instant::now(),
        out: Vec::new(),
        out_bytes: 0,
    };
    let result = async {
        for core in opts.open {
            s.open_channel(core)?;
        }
        if let Some(f) = follow.as_mut() {
            let cores = f.borrow_and_update().clone();
            s.open_followed(cores)?;
        }
        s.seal()?;
        s.w.flush().await?;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                m = rx.recv() => {
                    let Some(m) = m else { return Ok(()) };
                    let Some(first) = m? else { return Ok(()) };
                    s.handle(mux::decode(&first)?)?;
                    // Drain what already arrived before answering, so replies go out together.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Some(Ok(Some(m))) => s.handle(mux::decode(&m)?)?,
                            Some(Ok(None)) => return Ok(()),
                            Some(Err(e)) => return Err(e),
                            None => break,
                        }
                    }
                }
                r = async { match follow.as_mut() { Some(f) => f.changed().await, None => std::future::pending().await } } => {
                    match r {
                        Ok(()) => {
                            let cores = follow.as_mut().map(|f| f.borrow_and_update().clone()).unwrap_or_default();
                            s.open_followed(cores)?;
                        }
                        Err(_) => follow = None,
                    }
                }
                _ = tick.tick() => {
                    if s.last_write.elapsed() >= KEEPALIVE {
                        s.w.queue(Vec::new())?;
                    }
                }
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
            s.pump()?;
            s.seal()?;
            if s.w.pending() > 0 {
                s.w.flush().await?;
                s.last_write = Instant::now();
            }
        }
    }
    .await;
    for c in &mut s.channels {
        c.release_all();
    }
    let _ = s.seal();
    s.w.shutdown().await;
    result
}

/// Whether a peer's view (at `remote_fork`) continues ours: the same fork, or we hold nothing yet (an empty replica
/// takes the writer's fork, e.g. after the writer rolled back with a truncation, with its first upgrade).
fn same_fork(local_fork: u64, local_length: u64, remote_fork: u64) -> bool {
    remote_fork == local_fork || local_length == 0
}
