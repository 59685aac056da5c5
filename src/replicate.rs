//! Replication for JavaScript: `NativeHost` serves open call logs and archives over TCP;
//! `fetchLog` / `fetchDrive` download them from peers (`host:port`), verified block by block.
//! `NativeLink` carries a session over a stream Node holds (a Hyperswarm connection): Node feeds it
//! the decrypted messages and writes out what `next` yields. `NativeSwarmFetch` is a fetch that
//! takes such links as they are found.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libvms_errors::{err, Result};
use libvms_ledger::Storage;
use libvms_replicate::{core_set, link, Host, Link, LinkHandle, ReplCore};
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tokio::sync::mpsc;

use crate::archive::NativeDrive;
use crate::call_log::NativeLog;
use crate::errors::{guard, js, js_index};

fn key_from_hex(s: &str) -> Result<[u8; 32]> {
    let s = s.strip_prefix("dat://").unwrap_or(s).trim_end_matches('/');
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| err::bad_argument("key must be 64 hex characters"))?;
    bytes.try_into().map_err(|_| err::bad_argument("key must be 64 hex characters"))
}

fn timeout_of(ms: f64) -> Result<Duration> {
    Ok(Duration::from_millis(js_index(ms, "timeout")?))
}

/// A TCP replication host. Cores are added from open logs and archives; `close` ends every session.
#[napi]
pub struct NativeHost {
    host: Arc<Host>,
}

#[napi]
impl NativeHost {
    #[napi(getter)]
    pub fn port(&self) -> u32 {
        self.host.local_addr().port() as u32
    }

    #[napi(getter)]
    pub fn address(&self) -> String {
        self.host.local_addr().to_string()
    }

    /// Serve a call log (the writer keeps appending; peers get live updates). Returns the
    /// discovery key to announce.
    #[napi(catch_unwind)]
    pub fn add_log(&self, log: &NativeLog) -> napi::Result<Vec<Buffer>> {
        guard(|| {
            let core = ReplCore::from_shared(log.core.core().clone())?;
            let dk = core.discovery_key();
            self.host.add(core);
            Ok(vec![Buffer::from(dk.to_vec())])
        })
    }

    /// Serve both logs of an archive (metadata and content). Returns their discovery keys. With `log` (the call
    /// log of the VM that writes the archive), peers see the archive only up to what the log's durable entries
    /// account for (crates/replicate/src/served.rs).
    #[napi(catch_unwind)]
    pub fn add_drive(&self, drive: &NativeDrive, log: Option<&NativeLog>) -> napi::Result<Vec<Buffer>> {
        guard(|| {
            let cores = drive.drive.with(|d| Ok([ReplCore::from_shared(d.bee().store().clone())?, ReplCore::from_shared(d.content().clone())?]))?;
            if let Some(log) = log {
                let follow = libvms_replicate::served::limit_by_log(drive.drive.clone(), log.core.core().clone(), cores[0].clone(), cores[1].clone())?;
                napi::bindgen_prelude::spawn(follow);
            }
            let mut dks = Vec::new();
            for core in cores {
                dks.push(Buffer::from(core.discovery_key().to_vec()));
                self.host.add(core);
            }
            Ok(dks)
        })
    }

    /// Serve this host's cores on a Hyperswarm connection (its Noise handshake done).
    #[napi(catch_unwind)]
    pub fn link(&self, is_initiator: bool, handshake_hash: Buffer, remote_public_key: Buffer) -> napi::Result<NativeLink> {
        guard(|| {
            let (l, h) = link::pair(is_initiator, &handshake_hash, &remote_public_key)?;
            self.host.attach(l);
            Ok(NativeLink { h: Arc::new(h) })
        })
    }

    /// Stop listening and end every session. Idempotent.
    #[napi]
    pub async fn close(&self) -> napi::Result<()> {
        self.host.close().await;
        Ok(())
    }
}

/// Listen on `address` ("127.0.0.1:0" picks a port). `corruptBlocks` is for tests of the fetcher's
/// verification only: the host then serves altered block values.
#[napi]
pub async fn start_host(address: String, corrupt_blocks: Option<bool>) -> napi::Result<NativeHost> {
    let tamper: Option<libvms_replicate::Tamper> = corrupt_blocks.unwrap_or(false).then(|| {
        let t: libvms_replicate::Tamper = Arc::new(|d: &mut libvms_replicate::messages::Data| {
            if let Some(x) = d.proof.block.as_mut().and_then(|b| b.value.first_mut()) {
                *x ^= 0x20;
            }
        });
        t
    });
    let host = js(Host::bind_with(&address, core_set(Vec::new()), tamper).await)?;
    Ok(NativeHost { host: Arc::new(host) })
}

/// Download the log `key` into `dir` (memory when null) from `peers`, then keep following it.
#[napi]
pub async fn fetch_log(key: String, dir: Option<String>, peers: Vec<String>, timeout_ms: f64) -> napi::Result<NativeLog> {
    fetch_log_from(key, dir, peers, None, timeout_ms, None).await
}

async fn fetch_log_from(
    key: String,
    dir: Option<String>,
    peers: Vec<String>,
    links: Option<mpsc::UnboundedReceiver<Link>>,
    timeout_ms: f64,
    watch: Option<Arc<std::sync::Mutex<Option<ReplCore>>>>,
) -> napi::Result<NativeLog> {
    let (key, timeout) = guard(|| Ok((key_from_hex(&key)?, timeout_of(timeout_ms)?)))?;
    let storage = match dir {
        Some(d) => Storage::Disk(PathBuf::from(d)),
        None => Storage::Memory,
    };
    let started = |core: &ReplCore| {
        if let Some(w) = watch {
            *w.lock().unwrap_or_else(|p| p.into_inner()) = Some(core.clone());
        }
    };
    let (core, following) = js(libvms_replicate::fetch_log_from(key, storage, peers, links, timeout, started).await)?;
    Ok(NativeLog::fetched(core, following))
}

/// Download (or resume) the archive `key` into `dir` from `peers` and open it read-only; it keeps
/// following the peers (files written there later arrive) until closed, unless `live` is false.
#[napi]
pub async fn fetch_drive(key: String, dir: String, peers: Vec<String>, timeout_ms: f64, live: Option<bool>, sparse: Option<bool>) -> napi::Result<NativeDrive> {
    fetch_drive_from(key, dir, peers, None, timeout_ms, live, sparse).await
}

async fn fetch_drive_from(
    key: String,
    dir: String,
    peers: Vec<String>,
    links: Option<mpsc::UnboundedReceiver<Link>>,
    timeout_ms: f64,
    live: Option<bool>,
    sparse: Option<bool>,
) -> napi::Result<NativeDrive> {
    let (k, timeout) = guard(|| Ok((key_from_hex(&key)?, timeout_of(timeout_ms)?)))?;
    // Sparse: only the header now, paths on demand (so the fetch lives on, whatever `live` says).
    let sparse = sparse == Some(true);
    let (drive, fetch) = js(libvms_replicate::fetch_archive_with(&PathBuf::from(dir), k, &peers, links, timeout, sparse).await)?;
    if sparse {
        return js(NativeDrive::wrap_sparse(drive, k, fetch));
    }
    if live == Some(false) {
        fetch.close().await;
        return Ok(NativeDrive::wrap(drive, k));
    }
    Ok(NativeDrive::wrap_following(drive, k, fetch))
}

/// The discovery key of a core key: what the DHT announces and looks up (never the key itself).
#[napi(catch_unwind)]
pub fn discovery_key(key: String) -> napi::Result<Buffer> {
    guard(|| Ok(Buffer::from(libvms_ledger::discovery_key(&key_from_hex(&key)?).to_vec())))
}

/// Node's end of a session over a stream it holds: `push` what the stream decrypted, write out
/// what `next` yields (null: the session ended, close the stream), `end` when the stream does.
#[napi]
pub struct NativeLink {
    h: Arc<LinkHandle>,
}

#[napi]
impl NativeLink {
    /// One received message. False: pause the stream until `drained` resolves.
    #[napi(catch_unwind)]
    pub fn push(&self, message: Buffer) -> bool {
        self.h.push(message.to_vec())
    }

    /// The stream closed (with `error` when it failed).
    #[napi(catch_unwind)]
    pub fn end(&self, error: Option<String>) {
        self.h.end(error)
    }

    #[napi]
    pub async fn drained(&self) -> napi::Result<()> {
        self.h.drained().await;
        Ok(())
    }

    /// The next messages to write, in order; null once the session is over.
    #[napi]
    pub async fn next(&self) -> napi::Result<Option<Vec<Buffer>>> {
        Ok(self.h.next().await.map(|batch| batch.into_iter().map(Buffer::from).collect()))
    }
}

/// A fetch whose peers arrive as Hyperswarm connections (`link`), besides any `host:port` peers.
/// One fetch per instance.
#[napi]
pub struct NativeSwarmFetch {
    tx: mpsc::UnboundedSender<Link>,
    rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Link>>>,
    /// The log being fetched, for `progress`.
    core: Arc<std::sync::Mutex<Option<ReplCore>>>,
}

#[napi]
impl NativeSwarmFetch {
    #[napi(constructor)]
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        NativeSwarmFetch { tx, rx: std::sync::Mutex::new(Some(rx)), core: Arc::default() }
    }

    /// A connection found for this fetch; after the fetch closed, the link ends at once.
    #[napi(catch_unwind)]
    pub fn link(&self, is_initiator: bool, handshake_hash: Buffer, remote_public_key: Buffer) -> napi::Result<NativeLink> {
        guard(|| {
            let (l, h) = link::pair(is_initiator, &handshake_hash, &remote_public_key)?;
            let _ = self.tx.send(l);
            Ok(NativeLink { h: Arc::new(h) })
        })
    }

    fn take(&self) -> napi::Result<mpsc::UnboundedReceiver<Link>> {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        guard(|| rx.ok_or_else(|| err::bad_argument("this swarm fetch has already started")))
    }

    #[napi]
    pub async fn fetch_log(&self, key: String, dir: Option<String>, peers: Vec<String>, timeout_ms: f64) -> napi::Result<NativeLog> {
        let rx = self.take()?;
        fetch_log_from(key, dir, peers, Some(rx), timeout_ms, Some(self.core.clone())).await
    }

    /// A log fetch's progress: [entries held from the start, the longest length a peer announced].
    #[napi]
    pub fn progress(&self) -> Vec<f64> {
        let core = self.core.lock().unwrap_or_else(|p| p.into_inner()).clone();
        core.map(|c| c.progress()).map_or(vec![0.0, 0.0], |p| vec![p.contiguous as f64, p.remote_length as f64])
    }

    #[napi]
    pub async fn fetch_drive(&self, key: String, dir: String, peers: Vec<String>, timeout_ms: f64, live: Option<bool>, sparse: Option<bool>) -> napi::Result<NativeDrive> {
        let rx = self.take()?;
        fetch_drive_from(key, dir, peers, Some(rx), timeout_ms, live, sparse).await
    }
}
