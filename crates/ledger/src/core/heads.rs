//! Signed heads of recent lengths, so a host can serve a prefix of a core that is still growing: an archive is
//! served only up to the version its VM's durable call log accounts for, while the next call may already have
//! appended past it. Off unless asked for (`keep_signed_heads`); a truncation forgets them.

use libvms_errors::{err, Result};

use crate::proof::{Proof, ProofRequest};
use crate::tree::total_size;

use super::Core;

impl Core {
    /// Remember the signature of each of the last `n` lengths this handle appended (0: none, the default).
    pub fn keep_signed_heads(&mut self, n: usize) {
        self.heads_kept = n;
        self.record_head();
    }

    /// After an append (and when asked to start keeping heads): the current length's signature.
    pub(super) fn record_head(&mut self) {
        if self.heads_kept == 0 {
            return;
        }
        let Some(sig) = self.signature.clone() else { return };
        if self.heads.back().is_some_and(|(l, _)| *l >= self.length) {
            self.heads.clear(); // shorter than the last one kept: a truncation happened
        }
        while self.heads.len() >= self.heads_kept {
            self.heads.pop_front();
        }
        self.heads.push_back((self.length, sig));
    }

    /// Whether a proof can be served as of `length` (the current length, or a kept head).
    pub fn can_serve_at(&self, length: u64) -> bool {
        length == self.length || self.heads.iter().any(|(l, _)| *l == length)
    }

    /// The proof a peer asked for, as of `length` (at most the current length, with a kept signed head): the
    /// upgrade goes no further, and no block past it is served.
    pub fn proof_at(&mut self, req: &ProofRequest, length: u64) -> Result<Proof> {
        if length >= self.length {
            return self.proof(req);
        }
        // Only an upgrade carries the signature; a block or hash proof needs just the tree as of `length`.
        let sig = self.heads.iter().find(|(l, _)| *l == length).map(|(_, s)| s.clone());
        if req.upgrade.is_some() && sig.is_none() {
            return Err(err::bad_argument(format!("no signed head kept for length {length}")));
        }
        let roots = self.read_roots(length)?;
        let byte_length = total_size(&roots).ok_or_else(|| err::corrupt("tree sizes overflow"))?;
        self.proof_against(req, &roots, length, byte_length, sig)
    }

    pub(super) fn forget_heads(&mut self) {
        self.heads.clear();
    }
}
