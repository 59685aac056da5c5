//! The walk over a VM's log that checks every signed call: in order, keeping each caller's last sequence number.
//!
//! A log is signed from an `init` entry with `"auth":"signed"` (or a `restart` entry switching to it) on. In signed
//! mode every `call` entry must carry a signature that verifies over its own method and arguments under this log's
//! key, with a sequence number above that caller's last one. The one unsigned call allowed is the script's `init`,
//! which the host runs right after an `init` or `restart` entry.

use std::collections::HashMap;

use serde_json::Value;

use crate::call::{self, CallError};

/// The audit state after some prefix of a log.
pub struct Audit {
    log_key: [u8; 32],
    signed: bool,
    /// Signatures are checked (an audit), or only sequence numbers are collected (a host rebuilding its state).
    verify: bool,
    /// The entry before was `init` or `restart`: the script's `init` may run unsigned now.
    init_may_run: bool,
    last: HashMap<[u8; 32], u64>,
}

impl Audit {
    pub fn new(log_key: [u8; 32]) -> Audit {
        Audit { log_key, signed: false, verify: true, init_may_run: false, last: HashMap::new() }
    }

    /// A host's own log: collect the sequence numbers, trusting the signatures it checked when it logged them.
    pub fn rebuild(log_key: [u8; 32]) -> Audit {
        Audit { verify: false, ..Audit::new(log_key) }
    }

    /// Whether the log is in signed mode after the entries seen so far.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// Each caller's last sequence number so far.
    pub fn last_seqs(&self) -> &HashMap<[u8; 32], u64> {
        &self.last
    }

    /// Check the next entry (`index` only names it in the message).
    pub fn entry(&mut self, index: u64, entry: &Value) -> Result<(), String> {
        let kind = entry.get("type").and_then(Value::as_str).unwrap_or_default();
        let init_may_run = std::mem::replace(&mut self.init_may_run, false);
        match kind {
            "init" | "restart" => {
                match entry.get("auth").and_then(Value::as_str) {
                    Some("signed") => self.signed = true,
                    Some(_) => self.signed = false,
                    None if kind == "init" => self.signed = false,
                    None => {}
                }
                self.init_may_run = true;
                Ok(())
            }
            "call" if self.signed => self.call(index, entry, init_may_run),
            _ => Ok(()),
        }
    }

    fn call(&mut self, index: u64, entry: &Value, init_may_run: bool) -> Result<(), String> {
        let bad = |why: String| format!("entry {index}: {why}");
        let c = entry.get("call").ok_or_else(|| bad("no call".into()))?;
        let method = c.get("methodName").and_then(Value::as_str).unwrap_or_default();
        let signed = call::from_entry(entry).map_err(|e| bad(e.to_string()))?;
        let Some(signed) = signed else {
            if method == "init" && init_may_run && c.get("userId").is_none_or(|u| u.as_str() == Some("") || u.is_null()) {
                return Ok(());
            }
            return Err(bad(CallError::Unsigned.to_string()));
        };
        let last = self.last.get(&signed.key).copied().unwrap_or(0);
        if signed.seq <= last {
            return Err(bad(CallError::Replayed { seq: signed.seq, last }.to_string()));
        }
        if self.verify {
            let args = match c.get("args") {
                None => &[][..],
                Some(Value::Array(a)) => a.as_slice(),
                Some(_) => return Err(bad("args is not an array".into())),
            };
            signed.verify(&self.log_key, method, args).map_err(|e| bad(e.to_string()))?;
        }
        self.last.insert(signed.key, signed.seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::{entry_fields, generate_key_pair, sign};
    use serde_json::json;

    const LOG: [u8; 32] = [3; 32];

    fn signed_entry(secret: &[u8], seq: u64, method: &str, args: Value) -> Value {
        let c = sign(secret, &LOG, seq, method, args.as_array().unwrap()).unwrap();
        let mut e = json!({"type": "call", "call": {"methodName": method, "args": args, "userId": c.caller_id()}, "result": {"filesVersion": 1}});
        e.as_object_mut().unwrap().extend(entry_fields(&c));
        e
    }

    fn run(entries: &[Value]) -> Result<(), String> {
        let mut a = Audit::new(LOG);
        entries.iter().enumerate().try_for_each(|(i, e)| a.entry(i as u64, e))
    }

    #[test]
    fn names_the_first_bad_entry() {
        let (_, alice) = generate_key_pair();
        let (_, bob) = generate_key_pair();
        let init = json!({"type": "init", "code": "", "auth": "signed"});
        let init_call = json!({"type": "call", "call": {"methodName": "init", "args": []}, "result": {}});
        let good = vec![
            init.clone(),
            init_call.clone(),
            signed_entry(&alice, 1, "add", json!([1, 2])),
            signed_entry(&bob, 1, "add", json!([1, 2])),
            signed_entry(&alice, 5, "add", json!([3])),
        ];
        run(&good).unwrap();

        let mut copied = good.clone();
        copied.push(good[4].clone());
        assert!(run(&copied).unwrap_err().starts_with("entry 5: sequence number 5"), "a copied call");
        let mut unsigned = good.clone();
        unsigned.push(json!({"type": "call", "call": {"methodName": "add", "args": [1], "userId": "x"}}));
        assert_eq!(run(&unsigned).unwrap_err(), "entry 5: unsigned call to a signed VM");
        let mut changed = good.clone();
        changed[3]["call"]["args"] = json!([1, 3]);
        assert_eq!(run(&changed).unwrap_err(), "entry 3: bad signature");
        let mut other_user = good.clone();
        other_user[2]["call"]["userId"] = good[3]["call"]["userId"].clone();
        assert_eq!(run(&other_user).unwrap_err(), "entry 2: bad signature");
        // An unsigned init is only the script's own, right after init/restart.
        let mut late_init = good.clone();
        late_init.push(init_call.clone());
        assert_eq!(run(&late_init).unwrap_err(), "entry 5: unsigned call to a signed VM");
        let mut restarted = good.clone();
        restarted.push(json!({"type": "restart"}));
        restarted.push(init_call);
        run(&restarted).unwrap();
        // Debug mode: nothing to check.
        let mut debug = unsigned.clone();
        debug[0] = json!({"type": "init", "code": ""});
        run(&debug).unwrap();
        let mut switched = debug.clone();
        switched.push(json!({"type": "restart", "auth": "signed"}));
        switched.push(json!({"type": "call", "call": {"methodName": "add", "args": [], "userId": ""}}));
        assert_eq!(run(&switched).unwrap_err(), "entry 7: unsigned call to a signed VM");
    }
}

/// Entries read per step of [`walk`].
const RUN: u64 = 4096;

/// Walk a log's entries with `audit`: `read(start, end)` gives verified runs of blocks. A failure is a
/// `VERIFICATION_MISMATCH` error at the first bad entry.
pub fn walk(
    audit: &mut Audit,
    length: u64,
    mut read: impl FnMut(u64, u64) -> libvms_errors::Result<libvms_ledger::BlockRun>,
) -> libvms_errors::Result<()> {
    let mut at = 0;
    while at < length {
        let end = (at + RUN).min(length);
        let run = read(at, end)?;
        for (k, block) in run.iter().enumerate() {
            let i = at + k as u64;
            // In debug mode a call entry (as the log writes it) has nothing to check: no need to parse it.
            if !audit.signed && block.starts_with(br#"{"type":"call","#) {
                audit.init_may_run = false;
                continue;
            }
            let entry: Value = serde_json::from_slice(block)
                .map_err(|_| libvms_errors::err::mismatch(format!("entry {i} is not JSON")).at(i))?;
            audit.entry(i, &entry).map_err(|m| libvms_errors::err::mismatch(m).at(i))?;
        }
        at = end;
    }
    Ok(())
}
