//! An append writes its data and its oplog entry, then syncs both at once. A crash in that window can leave
//! the entry durable and the data not (cut short, or never written: zeros). Open drops that last batch, which
//! was never acknowledged, and only that one: damaged data of any earlier batch is still found by verify.

mod common;

use libvms_ledger::{Core, ErrorCode, Storage, LAZY_FLUSH_INTERVAL};
use std::path::Path;

fn block(i: u64) -> Vec<u8> {
    format!("block {i} {}", "y".repeat((i % 7) as usize * 100)).into_bytes()
}

/// A core with flushed history, unflushed entries, then a last batch of 3 blocks. Returns (length, length
/// before the last batch, data bytes before the last batch).
fn make(dir: &Path) -> (u64, u64, u64) {
    let mut core = Core::create(Storage::Disk(dir.to_path_buf())).unwrap();
    core.set_flush_interval(LAZY_FLUSH_INTERVAL);
    let mut n = 0;
    for b in 0..12u64 {
        let blocks: Vec<Vec<u8>> = (n..n + 1 + b % 3).map(block).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        n = core.append_batch(&refs).unwrap();
        if b == 4 {
            core.flush().unwrap();
        }
    }
    let (before, bytes) = (core.length(), core.byte_length());
    let blocks: Vec<Vec<u8>> = (n..n + 3).map(block).collect();
    let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
    let len = core.append_batch(&refs).unwrap();
    drop(core); // no close, as after a kill
    // The crash came during the last batch's sync: its journal record is torn, the records before it are whole.
    assert!(common::tear_last_journal_record(dir));
    (len, before, bytes)
}

fn files(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    ["oplog", "tree", "bitfield", "data", "journal"].iter().map(|f| (*f, std::fs::read(dir.join(f)).unwrap())).collect()
}

fn restore(dir: &Path, saved: &[(&'static str, Vec<u8>)]) {
    for (f, b) in saved {
        std::fs::write(dir.join(f), b).unwrap();
    }
}

#[test]
fn a_last_batch_whose_data_did_not_survive_is_dropped_and_appends_continue() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let (len, before, bytes) = make(&dir);
    let saved = files(&dir);
    let data_len = saved[3].1.len() as u64;
    let oplog_len = saved[0].1.len() as u64;
    // Cut anywhere inside the last batch's data, or the right length with the bytes never written (zeros).
    let mut cases: Vec<(String, Box<dyn Fn(&mut Vec<u8>)>)> = Vec::new();
    for cut in [bytes, bytes + 1, (bytes + data_len) / 2, data_len - 1] {
        cases.push((format!("data cut to {cut}"), Box::new(move |d: &mut Vec<u8>| d.truncate(cut as usize))));
    }
    cases.push(("data zeroed".into(), Box::new(move |d: &mut Vec<u8>| d[bytes as usize..].fill(0))));
    cases.push(("one byte of the last block".into(), Box::new(move |d: &mut Vec<u8>| *d.last_mut().unwrap() ^= 1)));
    for (what, damage) in cases {
        restore(&dir, &saved);
        let mut data = saved[3].1.clone();
        damage(&mut data);
        std::fs::write(dir.join("data"), &data).unwrap();

        let mut core = Core::open(&dir).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(core.length(), before, "{what}");
        assert!(core.torn_batch_dropped(), "{what}");
        core.verify().unwrap();
        drop(core);
        assert!(std::fs::metadata(dir.join("oplog")).unwrap().len() < oplog_len, "{what}: the entry is cut off");

        // The next append lands where the dropped batch was, and survives a reopen.
        let mut core = Core::open(&dir).unwrap();
        assert!(!core.torn_batch_dropped(), "{what}: dropped once, not again");
        assert_eq!(core.length(), before);
        assert_eq!(core.append_batch(&[b"after the crash"]).unwrap(), before + 1);
        drop(core);
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.length(), before + 1, "{what}");
        assert_eq!(core.get(before).unwrap(), b"after the crash");
        for i in [0, before - 1] {
            assert_eq!(core.get(i).unwrap(), block(i));
        }
        core.verify().unwrap();
    }
    // Untouched, the last batch is there.
    restore(&dir, &saved);
    let core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), len);
    assert!(!core.torn_batch_dropped());
}

#[test]
fn damaged_data_of_an_earlier_batch_is_never_dropped_as_torn() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let (len, before, bytes) = make(&dir);
    // Damage the journal cannot repair (its records are gone).
    std::fs::remove_file(dir.join("journal")).unwrap();
    let mut data = std::fs::read(dir.join("data")).unwrap();
    data[bytes as usize - 1] ^= 1; // the last byte of the batch before the last
    std::fs::write(dir.join("data"), &data).unwrap();
    let mut core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), len, "the last batch's data is whole: nothing is dropped");
    assert!(!core.torn_batch_dropped());
    let e = core.verify().unwrap_err();
    assert_eq!(e.code, ErrorCode::VerificationFailed);
    assert_eq!(e.index, Some(before - 1));
    drop(core);
    // A data file cut into an earlier batch is damage, refused at open.
    std::fs::write(dir.join("data"), &data[..bytes as usize - 10]).unwrap();
    assert_eq!(Core::open(&dir).err().unwrap().code, ErrorCode::StorageCorrupt);
}
