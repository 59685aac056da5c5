//! What a caller signs, and what a signed call's log entry carries.
//!
//! The signed bytes (all integers little-endian):
//!
//! ```text
//! "libvms/call/v1\n"          15 bytes, the domain: these bytes are never valid as anything else we sign
//! log key                     32 bytes: the VM's call log key, so a request signed for one VM fails at another
//! seq                         u64: the caller's sequence number, above every earlier one of that caller
//! method length               u32, then the method name (UTF-8)
//! JCS(args)                   RFC 8785 canonical JSON of the arguments array, to the end
//! ```
//!
//! The signature is Ed25519 over those bytes with the caller's key; the caller's id is its public key in hex.

use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use ed25519_dalek::Signer;
/// The key types of [`sign_with`] and [`SignedCall::verify_with`].
pub use crate::strict::CallerKey;
pub use ed25519_dalek::SigningKey;
use serde_json::{json, Map, Value};

use crate::jcs;

pub const DOMAIN: &[u8; 15] = b"libvms/call/v1\n";

/// Sequence numbers stay exact JavaScript numbers (`Number.MAX_SAFE_INTEGER`).
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// The authentication a request carries: who signed, their sequence number, and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCall {
    pub key: [u8; 32],
    pub seq: u64,
    pub sig: [u8; 64],
}

/// Why a signed call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    Unsigned,
    Malformed(&'static str),
    NotCanonical(String),
    BadSignature,
    /// The sequence number does not exceed the caller's last one (a replay, or an old request).
    Replayed { seq: u64, last: u64 },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unsigned => f.write_str("unsigned call to a signed VM"),
            CallError::Malformed(what) => write!(f, "malformed auth: {what}"),
            CallError::NotCanonical(why) => write!(f, "arguments have no canonical form: {why}"),
            CallError::BadSignature => f.write_str("bad signature"),
            CallError::Replayed { seq, last } => write!(f, "sequence number {seq} does not exceed {last}"),
        }
    }
}

/// The bytes a caller signs for calling `method(args)` on the VM whose log key is `log_key`.
pub fn signed_bytes(log_key: &[u8; 32], seq: u64, method: &str, args: &[Value]) -> Result<Vec<u8>, CallError> {
    let mut out = Vec::with_capacity(64 + method.len() + 32);
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(log_key);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(method.len() as u32).to_le_bytes());
    out.extend_from_slice(method.as_bytes());
    out.push(b'[');
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        jcs::write(a, &mut out).map_err(|e| CallError::NotCanonical(e.to_string()))?;
    }
    out.push(b']');
    Ok(out)
}

/// A new Ed25519 key pair: `(public, secret)`, the secret in libsodium's 64-byte form `seed ‖ public`.
pub fn generate_key_pair() -> ([u8; 32], [u8; 64]) {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).expect("the OS has randomness");
    let sk = SigningKey::from_bytes(&seed);
    (sk.verifying_key().to_bytes(), sk.to_keypair_bytes())
}

/// Sign a call with a secret key (its 32-byte seed, or the 64-byte `seed ‖ public` form).
pub fn sign(secret: &[u8], log_key: &[u8; 32], seq: u64, method: &str, args: &[Value]) -> Result<SignedCall, CallError> {
    let seed: [u8; 32] = secret.get(..32).and_then(|s| s.try_into().ok()).ok_or(CallError::Malformed("secret key"))?;
    sign_with(&SigningKey::from_bytes(&seed), log_key, seq, method, args)
}

/// [`sign`] with a key already expanded: deriving the public key from a seed costs a scalar multiplication, as
/// much as the signature itself, so a client that signs many calls keeps its `SigningKey`.
pub fn sign_with(sk: &SigningKey, log_key: &[u8; 32], seq: u64, method: &str, args: &[Value]) -> Result<SignedCall, CallError> {
    if seq == 0 || seq > MAX_SEQ {
        return Err(CallError::Malformed("seq must be 1..2^53-1"));
    }
    let sig = sk.sign(&signed_bytes(log_key, seq, method, args)?).to_bytes();
    Ok(SignedCall { key: sk.verifying_key().to_bytes(), seq, sig })
}

impl SignedCall {
    /// From the wire's `auth` member: `{"key": hex64, "seq": n, "sig": hex128}`.
    pub fn from_json(v: &Value) -> Result<SignedCall, CallError> {
        let o = v.as_object().ok_or(CallError::Malformed("auth must be an object"))?;
        let key = hex_array::<32>(o.get("key")).ok_or(CallError::Malformed("key must be 64 hex characters"))?;
        let sig = hex_array::<64>(o.get("sig")).ok_or(CallError::Malformed("sig must be 128 hex characters"))?;
        let seq = o.get("seq").and_then(Value::as_u64).filter(|s| (1..=MAX_SEQ).contains(s));
        let seq = seq.ok_or(CallError::Malformed("seq must be an integer 1..2^53-1"))?;
        Ok(SignedCall { key, seq, sig })
    }

    pub fn to_json(&self) -> Value {
        json!({ "key": hex::encode(self.key), "seq": self.seq, "sig": hex::encode(self.sig) })
    }

    /// [`to_json`](Self::to_json)'s text, written directly (a client writes one per call).
    pub fn to_json_text(&self) -> String {
        format!("{{\"key\":\"{}\",\"seq\":{},\"sig\":\"{}\"}}", hex::encode(self.key), self.seq, hex::encode(self.sig))
    }

    /// The caller's id on a signed VM: the public key, 64 lowercase hex characters.
    pub fn caller_id(&self) -> String {
        hex::encode(self.key)
    }

    /// Check the signature over this call (strict Ed25519: no malleable or small-order forms).
    pub fn verify(&self, log_key: &[u8; 32], method: &str, args: &[Value]) -> Result<(), CallError> {
        self.verify_with(&self.caller_key()?, log_key, method, args).map(|_| ())
    }

    /// The caller's key, decoded and checked (a square root and more: worth keeping per caller).
    pub fn caller_key(&self) -> Result<CallerKey, CallError> {
        CallerKey::new(&self.key).ok_or(CallError::BadSignature)
    }

    /// [`verify`](Self::verify) with the caller's key already decoded (`key` must be this call's `key`; another is
    /// refused). Returns the call's [`hash`](Self::hash), from the same signed bytes.
    pub fn verify_with(&self, key: &CallerKey, log_key: &[u8; 32], method: &str, args: &[Value]) -> Result<[u8; 32], CallError> {
        if key.as_bytes() != &self.key {
            return Err(CallError::BadSignature);
        }
        let bytes = signed_bytes(log_key, self.seq, method, args)?;
        if !key.verify(&bytes, &self.sig) {
            return Err(CallError::BadSignature);
        }
        Ok(self.hash_of(&bytes))
    }

    /// The hash that names this call in a receipt: BLAKE2b-256 of `signed bytes ‖ key ‖ sig`.
    pub fn hash(&self, log_key: &[u8; 32], method: &str, args: &[Value]) -> Result<[u8; 32], CallError> {
        Ok(self.hash_of(&signed_bytes(log_key, self.seq, method, args)?))
    }

    fn hash_of(&self, signed: &[u8]) -> [u8; 32] {
        let mut h = Blake2b::<U32>::new();
        h.update(signed);
        h.update(self.key);
        h.update(self.sig);
        h.finalize().into()
    }
}

/// The members a signed call's log entry carries beside `call` and `result` (its `call.userId` is the key in hex):
/// `"auth": {"seq": n, "sig": hex}`. With the log's key, `call.methodName` and `call.args`, they rebuild the signed
/// bytes exactly.
pub fn entry_fields(call: &SignedCall) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("auth".into(), json!({ "seq": call.seq, "sig": hex::encode(call.sig) }));
    m
}

/// The value of [`entry_fields`]' `auth` member as JSON text, written directly.
pub fn entry_auth_text(call: &SignedCall) -> String {
    format!("{{\"seq\":{},\"sig\":\"{}\"}}", call.seq, hex::encode(call.sig))
}

/// A signed call as a log entry holds it (`None` when the entry carries no `auth`).
pub fn from_entry(entry: &Value) -> Result<Option<SignedCall>, CallError> {
    let Some(auth) = entry.get("auth") else { return Ok(None) };
    let user = entry.pointer("/call/userId").and_then(Value::as_str).unwrap_or_default();
    let mut a = auth.clone();
    if let Some(o) = a.as_object_mut() {
        o.insert("key".into(), Value::String(user.to_owned()));
    }
    SignedCall::from_json(&a).map(Some)
}

fn hex_array<const N: usize>(v: Option<&Value>) -> Option<[u8; N]> {
    let s = v?.as_str()?;
    if s.len() != 2 * N || s.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    hex::decode(s).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LOG: [u8; 32] = [7; 32];

    #[test]
    fn sign_and_verify_and_every_change_fails() {
        let (_, secret) = generate_key_pair();
        let args = vec![json!(2), json!({"b": 1, "a": "x"})];
        let c = sign(&secret, &LOG, 5, "add", &args).unwrap();
        c.verify(&LOG, "add", &args).unwrap();
        assert_eq!(c.verify(&[8; 32], "add", &args), Err(CallError::BadSignature), "another VM");
        assert_eq!(c.verify(&LOG, "sub", &args), Err(CallError::BadSignature), "another method");
        assert_eq!(c.verify(&LOG, "add", &[json!(3), args[1].clone()]), Err(CallError::BadSignature), "other args");
        let mut later = c.clone();
        later.seq = 6;
        assert_eq!(later.verify(&LOG, "add", &args), Err(CallError::BadSignature), "another seq");
        // Member order does not matter: the signature is over canonical JSON.
        c.verify(&LOG, "add", &[json!(2), serde_json::from_str(r#"{"a":"x","b":1}"#).unwrap()]).unwrap();
        assert_eq!(SignedCall::from_json(&c.to_json()).unwrap(), c);
    }

    #[test]
    fn entry_fields_rebuild_the_call() {
        let (_, secret) = generate_key_pair();
        let c = sign(&secret, &LOG, 1, "m", &[]).unwrap();
        let mut entry = json!({"type": "call", "call": {"methodName": "m", "args": [], "userId": c.caller_id()}});
        for (k, v) in entry_fields(&c) {
            entry.as_object_mut().unwrap().insert(k, v);
        }
        assert_eq!(from_entry(&entry).unwrap(), Some(c.clone()));
        assert_eq!(entry_auth_text(&c), entry["auth"].to_string());
        assert_eq!(c.to_json_text(), c.to_json().to_string());
        assert_eq!(from_entry(&json!({"type": "call"})).unwrap(), None);
    }

    #[test]
    fn malformed_auth_is_refused() {
        for bad in [json!(null), json!({"key": "00", "seq": 1, "sig": "00"}), json!({"key": "A".repeat(64), "seq": 1, "sig": "0".repeat(128)})] {
            assert!(matches!(SignedCall::from_json(&bad), Err(CallError::Malformed(_))), "{bad}");
        }
        let ok = json!({"key": "0".repeat(64), "seq": 1, "sig": "0".repeat(128)});
        SignedCall::from_json(&ok).unwrap();
        for seq in [json!(0), json!(-1), json!(1.5), json!(9007199254740992u64)] {
            let mut v = ok.clone();
            v["seq"] = seq;
            assert!(SignedCall::from_json(&v).is_err());
        }
    }
}

#[cfg(test)]
mod readme {
    use super::*;

    /// The README's wire-format test vector, read from the README itself so the two cannot drift apart.
    #[test]
    fn readme_test_vector() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let block = &readme[readme.find("Test vector (checked by").expect("README has the test vector")..];
        let field = |name: &str| -> String {
            let line = block.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("README lacks {name}"));
            line[name.len()..].trim().to_owned()
        };
        let seed = hex::decode(field("secret key seed")).unwrap();
        let public = field("public key");
        let log_key: [u8; 32] = hex::decode(field("log key")).unwrap().try_into().unwrap();
        let request: Value = serde_json::from_str(&field("request")).unwrap();
        let signed = SignedCall::from_json(&request["auth"]).unwrap();
        let args = request["params"].as_array().unwrap();
        let method = request["method"].as_str().unwrap();
        assert_eq!(hex::encode(signed_bytes(&log_key, signed.seq, method, args).unwrap()), field("signed bytes"));
        let ours = sign(&seed, &log_key, signed.seq, method, args).unwrap();
        assert_eq!(hex::encode(ours.key), public);
        assert_eq!(hex::encode(ours.sig), field("signature"));
        assert_eq!(ours, signed);
        signed.verify(&log_key, method, args).unwrap();
    }
}
