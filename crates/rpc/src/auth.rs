//! Signed mode at a mount: every call must carry a valid signature for this VM and a sequence number above its
//! caller's last one. Checked on the connection's own task (never the JavaScript thread), before the call is queued,
//! so a refused call reaches neither the VM nor its log. Receipts ride on the replies of signed calls.

use std::collections::HashMap;
use std::sync::Mutex;

use libvms_auth::call::{CallError, CallerKey};
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

/// Callers whose decoded keys a mount keeps; past this many the cache starts afresh.
const MAX_KEYS: usize = 4096;

/// A signed mount's checks and its callers' last sequence numbers.
pub(crate) struct Guard {
    log_key: [u8; 32],
    last: Mutex<HashMap<[u8; 32], u64>>,
    /// The keys of callers whose signatures held, decoded and checked: a caller's next call skips decoding its key
    /// (a square root, about a seventh of a verification). Every signature is still checked in full.
    keys: Mutex<HashMap<[u8; 32], CallerKey>>,
}

impl Guard {
    pub(crate) fn new(a: MountAuth) -> Guard {
        Guard { log_key: a.log_key, last: Mutex::new(a.last_seqs), keys: Mutex::default() }
    }

    /// Check a request's `auth` for `method(params)`: a valid signature for this VM. Returns the call and its
    /// hash (what its receipt names), from the bytes just verified.
    pub(crate) fn verify(&self, auth: Option<&Value>, method: &str, params: &[Value]) -> Result<(SignedCall, [u8; 32]), CallError> {
        let signed = SignedCall::from_json(auth.ok_or(CallError::Unsigned)?)?;
        let cached = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(&signed.key).copied();
        let key = match cached {
            Some(key) => key,
            None => signed.caller_key()?,
        };
        let hash = signed.verify_with(&key, &self.log_key, method, params)?;
        if cached.is_none() {
            // Only a key that has signed a valid call is kept.
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if keys.len() >= MAX_KEYS {
                keys.clear();
            }
            keys.insert(signed.key, key);
        }
        Ok((signed, hash))
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.keys.lock().unwrap().len()
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

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_auth::call::{generate_key_pair, sign};
    use serde_json::json;

    const LOG: [u8; 32] = [9; 32];

    fn guard() -> Guard {
        Guard::new(MountAuth { log_key: LOG, last_seqs: HashMap::new() })
    }

    #[test]
    fn a_cached_key_still_refuses_every_bad_signature() {
        let g = guard();
        let (_, secret) = generate_key_pair();
        let args = [json!(1), json!(2)];
        let good = sign(&secret, &LOG, 1, "add", &args).unwrap();
        let (call, hash) = g.verify(Some(&good.to_json()), "add", &args).unwrap();
        assert_eq!(call, good);
        assert_eq!(hash, good.hash(&LOG, "add", &args).unwrap(), "the receipt's hash, from the verified bytes");
        assert_eq!(g.cached(), 1);
        // The key is cached now; each change still fails.
        assert_eq!(g.verify(Some(&good.to_json()), "add", &[json!(1), json!(3)]), Err(CallError::BadSignature));
        assert_eq!(g.verify(Some(&good.to_json()), "sub", &args), Err(CallError::BadSignature));
        let mut later = good.clone();
        later.seq = 2;
        assert_eq!(g.verify(Some(&later.to_json()), "add", &args), Err(CallError::BadSignature));
        let mut flipped = good.clone();
        flipped.sig[10] ^= 1;
        assert_eq!(g.verify(Some(&flipped.to_json()), "add", &args), Err(CallError::BadSignature));
        // Another caller's signature under this caller's key.
        let (_, other) = generate_key_pair();
        let mut stolen = sign(&other, &LOG, 1, "add", &args).unwrap();
        stolen.key = good.key;
        assert_eq!(g.verify(Some(&stolen.to_json()), "add", &args), Err(CallError::BadSignature));
        // A signature for another VM.
        let elsewhere = sign(&secret, &[8; 32], 3, "add", &args).unwrap();
        assert_eq!(g.verify(Some(&elsewhere.to_json()), "add", &args), Err(CallError::BadSignature));
        assert_eq!(g.cached(), 1);
        g.verify(Some(&sign(&secret, &LOG, 4, "add", &args).unwrap().to_json()), "add", &args).unwrap();
    }

    #[test]
    fn only_keys_that_signed_a_valid_call_are_cached_and_the_cache_is_bounded() {
        let g = guard();
        let (_, secret) = generate_key_pair();
        let mut bad = sign(&secret, &LOG, 1, "m", &[]).unwrap();
        bad.sig[0] ^= 1;
        assert_eq!(g.verify(Some(&bad.to_json()), "m", &[]), Err(CallError::BadSignature));
        assert_eq!(g.cached(), 0, "a refused call leaves no key behind");
        for i in 0..MAX_KEYS + 1 {
            let (_, s) = generate_key_pair();
            g.verify(Some(&sign(&s, &LOG, 1, "m", &[]).unwrap().to_json()), "m", &[]).unwrap();
            assert_eq!(g.cached(), i % MAX_KEYS + 1);
        }
    }
}
