//! Signed mode at a mount: every call must carry a valid signature for this VM and a sequence number above its
//! caller's last one. Checked on the connection's own task (never the JavaScript thread), before the call is queued,
//! so a refused call reaches neither the VM nor its log. Receipts ride on the replies of signed calls.

use std::collections::HashMap;
use std::sync::Mutex;

use libvms_auth::call::CallError;
use libvms_auth::SignedCall;
use serde_json::Value;

/// JSON-RPC error code of a refused signed call (`message` "Unauthorized", `data` says why).
pub const AUTH_REFUSED: i64 = -32010;
pub const AUTH_MESSAGE: &str = "Unauthorized";

/// What a backend in signed mode tells the server when it is mounted.
#[derive(Debug, Clone, Default)]
pub struct MountAuth {
    /// The VM's call log key: what every request must be signed for.
    pub log_key: [u8; 32],
    /// Each caller's last sequence number, rebuilt from the log (so replays fail across restarts).
    pub last_seqs: HashMap<[u8; 32], u64>,
}

/// A signed mount's checks and its callers' last sequence numbers.
pub(crate) struct Guard {
    log_key: [u8; 32],
    last: Mutex<HashMap<[u8; 32], u64>>,
}

impl Guard {
    pub(crate) fn new(a: MountAuth) -> Guard {
        Guard { log_key: a.log_key, last: Mutex::new(a.last_seqs) }
    }

    /// Check a request's `auth` for `method(params)`: a valid signature for this VM.
    pub(crate) fn verify(&self, auth: Option<&Value>, method: &str, params: &[Value]) -> Result<SignedCall, CallError> {
        let signed = SignedCall::from_json(auth.ok_or(CallError::Unsigned)?)?;
        signed.verify(&self.log_key, method, params)?;
        Ok(signed)
    }

    /// Queue the job of a verified call by `key` with `push`, if its sequence number `seq` exceeds its caller's
    /// last one; the number counts as used once queued. Checked and counted under one lock, so two connections
    /// cannot both use it.
    pub(crate) fn sequence<J>(&self, key: [u8; 32], seq: u64, job: J, push: impl FnOnce(J) -> Result<(), J>) -> Result<(), (J, Option<CallError>)> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let prev = last.get(&key).copied().unwrap_or(0);
        if seq <= prev {
            return Err((job, Some(CallError::Replayed { seq, last: prev })));
        }
        push(job).map_err(|job| (job, None))?;
        last.insert(key, seq);
        Ok(())
    }
}

/// Append `"receipt": <json>` to a reply object's text.
pub(crate) fn with_receipt(mut reply: String, receipt: &Value) -> String {
    debug_assert!(reply.ends_with('}'));
    reply.pop();
    reply.push_str(",\"receipt\":");
    reply.push_str(&receipt.to_string());
    reply.push('}');
    reply
}
