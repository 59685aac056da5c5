//! The client's side of signed mode: numbering and signing each request for the VM the handshake named.

use std::time::{SystemTime, UNIX_EPOCH};

use libvms_auth::call;
use libvms_errors::{err, Result};
use serde_json::Value;

pub(crate) struct Signer {
    /// Expanded once: deriving it from the seed costs as much as a signature.
    key: call::SigningKey,
    log_key: Option<[u8; 32]>,
    last_seq: u64,
}

impl Signer {
    pub(crate) fn new(secret: &[u8]) -> Result<Signer> {
        if secret.len() != 32 && secret.len() != 64 {
            return Err(err::bad_argument("secretKey must be 32 or 64 bytes (Ed25519)"));
        }
        let seed: [u8; 32] = secret[..32].try_into().expect("checked length");
        Ok(Signer { key: call::SigningKey::from_bytes(&seed), log_key: None, last_seq: 0 })
    }

    /// The log key from the handshake's `callLogUrl` (`dat://` + 64 hex).
    pub(crate) fn learn(&mut self, info: &Value) {
        let url = info.get("callLogUrl").and_then(Value::as_str).unwrap_or_default();
        let hex = url.strip_prefix("dat://").unwrap_or(url);
        self.log_key = hex::decode(hex).ok().and_then(|k| k.try_into().ok());
    }

    /// Add `"auth": {key, seq, sig}` to a request's text. The sequence number is the time in microseconds (or one
    /// more than the last, if that is later): it rises across reconnects and restarts of the client with no store,
    /// and stays below 2^53 for two centuries.
    pub(crate) fn sign_request(&mut self, mut text: String, method: &str, params: &[Value]) -> Result<String> {
        let log_key = self.log_key.ok_or_else(|| err::bad_argument("a signing client needs the handshake's callLogUrl first"))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
        let seq = now.max(self.last_seq + 1);
        let signed = call::sign_with(&self.key, &log_key, seq, method, params)
            .map_err(|e| err::encoding(format!("cannot sign {method}: {e}")))?;
        self.last_seq = seq;
        text.pop();
        text.push_str(",\"auth\":");
        text.push_str(&signed.to_json_text());
        text.push('}');
        Ok(text)
    }
}
