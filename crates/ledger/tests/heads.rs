//! Serving a prefix of a growing core: with signed heads kept, a writer answers as if it were an earlier length
//! (what a host does for an archive its VM's durable log has not caught up with). A replica upgraded that way
//! verifies and later follows to the full length.

use libvms_ledger::{Core, ErrorCode, ProofRequest, RequestBlock, RequestUpgrade, Storage};

#[test]
fn a_writer_serves_a_kept_signed_head_and_nothing_past_it() {
    let mut w = Core::create(Storage::Memory).unwrap();
    w.keep_signed_heads(8);
    for i in 0..10u64 {
        w.append_batch(&[format!("block {i}").as_bytes(), b"pad"]).unwrap();
    }
    assert_eq!(w.length(), 20);
    // A head that was kept (length 14), one too old (length 2: only 8 kept), one never signed (length 15).
    assert!(w.can_serve_at(14) && w.can_serve_at(20));
    assert!(!w.can_serve_at(2) && !w.can_serve_at(15));
    let up = |start, length| ProofRequest { upgrade: Some(RequestUpgrade { start, length }), ..Default::default() };
    assert_eq!(w.proof_at(&up(0, 2), 2).unwrap_err().code, ErrorCode::BadArgument);
    assert!(w.proof_at(&up(0, 20), 14).is_err(), "no upgrade past the served length");
    assert!(w.proof_at(&ProofRequest { block: Some(RequestBlock { index: 14, nodes: 0 }), ..Default::default() }, 14).is_err());

    let mut r = Core::open_replica(Storage::Memory, w.key()).unwrap();
    r.apply_proof(&w.proof_at(&up(0, 14), 14).unwrap(), None).unwrap();
    assert_eq!(r.length(), 14);
    for i in 0..14 {
        let nodes = r.missing_nodes(2 * i).unwrap();
        let p = w.proof_at(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }, 14).unwrap();
        r.apply_proof(&p, None).unwrap();
    }
    r.verify().unwrap();
    assert_eq!(r.get(12).unwrap(), b"block 6");
    // Later the full length, from where the replica stands.
    r.apply_proof(&w.proof_at(&up(14, 6), 20).unwrap(), None).unwrap();
    assert_eq!((r.length(), r.tree_hash()), (20, w.tree_hash()));
    // A truncation forgets the heads (they belong to the old fork).
    w.truncate(16).unwrap();
    assert!(!w.can_serve_at(14));
}
