//! Receipts: the log's own signed tree head at a length that holds the call, the call's index, and the call's hash.
//! Checked against any copy of the log; two validly signed heads of one length and fork that disagree are a fork.

use libvms_ledger::crypto::{signable_compat, tree_hash};
use libvms_ledger::{flat, Core};
use serde_json::{json, Value};

use crate::call;

/// A signed tree head of a compat core: the Ed25519 signature of the log's key over
/// `TREE namespace ‖ tree hash ‖ u64le length ‖ u64le fork`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub length: u64,
    pub fork: u64,
    pub tree_hash: [u8; 32],
    pub signature: [u8; 64],
}

impl Head {
    /// The current signed head of `core`.
    pub fn of(core: &Core) -> Option<Head> {
        let signature = core.signature()?.try_into().ok()?;
        Some(Head { length: core.length(), fork: core.fork(), tree_hash: core.tree_hash(), signature })
    }

    pub fn valid(&self, key: &[u8; 32]) -> bool {
        let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(key) else { return false };
        let msg = signable_compat(&self.tree_hash, self.length, self.fork);
        vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&self.signature)).is_ok()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "length": self.length,
            "fork": self.fork,
            "treeHash": hex::encode(self.tree_hash),
            "signature": hex::encode(self.signature),
        })
    }

    pub fn from_json(v: &Value) -> Option<Head> {
        Some(Head {
            length: v.get("length")?.as_u64()?,
            fork: v.get("fork")?.as_u64()?,
            tree_hash: hex::decode(v.get("treeHash")?.as_str()?).ok()?.try_into().ok()?,
            signature: hex::decode(v.get("signature")?.as_str()?).ok()?.try_into().ok()?,
        })
    }
}

/// `{ index, length, fork, treeHash, signature, call }`: `call` is the hash of the signed request at `index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub index: u64,
    pub head: Head,
    pub call: [u8; 32],
}

impl Receipt {
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "index": self.index });
        v.as_object_mut().unwrap().extend(self.head.to_json().as_object().unwrap().clone());
        v["call"] = Value::String(hex::encode(self.call));
        v
    }

    pub fn from_json(v: &Value) -> Option<Receipt> {
        Some(Receipt {
            index: v.get("index")?.as_u64()?,
            head: Head::from_json(v)?,
            call: hex::decode(v.get("call")?.as_str()?).ok()?.try_into().ok()?,
        })
    }
}

/// Why a receipt does not check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptError {
    /// The receipt or the log does not hold up: the message says how.
    Invalid(String),
    /// Both heads are validly signed by the log's key and disagree: `ours` is the log's signed head (when it has
    /// the receipt's length, the same length and fork; otherwise a longer head whose tree holds another hash at
    /// that length).
    Fork { theirs: Head, ours: Head },
}

/// Two validly signed heads of one key, with the same length and fork and different tree hashes: proof that the
/// key's holder signed two histories.
pub fn check_fork(key: &[u8; 32], a: &Head, b: &Head) -> bool {
    a.length == b.length && a.fork == b.fork && a.tree_hash != b.tree_hash && a.valid(key) && b.valid(key)
}

/// The tree hash of the first `length` entries of `core` (its roots there, read from verified tree nodes).
pub fn tree_hash_at(core: &Core, length: u64) -> Option<[u8; 32]> {
    let mut roots = Vec::new();
    for i in flat::full_roots(2 * length) {
        roots.push(core.node(i).ok()??);
    }
    Some(tree_hash(&roots))
}

/// Check a signed head held earlier (an audit's snapshot, a receipt's) against a log now: signed by the log's key,
/// and the log still reaches its length with the same tree there. A log that has lost entries below it, or holds
/// another tree at its length (a fork: `ours` is the log's current signed head), fails.
pub fn check_head(head: &Head, core: &Core) -> Result<(), ReceiptError> {
    let invalid = |m: String| Err(ReceiptError::Invalid(m));
    if !head.valid(&core.key()) {
        return invalid("the head is not signed by this log's key".into());
    }
    if core.length() < head.length {
        return invalid(format!(
            "the log holds {} entries; its key signed a head of {} (entries it signed are gone)",
            core.length(),
            head.length
        ));
    }
    let ours = Head::of(core).ok_or_else(|| ReceiptError::Invalid("the log has no signed head".into()))?;
    let th = tree_hash_at(core, head.length)
        .ok_or_else(|| ReceiptError::Invalid(format!("the log lacks tree nodes at length {}", head.length)))?;
    if th != head.tree_hash {
        return Err(ReceiptError::Fork { theirs: head.clone(), ours });
    }
    Ok(())
}

/// Check `r` against a log (the host's, or a verified replica): the head is signed by the log's key, the log
/// reaches its length with the same tree there, and entry `index` is the signed call `r.call` names.
pub fn check(r: &Receipt, core: &mut Core) -> Result<(), ReceiptError> {
    let key = core.key();
    let invalid = |m: String| Err(ReceiptError::Invalid(m));
    if !r.head.valid(&key) {
        return invalid("the receipt's head is not signed by this log's key".into());
    }
    if r.index >= r.head.length {
        return invalid(format!("index {} is not within the signed length {}", r.index, r.head.length));
    }
    if core.length() < r.head.length {
        return invalid(format!("the log holds {} entries; the receipt's head has {}", core.length(), r.head.length));
    }
    check_head(&r.head, core)?;
    let block = core.get(r.index).map_err(|e| ReceiptError::Invalid(e.message))?;
    let entry: Value = serde_json::from_slice(&block).map_err(|_| ReceiptError::Invalid("entry is not JSON".into()))?;
    let signed = call::from_entry(&entry).ok().flatten();
    let c = entry.get("call");
    let method = c.and_then(|c| c.get("methodName")).and_then(Value::as_str).unwrap_or_default();
    let args = c.and_then(|c| c.get("args")).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    match signed.and_then(|s| s.hash(&key, method, args).ok()) {
        Some(h) if h == r.call => Ok(()),
        _ => invalid(format!("entry {} is not the call the receipt names", r.index)),
    }
}
