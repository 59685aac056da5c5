//! Receipts and fork proofs against real ledger cores: a receipt checks against a fetched replica of the log and
//! is refused when its index, call hash or signature is wrong; two signed heads prove a fork exactly when they
//! cannot both be one history.
use libvms_auth::call::{entry_fields, generate_key_pair, sign};
use libvms_auth::receipt::{check, ReceiptError};
use libvms_auth::{check_fork, Head, Receipt};
use libvms_ledger::{Core, KeyPair, ProofRequest, RequestBlock, RequestUpgrade, Storage};
use serde_json::{json, Value};

const SEED: [u8; 32] = [7; 32];

/// A signed VM's log (init entry, then signed `add` calls by one caller) under the host key from `SEED`.
struct Log {
    core: Core,
    receipts: Vec<Receipt>,
}

fn log(args: &[i64]) -> Log {
    let mut core = Core::create_with_keypair(Storage::Memory, KeyPair::from_seed(SEED)).unwrap();
    let key = core.key();
    let init = json!({"type": "init", "code": "exports.add = (a, b) => a + b", "auth": "signed"});
    core.append_batch(&[&serde_json::to_vec(&init).unwrap()[..]]).unwrap();
    let (_, secret) = generate_key_pair();
    let mut receipts = Vec::new();
    for (i, a) in args.iter().enumerate() {
        let params = vec![json!(a), json!(1)];
        let call = sign(&secret, &key, i as u64 + 1, "add", &params).unwrap();
        let mut entry = json!({"type": "call", "call": {"methodName": "add", "args": params, "userId": call.caller_id()}, "result": {"value": a + 1}});
        entry.as_object_mut().unwrap().extend(entry_fields(&call));
        core.append_batch(&[&serde_json::to_vec(&entry).unwrap()[..]]).unwrap();
        let index = core.length() - 1;
        let hash = call.hash(&key, "add", &params).unwrap();
        receipts.push(Receipt { index, head: Head::of(&core).unwrap(), call: hash });
    }
    Log { core, receipts }
}

/// A replica fetched the way a verifier fetches: the signed head by an upgrade proof, then every block by proof.
fn replica(w: &mut Core) -> Core {
    let mut r = Core::open_replica(Storage::Memory, w.key()).unwrap();
    let up = w.proof(&ProofRequest { upgrade: Some(RequestUpgrade { start: 0, length: w.length() }), ..Default::default() }).unwrap();
    r.apply_proof(&up, None).unwrap();
    for i in 0..w.length() {
        let nodes = r.missing_nodes(2 * i).unwrap();
        let p = w.proof(&ProofRequest { block: Some(RequestBlock { index: i, nodes }), ..Default::default() }).unwrap();
        r.apply_proof(&p, None).unwrap();
    }
    assert!(!r.writable());
    r
}

fn invalid(r: Result<(), ReceiptError>) -> String {
    match r {
        Err(ReceiptError::Invalid(m)) => m,
        other => panic!("expected an invalid receipt, got {other:?}"),
    }
}

#[test]
fn a_receipt_checks_against_a_replica_and_survives_json() {
    let mut host = log(&[1, 2, 3]);
    let mut rep = replica(&mut host.core);
    for r in &host.receipts {
        check(r, &mut rep).unwrap();
        check(r, &mut host.core).unwrap();
        // What the client holds is the JSON; it names the same call.
        let back = Receipt::from_json(&r.to_json()).unwrap();
        assert_eq!(&back, r);
    }
    // An early receipt still checks after the log grew: the longer head extends the shorter one.
    assert!(host.receipts[0].head.length < rep.length());
}

#[test]
fn a_wrong_index_hash_or_signature_is_refused() {
    let mut host = log(&[1, 2, 3]);
    let mut rep = replica(&mut host.core);
    let good = host.receipts[1].clone();

    let mut other_index = good.clone();
    other_index.index = host.receipts[0].index; // another call's entry
    assert!(invalid(check(&other_index, &mut rep)).contains("is not the call the receipt names"));
    let mut init_index = good.clone();
    init_index.index = 0; // the init entry: no signed call at all
    assert!(invalid(check(&init_index, &mut rep)).contains("is not the call the receipt names"));
    let mut past = good.clone();
    past.index = good.head.length; // outside what the head signs
    assert!(invalid(check(&past, &mut rep)).contains("not within the signed length"));

    let mut other_call = good.clone();
    other_call.call[0] ^= 1;
    assert!(invalid(check(&other_call, &mut rep)).contains("is not the call the receipt names"));

    let mut bad_sig = good.clone();
    bad_sig.head.signature[10] ^= 1;
    assert!(invalid(check(&bad_sig, &mut rep)).contains("not signed by this log's key"));
    // Changing what the head says breaks its signature too: a tree hash or length is not taken on trust.
    let mut bad_tree = good.clone();
    bad_tree.head.tree_hash[0] ^= 1;
    assert!(invalid(check(&bad_tree, &mut rep)).contains("not signed by this log's key"));
    let mut bad_length = good.clone();
    bad_length.head.length += 1;
    assert!(invalid(check(&bad_length, &mut rep)).contains("not signed by this log's key"));

    // A head validly signed, but by another key (a host that is not this log's): refused.
    let mut other = Core::create(Storage::Memory).unwrap();
    other.append_batch(&[b"a", b"b", b"c"]).unwrap();
    let foreign = Receipt { head: Head::of(&other).unwrap(), ..good.clone() };
    assert!(foreign.head.valid(&other.key()));
    assert!(invalid(check(&foreign, &mut rep)).contains("not signed by this log's key"));

    // A log shorter than the receipt's head cannot vouch for it.
    let mut short = log(&[1]);
    let mut short_rep = replica(&mut short.core);
    assert!(invalid(check(&host.receipts[2], &mut short_rep)).contains("the log holds 2 entries"));

    check(&good, &mut rep).unwrap();
}

#[test]
fn two_heads_that_disagree_at_one_length_prove_a_fork() {
    // One host key, two histories of the same length: the host signed both.
    let a = log(&[1, 2, 3]);
    let b = log(&[1, 2, 4]);
    let key = a.core.key();
    assert_eq!(key, b.core.key());
    let (ha, hb) = (Head::of(&a.core).unwrap(), Head::of(&b.core).unwrap());
    assert_eq!((ha.length, ha.fork), (hb.length, hb.fork));
    assert!(check_fork(&key, &ha, &hb));
    assert!(check_fork(&key, &hb, &ha));

    // A receipt from one history checked against the other: the log's own signed tree disagrees at its length.
    let mut b_core = b.core;
    let mut b_rep = replica(&mut b_core);
    match check(a.receipts.last().unwrap(), &mut b_rep) {
        Err(ReceiptError::Fork { theirs, ours }) => {
            assert_eq!(theirs, ha);
            assert_eq!(ours, hb);
            assert!(check_fork(&key, &theirs, &ours), "the two heads are the proof, checkable by anyone");
        }
        other => panic!("expected a fork, got {other:?}"),
    }

    // A head whose signature is not the key's proves nothing, however much it disagrees.
    let mut forged = hb.clone();
    forged.signature[0] ^= 1;
    assert!(!check_fork(&key, &ha, &forged));
    // Nor does a pair checked against another key.
    assert!(!check_fork(&[9; 32], &ha, &hb));
}

#[test]
fn a_head_that_the_longer_log_does_not_extend_proves_a_fork() {
    // The receipt's head is at length 3; the host later shows a longer log that rewrote entry 2.
    let early = log(&[1, 2]);
    let mut rewritten = log(&[1, 5, 6, 7]);
    let receipt = early.receipts.last().unwrap();
    assert_eq!(receipt.head.length, 3);
    let mut rep = replica(&mut rewritten.core);
    assert!(rep.length() > receipt.head.length);
    match check(receipt, &mut rep) {
        Err(ReceiptError::Fork { theirs, ours }) => {
            assert_eq!(&theirs, &receipt.head);
            assert_eq!(ours.length, 5);
            assert!(theirs.valid(&rep.key()) && ours.valid(&rep.key()));
        }
        other => panic!("expected a fork, got {other:?}"),
    }
}

#[test]
fn consistent_heads_are_no_fork() {
    let mut host = log(&[1, 2, 3]);
    let key = host.core.key();
    let heads: Vec<Head> = host.receipts.iter().map(|r| r.head.clone()).collect();
    // The same head twice, and heads of one growing history: no fork between any two.
    for a in &heads {
        for b in &heads {
            assert!(!check_fork(&key, a, b), "{} vs {}", a.length, b.length);
        }
    }
    // The longer log extends every earlier head: each earlier receipt still checks against it.
    let mut rep = replica(&mut host.core);
    for r in &host.receipts {
        check(r, &mut rep).unwrap();
    }
    let head_json: Value = heads[0].to_json();
    assert_eq!(Head::from_json(&head_json).unwrap(), heads[0]);
}
