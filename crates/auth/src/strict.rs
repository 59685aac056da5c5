//! Ed25519 as ed25519-dalek's `verify_strict` checks it, for a caller whose key is checked once and kept.
//!
//! `verify_strict` accepts a signature `(R, s)` by key `A` on `M` when: `s` is canonical (below the group order),
//! `R` decodes to a point, neither that point nor `A` has small order, and `[s]B - [k]A` encodes to exactly the
//! bytes `R` (`k = SHA-512(R || A || M)`). Here `A`'s checks are made once, when the key is kept, and `R` is not
//! decoded (a square root): once `[s]B - [k]A` encodes to `R`'s bytes, that point is what `R` decodes to, so the
//! small-order check is made on it instead. The same signatures pass; the tests hold it against `verify_strict`.
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// A caller's key, decoded and checked once.
#[derive(Clone, Copy, Debug)]
pub struct CallerKey {
    key: [u8; 32],
    minus_a: EdwardsPoint,
    /// A small-order key: every signature by it is refused.
    weak: bool,
}

impl CallerKey {
    /// `None` when the bytes are no point on the curve (no signature by them can be valid).
    pub fn new(key: &[u8; 32]) -> Option<CallerKey> {
        let vk = VerifyingKey::from_bytes(key).ok()?;
        Some(CallerKey { key: *key, minus_a: -vk.to_edwards(), weak: vk.is_weak() })
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Whether `sig` is a valid signature of `msg` by this key, exactly as `verify_strict` decides it.
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        if self.weak {
            return false;
        }
        let (r, s) = sig.split_at(32);
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s.try_into().expect("32 bytes"))) else {
            return false;
        };
        let k = Scalar::from_hash(Sha512::new().chain_update(r).chain_update(self.key).chain_update(msg));
        let expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &self.minus_a, &s);
        expected.compress().as_bytes() == r && !expected.is_small_order()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::ED25519_BASEPOINT_POINT as B;
    use curve25519_dalek::traits::Identity;
    use ed25519_dalek::{Signature, Signer, SigningKey, Verifier};

    fn strict(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(key).is_ok_and(|vk| vk.verify_strict(msg, &Signature::from_bytes(sig)).is_ok())
    }

    fn ours(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        CallerKey::new(key).is_some_and(|k| k.verify(msg, sig))
    }

    /// Both checks agree, and on what is expected.
    fn agree(key: &[u8; 32], msg: &[u8], sig: &[u8; 64], valid: bool, what: &str) {
        assert_eq!(strict(key, msg, sig), valid, "verify_strict: {what}");
        assert_eq!(ours(key, msg, sig), valid, "ours: {what}");
    }

    #[test]
    fn agrees_with_verify_strict_on_valid_and_altered_signatures() {
        let mut seed = [0u8; 32];
        for i in 0..64u8 {
            seed[0] = i;
            let sk = SigningKey::from_bytes(&seed);
            let key = sk.verifying_key().to_bytes();
            let msg = vec![i; i as usize];
            let sig = sk.sign(&msg).to_bytes();
            agree(&key, &msg, &sig, true, "valid");
            let mut other = msg.clone();
            other.push(1);
            agree(&key, &other, &sig, false, "another message");
            for at in [0, 17, 31, 32, 40, 63] {
                let mut bad = sig;
                bad[at] ^= 1 << (i % 8);
                agree(&key, &msg, &bad, false, "a flipped bit");
            }
            let mut bad_key = key;
            bad_key[5] ^= 1;
            assert_eq!(ours(&bad_key, &msg, &sig), strict(&bad_key, &msg, &sig), "another key");
        }
    }

    #[test]
    fn refuses_what_verify_strict_refuses_and_plain_verify_accepts() {
        let sk = SigningKey::from_bytes(&[7; 32]);
        let key = sk.verifying_key().to_bytes();
        let msg = b"m";
        let sig = sk.sign(msg).to_bytes();
        // s + l: the same equation with a non-canonical s (malleability).
        // The group order l, little-endian.
        let mut l = [0u8; 32];
        l[..16].copy_from_slice(&hex::decode("edd3f55c1a631258d69cf7a2def9de14").unwrap());
        l[31] = 0x10;
        let mut big = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = big[32 + i] as u16 + l[i] as u16 + carry;
            big[32 + i] = v as u8;
            carry = v >> 8;
        }
        agree(&key, msg, &big, false, "s not reduced");

        // A small-order key (the identity) with R the identity and s = 0: the equation holds.
        let identity = EdwardsPoint::identity().compress().to_bytes();
        let mut zero_sig = [0u8; 64];
        zero_sig[..32].copy_from_slice(&identity);
        assert!(VerifyingKey::from_bytes(&identity).unwrap().verify(msg, &Signature::from_bytes(&zero_sig)).is_ok());
        agree(&identity, msg, &zero_sig, false, "small-order key");

        // A good key, R the identity, s = k·a: [s]B - [k]A is the identity, so the equation holds.
        let a = Scalar::from_bytes_mod_order([3; 32]);
        let public = (a * B).compress().to_bytes();
        let k = Scalar::from_hash(Sha512::new().chain_update(identity).chain_update(public).chain_update(msg));
        let mut weak_r = [0u8; 64];
        weak_r[..32].copy_from_slice(&identity);
        weak_r[32..].copy_from_slice((k * a).as_bytes());
        assert!(VerifyingKey::from_bytes(&public).unwrap().verify(msg, &Signature::from_bytes(&weak_r)).is_ok());
        agree(&public, msg, &weak_r, false, "small-order R");

        // R that is no point at all.
        let mut junk = sig;
        junk[..32].copy_from_slice(&[0xff; 32]);
        agree(&key, msg, &junk, false, "R off the curve");
    }
}
