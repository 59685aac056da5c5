//! Hashes (hypercore-crypto), capability namespaces (caps.js), manifests and their hash, tree
//! signables, and the verifier/signer rules of hypercore 10.38.2 (compat, manifest v0, manifest v1).

use blake2::digest::consts::U32;
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use libvms_errors::{err, Result};

use crate::encoding::{Decoder, Encoder};
use crate::tree::Node;

type B2 = Blake2b<U32>;

/// BLAKE2b-256 of the concatenated parts. Tree hashing is the hot path of every verified read, so it uses the
/// SIMD implementation (runtime-detected AVX2/SSE4.1, portable otherwise).
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = blake2b_simd::Params::new().hash_length(32).to_state();
    for p in parts {
        h.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(h.finalize().as_bytes());
    out
}

/// Leaf hash: `H(0x00 ‖ u64le(len) ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    hash(&[&[0u8], &(data.len() as u64).to_le_bytes(), data])
}

pub fn leaf_node(index: u64, data: &[u8]) -> Node {
    Node { index, size: data.len() as u64, hash: leaf_hash(data) }
}

/// Parent of two nodes (ordered by index, as hypercore-crypto does). None if the sizes overflow,
/// which only a hostile proof can cause.
pub fn parent_node(index: u64, a: &Node, b: &Node) -> Option<Node> {
    let (l, r) = if a.index <= b.index { (a, b) } else { (b, a) };
    let size = l.size.checked_add(r.size)?;
    let h = hash(&[&[1u8], &size.to_le_bytes(), &l.hash, &r.hash]);
    Some(Node { index, size, hash: h })
}

/// Tree hash over the roots in ascending order.
pub fn tree_hash(roots: &[Node]) -> [u8; 32] {
    let mut h = B2::new();
    h.update([2u8]);
    for r in roots {
        h.update(r.hash);
        h.update(r.index.to_le_bytes());
        h.update(r.size.to_le_bytes());
    }
    h.finalize().into()
}

/// `caps[i] = H(H("hypercore") ‖ byte(i))`.
fn cap(i: u8) -> [u8; 32] {
    let ns = hash(&[b"hypercore"]);
    hash(&[&ns, &[i]])
}

pub fn cap_tree() -> [u8; 32] {
    cap(0)
}
pub fn cap_manifest() -> [u8; 32] {
    cap(3)
}
pub fn default_namespace() -> [u8; 32] {
    cap(4)
}
pub fn cap_replicate(initiator: bool) -> [u8; 32] {
    cap(if initiator { 1 } else { 2 })
}

/// Keyed BLAKE2b-256 of "hypercore" under the core key.
pub fn discovery_key(key: &[u8; 32]) -> [u8; 32] {
    // A 32-byte key is always a valid BLAKE2b key, so this cannot fail.
    let mut m = <Blake2bMac<U32> as blake2::digest::KeyInit>::new_from_slice(key)
        .expect("32-byte key is valid for BLAKE2b");
    m.update(b"hypercore");
    m.finalize().into_bytes().into()
}

pub fn signable_compat(tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 80] {
    let mut out = [0u8; 80];
    out[..32].copy_from_slice(&cap_tree());
    out[32..64].copy_from_slice(tree_hash);
    out[64..72].copy_from_slice(&length.to_le_bytes());
    out[72..80].copy_from_slice(&fork.to_le_bytes());
    out
}

/// Non-compat signable: `ctx` is the signer namespace (manifest v0) or the manifest hash (v1).
pub fn signable(ctx: &[u8; 32], tree_hash: &[u8; 32], length: u64, fork: u64) -> [u8; 112] {
    let mut out = [0u8; 112];
    out[..32].copy_from_slice(&cap_tree());
    out[32..64].copy_from_slice(ctx);
    out[64..96].copy_from_slice(tree_hash);
    out[96..104].copy_from_slice(&length.to_le_bytes());
    out[104..112].copy_from_slice(&fork.to_le_bytes());
    out
}

/// An Ed25519 key pair; `secret` is libsodium's 64-byte form `seed ‖ public`.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub public: [u8; 32],
    pub secret: Option<[u8; 64]>,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("KeyPair")
            .field("public", &hex32(&self.public))
            .field("secret", &self.secret.map(|_| "<redacted>"))
            .finish()
    }
}

fn hex32(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        let mut seed = [0u8; 32];
        // getrandom only fails when the OS has no entropy source at all; nothing sane to do then.
        getrandom::getrandom(&mut seed).expect("OS random source unavailable");
        KeyPair::from_seed(seed)
    }

    pub fn from_seed(seed: [u8; 32]) -> KeyPair {
        let sk = SigningKey::from_bytes(&seed);
        let public = sk.verifying_key().to_bytes();
        let mut secret = [0u8; 64];
        secret[..32].copy_from_slice(&seed);
        secret[32..].copy_from_slice(&public);
        KeyPair { public, secret: Some(secret) }
    }

    /// The signing key, if the secret is present and matches the public key.
    pub(crate) fn signing_key(&self) -> Option<SigningKey> {
        let secret = self.secret?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&secret[..32]);
        let sk = SigningKey::from_bytes(&seed);
        if sk.verifying_key().to_bytes() != self.public {
            return None;
        }
        Some(sk)
    }
}

pub fn verify_ed25519(msg: &[u8], sig: &[u8], public: &[u8; 32]) -> bool {
    let Ok(sig): std::result::Result<[u8; 64], _> = sig.try_into() else { return false };
    let Ok(vk) = VerifyingKey::from_bytes(public) else { return false };
    vk.verify_strict(msg, &Signature::from_bytes(&sig)).is_ok()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerInfo {
    pub namespace: [u8; 32],
    pub public_key: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prologue {
    pub hash: [u8; 32],
    pub length: u64,
}

/// A manifest as stored in the oplog header (section 3 of the format notes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub version: u64,
    pub allow_patch: bool,
    pub quorum: u64,
    pub signers: Vec<SignerInfo>,
    pub prologue: Option<Prologue>,
}

impl Manifest {
    /// What `new Hypercore(dir, {keyPair})` stores: v1, one signer, default namespace.
    pub fn default_signer(public_key: [u8; 32]) -> Manifest {
        Manifest {
            version: 1,
            allow_patch: false,
            quorum: 1,
            signers: vec![SignerInfo { namespace: default_namespace(), public_key }],
            prologue: None,
        }
    }

    pub fn encode(&self, e: &mut Encoder) {
        e.uint(self.version);
        if self.version == 0 {
            e.uint(0); // hash: blake2b
            if let (Some(p), true) = (&self.prologue, self.signers.is_empty()) {
                e.uint(0);
                e.raw(&p.hash);
                return;
            }
            if self.quorum == 1 && self.signers.len() == 1 && !self.allow_patch {
                e.uint(1);
                encode_signer(e, &self.signers[0]);
            } else {
                e.uint(2);
                e.uint(self.allow_patch as u64);
                e.uint(self.quorum);
                e.uint(self.signers.len() as u64);
                for s in &self.signers {
                    encode_signer(e, s);
                }
            }
            return;
        }
        e.uint((self.allow_patch as u64) | if self.prologue.is_some() { 2 } else { 0 });
        e.uint(0); // hash: blake2b
        e.uint(self.quorum);
        e.uint(self.signers.len() as u64);
        for s in &self.signers {
            encode_signer(e, s);
        }
        if let Some(p) = &self.prologue {
            e.raw(&p.hash);
            e.uint(p.length);
        }
    }

    pub fn decode(d: &mut Decoder) -> Result<Manifest> {
        let version = d.uint()?;
        if version == 0 {
            decode_hash_alg(d)?;
            let ty = d.uint()?;
            return match ty {
                0 => Ok(Manifest {
                    version: 0,
                    allow_patch: false,
                    quorum: 0,
                    signers: vec![],
                    prologue: Some(Prologue { hash: d.fixed()?, length: 0 }),
                }),
                1 => Ok(Manifest {
                    version: 0,
                    allow_patch: false,
                    quorum: 1,
                    signers: vec![decode_signer(d)?],
                    prologue: None,
                }),
                2 => {
                    let flags = d.uint()?;
                    let quorum = d.uint()?;
                    let signers = decode_signers(d)?;
                    Ok(Manifest { version: 0, allow_patch: flags & 1 != 0, quorum, signers, prologue: None })
                }
                _ => Err(err::corrupt(format!("unknown manifest v0 type {ty}"))),
            };
        }
        if version != 1 {
            return Err(err::corrupt(format!("unknown manifest version {version}")));
        }
        let flags = d.uint()?;
        decode_hash_alg(d)?;
        let quorum = d.uint()?;
        let signers = decode_signers(d)?;
        let prologue = if flags & 2 != 0 { Some(Prologue { hash: d.fixed()?, length: d.uint()? }) } else { None };
        Ok(Manifest { version: 1, allow_patch: flags & 1 != 0, quorum, signers, prologue })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        self.encode(&mut e);
        e.buf
    }

    /// `H(MANIFEST ‖ encode(manifest))`: the key of a non-compat core.
    pub fn hash(&self) -> [u8; 32] {
        hash(&[&cap_manifest(), &self.to_bytes()])
    }

    /// Compat: exactly one signer whose public key is the core key.
    pub fn is_compat(&self, key: &[u8; 32]) -> bool {
        self.signers.len() == 1 && &self.signers[0].public_key == key
    }
}

fn encode_signer(e: &mut Encoder, s: &SignerInfo) {
    e.uint(0); // ed25519
    e.raw(&s.namespace);
    e.raw(&s.public_key);
}

fn decode_signer(d: &mut Decoder) -> Result<SignerInfo> {
    let alg = d.uint()?;
    if alg != 0 {
        return Err(err::corrupt(format!("unknown signature algorithm {alg}")));
    }
    Ok(SignerInfo { namespace: d.fixed()?, public_key: d.fixed()? })
}

fn decode_signers(d: &mut Decoder) -> Result<Vec<SignerInfo>> {
    let n = d.array_len(65)?;
    (0..n).map(|_| decode_signer(d)).collect()
}

fn decode_hash_alg(d: &mut Decoder) -> Result<()> {
    match d.uint()? {
        0 => Ok(()),
        n => Err(err::corrupt(format!("unknown hash algorithm {n}"))),
    }
}

/// How signatures are made and checked for one core (lib/verifier.js).
#[derive(Clone, Debug)]
pub struct Verifier {
    pub key: [u8; 32],
    pub compat: bool,
    version: u64,
    allow_patch: bool,
    quorum: u64,
    signers: Vec<SignerInfo>,
    prologue: Option<Prologue>,
}

impl Verifier {
    /// `manifest = None` means a compat core whose manifest is derived from the key.
    pub fn new(key: [u8; 32], manifest: Option<&Manifest>) -> Verifier {
        match manifest {
            None => Verifier {
                key,
                compat: true,
                version: 0,
                allow_patch: false,
                quorum: 1,
                signers: vec![SignerInfo { namespace: default_namespace(), public_key: key }],
                prologue: None,
            },
            Some(m) => {
                let compat = m.is_compat(&key);
                Verifier {
                    key,
                    compat,
                    version: if compat { 0 } else { m.version },
                    allow_patch: !compat && m.allow_patch,
                    quorum: if compat { 1 } else { m.quorum },
                    signers: m.signers.clone(),
                    prologue: if compat { None } else { m.prologue.clone() },
                }
            }
        }
    }

    pub fn prologue(&self) -> Option<&Prologue> {
        self.prologue.as_ref()
    }

    fn signable_for(&self, s: &SignerInfo, th: &[u8; 32], length: u64, fork: u64) -> Vec<u8> {
        if self.compat {
            signable_compat(th, length, fork).to_vec()
        } else if self.version == 0 {
            signable(&s.namespace, th, length, fork).to_vec()
        } else {
            signable(&self.key, th, length, fork).to_vec()
        }
    }

    /// Does `signature` sign the tree (hash, length, fork)?
    pub fn verify(&self, th: &[u8; 32], length: u64, fork: u64, signature: &[u8]) -> bool {
        if self.version == 1 {
            if let Some(p) = &self.prologue {
                if length <= p.length {
                    return length == p.length && th == &p.hash;
                }
            }
            return self.verify_multi(th, length, fork, signature, true);
        }
        if self.compat || (!self.allow_patch && self.signers.len() == 1) {
            return match self.signers.first() {
                Some(s) => verify_ed25519(&self.signable_for(s, th, length, fork), signature, &s.public_key),
                None => false,
            };
        }
        self.verify_multi(th, length, fork, signature, false)
    }

    fn verify_multi(&self, th: &[u8; 32], length: u64, fork: u64, signature: &[u8], v1: bool) -> bool {
        if self.quorum == 0 {
            return false;
        }
        let Ok(proofs) = decode_multisig(signature, v1) else { return false };
        if (proofs.len() as u64) < self.quorum {
            return false;
        }
        let mut tried = vec![false; self.signers.len()];
        for p in proofs.iter().take(self.quorum as usize) {
            // Patched signatures (signing an older length) are not supported: reject rather than guess.
            if p.patch {
                return false;
            }
            let Some(s) = usize::try_from(p.signer).ok().and_then(|i| self.signers.get(i)) else { return false };
            let i = p.signer as usize;
            if tried[i] {
                return false;
            }
            tried[i] = true;
            if !verify_ed25519(&self.signable_for(s, th, length, fork), &p.signature, &s.public_key) {
                return false;
            }
        }
        true
    }

    /// Sign the tree with `kp`, in this core's signature form.
    pub fn sign(&self, th: &[u8; 32], length: u64, fork: u64, kp: &KeyPair) -> Result<Vec<u8>> {
        let sk = kp.signing_key().ok_or_else(|| err::not_writable("no usable secret key"))?;
        let (i, s) = self
            .signers
            .iter()
            .enumerate()
            .find(|(_, s)| s.public_key == kp.public)
            .ok_or_else(|| err::not_writable("key pair is not a signer of this core"))?;
        let sig = sk.sign(&self.signable_for(s, th, length, fork)).to_bytes();
        if self.compat || self.version == 0 {
            if self.signers.len() != 1 || self.allow_patch {
                return Err(err::not_writable("multi-signer cores are not supported for writing"));
            }
            return Ok(sig.to_vec());
        }
        if self.quorum != 1 || self.signers.len() != 1 {
            return Err(err::not_writable("multi-signer cores are not supported for writing"));
        }
        // v1 multisig with one proof and no patch nodes: 01 <signer> <sig64> 00 00.
        let mut e = Encoder::new();
        e.uint(1);
        e.uint(i as u64);
        e.raw(&sig);
        e.uint(0);
        e.uint(0);
        Ok(e.buf)
    }
}

struct MultisigProof {
    signer: u64,
    signature: [u8; 64],
    patch: bool,
}

fn decode_multisig(b: &[u8], v1: bool) -> Result<Vec<MultisigProof>> {
    let mut d = Decoder::new(b);
    let n = d.array_len(66)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if v1 {
            let signer = d.uint()?;
            let signature = d.fixed()?;
            let patch = d.uint()?;
            out.push(MultisigProof { signer, signature, patch: patch != 0 });
        } else {
            let flags = d.uint()?;
            let signer = d.uint()?;
            let signature = d.fixed()?;
            if flags & 1 != 0 {
                // start, length, nodes[]: parsed only to stay aligned; patched proofs are refused.
                d.uint()?;
                d.uint()?;
                let k = d.array_len(1)?;
                for _ in 0..k {
                    d.uint()?;
                }
            }
            out.push(MultisigProof { signer, signature, patch: flags & 1 != 0 });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hx(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn namespaces() {
        assert_eq!(cap_tree().to_vec(), hx("9fac70b50ca14efc4e91c833b204e75b8b5aad8b5881bfc0adb5ef38a3275b9c"));
        assert_eq!(cap_manifest().to_vec(), hx("e64b7108eacce47cfc61ac850568f55f8b15b82ec5ed78c4ec597b036e2a1498"));
        assert_eq!(default_namespace().to_vec(), hx("4144eea531e483d54e0c14f4ca68e0644f355343ff6fcb0f005200e12cd747cb"));
        assert_eq!(cap_replicate(true).to_vec(), hx("51812a2a359b50369536775df89e18e47740f3db72ac0ae70b29594c194dc316"));
    }

    #[test]
    fn leaves_and_keys() {
        assert_eq!(leaf_hash(b"a").to_vec(), hx("423177bd3da55c6ac57419beff9c763bab05e12a6d8908b38b7fc14360228d4a"));
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = i as u8;
        }
        let kp = KeyPair::from_seed(seed);
        assert_eq!(kp.public.to_vec(), hx("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"));
        assert_eq!(
            discovery_key(&kp.public).to_vec(),
            hx("daaf3d66c0c7b35b2a9ca711d5cac1154025f2a37f9dd714ee59a894edaa90a9")
        );
        let m1 = Manifest::default_signer(kp.public);
        assert_eq!(m1.to_bytes().len(), 70);
        assert_eq!(m1.hash().to_vec(), hx("798b52954f2f524c0a491fd95e508007de655fbdc048947a8afa2e65f1a03b77"));
        let mut m0 = m1.clone();
        m0.version = 0;
        assert_eq!(m0.to_bytes().len(), 68);
        assert_eq!(m0.hash().to_vec(), hx("02da2443e084d390eda3bc83593e3e71454446781be7291551ed1790c947e8f5"));
        let back = Manifest::decode(&mut Decoder::new(&m0.to_bytes())).unwrap();
        assert_eq!(back, m0);
    }
}
