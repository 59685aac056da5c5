//! Files written by JS hypercore 10.38.2 (fixtures/hypercore10): we read all four cases, in both
//! snapshots, and our writer produces the same bytes.
mod common;

use common::*;
use libvms_ledger::{discovery_key, Core, ErrorCode, Storage};

#[test]
fn opens_every_js_vector() {
    for case in CASES {
        for snap in ["unflushed", "flushed"] {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("core");
            write_vector(case, snap, &dir);
            let before = read_files(&dir);
            let mut core = Core::open(&dir).unwrap_or_else(|e| panic!("{case}/{snap}: {e}"));
            let key = h32(&case_field(case, "key"));
            assert_eq!(core.key(), key, "{case}/{snap} key");
            assert_eq!(core.discovery_key(), h32(&case_field(case, "discoveryKey")), "{case}/{snap} dk");
            assert_eq!(discovery_key(&key), core.discovery_key());
            assert_eq!(core.length(), 3, "{case}/{snap}");
            assert_eq!(core.byte_length(), 6);
            assert_eq!(core.fork(), 0);
            assert_eq!(core.tree_hash(), h32(&case_field(case, "treeHash")), "{case}/{snap} tree hash");
            assert_eq!(core.signature().unwrap(), unhex(&case_field(case, "signature")), "{case}/{snap} sig");
            assert!(core.writable(), "{case}/{snap}: the secret key is stored");
            assert_eq!(core.compat(), case.starts_with('a') || case.starts_with('b'));
            assert!(core.has(0) && core.has(2) && !core.has(3));
            assert_eq!(core.get(0).unwrap(), b"a");
            assert_eq!(core.get(1).unwrap(), b"bb");
            assert_eq!(core.get(2).unwrap(), b"ccc");
            assert_eq!(core.get(3).unwrap_err().code, ErrorCode::OutOfBounds);
            core.verify().unwrap_or_else(|e| panic!("{case}/{snap}: {e}"));
            assert_eq!(core.contiguous_length(), 3);
            // Reading changes nothing on disk.
            drop(core);
            assert_eq!(read_files(&dir), before, "{case}/{snap}: open+read must not write");
        }
    }
}

/// JS made `flushed` by reopening `unflushed` and calling flush: our reopen + close does the same.
#[test]
fn reopen_and_flush_of_unflushed_matches_js_flushed_bytes() {
    for case in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        write_vector(case, "unflushed", &dir);
        // A handle that only reads writes nothing, not even at close.
        Core::open(&dir).unwrap().close().unwrap();
        assert_same_as_vector(&dir, case, "unflushed", case);
        let mut core = Core::open(&dir).unwrap();
        core.flush().unwrap();
        core.close().unwrap();
        assert_same_as_vector(&dir, case, "flushed", case);
        // Closing an unchanged core writes nothing.
        Core::open(&dir).unwrap().close().unwrap();
        assert_same_as_vector(&dir, case, "flushed", case);
    }
}

/// Appending a, bb, ccc one batch each with the seed key pair leaves JS's `unflushed` bytes
/// (header flushed by append #1, entries for #2 and #3); close then flushes to `flushed`.
#[test]
fn writer_matches_js_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("core");
    let mut core = Core::create_with_keypair(Storage::Disk(dir.clone()), seed_keypair()).unwrap();
    for b in [&b"a"[..], b"bb", b"ccc"] {
        core.append_batch(&[b]).unwrap();
    }
    drop(core); // like JS close(): no flush
    assert_same_as_vector(&dir, "b_default", "unflushed", "after 3 appends");

    let mut core = Core::open(&dir).unwrap();
    core.flush().unwrap();
    core.close().unwrap();
    assert_same_as_vector(&dir, "b_default", "flushed", "after reopen + flush");

    // Straight create + appends + close gives the flushed bytes too.
    let dir2 = tmp.path().join("core2");
    let mut core = Core::create_with_keypair(Storage::Disk(dir2.clone()), seed_keypair()).unwrap();
    for b in [&b"a"[..], b"bb", b"ccc"] {
        core.append_batch(&[b]).unwrap();
    }
    core.close().unwrap();
    assert_same_as_vector(&dir2, "b_default", "flushed", "create + close");
}

/// We can append to JS-written cores of every kind (signing in their own signature form), and
/// the result verifies after a reopen.
#[test]
fn appends_to_js_cores_of_every_kind() {
    for case in CASES {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("core");
        write_vector(case, "unflushed", &dir);
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.append_batch(&[b"dddd", b"eeeee"]).unwrap(), 5);
        core.close().unwrap();
        let mut core = Core::open(&dir).unwrap();
        assert_eq!(core.length(), 5);
        assert_eq!(core.get(4).unwrap(), b"eeeee");
        core.verify().unwrap();
        if case.starts_with('c') {
            // v1 multisig form: 01 00 <sig64> 00 00
            let sig = core.signature().unwrap();
            assert_eq!((sig.len(), &sig[..2], &sig[66..]), (68, &[1u8, 0][..], &[0u8, 0][..]));
        } else {
            assert_eq!(core.signature().unwrap().len(), 64);
        }
    }
}
