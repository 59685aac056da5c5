//! Noise XX as hyperswarm uses it: `Noise_XX_Ed25519_ChaChaPoly_BLAKE2b`, empty prologue and
//! payloads. "Ed25519" DH multiplies the remote Edwards point by our clamped SHA-512(seed)
//! scalar (noise-curve-ed); hashes are BLAKE2b-512 and HKDF is HMAC-BLAKE2b (128-byte block).

use blake2::{Blake2b512, Digest};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use curve25519_dalek::edwards::CompressedEdwardsY;
use libvms_errors::{err, Result};
use sha2::Sha512;

const PROTOCOL: &[u8] = b"Noise_XX_Ed25519_ChaChaPoly_BLAKE2b";
pub const HASHLEN: usize = 64;

/// An Ed25519 key pair used for DH (seed + public key).
#[derive(Clone)]
pub struct DhKeyPair {
    seed: [u8; 32],
    pub public: [u8; 32],
}

impl DhKeyPair {
    pub fn from_seed(seed: [u8; 32]) -> DhKeyPair {
        let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        DhKeyPair { seed, public }
    }

    pub fn generate() -> Result<DhKeyPair> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| err::internal(format!("no randomness: {e}")))?;
        Ok(DhKeyPair::from_seed(seed))
    }

    fn scalar(&self) -> [u8; 32] {
        let h = Sha512::digest(self.seed);
        let mut s = [0u8; 32];
        s.copy_from_slice(&h[..32]);
        s
    }

    /// DH with a remote Ed25519 public key; refuses points outside the prime-order subgroup
    /// (libsodium `crypto_scalarmult_ed25519_noclamp` does too).
    pub fn dh(&self, remote: &[u8; 32]) -> Result<[u8; 32]> {
        let p = CompressedEdwardsY(*remote).decompress().ok_or_else(|| handshake("remote key is not a curve point"))?;
        if p.is_small_order() || !p.is_torsion_free() {
            return Err(handshake("remote key is not in the prime-order subgroup"));
        }
        let out = p.mul_clamped(self.scalar()).compress().to_bytes();
        if out == CompressedEdwardsY::default().to_bytes() || out.iter().all(|&b| b == 0) {
            return Err(handshake("DH result is the identity"));
        }
        Ok(out)
    }
}

fn handshake(msg: &str) -> libvms_errors::Error {
    err::connection(format!("noise handshake: {msg}"))
}

fn hash(parts: &[&[u8]]) -> [u8; HASHLEN] {
    let mut h = Blake2b512::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; HASHLEN] {
    let mut k = [0u8; 128];
    if key.len() > 128 {
        k[..HASHLEN].copy_from_slice(&hash(&[key]));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut inner_parts: Vec<&[u8]> = vec![&ipad];
    inner_parts.extend_from_slice(parts);
    let inner = hash(&inner_parts);
    hash(&[&opad, &inner])
}

/// HKDF with empty info, two outputs.
fn hkdf2(ck: &[u8], ikm: &[u8]) -> ([u8; HASHLEN], [u8; HASHLEN]) {
    let prk = hmac(ck, &[ikm]);
    let o1 = hmac(&prk, &[&[1u8]]);
    let o2 = hmac(&prk, &[&o1, &[2u8]]);
    (o1, o2)
}

fn nonce(n: u64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[4..].copy_from_slice(&n.to_le_bytes());
    out
}

/// Symmetric state of the handshake (h, ck and the current key).
struct Symmetric {
    h: [u8; HASHLEN],
    ck: [u8; HASHLEN],
    key: Option<[u8; 32]>,
    n: u64,
}

impl Symmetric {
    fn new() -> Symmetric {
        let mut h = [0u8; HASHLEN];
        h[..PROTOCOL.len()].copy_from_slice(PROTOCOL);
        let mut s = Symmetric { h, ck: h, key: None, n: 0 };
        s.mix_hash(&[]); // empty prologue
        s
    }

    fn mix_hash(&mut self, data: &[u8]) {
        self.h = hash(&[&self.h, data]);
    }

    fn mix_key(&mut self, dh: &[u8; 32]) {
        let (ck, k) = hkdf2(&self.ck, dh);
        self.ck = ck;
        let mut key = [0u8; 32];
        key.copy_from_slice(&k[..32]);
        self.key = Some(key);
        self.n = 0;
    }

    fn encrypt_and_hash(&mut self, plain: &[u8]) -> Result<Vec<u8>> {
        let out = match &self.key {
            None => plain.to_vec(),
            Some(k) => {
                let c = ChaCha20Poly1305::new(k.into());
                let out = c
                    .encrypt(&nonce(self.n).into(), Payload { msg: plain, aad: &self.h })
                    .map_err(|_| handshake("encrypt failed"))?;
                self.n += 1;
                out
            }
        };
        self.mix_hash(&out);
        Ok(out)
    }

    fn decrypt_and_hash(&mut self, ct: &[u8]) -> Result<Vec<u8>> {
        let out = match &self.key {
            None => ct.to_vec(),
            Some(k) => {
                let c = ChaCha20Poly1305::new(k.into());
                let out = c
                    .decrypt(&nonce(self.n).into(), Payload { msg: ct, aad: &self.h })
                    .map_err(|_| handshake("message failed authentication"))?;
                self.n += 1;
                out
            }
        };
        self.mix_hash(ct);
        Ok(out)
    }

    fn split(&self) -> ([u8; 32], [u8; 32]) {
        let (a, b) = hkdf2(&self.ck, &[]);
        (a[..32].try_into().expect("32"), b[..32].try_into().expect("32"))
    }
}

/// Result of a completed handshake.
#[derive(Clone, Debug)]
pub struct Completed {
    pub tx: [u8; 32],
    pub rx: [u8; 32],
    pub handshake_hash: [u8; HASHLEN],
    pub remote_static: [u8; 32],
    pub is_initiator: bool,
}

/// The XX state machine: `write`/`read` alternate as the pattern says; messages are raw bytes.
pub struct Handshake {
    initiator: bool,
    sym: Symmetric,
    s: DhKeyPair,
    e: DhKeyPair,
    re: Option<[u8; 32]>,
    rs: Option<[u8; 32]>,
    step: u8,
}

impl Handshake {
    pub fn new(initiator: bool, static_key: DhKeyPair, ephemeral: DhKeyPair) -> Handshake {
        Handshake { initiator, sym: Symmetric::new(), s: static_key, e: ephemeral, re: None, rs: None, step: 0 }
    }

    fn order(&self, want: u8) -> Result<()> {
        if self.step != want {
            return Err(handshake("message out of order"));
        }
        Ok(())
    }

    /// msg1 (initiator): e.
    pub fn write_msg1(&mut self) -> Result<Vec<u8>> {
        self.order(0)?;
        let mut out = self.e.public.to_vec();
        self.sym.mix_hash(&self.e.public);
        out.extend(self.sym.encrypt_and_hash(&[])?);
        self.step = 1;
        Ok(out)
    }

    /// msg1 (responder).
    pub fn read_msg1(&mut self, m: &[u8]) -> Result<()> {
        self.order(0)?;
        if m.len() != 32 {
            return Err(handshake("msg1 must be 32 bytes"));
        }
        let re: [u8; 32] = m.try_into().expect("32");
        self.sym.mix_hash(&re);
        self.re = Some(re);
        self.sym.decrypt_and_hash(&[])?;
        self.step = 1;
        Ok(())
    }

    /// msg2 (responder): e, ee, s, es.
    pub fn write_msg2(&mut self) -> Result<Vec<u8>> {
        self.order(1)?;
        let re = self.re.ok_or_else(|| handshake("no remote ephemeral"))?;
        let mut out = self.e.public.to_vec();
        self.sym.mix_hash(&self.e.public);
        self.sym.mix_key(&self.e.dh(&re)?);
        out.extend(self.sym.encrypt_and_hash(&self.s.public)?);
        self.sym.mix_key(&self.s.dh(&re)?);
        out.extend(self.sym.encrypt_and_hash(&[])?);
        self.step = 2;
        Ok(out)
    }

    /// msg2 (initiator).
    pub fn read_msg2(&mut self, m: &[u8]) -> Result<()> {
        self.order(1)?;
        if m.len() != 96 {
            return Err(handshake("msg2 must be 96 bytes"));
        }
        let re: [u8; 32] = m[..32].try_into().expect("32");
        self.sym.mix_hash(&re);
        self.sym.mix_key(&self.e.dh(&re)?);
        let rs: [u8; 32] = self.sym.decrypt_and_hash(&m[32..80])?.try_into().map_err(|_| handshake("bad static key"))?;
        self.sym.mix_key(&self.e.dh(&rs)?);
        self.sym.decrypt_and_hash(&m[80..])?;
        self.re = Some(re);
        self.rs = Some(rs);
        self.step = 2;
        Ok(())
    }

    /// msg3 (initiator): s, se.
    pub fn write_msg3(&mut self) -> Result<(Vec<u8>, Completed)> {
        self.order(2)?;
        let re = self.re.ok_or_else(|| handshake("no remote ephemeral"))?;
        let mut out = self.sym.encrypt_and_hash(&self.s.public)?;
        self.sym.mix_key(&self.s.dh(&re)?);
        out.extend(self.sym.encrypt_and_hash(&[])?);
        self.step = 3;
        let mut c = self.complete()?;
        c.remote_static = self.rs.ok_or_else(|| handshake("no remote static key"))?;
        Ok((out, c))
    }

    /// msg3 (responder).
    pub fn read_msg3(&mut self, m: &[u8]) -> Result<Completed> {
        self.order(2)?;
        if m.len() != 64 {
            return Err(handshake("msg3 must be 64 bytes"));
        }
        let rs: [u8; 32] = self.sym.decrypt_and_hash(&m[..48])?.try_into().map_err(|_| handshake("bad static key"))?;
        self.sym.mix_key(&self.e.dh(&rs)?);
        self.sym.decrypt_and_hash(&m[48..])?;
        self.rs = Some(rs);
        self.step = 3;
        self.complete()
    }

    fn complete(&self) -> Result<Completed> {
        let (k1, k2) = self.sym.split();
        let (tx, rx) = if self.initiator { (k1, k2) } else { (k2, k1) };
        Ok(Completed { tx, rx, handshake_hash: self.sym.h, remote_static: self.rs.unwrap_or_default(), is_initiator: self.initiator })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xx_handshake_agrees_on_keys_and_hash() {
        let mut i = Handshake::new(true, DhKeyPair::from_seed([1; 32]), DhKeyPair::from_seed([2; 32]));
        let mut r = Handshake::new(false, DhKeyPair::from_seed([3; 32]), DhKeyPair::from_seed([4; 32]));
        let m1 = i.write_msg1().unwrap();
        assert_eq!(m1.len(), 32);
        r.read_msg1(&m1).unwrap();
        let m2 = r.write_msg2().unwrap();
        assert_eq!(m2.len(), 96);
        i.read_msg2(&m2).unwrap();
        let (m3, ci) = i.write_msg3().unwrap();
        assert_eq!(m3.len(), 64);
        let cr = r.read_msg3(&m3).unwrap();
        assert_eq!(ci.tx, cr.rx);
        assert_eq!(ci.rx, cr.tx);
        assert_ne!(ci.tx, ci.rx);
        assert_eq!(ci.handshake_hash, cr.handshake_hash);
        assert_eq!(ci.remote_static, DhKeyPair::from_seed([3; 32]).public);
        assert_eq!(cr.remote_static, DhKeyPair::from_seed([1; 32]).public);
    }

    #[test]
    fn tampered_msg2_fails() {
        let mut i = Handshake::new(true, DhKeyPair::from_seed([1; 32]), DhKeyPair::from_seed([2; 32]));
        let mut r = Handshake::new(false, DhKeyPair::from_seed([3; 32]), DhKeyPair::from_seed([4; 32]));
        r.read_msg1(&i.write_msg1().unwrap()).unwrap();
        let mut m2 = r.write_msg2().unwrap();
        m2[40] ^= 1;
        assert!(i.read_msg2(&m2).is_err());
    }

    #[test]
    fn dh_is_symmetric_and_ed25519_keys_are_the_sign_keys() {
        let a = DhKeyPair::from_seed([9; 32]);
        let b = DhKeyPair::from_seed([10; 32]);
        assert_eq!(a.dh(&b.public).unwrap(), b.dh(&a.public).unwrap());
        assert!(a.dh(&[0u8; 32]).is_err());
    }

    #[test]
    fn hmac_blake2b_matches_rfc_construction() {
        // HMAC(key, m) = H(opad ‖ H(ipad ‖ m)), with a 128-byte block: spot-check the padding rule.
        let long_key = [7u8; 200];
        assert_eq!(hmac(&long_key, &[b"x"]), hmac(&hash(&[&long_key]), &[b"x"]));
        assert_ne!(hmac(b"k", &[b"x"]), hmac(b"k", &[b"y"]));
    }
}
