//! libsodium `crypto_secretstream_xchacha20poly1305` (what @hyperswarm/secret-stream wraps):
//! a 24-byte header, then per message `tag ‖ ciphertext ‖ 16-byte MAC` (17 bytes of overhead).
//! Written out from the libsodium construction, including its Poly1305 padding quirk.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use libvms_errors::{err, Result};
use poly1305::universal_hash::KeyInit;
use poly1305::Poly1305;

pub const HEADER_BYTES: usize = 24;
pub const ABYTES: usize = 17;
pub const TAG_MESSAGE: u8 = 0;
const TAG_REKEY: u8 = 2;

/// HChaCha20 (the key derivation step of XChaCha20).
fn hchacha20(key: &[u8; 32], input: &[u8; 16]) -> [u8; 32] {
    let mut s = [0u32; 16];
    s[0] = 0x6170_7865;
    s[1] = 0x3320_646e;
    s[2] = 0x7962_2d32;
    s[3] = 0x6b20_6574;
    for i in 0..8 {
        s[4 + i] = u32::from_le_bytes(key[4 * i..4 * i + 4].try_into().expect("4"));
    }
    for i in 0..4 {
        s[12 + i] = u32::from_le_bytes(input[4 * i..4 * i + 4].try_into().expect("4"));
    }
    fn qr(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(16);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(12);
        s[a] = s[a].wrapping_add(s[b]);
        s[d] = (s[d] ^ s[a]).rotate_left(8);
        s[c] = s[c].wrapping_add(s[d]);
        s[b] = (s[b] ^ s[c]).rotate_left(7);
    }
    for _ in 0..10 {
        qr(&mut s, 0, 4, 8, 12);
        qr(&mut s, 1, 5, 9, 13);
        qr(&mut s, 2, 6, 10, 14);
        qr(&mut s, 3, 7, 11, 15);
        qr(&mut s, 0, 5, 10, 15);
        qr(&mut s, 1, 6, 11, 12);
        qr(&mut s, 2, 7, 8, 13);
        qr(&mut s, 3, 4, 9, 14);
    }
    let mut out = [0u8; 32];
    for (i, w) in [0usize, 1, 2, 3, 12, 13, 14, 15].iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&s[*w].to_le_bytes());
    }
    out
}

/// One direction of a secretstream (push or pull share the state layout).
pub struct State {
    k: [u8; 32],
    /// 4-byte little-endian counter ‖ 8-byte inonce: the ChaCha20-IETF nonce.
    nonce: [u8; 12],
}

impl State {
    fn new(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> State {
        let k = hchacha20(key, header[..16].try_into().expect("16"));
        let mut nonce = [0u8; 12];
        nonce[0] = 1;
        nonce[4..].copy_from_slice(&header[16..]);
        State { k, nonce }
    }

    /// A push state and the header to send.
    pub fn init_push(key: &[u8; 32]) -> Result<(State, [u8; HEADER_BYTES])> {
        let mut header = [0u8; HEADER_BYTES];
        getrandom::getrandom(&mut header).map_err(|e| err::internal(format!("no randomness: {e}")))?;
        Ok((State::new(key, &header), header))
    }

    pub fn init_pull(key: &[u8; 32], header: &[u8; HEADER_BYTES]) -> State {
        State::new(key, header)
    }

    fn cipher(&self, block_counter: u32) -> ChaCha20 {
        let mut c = ChaCha20::new(&self.k.into(), &self.nonce.into());
        c.seek(64u64 * block_counter as u64);
        c
    }

    /// MAC over the libsodium layout: block(64) ‖ c ‖ pad(mlen & 15) ‖ u64le(0) ‖ u64le(64 + mlen).
    fn mac(&self, block: &[u8; 64], c: &[u8]) -> [u8; 16] {
        let mut poly_key = [0u8; 32];
        self.cipher(0).apply_keystream(&mut poly_key);
        let mut buf = Vec::with_capacity(64 + c.len() + 16 + 16);
        buf.extend_from_slice(block);
        buf.extend_from_slice(c);
        buf.resize(buf.len() + (c.len() & 0xf), 0);
        buf.extend_from_slice(&0u64.to_le_bytes());
        buf.extend_from_slice(&(64 + c.len() as u64).to_le_bytes());
        Poly1305::new(&poly_key.into()).compute_unpadded(&buf).into()
    }

    fn advance(&mut self, mac: &[u8; 16], tag: u8) {
        for i in 0..8 {
            self.nonce[4 + i] ^= mac[i];
        }
        let ctr = u32::from_le_bytes(self.nonce[..4].try_into().expect("4")).wrapping_add(1);
        self.nonce[..4].copy_from_slice(&ctr.to_le_bytes());
        if tag & TAG_REKEY != 0 || ctr == 0 {
            self.rekey();
        }
    }

    fn rekey(&mut self) {
        let mut buf = [0u8; 40];
        buf[..32].copy_from_slice(&self.k);
        buf[32..].copy_from_slice(&self.nonce[4..]);
        self.cipher(0).apply_keystream(&mut buf);
        self.k.copy_from_slice(&buf[..32]);
        self.nonce[4..].copy_from_slice(&buf[32..]);
        self.nonce[..4].copy_from_slice(&1u32.to_le_bytes());
    }

    /// Encrypt one message (no additional data) into `out`.
    pub fn push(&mut self, msg: &[u8], tag: u8, out: &mut Vec<u8>) {
        let mut block = [0u8; 64];
        block[0] = tag;
        self.cipher(1).apply_keystream(&mut block);
        let start = out.len();
        out.push(block[0]);
        out.extend_from_slice(msg);
        self.cipher(2).apply_keystream(&mut out[start + 1..]);
        let mac = self.mac(&block, &out[start + 1..]);
        out.extend_from_slice(&mac);
        self.advance(&mac, tag);
    }

    /// Decrypt one message; returns (plaintext, tag). A bad MAC is a connection error.
    pub fn pull(&mut self, frame: &[u8]) -> Result<(Vec<u8>, u8)> {
        if frame.len() < ABYTES {
            return Err(err::connection("secretstream message shorter than its MAC"));
        }
        let c = &frame[1..frame.len() - 16];
        // Recover the whole first block as the sender hashed it: keystream ‖ encrypted tag byte.
        let mut ks = [0u8; 64];
        self.cipher(1).apply_keystream(&mut ks);
        let tag = frame[0] ^ ks[0];
        let mut enc_block = ks;
        enc_block[0] = frame[0];
        let mac = self.mac(&enc_block, c);
        let got: [u8; 16] = frame[frame.len() - 16..].try_into().expect("16");
        if !ct_eq(&mac, &got) {
            return Err(err::connection("secretstream message failed authentication"));
        }
        let mut m = c.to_vec();
        self.cipher(2).apply_keystream(&mut m);
        self.advance(&mac, tag);
        Ok((m, tag))
    }
}

fn ct_eq(a: &[u8; 16], b: &[u8; 16]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hchacha20_matches_the_draft_test_vector() {
        // draft-irtf-cfrg-xchacha-03 §2.2.1
        let key: [u8; 32] = hex::decode("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap().try_into().unwrap();
        let input: [u8; 16] = hex::decode("000000090000004a0000000031415927").unwrap().try_into().unwrap();
        assert_eq!(
            hex::encode(hchacha20(&key, &input)),
            "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc"
        );
    }

    #[test]
    fn push_pull_round_trip_and_tamper_detection() {
        let key = [5u8; 32];
        let (mut tx, header) = State::init_push(&key).unwrap();
        let mut rx = State::init_pull(&key, &header);
        for msg in [&b""[..], b"hello", &[9u8; 1000][..], &[1u8; 17][..]] {
            let mut out = Vec::new();
            tx.push(msg, TAG_MESSAGE, &mut out);
            assert_eq!(out.len(), msg.len() + ABYTES);
            let (m, tag) = rx.pull(&out).unwrap();
            assert_eq!(m, msg);
            assert_eq!(tag, TAG_MESSAGE);
        }
        let mut out = Vec::new();
        tx.push(b"abc", TAG_MESSAGE, &mut out);
        out[2] ^= 1;
        assert!(rx.pull(&out).is_err());
    }
}
