//! The journal (src/journal.rs) makes an append durable with one sync: the data and oplog files are synced only
//! at a header flush or a truncation. These tests take away what a power cut would: every byte written to the
//! data and oplog files since they were last synced. What was acknowledged must come back whole.

use std::path::{Path, PathBuf};

use libvms_ledger::{Core, Storage, LAZY_FLUSH_INTERVAL};

fn block(i: u64) -> Vec<u8> {
    format!("block {i} {}", "z".repeat((i % 11) as usize * 40)).into_bytes()
}

fn append(core: &mut Core, from: u64, n: u64) -> u64 {
    let blocks: Vec<Vec<u8>> = (from..from + n).map(block).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    core.append_batch(&refs).unwrap()
}

/// A new core in `root`/c that flushes its header only when it must, so appends go through the journal.
fn lazy_core(root: &Path) -> (PathBuf, Core) {
    let dir = root.join("c");
    let mut core = Core::create(Storage::Disk(dir.clone())).unwrap();
    core.set_flush_interval(LAZY_FLUSH_INTERVAL);
    (dir, core)
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap()
}

fn check_all(dir: &Path, len: u64) {
    let mut core = Core::open(dir).unwrap();
    assert_eq!(core.length(), len);
    core.verify().unwrap();
    for i in 0..len {
        assert_eq!(core.get(i).unwrap(), block(i), "block {i}");
    }
}

#[test]
fn a_power_cut_after_acknowledged_appends_loses_none_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut core) = lazy_core(tmp.path());
    let mut n = 0;
    for _ in 0..10 {
        n = append(&mut core, n, 2);
    }
    core.flush().unwrap(); // the data and oplog files are synced here, and not after
    let (data, oplog) = (read(&dir, "data"), read(&dir, "oplog"));
    for b in 0..40u64 {
        n = append(&mut core, n, 1 + b % 3);
    }
    drop(core); // no close
    let data_now = read(&dir, "data");
    assert!(data_now.len() > data.len());
    // The unsynced bytes never reached the disk: the files end where they were synced, or the new length is
    // there but its blocks read as zeros.
    for zeros in [false, true] {
        let (mut d, mut o) = (data.clone(), oplog.clone());
        if zeros {
            d.resize(data_now.len(), 0);
            o.resize(read(&dir, "oplog").len().max(oplog.len()), 0);
        }
        std::fs::write(dir.join("data"), &d).unwrap();
        std::fs::write(dir.join("oplog"), &o).unwrap();
        check_all(&dir, n);
        // Redone once, the files hold the appends themselves: a second open needs no redo.
        check_all(&dir, n);
    }
    // Appends continue after the redo, and survive the same cut again.
    let mut core = Core::open(&dir).unwrap();
    let (data, oplog) = (read(&dir, "data"), read(&dir, "oplog"));
    let m = append(&mut core, n, 2);
    drop(core);
    std::fs::write(dir.join("data"), &data).unwrap();
    std::fs::write(dir.join("oplog"), &oplog).unwrap();
    check_all(&dir, m);
}

#[test]
fn a_truncation_voids_the_records_so_a_redo_never_overwrites_newer_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, mut core) = lazy_core(tmp.path());
    let mut n = append(&mut core, 0, 2); // the first append after open also flushes the header
    for _ in 0..4 {
        n = append(&mut core, n, 1); // journaled
    }
    // The truncation's entry is durable, its header flush not yet (the window a crash can hit).
    core.truncate_unflushed(2).unwrap();
    // A large block skips the journal and lands on the bytes the journaled blocks 2.. had.
    let big = vec![7u8; 200 * 1024];
    assert_eq!(core.append_batch(&[&big]).unwrap(), 3);
    drop(core);
    assert!(n > 3);
    let mut core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), 3);
    core.verify().unwrap();
    assert_eq!(core.get(1).unwrap(), block(1));
    assert_eq!(core.get(2).unwrap(), big);
}
