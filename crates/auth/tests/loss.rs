//! An oplog cut exactly at an entry boundary, with the core's journal lost too, opens as a crash would (the core's
//! files hold no evidence of the lost entries: see the README's on-disk section). What proves the loss is a signed head held from before: a receipt,
//! or an audit's snapshot. The shortened log no longer reaches it; once the host appends again, its new head
//! commits to another tree at that length, signed by the same key (a fork).
use libvms_auth::receipt::{check_head, tree_hash_at, ReceiptError};
use libvms_auth::Head;
use libvms_ledger::{Core, Storage, LAZY_FLUSH_INTERVAL};

/// Where each oplog entry frame starts (frames: u32 crc, u32 len<<2|flags, body), after the two header slots.
fn frame_starts(oplog: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 8192;
    while pos + 8 <= oplog.len() {
        out.push(pos);
        pos += 8 + (u32::from_le_bytes(oplog[pos + 4..pos + 8].try_into().unwrap()) >> 2) as usize;
    }
    out
}

#[test]
fn a_cut_at_an_entry_boundary_is_proved_by_a_held_head_then_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut core = Core::create(Storage::Disk(dir.clone())).unwrap();
    core.set_flush_interval(LAZY_FLUSH_INTERVAL);
    for i in 0..10u32 {
        core.append_batch(&[format!("entry {i}").as_bytes()]).unwrap();
    }
    // What a receipt for entry 9 carries: the head at length 10, validly signed.
    let receipt = Head::of(&core).unwrap();
    assert!(receipt.valid(&core.key()));
    drop(core); // a host killed: the batches live in oplog entries only

    // Cut the oplog at the boundary before its last three entries: they were acknowledged.
    let oplog = std::fs::read(dir.join("oplog")).unwrap();
    let starts = frame_starts(&oplog);
    assert!(starts.len() >= 3);
    std::fs::write(dir.join("oplog"), &oplog[..starts[starts.len() - 3]]).unwrap();
    // While the core's journal holds those appends, open redoes them (crates/ledger/tests/damage.rs); here it is
    // lost with them.
    std::fs::remove_file(dir.join("journal")).unwrap();

    let mut core = Core::open(&dir).unwrap();
    assert_eq!(core.length(), 7, "the cut reads as a crash: no evidence in the core's own files");
    assert!(core.verify().is_ok());
    match check_head(&receipt, &core) {
        Err(ReceiptError::Invalid(m)) => assert!(m.contains("entries it signed are gone"), "{m}"),
        other => panic!("the held head must prove the loss: {other:?}"),
    }

    // The host writes on (a restart entry): its key now signs another history at the receipt's length.
    for i in 7..10u32 {
        core.append_batch(&[format!("other {i}").as_bytes()]).unwrap();
    }
    match check_head(&receipt, &core) {
        Err(ReceiptError::Fork { theirs, ours }) => {
            assert_eq!(theirs, receipt);
            assert!(ours.valid(&core.key()) && theirs.valid(&core.key()), "both heads signed by the log's key");
            assert_eq!(ours.length, receipt.length);
            assert_ne!(ours.tree_hash, receipt.tree_hash);
            assert!(libvms_auth::check_fork(&core.key(), &ours, &theirs));
        }
        other => panic!("a fork: {other:?}"),
    }
    assert_ne!(tree_hash_at(&core, 10).unwrap(), receipt.tree_hash);
}
