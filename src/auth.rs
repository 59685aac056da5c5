//! Signed mode for `lib/`: key pairs, the audit of a signed VM's log, receipts and fork proofs (crates/auth).
use libvms_auth::{audit, receipt, Audit, Head, Receipt};
use libvms_ledger::SharedCore;
use libvms_errors::{err, Result};
use libvms_rpc::MountAuth;
use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use serde_json::{json, Value};

use crate::call_log::NativeLog;
use crate::errors::{blocking, js};

#[napi(object)]
pub struct KeyPair {
    pub public_key: Buffer,
    pub secret_key: Buffer,
}

/// A new Ed25519 key pair (`secretKey` is 64 bytes: seed ‖ public, as libsodium).
#[napi]
pub fn generate_key_pair() -> KeyPair {
    let (public, secret) = libvms_auth::generate_key_pair();
    KeyPair { public_key: public.to_vec().into(), secret_key: secret.to_vec().into() }
}

/// Audit entries `0..length` (the whole log when `None`).
fn walk(core: &SharedCore, audit: &mut Audit, length: Option<u64>) -> Result<()> {
    let end = core.with(|c| Ok(c.length()))?;
    let length = length.unwrap_or(end);
    if length > end {
        return Err(err::bad_argument(format!("length {length} is past the log's end ({end})")));
    }
    audit::walk(audit, length, |s, e| core.with(|c| c.read_run(s, e)))
}

/// Check every signed call of a log (`VERIFICATION_MISMATCH@index` names the first bad entry), or of its first
/// `length` entries: a fetched log that follows its host may know a longer signed length than the blocks it
/// holds yet, so an audit walks the snapshot it fixed. Resolves with whether the log is in signed mode there.
#[napi]
pub async fn audit_log(log: &NativeLog, length: Option<f64>) -> napi::Result<bool> {
    let core = log.core.clone();
    let length = length.map(|l| crate::errors::js_index(l, "length")).transpose().map_err(crate::errors::to_js)?;
    blocking(move || {
        let mut a = Audit::new(core.with(|c| Ok(c.key()))?);
        walk(&core, &mut a, length)?;
        Ok(a.signed())
    })
    .await
}

/// A signed mount's state, rebuilt from its own log: the key calls must be signed for, each caller's last
/// sequence number.
pub(crate) fn mount_auth(core: &SharedCore) -> Result<MountAuth> {
    let log_key = core.with(|c| Ok(c.key()))?;
    let mut a = Audit::rebuild(log_key);
    walk(core, &mut a, None)?;
    Ok(MountAuth { log_key, last_seqs: a.last_seqs().clone() })
}

/// The receipt of the signed call at `index`, under the log's current signed head (which holds it: the reply
/// waited for its entry to be durable).
pub(crate) fn make_receipt(core: &SharedCore, index: u64, call: [u8; 32]) -> Result<Value> {
    // The head published by the last commit: no wait for the core's lock (a commit in progress holds it).
    let (length, fork, tree_hash, sig) = core.signed_head().ok_or_else(|| err::internal("the log has no signed head"))?;
    let signature = sig.try_into().map_err(|_| err::internal("the log's signature is not 64 bytes"))?;
    let head = Head { length, fork, tree_hash, signature };
    if head.length <= index {
        return Err(err::internal("the signed head does not hold the call yet"));
    }
    Ok(Receipt { index, head, call }.to_json())
}

/// Check a receipt against a log. Resolves with `null` when the log holds that call at `index` under that signed
/// head; otherwise with `{code, message, ours?, theirs?}` (code `FORK` with both heads, or `VERIFICATION_MISMATCH`).
#[napi]
pub async fn check_receipt(receipt_json: String, log: &NativeLog) -> napi::Result<Option<String>> {
    let core = log.core.clone();
    blocking(move || {
        let v: Value = serde_json::from_str(&receipt_json).map_err(|_| err::bad_argument("receipt is not JSON"))?;
        let Some(r) = Receipt::from_json(&v) else {
            return Ok(Some(json!({"code": "VERIFICATION_MISMATCH", "message": "malformed receipt"}).to_string()));
        };
        let out = core.with(|c| Ok(receipt::check(&r, c)))?;
        Ok(outcome(out, "the receipt's"))
    })
    .await
}

/// The log's current signed head (`{length, fork, treeHash, signature}` JSON), checked against the log's key: the
/// head an audit holds for its snapshot.
#[napi]
pub async fn signed_head(log: &NativeLog) -> napi::Result<String> {
    let core = log.core.clone();
    blocking(move || {
        core.with(|c| {
            let head = Head::of(c).ok_or_else(|| err::mismatch("the log has no signed head"))?;
            if !head.valid(&c.key()) {
                return Err(err::signature("the log's head is not signed by its key"));
            }
            Ok(head.to_json().to_string())
        })
    })
    .await
}

/// Check a held head against a log now. Resolves with `null` when the log still holds that tree at that length;
/// otherwise with `{code, message, ours?, theirs?}` as `check_receipt`.
#[napi]
pub async fn check_head(head_json: String, log: &NativeLog) -> napi::Result<Option<String>> {
    let core = log.core.clone();
    blocking(move || {
        let head = serde_json::from_str::<Value>(&head_json).ok().as_ref().and_then(Head::from_json);
        let Some(head) = head else {
            return Err(err::bad_argument("head must be {length, fork, treeHash, signature}"));
        };
        let out = core.with(|c| Ok(receipt::check_head(&head, c)))?;
        Ok(outcome(out, "the held head's"))
    })
    .await
}

fn outcome(out: std::result::Result<(), receipt::ReceiptError>, theirs_name: &str) -> Option<String> {
    match out {
        Ok(()) => None,
        Err(receipt::ReceiptError::Invalid(m)) => Some(json!({"code": "VERIFICATION_MISMATCH", "message": m}).to_string()),
        Err(receipt::ReceiptError::Fork { theirs, ours }) => Some(
            json!({
                "code": "FORK",
                "message": format!("the log's signed head disagrees with {theirs_name} at length {}: its key signed two histories", theirs.length),
                "ours": ours.to_json(),
                "theirs": theirs.to_json(),
            })
            .to_string(),
        ),
    }
}

/// Two heads (`{length, fork, treeHash, signature}` JSON) validly signed by `key`, with one length and fork and
/// different tree hashes: proof of a fork.
#[napi]
pub fn is_fork(key: Buffer, a_json: String, b_json: String) -> napi::Result<bool> {
    let key: [u8; 32] = js(key.as_ref().try_into().map_err(|_| err::bad_argument("key must be 32 bytes")))?;
    let head = |s: &str| serde_json::from_str::<Value>(s).ok().as_ref().and_then(Head::from_json);
    match (head(&a_json), head(&b_json)) {
        (Some(a), Some(b)) => Ok(receipt::check_fork(&key, &a, &b)),
        _ => js(Err(err::bad_argument("heads must be {length, fork, treeHash, signature}"))),
    }
}
