//! Rust <-> Rust replication over TCP on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use libvms_errors::ErrorCode;
use libvms_ledger::{Core, SharedCore, Storage};
use libvms_replicate::{core_set, Fetch, FetchOptions, Host, ReplCore};

fn writer(blocks: usize, tag: &str) -> ReplCore {
    let mut core = Core::create(Storage::Memory).unwrap();
    let data: Vec<Vec<u8>> = (0..blocks).map(|i| format!("{tag}-{i}").into_bytes()).collect();
    for chunk in data.chunks(1000) {
        let refs: Vec<&[u8]> = chunk.iter().map(|v| &v[..]).collect();
        core.append_batch(&refs).unwrap();
    }
    ReplCore::new(SharedCore::new(core, "core"), false).unwrap()
}

fn append(c: &ReplCore, v: &[u8]) {
    c.with(|core| core.append_batch(&[v])).unwrap();
}

fn contents(c: &ReplCore) -> Vec<Vec<u8>> {
    c.with(|core| (0..core.length()).map(|i| core.get(i)).collect()).unwrap()
}

fn replica(key: [u8; 32]) -> ReplCore {
    ReplCore::replica(Storage::Memory, key).unwrap().0
}

async fn host(cores: Vec<ReplCore>) -> Host {
    Host::bind("127.0.0.1:0", core_set(cores)).await.unwrap()
}

async fn wait_for(what: impl Fn() -> bool) {
    let t = Instant::now();
    while !what() {
        assert!(t.elapsed() < Duration::from_secs(10), "condition not reached in 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_cores_on_one_connection_then_live_appends() {
    let src = vec![writer(300, "log"), writer(5, "meta"), writer(0, "empty")];
    let h = host(src.clone()).await;
    let reps: Vec<ReplCore> = src.iter().map(|c| replica(c.key())).collect();
    let f = Fetch::start(reps.clone(), vec![h.local_addr().to_string()], FetchOptions::default());
    f.synced(Duration::from_secs(10)).await.unwrap();
    for (s, r) in src.iter().zip(&reps) {
        assert_eq!(contents(s), contents(r));
    }
    assert_eq!(reps[0].progress().length, 300);
    // Live: appends on the writer reach the replica while the fetch stays open.
    append(&src[0], b"live-1");
    append(&src[2], b"first");
    wait_for(|| reps[0].progress().contiguous == 301 && reps[2].progress().contiguous == 1).await;
    assert_eq!(contents(&reps[0])[300], b"live-1");
    assert_eq!(contents(&reps[2]), vec![b"first".to_vec()]);
    f.close().await;
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_core_is_rejected_without_killing_the_stream() {
    let served = writer(20, "a");
    let h = host(vec![served.clone()]).await;
    let stranger = writer(3, "b");
    let (r_known, r_unknown) = (replica(served.key()), replica(stranger.key()));
    let f = Fetch::start(vec![r_unknown.clone(), r_known.clone()], vec![h.local_addr().to_string()], FetchOptions::default());
    wait_for(|| r_known.is_complete()).await;
    assert_eq!(contents(&r_known), contents(&served));
    assert!(!r_unknown.is_complete());
    assert_eq!(r_unknown.progress().length, 0);
    let e = f.synced(Duration::from_millis(300)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout);
    f.close().await;
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_reachable_peer_fails_with_connection_failed_in_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let r = replica([7; 32]);
    let f = Fetch::start(vec![r], vec![format!("127.0.0.1:{port}")], FetchOptions::default());
    let t = Instant::now();
    let e = f.synced(Duration::from_millis(500)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::ConnectionFailed, "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2));
    f.close().await;
    // No peers at all: also a clean error.
    let f = Fetch::start(vec![replica([8; 32])], vec![], FetchOptions::default());
    assert_eq!(f.synced(Duration::from_millis(100)).await.unwrap_err().code, ErrorCode::ConnectionFailed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_block_peer_is_dropped_and_an_honest_peer_finishes() {
    // Enough blocks that both peers are asked for some before either could finish alone.
    let src = writer(5000, "x");
    let tamper: libvms_replicate::Tamper = Arc::new(|d: &mut libvms_replicate::messages::Data| {
        if let Some(b) = d.proof.block.as_mut() {
            if let Some(x) = b.value.first_mut() {
                *x ^= 0x55;
            }
        }
    });
    let bad = Host::bind_with("127.0.0.1:0", core_set(vec![src.clone()]), Some(tamper)).await.unwrap();
    let good = host(vec![src.clone()]).await;
    let r = replica(src.key());
    let f = Fetch::start(
        vec![r.clone()],
        vec![bad.local_addr().to_string(), good.local_addr().to_string()],
        FetchOptions::default(),
    );
    f.synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(contents(&r), contents(&src));
    let banned = f.banned_peers();
    assert_eq!(banned.len(), 1, "{banned:?}");
    assert_eq!(banned[0].0, bad.local_addr().to_string());
    assert!(libvms_replicate::is_peer_fault(&banned[0].1));
    // Only a liar: the fetch fails with the verification error instead of hanging.
    let r2 = replica(src.key());
    let f2 = Fetch::start(vec![r2.clone()], vec![bad.local_addr().to_string()], FetchOptions::default());
    let e = f2.synced(Duration::from_secs(5)).await.unwrap_err();
    assert!(libvms_replicate::is_peer_fault(&e), "{e:?}");
    assert_eq!(r2.progress().contiguous, 0);
    f.close().await;
    f2.close().await;
    bad.close().await;
    good.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_leaves_a_partial_replica_on_disk_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let src = writer(3_000, "r");
    let key = src.key();
    let h = host(vec![src.clone()]).await;
    let (r, owned) = ReplCore::replica(Storage::Disk(dir.path().into()), key).unwrap();
    let f = Fetch::start(vec![r.clone()], vec![h.local_addr().to_string()], FetchOptions::default());
    wait_for(|| r.progress().contiguous > 100).await;
    h.close().await; // the peer goes away mid-download
    let e = f.synced(Duration::from_millis(300)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout);
    f.close().await;
    let held = r.progress().contiguous;
    assert!(held > 0 && held < 3_000, "held {held}");
    owned.close().unwrap();
    drop(r);

    // Reopen from disk: the blocks are still there; a new peer completes the rest.
    let (r, owned) = ReplCore::replica(Storage::Disk(dir.path().into()), key).unwrap();
    assert!(r.with(|c| Ok(c.has(0) && c.length() == 3_000)).unwrap());
    let h2 = host(vec![src.clone()]).await;
    let f = Fetch::start(vec![r.clone()], vec![h2.local_addr().to_string()], FetchOptions::default());
    let t = Instant::now();
    f.synced(Duration::from_secs(20)).await.unwrap();
    eprintln!("resumed {held} -> 3000 in {:?}", t.elapsed());
    assert_eq!(contents(&r), contents(&src));
    f.close().await;
    h2.close().await;
    owned.close().unwrap();
    let mut reopened = Core::open(dir.path()).unwrap();
    reopened.verify().unwrap();
    assert_eq!(reopened.get(2_999).unwrap(), b"r-2999");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_serves_a_third_peer() {
    let src = writer(500, "t");
    let h1 = host(vec![src.clone()]).await;
    let mid = replica(src.key());
    let f1 = Fetch::start(vec![mid.clone()], vec![h1.local_addr().to_string()], FetchOptions::default());
    f1.synced(Duration::from_secs(10)).await.unwrap();
    f1.close().await;
    h1.close().await;
    let h2 = host(vec![mid.clone()]).await;
    let last = replica(src.key());
    let f2 = Fetch::start(vec![last.clone()], vec![h2.local_addr().to_string()], FetchOptions::default());
    f2.synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(contents(&last), contents(&src));
    f2.close().await;
    h2.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_archive_fetch_follows_files_written_later() {
    use libvms_archive::disk;
    use libvms_replicate::fetch_archive_live;
    let tmp = tempfile::tempdir().unwrap();
    let mut src = disk::create(&tmp.path().join("src")).unwrap();
    src.write_file("/a.txt", b"first").unwrap();
    let key = src.bee().store().key();
    let meta = ReplCore::from_shared(src.bee().store().clone()).unwrap();
    let content = ReplCore::from_shared(src.content().clone()).unwrap();
    let h = host(vec![meta, content]).await;
    let (mut copy, f) = fetch_archive_live(&tmp.path().join("copy"), key, &[h.local_addr().to_string()], Duration::from_secs(10)).await.unwrap();
    assert_eq!(copy.read_file("/a.txt").unwrap(), b"first");
    // Written on the host after the fetch: reaches the copy, content included.
    let big = vec![9u8; 200_000];
    src.write_file("/later.bin", &big).unwrap();
    let t = Instant::now();
    loop {
        if let Ok(v) = copy.read_file("/later.bin") {
            assert_eq!(v, big);
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "the later file did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(copy.readdir("/", false).unwrap(), src.readdir("/", false).unwrap());
    assert!(!copy.is_writable());
    // Closed (its sessions have ended when close returns): later writes stay on the host.
    f.close().await;
    src.write_file("/after-close.txt", b"x").unwrap();
    assert!(copy.read_file("/after-close.txt").is_err());
    h.close().await;
}

/// Plays the holder of two encrypted streams (Node's side of a Hyperswarm connection): what one
/// link's session sends becomes the other's received messages, one message at a time.
fn pipe(from: Arc<libvms_replicate::LinkHandle>, to: Arc<libvms_replicate::LinkHandle>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut n = 0;
        while let Some(batch) = from.next().await {
            for m in batch {
                n += 1;
                if !to.push(m) {
                    to.drained().await;
                }
            }
        }
        to.end(None);
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_and_a_host_over_links_held_elsewhere_then_a_core_added_later() {
    use libvms_replicate::link;
    let src = vec![writer(2000, "log"), writer(3, "content")];
    let h = host(src.clone()).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let r0 = replica(src[0].key());
    // No TCP peer at all: the only peer arrives as a link.
    let f = Fetch::start_with_links(vec![r0.clone()], vec![], Some(rx), FetchOptions::default());
    let hh = [7u8; 64];
    let (host_side, host_handle) = link::pair(false, &hh, &[1; 32]).unwrap();
    let (fetch_side, fetch_handle) = link::pair(true, &hh, &[2; 32]).unwrap();
    let (host_handle, fetch_handle) = (Arc::new(host_handle), Arc::new(fetch_handle));
    let a = pipe(host_handle.clone(), fetch_handle.clone());
    let b = pipe(fetch_handle.clone(), host_handle.clone());
    h.attach(host_side);
    tx.send(fetch_side).unwrap();
    f.synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(contents(&src[0]), contents(&r0));
    // A core added to the running fetch opens on the same link.
    let r1 = replica(src[1].key());
    f.add(r1.clone());
    f.synced(Duration::from_secs(10)).await.unwrap();
    assert_eq!(contents(&r1).len(), 3);
    // Closing the host ends its link; the holder then ends the other side, and both pipes finish.
    h.close().await;
    let (na, nb) = (a.await.unwrap(), b.await.unwrap());
    assert!(na > 0 && nb > 0);
    f.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_with_the_wrong_handshake_hash_opens_no_channel() {
    use libvms_replicate::link;
    let src = writer(10, "log");
    let h = host(vec![src.clone()]).await;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let r = replica(src.key());
    let f = Fetch::start_with_links(vec![r.clone()], vec![], Some(rx), FetchOptions::default());
    // Each side keys the capability by a different hash: the host refuses the fetch's channel.
    let (host_side, host_handle) = link::pair(false, &[1u8; 64], &[1; 32]).unwrap();
    let (fetch_side, fetch_handle) = link::pair(true, &[2u8; 64], &[2; 32]).unwrap();
    let (host_handle, fetch_handle) = (Arc::new(host_handle), Arc::new(fetch_handle));
    let a = pipe(host_handle.clone(), fetch_handle.clone());
    let b = pipe(fetch_handle.clone(), host_handle.clone());
    h.attach(host_side);
    tx.send(fetch_side).unwrap();
    let e = f.synced(Duration::from_millis(600)).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout, "{e:?}");
    assert_eq!(r.progress().length, 0);
    assert!(link::pair(true, &[0u8; 10], &[0; 32]).is_err());
    f.close().await;
    h.close().await;
    let _ = (a.await, b.await);
}
