//! Proofs: the shapes hypercore@10 sends (fixtures/hypercore10/proof-shapes.txt), verification
//! against a key, and replication into a replica through proof / verify_proof / apply_proof.
mod common;

use common::*;
use libvms_ledger::{
    Core, ErrorCode, Node, Proof, ProofRequest, RequestBlock, RequestSeek, RequestUpgrade, Storage,
};

fn writer(blocks: u64) -> Core {
    let mut c = Core::create_with_keypair(Storage::Memory, seed_keypair()).unwrap();
    for i in 0..blocks {
        c.append_batch(&[&vec![b'a' + i as u8; i as usize + 1][..]]).unwrap();
    }
    c
}

/// A memory replica brought to `length` by an upgrade proof from a writer of that length.
fn replica_at(length: u64) -> Core {
    let mut w = writer(length);
    let mut r = Core::open_replica(Storage::Memory, w.key()).unwrap();
    if length > 0 {
        let p = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length }), ..Default::default() }).unwrap();
        r.apply_proof(&p, None).unwrap();
    }
    assert_eq!(r.length(), length);
    r
}

fn idx(nodes: &[Node]) -> Vec<u64> {
    nodes.iter().map(|n| n.index).collect()
}

fn list_after(s: &str, key: &str) -> Vec<u64> {
    let at = s.find(key).unwrap_or_else(|| panic!("{key} in {s}")) + key.len();
    let end = s[at..].find(']').unwrap();
    s[at..at + end].split(',').filter(|x| !x.trim().is_empty()).map(|x| x.trim().parse().unwrap()).collect()
}

fn req_from_json(j: &serde_json::Value) -> ProofRequest {
    let rb = |v: &serde_json::Value| RequestBlock { index: v["index"].as_u64().unwrap(), nodes: v["nodes"].as_u64().unwrap() };
    ProofRequest {
        fork: 0,
        block: j.get("block").map(rb),
        hash: j.get("hash").map(rb),
        seek: j.get("seek").map(|v| RequestSeek { bytes: v["bytes"].as_u64().unwrap(), padding: v["padding"].as_u64().unwrap_or(0) }),
        upgrade: j.get("upgrade").map(|v| RequestUpgrade { start: v["start"].as_u64().unwrap(), length: v["length"].as_u64().unwrap() }),
    }
}

#[test]
fn proof_shapes_match_js() {
    let text = std::fs::read_to_string(fixtures().join("proof-shapes.txt")).unwrap();
    let mut core = writer(5);
    assert_eq!(idx(core.roots()), vec![3, 8]);
    let mut checked = 0;
    for line in text.lines().filter(|l| l.starts_with('{')) {
        let (req, want) = line.split_once("->").unwrap();
        let req = req_from_json(&serde_json::from_str(req.trim()).unwrap());
        let want = want.trim();
        let p = core.proof(&req).unwrap_or_else(|e| panic!("{line}: {e}"));
        if want.contains("block{") {
            let b = p.block.as_ref().expect("block");
            let seg = &want[want.find("block{").unwrap()..];
            assert_eq!(idx(&b.nodes), list_after(seg, "nodes:["), "{line}");
        } else {
            assert!(p.block.is_none());
        }
        if want.contains("hash{") {
            let seg = &want[want.find("hash{").unwrap()..];
            assert_eq!(idx(&p.hash.as_ref().unwrap().nodes), list_after(seg, "nodes:["), "{line}");
        }
        if want.contains("upgrade{") {
            let u = p.upgrade.as_ref().expect("upgrade");
            let seg = &want[want.find("upgrade{").unwrap()..];
            assert_eq!(idx(&u.nodes), list_after(seg, "nodes:["), "{line}");
            assert_eq!(idx(&u.additional_nodes), list_after(seg, "additionalNodes:["), "{line}");
            assert_eq!(u.signature, core.signature().unwrap());
            // The proof verifies on a replica that has exactly `start` blocks (and, for a block
            // below start, the nodes the request says it has).
            let mut r = replica_at(u.start);
            if let Some(b) = &req.block {
                if b.index < u.start && r.missing_nodes(2 * b.index).unwrap() > b.nodes {
                    checked += 1;
                    continue;
                }
            }
            let vp = r.verify_proof(&p).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(vp.length, 5);
            r.apply_proof(&p, None).unwrap();
            assert_eq!(r.length(), 5);
            assert_eq!(r.tree_hash(), core.tree_hash());
            if let Some(b) = &p.block {
                assert_eq!(r.get(b.index).unwrap(), core.get(b.index).unwrap());
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 11);

    // Block-only and hash proofs verify on a replica that trusts the right nodes.
    let mut r = replica_at(5);
    r.apply_proof(&core.proof(&ProofRequest { block: Some(RequestBlock { index: 1, nodes: 2 }), ..Default::default() }).unwrap(), None).unwrap();
    assert_eq!(r.get(1).unwrap(), b"bb");
    assert_eq!(r.missing_nodes(6).unwrap(), 1);
    let p = core.proof(&ProofRequest { block: Some(RequestBlock { index: 3, nodes: 1 }), ..Default::default() }).unwrap();
    r.apply_proof(&p, None).unwrap();
    assert_eq!(r.get(3).unwrap(), b"dddd");
    let p = core.proof(&ProofRequest { hash: Some(RequestBlock { index: 2, nodes: 1 }), ..Default::default() }).unwrap();
    r.verify_proof(&p).unwrap();
    r.apply_proof(&p, None).unwrap();
    assert!(!r.has(0) && r.has(1) && !r.has(2) && r.has(3));
    r.verify().unwrap();
}

#[test]
fn seek_proofs_verify() {
    let mut core = writer(5); // a bb ccc dddd eeeee: offsets 0 1 3 6 10, 15 bytes
    let r = Core::open_replica(Storage::Memory, core.key()).unwrap();
    for bytes in [0u64, 1, 2, 3, 7, 12, 14] {
        let p = core
            .proof(&ProofRequest { seek: Some(RequestSeek { bytes, padding: 0 }), upgrade: Some(RequestUpgrade { start: 0, length: 5 }), ..Default::default() })
            .unwrap();
        r.verify_proof(&p).unwrap_or_else(|e| panic!("seek {bytes}: {e}"));
        // The seek nodes (when present) are a valid path: the replica ends at the full tree.
        let mut r2 = Core::open_replica(Storage::Memory, core.key()).unwrap();
        r2.apply_proof(&p, None).unwrap();
        assert_eq!(r2.tree_hash(), core.tree_hash());
    }
    // Block + seek inside the block's subtree.
    let mut r = replica_at(5);
    let p = core.proof(&ProofRequest { block: Some(RequestBlock { index: 0, nodes: 2 }), seek: Some(RequestSeek { bytes: 4, padding: 0 }), ..Default::default() }).unwrap();
    assert!(p.seek.is_some());
    r.apply_proof(&p, None).unwrap();
    assert_eq!(r.get(0).unwrap(), b"a");
    // A seek outside the subtree is refused.
    let e = core.proof(&ProofRequest { block: Some(RequestBlock { index: 0, nodes: 1 }), seek: Some(RequestSeek { bytes: 12, padding: 0 }), ..Default::default() });
    assert!(e.is_err());
}

#[test]
fn replicate_thousand_blocks_into_memory_replica() {
    let mut w = Core::create(Storage::Memory).unwrap();
    let blocks: Vec<Vec<u8>> = (0..1000u32).map(|i| format!("block number {i}").into_bytes()).collect();
    for chunk in blocks.chunks(97) {
        let refs: Vec<&[u8]> = chunk.iter().map(|b| &b[..]).collect();
        w.append_batch(&refs).unwrap();
    }
    let mut r = Core::open_replica(Storage::Memory, w.key()).unwrap();
    assert_eq!(r.discovery_key(), w.discovery_key());
    let up = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: w.length() }), ..Default::default() }).unwrap();
    r.verify_proof(&up).unwrap();
    r.apply_proof(&up, None).unwrap();
    assert_eq!((r.length(), r.byte_length(), r.tree_hash()), (w.length(), w.byte_length(), w.tree_hash()));
    assert_eq!(r.signature(), w.signature());
    // Blocks in a scattered order, each with exactly the nodes the replica lacks.
    for k in 0..1000u64 {
        let i = (k * 389) % 1000;
        let nodes = r.missing_nodes(2 * i).unwrap();
        let p = w.proof(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }).unwrap();
        let vp = r.verify_proof(&p).unwrap();
        assert_eq!(vp.block, Some(i));
        r.apply_proof(&p, None).unwrap();
        assert!(r.has(i));
    }
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(&r.get(i as u64).unwrap(), b);
    }
    assert_eq!(r.contiguous_length(), 1000);
    r.verify().unwrap();

    // The writer grows; the replica follows with an upgrade from its length, with a block.
    w.append_batch(&[b"late 1", b"late 2", b"late 3"]).unwrap();
    let p = w
        .proof(&ProofRequest { block: Some(RequestBlock { index: 1001, nodes: 0 }), upgrade: Some(RequestUpgrade { start: 1000, length: 3 }), ..Default::default() })
        .unwrap();
    r.apply_proof(&p, None).unwrap();
    assert_eq!(r.length(), 1003);
    assert_eq!(r.get(1001).unwrap(), b"late 2");
    assert_eq!(r.get(1002).unwrap_err().code, ErrorCode::OutOfBounds);
    let nodes = r.missing_nodes(2 * 1002).unwrap();
    r.apply_proof(&w.proof(&ProofRequest { block: Some(RequestBlock { index: 1002, nodes }), ..Default::default() }).unwrap(), None).unwrap();
    assert_eq!(r.get(1002).unwrap(), b"late 3");
}

#[test]
fn replica_on_disk_survives_reopen_and_serves_proofs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let mut w = writer(40);
    let mut r = Core::open_replica(Storage::Disk(dir.clone()), w.key()).unwrap();
    r.apply_proof(&w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: 40 }), ..Default::default() }).unwrap(), None).unwrap();
    for i in (0..40).rev() {
        let nodes = r.missing_nodes(2 * i).unwrap();
        let p = w.proof(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }).unwrap();
        // The value may travel apart from the proof.
        let value = p.block.as_ref().unwrap().value.clone();
        let mut bare = p.clone();
        bare.block.as_mut().unwrap().value.clear();
        r.apply_proof(&bare, Some(&value)).unwrap();
    }
    drop(r);
    let mut r = Core::open(&dir).unwrap();
    assert!(!r.writable());
    assert_eq!(r.key(), w.key());
    assert_eq!(r.length(), 40);
    for i in 0..40 {
        assert_eq!(r.get(i).unwrap(), w.get(i).unwrap());
    }
    r.verify().unwrap();
    // A replica serves proofs to another replica.
    let mut r2 = Core::open_replica(Storage::Memory, w.key()).unwrap();
    r2.apply_proof(&r.proof(&ProofRequest { block: Some(RequestBlock { index: 7, nodes: 0 }), upgrade: Some(RequestUpgrade { start: 0, length: 40 }), ..Default::default() }).unwrap(), None).unwrap();
    assert_eq!(r2.get(7).unwrap(), w.get(7).unwrap());
    r.close().unwrap();
    let r = Core::open_replica(Storage::Disk(dir.clone()), w.key()).unwrap();
    assert_eq!(r.length(), 40);
    drop(r);
    assert_eq!(Core::open_replica(Storage::Disk(dir), [9; 32]).err().unwrap().code, ErrorCode::BadArgument);
}

fn state(r: &Core) -> (u64, [u8; 32], Vec<bool>) {
    (r.length(), r.tree_hash(), (0..r.length()).map(|i| r.has(i)).collect())
}

#[test]
fn corrupted_proofs_are_rejected_without_change() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let mut w = writer(16);
    let mut r = Core::open_replica(Storage::Disk(dir.clone()), w.key()).unwrap();
    let up = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: 8 }), ..Default::default() }).unwrap();

    // Upgrade with a flipped signature, root hash, or size.
    let files_before = read_files(&dir);
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().signature[5] ^= 1;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidSignature);
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().nodes[0].hash[0] ^= 1;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidSignature);
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().additional_nodes[0].size += 1;
    assert!(r.apply_proof(&bad, None).is_err());
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().nodes[0].index = 5;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof);
    // An empty replica takes the writer's fork with its first upgrade; the signature covers the fork, so a proof
    // that claims another fork than the one signed fails there.
    let mut bad = up.clone();
    bad.fork = 1;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidSignature);
    assert_eq!(r.length(), 0);
    assert_eq!(read_files(&dir), files_before);

    r.apply_proof(&up, None).unwrap();
    let before = state(&r);
    // That upgrade flushed (the first change after open): its oplog entry, then the header, then a truncation of
    // the oplog on a background thread. Let it land before taking the files as the reference.
    for _ in 0..500 {
        if std::fs::metadata(dir.join("oplog")).unwrap().len() == 8192 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let files_before = read_files(&dir);
    let good = w.proof(&ProofRequest { block: Some(RequestBlock { index: 5, nodes: r.missing_nodes(10).unwrap() }), ..Default::default() }).unwrap();
    assert_eq!(good.block.as_ref().unwrap().nodes.len(), 3); // 8, 13, 3 up to the stored 7

    let mut bad = good.clone();
    bad.block.as_mut().unwrap().value[0] ^= 1;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof);
    assert_eq!(r.apply_proof(&good, Some(b"forged")).unwrap_err().code, ErrorCode::InvalidProof);
    for k in 0..3 {
        let mut bad = good.clone();
        bad.block.as_mut().unwrap().nodes[k].hash[31] ^= 0x80;
        assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof, "node {k}");
        let mut bad = good.clone();
        bad.block.as_mut().unwrap().nodes[k].size ^= 1;
        assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof, "size {k}");
    }
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().nodes.pop();
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof);
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().index = 4;
    assert_eq!(r.apply_proof(&bad, None).unwrap_err().code, ErrorCode::InvalidProof);
    // Hostile numbers do not panic.
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().index = u64::MAX;
    assert!(r.apply_proof(&bad, None).is_err());
    let mut bad = good.clone();
    bad.block.as_mut().unwrap().nodes[0].index = u64::MAX - 1;
    assert!(r.apply_proof(&bad, None).is_err());
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().start = u64::MAX;
    assert!(r.apply_proof(&bad, None).is_err());
    let mut bad = up.clone();
    bad.upgrade.as_mut().unwrap().nodes[0].size = u64::MAX;
    assert!(r.apply_proof(&bad, None).is_err());
    let p = Proof { fork: 0, ..Default::default() };
    r.apply_proof(&p, None).unwrap(); // an empty proof changes nothing

    assert_eq!(state(&r), before);
    assert_eq!(read_files(&dir), files_before);
    assert_eq!(r.get(5).unwrap_err().code, ErrorCode::OutOfBounds);
    r.apply_proof(&good, None).unwrap();
    assert_eq!(r.get(5).unwrap(), w.get(5).unwrap());

    // A proof signed by another key is refused.
    let mut other = Core::create(Storage::Memory).unwrap();
    for i in 0..16u8 {
        other.append_batch(&[&[i][..]]).unwrap();
    }
    let mut fresh = Core::open_replica(Storage::Memory, w.key()).unwrap();
    let foreign = other.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: 16 }), ..Default::default() }).unwrap();
    assert_eq!(fresh.apply_proof(&foreign, None).unwrap_err().code, ErrorCode::InvalidSignature);
    assert_eq!(fresh.length(), 0);
}

#[test]
fn bad_requests_are_errors() {
    let mut core = writer(5);
    let up = |start, length| ProofRequest { upgrade: Some(RequestUpgrade { start, length }), ..Default::default() };
    assert_eq!(core.proof(&up(0, 6)).unwrap_err().code, ErrorCode::BadArgument);
    assert_eq!(core.proof(&up(5, 0)).unwrap_err().code, ErrorCode::BadArgument);
    assert!(core.proof(&up(u64::MAX, 2)).is_err());
    let blk = |index, nodes| ProofRequest { block: Some(RequestBlock { index, nodes }), ..Default::default() };
    assert_eq!(core.proof(&blk(5, 0)).unwrap_err().code, ErrorCode::OutOfBounds);
    assert_eq!(core.proof(&blk(0, 3)).unwrap_err().code, ErrorCode::BadArgument);
    assert!(core.proof(&blk(0, u64::MAX)).is_err());
    assert!(core.proof(&ProofRequest { hash: Some(RequestBlock { index: u64::MAX, nodes: 1 }), ..Default::default() }).is_err());
    assert_eq!(core.proof(&ProofRequest { fork: 1, ..blk(0, 0) }).unwrap_err().code, ErrorCode::BadArgument);
    // An empty core proves nothing, without error.
    let mut empty = Core::create(Storage::Memory).unwrap();
    assert_eq!(empty.proof(&up(0, 1)).unwrap(), Proof::default());
}

/// A writer of `n` blocks of varied sizes (several batches, so the tree has several shapes).
fn big_writer(n: u32) -> Core {
    let mut w = Core::create(Storage::Memory).unwrap();
    let blocks: Vec<Vec<u8>> = (0..n).map(|i| format!("block {i} {}", "x".repeat((i % 13) as usize)).into_bytes()).collect();
    for chunk in blocks.chunks(97) {
        let refs: Vec<&[u8]> = chunk.iter().map(|b| &b[..]).collect();
        w.append_batch(&refs).unwrap();
    }
    w
}

fn upgraded_replica(w: &mut Core, storage: Storage) -> Core {
    let mut r = Core::open_replica(storage, w.key()).unwrap();
    let up = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: w.length() }), ..Default::default() }).unwrap();
    r.apply_proof(&up, None).unwrap();
    r
}

/// Block proofs for `indexes`, each with the nodes `r` lacked before any of them was applied
/// (as a download with many requests in flight asks for them).
fn block_proofs(w: &mut Core, r: &Core, indexes: impl IntoIterator<Item = u64>) -> Vec<Proof> {
    indexes
        .into_iter()
        .map(|i| {
            let nodes = r.missing_nodes(2 * i).unwrap();
            w.proof(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }).unwrap()
        })
        .collect()
}

fn files_of(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    ["data", "tree", "bitfield"].iter().map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap_or_default())).collect()
}

#[test]
fn batched_apply_matches_per_block_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = big_writer(1000);
    let mut one = upgraded_replica(&mut w, Storage::Disk(tmp.path().join("one")));
    let mut many = upgraded_replica(&mut w, Storage::Disk(tmp.path().join("many")));
    // Per block: each proof asked for with exactly what the replica lacks at that moment.
    for i in 0..1000 {
        let p = block_proofs(&mut w, &one, [i]);
        one.apply_proof(&p[0], None).unwrap();
    }
    // Batched: sequential runs, a scattered run (out of order, with gaps), and a run holding
    // blocks already held and a repeat, each batch asked for before any of it was applied.
    let mut stored = 0;
    for chunk in (0..600u64).collect::<Vec<_>>().chunks(128) {
        let ps = block_proofs(&mut w, &many, chunk.iter().copied());
        stored += many.apply_blocks(&ps.iter().collect::<Vec<_>>()).unwrap();
    }
    let scattered: Vec<u64> = (0..300u64).map(|k| 600 + (k * 149) % 300).collect();
    let ps = block_proofs(&mut w, &many, scattered);
    stored += many.apply_blocks(&ps.iter().collect::<Vec<_>>()).unwrap();
    let mut ps = block_proofs(&mut w, &many, (895..1000).chain([990, 5]));
    ps.push(ps[0].clone());
    stored += many.apply_blocks(&ps.iter().collect::<Vec<_>>()).unwrap();
    assert_eq!(stored, 1000);
    assert_eq!(many.apply_blocks(&[]).unwrap(), 0);

    assert_eq!(many.contiguous_length(), 1000);
    for i in 0..1000 {
        assert_eq!(many.get(i).unwrap(), w.get(i).unwrap(), "block {i}");
        assert_eq!(many.byte_offset(i).unwrap(), w.byte_offset(i).unwrap());
    }
    many.verify().unwrap();
    one.close().unwrap();
    many.close().unwrap();
    // Same bytes in data, tree and bitfield as the per-block replica.
    assert_eq!(files_of(&tmp.path().join("one")), files_of(&tmp.path().join("many")));
    let mut again = Core::open(&tmp.path().join("many")).unwrap();
    assert_eq!(again.contiguous_length(), 1000);
    again.verify().unwrap();
}

#[test]
fn batched_apply_rejects_a_corrupted_block_and_stores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("replica");
    let mut w = big_writer(64);
    let mut r = upgraded_replica(&mut w, Storage::Disk(dir.clone()));
    let good = block_proofs(&mut w, &r, 0..16);
    let before = state(&r);

    // A changed value, a changed sibling node, a node for the wrong place, an upgrade riding along.
    let mut bad_value = good.clone();
    bad_value[9].block.as_mut().unwrap().value[0] ^= 1;
    let mut bad_node = good.clone();
    bad_node[12].block.as_mut().unwrap().nodes[0].hash[3] ^= 1;
    // (Block 8 starts a subtree none of blocks 0-7 proved below node 23: all of its path is checked.)
    let mut wrong_node = good.clone();
    wrong_node[8].block.as_mut().unwrap().nodes[1].index += 2;
    let mut with_upgrade = good.clone();
    with_upgrade[4].upgrade = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: 64 }), ..Default::default() }).unwrap().upgrade;
    for (ps, at) in [(&bad_value, 9), (&bad_node, 12), (&wrong_node, 8), (&with_upgrade, 4)] {
        let e = r.apply_blocks(&ps.iter().collect::<Vec<_>>()).unwrap_err();
        assert_eq!((e.code, e.index), (ErrorCode::InvalidProof, Some(at)), "{e:?}");
        assert_eq!(state(&r), before);
        assert_eq!(r.contiguous_length(), 0);
    }
    // A block past the length, and one that leans on a node nobody proved.
    let past = w.proof(&ProofRequest { block: Some(RequestBlock { index: 63, nodes: 6 }), ..Default::default() }).unwrap();
    let mut r_short = upgraded_replica(&mut big_writer(32), Storage::Memory);
    assert_eq!(r_short.apply_blocks(&[&past]).unwrap_err().code, ErrorCode::InvalidProof);
    let bare = w.proof(&ProofRequest { block: Some(RequestBlock { index: 40, nodes: 0 }), ..Default::default() }).unwrap();
    assert_eq!(r.apply_blocks(&[&good[0], &bare]).unwrap_err().code, ErrorCode::InvalidProof);
    assert_eq!(state(&r), before);

    // Nothing reached the disk: a reopen holds no block. The good batch then applies.
    drop(r);
    let mut r = Core::open_replica(Storage::Disk(dir.clone()), w.key()).unwrap();
    assert_eq!(state(&r), before);
    assert_eq!(r.apply_blocks(&good.iter().collect::<Vec<_>>()).unwrap(), 16);
    // Dropped without close (no header flush): the synced oplog batch brings the blocks back.
    drop(r);
    let mut r = Core::open_replica(Storage::Disk(dir), w.key()).unwrap();
    assert_eq!(r.contiguous_length(), 16);
    for i in 0..16 {
        assert_eq!(r.get(i).unwrap(), w.get(i).unwrap());
    }
    r.verify().unwrap();
}

#[test]
fn proofs_from_the_verified_cache_carry_the_stored_nodes() {
    // A reopened disk core starts with only its roots verified; serving proofs in order fills the
    // cache, and later proofs take their nodes from it. They must be the stored nodes exactly.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("w");
    let mut w = Core::create(Storage::Disk(dir.clone())).unwrap();
    let blocks: Vec<Vec<u8>> = (0..300u32).map(|i| format!("entry {i}").into_bytes()).collect();
    for chunk in blocks.chunks(41) {
        w.append_batch(&chunk.iter().map(|b| &b[..]).collect::<Vec<_>>()).unwrap();
    }
    w.close().unwrap();
    let mut w = Core::open(&dir).unwrap();
    let r = upgraded_replica(&mut w, Storage::Memory);
    for i in (0..300u64).chain([17, 250, 3]) {
        let nodes = r.missing_nodes(2 * i).unwrap();
        let p = w.proof(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }).unwrap();
        let b = p.block.as_ref().unwrap();
        assert_eq!(b.value, blocks[i as usize]);
        assert!(!b.nodes.is_empty());
        for n in &b.nodes {
            assert_eq!(w.node(n.index).unwrap(), Some(*n), "node {} of block {i}", n.index);
        }
        r.verify_proof(&p).unwrap();
    }
}
