//! Truncation (a fork): the shorter core reads, verifies, reopens and keeps appending; a copy of the files taken
//! right after (a crash) reopens truncated too.
use libvms_ledger::{Core, ErrorCode, Storage};

fn block(i: u64) -> Vec<u8> {
    format!("block-{i}-{}", "x".repeat((i % 7) as usize)).into_bytes()
}

fn append(core: &mut Core, from: u64, to: u64, batch: u64) {
    let mut i = from;
    while i < to {
        let end = (i + batch).min(to);
        let blocks: Vec<Vec<u8>> = (i..end).map(block).collect();
        let refs: Vec<&[u8]> = blocks.iter().map(|b| &b[..]).collect();
        core.append_batch(&refs).unwrap();
        i = end;
    }
}

fn copy_files(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(from).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

#[test]
fn truncate_forks_and_the_shorter_core_reopens_verifies_and_grows_again() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let mut core = Core::create(Storage::Disk(dir.clone())).unwrap();
    core.set_flush_interval(libvms_ledger::LAZY_FLUSH_INTERVAL);
    append(&mut core, 0, 37, 5);
    let hash_at_37 = core.tree_hash();
    let bytes_at_37 = core.byte_length();
    append(&mut core, 37, 100, 3);
    assert_eq!(core.truncate(100).unwrap(), 0, "truncating to the length is a no-op");
    assert_eq!(core.fork(), 0);
    assert_eq!(core.truncate(101).unwrap_err().code, ErrorCode::BadArgument);

    assert_eq!(core.truncate(37).unwrap(), 63);
    assert_eq!((core.length(), core.fork(), core.byte_length()), (37, 1, bytes_at_37));
    assert_eq!(core.tree_hash(), hash_at_37);
    assert_eq!(core.get(36).unwrap(), block(36));
    assert_eq!(core.get(37).unwrap_err().code, ErrorCode::OutOfBounds);
    assert!(!core.has(37));
    core.verify().unwrap();
    assert_eq!(std::fs::metadata(dir.join("data")).unwrap().len(), bytes_at_37, "dropped bytes are gone");

    // A crash right after the truncation: the files as they are.
    let crashed = tmp.path().join("crashed");
    copy_files(&dir, &crashed);

    // Different blocks at the same indexes, under the new fork.
    let other: Vec<Vec<u8>> = (0..10).map(|i| format!("other-{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = other.iter().map(|b| &b[..]).collect();
    assert_eq!(core.append_batch(&refs).unwrap(), 47);
    core.verify().unwrap();
    core.close().unwrap();

    let mut core = Core::open(&dir).unwrap();
    assert_eq!((core.length(), core.fork()), (47, 1));
    assert_eq!(core.get(40).unwrap(), b"other-3".to_vec());
    assert_eq!(core.get(10).unwrap(), block(10));
    core.verify().unwrap();
    assert_eq!(core.truncate(0).unwrap(), 47);
    assert_eq!((core.length(), core.fork(), core.byte_length()), (0, 2, 0));
    append(&mut core, 0, 3, 1);
    core.close().unwrap();
    let mut core = Core::open(&dir).unwrap();
    assert_eq!((core.length(), core.fork()), (3, 2));
    core.verify().unwrap();

    let mut core = Core::open(&crashed).unwrap();
    assert_eq!((core.length(), core.fork()), (37, 1));
    assert_eq!(core.tree_hash(), hash_at_37);
    core.verify().unwrap();
    append(&mut core, 37, 40, 2);
    core.verify().unwrap();
}

#[test]
fn an_unflushed_truncation_entry_replays_at_open() {
    // The oplog entry is durable before the header flush: a crash between the two replays it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let mut core = Core::create(Storage::Disk(dir.clone())).unwrap();
    core.set_flush_interval(libvms_ledger::LAZY_FLUSH_INTERVAL);
    append(&mut core, 0, 20, 4);
    assert_eq!(core.truncate_unflushed(9).unwrap(), 11);
    let crashed = tmp.path().join("crashed");
    copy_files(&dir, &crashed);
    drop(core);
    let mut core = Core::open(&crashed).unwrap();
    assert_eq!((core.length(), core.fork()), (9, 1));
    core.verify().unwrap();
    assert_eq!(core.get(8).unwrap(), block(8));
    assert_eq!(core.get(9).unwrap_err().code, ErrorCode::OutOfBounds);
    append(&mut core, 9, 12, 1);
    core.close().unwrap();
    let mut core = Core::open(&crashed).unwrap();
    assert_eq!((core.length(), core.fork()), (12, 1));
    core.verify().unwrap();
}
