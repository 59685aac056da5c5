//! Protomux framing: every plaintext message is `uint channel ‖ uint type ‖ body`; channel 0
//! carries control messages (BATCH, OPEN, REJECT, CLOSE). A batch may switch channel with a
//! zero-length entry and may hold control messages (entries under channel 0).

use libvms_errors::{err, Result};
use libvms_ledger::encoding::{Decoder, Encoder};

const BATCH: u64 = 0;
const OPEN: u64 = 1;
const REJECT: u64 = 2;
const CLOSE: u64 = 3;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// The remote opened a channel; `remote_id` is its local id, used on its messages.
    Open { remote_id: u64, protocol: String, id: Vec<u8>, handshake: Vec<u8> },
    /// The remote refused our channel `local_id` (our id, echoed back).
    Reject { local_id: u64 },
    /// The remote closed its channel `remote_id`.
    Close { remote_id: u64 },
    /// A channel message; `channel` is the sender's local id.
    Message { channel: u64, kind: u64, body: Vec<u8> },
}

fn bad(msg: &str) -> libvms_errors::Error {
    err::encoding(format!("protomux: {msg}"))
}

fn control(kind: u64, d: &mut Decoder, in_batch: bool, out: &mut Vec<Frame>) -> Result<()> {
    match kind {
        BATCH if !in_batch => {
            let mut ch = d.uint()?;
            while !d.is_empty() {
                let len = d.len_prefix()?;
                if len == 0 {
                    ch = d.uint()?;
                    continue;
                }
                let mut sub = Decoder::new(d.take(len)?);
                let kind = sub.uint()?;
                if ch == 0 {
                    control(kind, &mut sub, true, out)?;
                } else {
                    out.push(Frame::Message { channel: ch, kind, body: sub.take(sub.remaining())?.to_vec() });
                }
            }
        }
        OPEN => {
            let remote_id = d.uint()?;
            let protocol = d.string()?;
            let id = d.buffer()?.unwrap_or_default();
            let handshake = d.take(d.remaining())?.to_vec();
            if remote_id == 0 {
                return Err(bad("OPEN with channel id 0"));
            }
            out.push(Frame::Open { remote_id, protocol, id, handshake });
        }
        REJECT => out.push(Frame::Reject { local_id: d.uint()? }),
        CLOSE => out.push(Frame::Close { remote_id: d.uint()? }),
        // Unknown control messages are ignored, as protomux does for forward compatibility.
        _ => {
            d.take(d.remaining())?;
        }
    }
    Ok(())
}

/// Decode one plaintext message (an empty one is a keep-alive: no frames).
pub fn decode(msg: &[u8]) -> Result<Vec<Frame>> {
    let mut out = Vec::new();
    if msg.is_empty() {
        return Ok(out);
    }
    let mut d = Decoder::new(msg);
    let ch = d.uint()?;
    let kind = d.uint()?;
    if ch == 0 {
        control(kind, &mut d, false, &mut out)?;
    } else {
        out.push(Frame::Message { channel: ch, kind, body: d.take(d.remaining())?.to_vec() });
    }
    Ok(out)
}

pub fn open(local_id: u64, protocol: &str, id: &[u8], handshake: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(0);
    e.uint(OPEN);
    e.uint(local_id);
    e.string(protocol);
    e.buffer(Some(id));
    e.raw(handshake);
    e.buf
}

pub fn reject(remote_id: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(0);
    e.uint(REJECT);
    e.uint(remote_id);
    e.buf
}

pub fn close(local_id: u64) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(0);
    e.uint(CLOSE);
    e.uint(local_id);
    e.buf
}

pub fn message(channel: u64, kind: u64, body: &[u8]) -> Vec<u8> {
    let mut e = Encoder::with_capacity(body.len() + 4);
    e.uint(channel);
    e.uint(kind);
    e.raw(body);
    e.buf
}

/// A batch of (channel, type, body); channel switches are encoded as protomux does.
pub fn batch(items: &[(u64, u64, Vec<u8>)]) -> Vec<u8> {
    let mut e = Encoder::new();
    e.uint(0);
    e.uint(BATCH);
    let mut ch = items.first().map_or(0, |i| i.0);
    e.uint(ch);
    for (c, kind, body) in items {
        if *c != ch {
            e.uint(0);
            e.uint(*c);
            ch = *c;
        }
        let mut m = Encoder::new();
        m.uint(*kind);
        m.raw(body);
        e.buffer(Some(&m.buf));
    }
    e.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn js_open_from_the_transcript() {
        let m = h("0001010f6879706572636f72652f616c70686120daaf3d66c0c7b35b2a9ca711d5cac1154025f2a37f9dd714ee59a894edaa90a9014879e431e99b275333598aa64ef68e99979b035089eb89dce58fea8360ff7fb3");
        let f = decode(&m).unwrap();
        let Frame::Open { remote_id, protocol, id, handshake } = &f[0] else { panic!("{f:?}") };
        assert_eq!((*remote_id, protocol.as_str()), (1, "hypercore/alpha"));
        assert_eq!(hex::encode(id), "daaf3d66c0c7b35b2a9ca711d5cac1154025f2a37f9dd714ee59a894edaa90a9");
        assert_eq!(handshake.len(), 33);
        assert_eq!(open(1, protocol, id, handshake), m);
    }

    #[test]
    fn js_batch_sync_range_and_plain_message() {
        let f = decode(&h("0000010500070003000408000003")).unwrap();
        assert_eq!(
            f,
            vec![
                Frame::Message { channel: 1, kind: 0, body: h("07000300") },
                Frame::Message { channel: 1, kind: 8, body: h("000003") },
            ]
        );
        assert_eq!(batch(&[(1, 0, h("07000300")), (1, 8, h("000003"))]), h("0000010500070003000408000003"));
        assert_eq!(decode(&h("010007000300")).unwrap(), vec![Frame::Message { channel: 1, kind: 0, body: h("07000300") }]);
    }

    #[test]
    fn batch_switching_channels_and_holding_control_messages() {
        // The synthetic batch that broke hypercore-protocol 0.7.2: `00 00 01 05 <sync> 00 02 05 <sync>`.
        let f = decode(&h("0000010500070000000002050007000000")).unwrap();
        assert_eq!(
            f,
            vec![
                Frame::Message { channel: 1, kind: 0, body: h("07000000") },
                Frame::Message { channel: 2, kind: 0, body: h("07000000") },
            ]
        );
        let items = vec![(1, 0, h("07000000")), (2, 0, h("07000000"))];
        assert_eq!(decode(&batch(&items)).unwrap(), f);
        // Channel 0 inside a batch: a CLOSE and a REJECT among channel messages.
        let m = h("00000102030100000203020202010001020800");
        let f = decode(&m).unwrap();
        assert_eq!(
            f,
            vec![
                Frame::Message { channel: 1, kind: 3, body: h("01") },
                Frame::Close { remote_id: 2 },
                Frame::Reject { local_id: 1 },
                Frame::Message { channel: 1, kind: 8, body: h("00") },
            ]
        );
    }

    #[test]
    fn reject_close_and_keepalive() {
        assert_eq!(decode(&h("000201")).unwrap(), vec![Frame::Reject { local_id: 1 }]);
        assert_eq!(decode(&h("000301")).unwrap(), vec![Frame::Close { remote_id: 1 }]);
        assert_eq!(reject(1), h("000201"));
        assert_eq!(close(1), h("000301"));
        assert!(decode(&[]).unwrap().is_empty());
        assert!(decode(&h("0000010a07")).is_err());
    }
}
