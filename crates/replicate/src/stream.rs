//! An encrypted hyperswarm stream: Noise XX over uint24le frames, then one secretstream header
//! per direction (`streamId ‖ header`), then one secretstream message per frame.

use blake2::digest::{consts::U32, Mac};
use blake2::{Blake2b, Blake2bMac, Digest};
use libvms_errors::{err, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::framing::{encode_frame, read_frame, write_frame};
use crate::noise::{DhKeyPair, Handshake, HASHLEN};
use crate::secret_stream::{State, ABYTES, HEADER_BYTES, TAG_MESSAGE};

fn h256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn keyed256(key: &[u8], msg: &[&[u8]]) -> [u8; 32] {
    let mut m = <Blake2bMac<U32> as blake2::digest::KeyInit>::new_from_slice(key).expect("key of 64 bytes or less");
    for p in msg {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// hypercore-crypto `namespace(name, n)[i]` = H(H(name) ‖ i).
pub fn namespace(name: &str, i: u8) -> [u8; 32] {
    let ns = h256(&[name.as_bytes()]);
    h256(&[&ns, &[i]])
}

/// The stream id each side sends with its header: keyed by the handshake hash.
pub fn stream_id(handshake_hash: &[u8], initiator: bool) -> [u8; 32] {
    keyed256(handshake_hash, &[&namespace("hyperswarm/secret-stream", if initiator { 0 } else { 1 })])
}

/// The `hypercore/alpha` channel capability: proves knowledge of the core key on this stream.
pub fn capability(handshake_hash: &[u8], initiator: bool, core_key: &[u8; 32]) -> [u8; 32] {
    keyed256(handshake_hash, &[&libvms_ledger::crypto::cap_replicate(initiator), core_key])
}

pub struct Reader<R> {
    io: R,
    rx: State,
}

pub struct Writer<W> {
    io: W,
    tx: State,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

/// What both halves share after the handshake.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub is_initiator: bool,
    pub handshake_hash: [u8; HASHLEN],
    pub remote_public_key: [u8; 32],
}

/// Run the handshake and header exchange; the stream is then ready for messages.
pub async fn connect<R, W>(mut r: R, mut w: W, initiator: bool) -> Result<(Reader<R>, Writer<W>, StreamInfo)>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut hs = Handshake::new(initiator, DhKeyPair::generate()?, DhKeyPair::generate()?);
    let eof = || err::connection("peer closed the connection during the handshake");
    let done = if initiator {
        write_frame(&mut w, &hs.write_msg1()?).await?;
        let m2 = read_frame(&mut r).await?.ok_or_else(eof)?;
        hs.read_msg2(&m2)?;
        let (m3, done) = hs.write_msg3()?;
        write_frame(&mut w, &m3).await?;
        done
    } else {
        let m1 = read_frame(&mut r).await?.ok_or_else(eof)?;
        hs.read_msg1(&m1)?;
        write_frame(&mut w, &hs.write_msg2()?).await?;
        let m3 = read_frame(&mut r).await?.ok_or_else(eof)?;
        hs.read_msg3(&m3)?
    };
    let (tx, header) = State::init_push(&done.tx)?;
    let mut hdr = stream_id(&done.handshake_hash, initiator).to_vec();
    hdr.extend_from_slice(&header);
    write_frame(&mut w, &hdr).await?;
    let remote = read_frame(&mut r).await?.ok_or_else(eof)?;
    if remote.len() != 32 + HEADER_BYTES {
        return Err(err::connection("secretstream header has the wrong size"));
    }
    if remote[..32] != stream_id(&done.handshake_hash, !initiator) {
        return Err(err::connection("secretstream header has the wrong stream id"));
    }
    let rx = State::init_pull(&done.rx, remote[32..].try_into().expect("24"));
    let info = StreamInfo { is_initiator: initiator, handshake_hash: done.handshake_hash, remote_public_key: done.remote_static };
    Ok((Reader { io: r, rx }, Writer { io: w, tx, buf: Vec::new(), scratch: Vec::new() }, info))
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Next plaintext message (empty = keep-alive); `None` at EOF.
    pub async fn read(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(frame) = read_frame(&mut self.io).await? else { return Ok(None) };
        let (m, _tag) = self.rx.pull(&frame)?;
        Ok(Some(m))
    }
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Queue one message; it goes out at the next `flush`.
    pub fn queue(&mut self, msg: &[u8]) -> Result<()> {
        self.scratch.clear();
        self.scratch.reserve(msg.len() + ABYTES);
        self.tx.push(msg, TAG_MESSAGE, &mut self.scratch);
        encode_frame(&self.scratch, &mut self.buf)
    }

    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    pub async fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let res = self.io.write_all(&self.buf).await;
        self.buf.clear();
        res.map_err(|e| err::connection(format!("write: {e}")))?;
        self.io.flush().await.map_err(|e| err::connection(format!("write: {e}")))
    }

    pub async fn shutdown(&mut self) {
        let _ = self.flush().await;
        let _ = self.io.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_match_the_protocol_notes() {
        assert!(hex::encode(namespace("hyperswarm/secret-stream", 0)).starts_with("a931a015"));
        assert!(hex::encode(namespace("hyperswarm/secret-stream", 0)).ends_with("2bf7"));
        assert!(hex::encode(namespace("hyperswarm/secret-stream", 1)).starts_with("742c9d83"));
        assert!(hex::encode(libvms_ledger::crypto::cap_replicate(true)).starts_with("51812a2a"));
        assert!(hex::encode(libvms_ledger::crypto::cap_replicate(false)).starts_with("0438492d"));
    }

    #[test]
    fn capability_and_stream_id_match_the_js_transcript() {
        // transcript.txt session 1: the handshake hash and the values JS sent with it.
        let hh = hex::decode("b24fd4ff6b36e0488179810936a87b2e916b31fd6020c9c0cb7e9ecb789142e3f96688c24bcdb1873f371aa34b075f5257158086f595e84068921df805c6939f").unwrap();
        let key: [u8; 32] = hex::decode("03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8").unwrap().try_into().unwrap();
        assert_eq!(hex::encode(stream_id(&hh, true)), "5e89d02153db4059238aac70ed7f971215fb7ecdfe173b463405beeb8d0d194c");
        assert_eq!(hex::encode(stream_id(&hh, false)), "7ce99f6c60af8724ec635c32610fff7ed12f8042e30f337b617747e77798f2d5");
        assert_eq!(hex::encode(capability(&hh, true, &key)), "4879e431e99b275333598aa64ef68e99979b035089eb89dce58fea8360ff7fb3");
        assert_eq!(hex::encode(capability(&hh, false, &key)), "19cc50ce4c6a80621e2a7749c21eaa2800ef0c2b71a3ff5f71b3f13bc6aa6d7f");
        assert_eq!(
            hex::encode(libvms_ledger::discovery_key(&key)),
            "daaf3d66c0c7b35b2a9ca711d5cac1154025f2a37f9dd714ee59a894edaa90a9"
        );
    }

    #[tokio::test]
    async fn encrypted_stream_over_a_duplex() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let (ra, rb) = tokio::join!(connect(ar, aw, true), connect(br, bw, false));
        let (mut ra, mut wa, ia) = ra.unwrap();
        let (mut rb, mut wb, ib) = rb.unwrap();
        assert_eq!(ia.handshake_hash, ib.handshake_hash);
        wa.queue(b"ping").unwrap();
        wa.queue(b"").unwrap();
        wa.flush().await.unwrap();
        assert_eq!(rb.read().await.unwrap().unwrap(), b"ping");
        assert_eq!(rb.read().await.unwrap().unwrap(), b"");
        wb.queue(b"pong").unwrap();
        wb.flush().await.unwrap();
        assert_eq!(ra.read().await.unwrap().unwrap(), b"pong");
    }
}
