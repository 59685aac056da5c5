//! The ten messages of the `hypercore/alpha` channel (hypercore@10 `lib/messages.js` wire
//! encodings), converted to and from the ledger's proof types.

use libvms_errors::{err, Result};
use libvms_ledger::encoding::{Decoder, Encoder};
use libvms_ledger::{
    DataBlock, DataHash, DataSeek, DataUpgrade, Manifest, Node, Proof, ProofRequest, RequestBlock, RequestSeek, RequestUpgrade,
};

pub const SYNC: u64 = 0;
pub const REQUEST: u64 = 1;
pub const CANCEL: u64 = 2;
pub const DATA: u64 = 3;
pub const NO_DATA: u64 = 4;
pub const WANT: u64 = 5;
pub const UNWANT: u64 = 6;
pub const BITFIELD: u64 = 7;
pub const RANGE: u64 = 8;
pub const EXTENSION: u64 = 9;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Sync {
    pub fork: u64,
    pub length: u64,
    pub remote_length: u64,
    pub can_upgrade: bool,
    pub uploading: bool,
    pub downloading: bool,
    pub has_manifest: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Request {
    pub id: u64,
    pub req: ProofRequest,
    pub manifest: bool,
    pub priority: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Data {
    pub request: u64,
    pub proof: Proof,
    pub manifest: Option<Manifest>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Sync(Sync),
    Request(Request),
    Cancel { request: u64 },
    Data(Data),
    NoData { request: u64 },
    Want { start: u64, length: u64 },
    Unwant { start: u64, length: u64 },
    Bitfield { start: u64, bitfield: Vec<u32> },
    Range { drop: bool, start: u64, length: u64 },
    Extension { name: String, message: Vec<u8> },
}

fn nodes(e: &mut Encoder, ns: &[Node]) {
    e.uint(ns.len() as u64);
    for n in ns {
        e.uint(n.index);
        e.uint(n.size);
        e.raw(&n.hash);
    }
}

fn read_nodes(d: &mut Decoder) -> Result<Vec<Node>> {
    let n = d.array_len(34)?;
    (0..n).map(|_| Ok(Node { index: d.uint()?, size: d.uint()?, hash: d.fixed::<32>()? })).collect()
}

impl Message {
    pub fn kind(&self) -> u64 {
        match self {
            Message::Sync(_) => SYNC,
            Message::Request(_) => REQUEST,
            Message::Cancel { .. } => CANCEL,
            Message::Data(_) => DATA,
            Message::NoData { .. } => NO_DATA,
            Message::Want { .. } => WANT,
            Message::Unwant { .. } => UNWANT,
            Message::Bitfield { .. } => BITFIELD,
            Message::Range { .. } => RANGE,
            Message::Extension { .. } => EXTENSION,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        match self {
            Message::Sync(s) => {
                e.uint(s.can_upgrade as u64 | (s.uploading as u64) << 1 | (s.downloading as u64) << 2 | (s.has_manifest as u64) << 3);
                e.uint(s.fork);
                e.uint(s.length);
                e.uint(s.remote_length);
            }
            Message::Request(r) => {
                let q = &r.req;
                let flags = q.block.is_some() as u64
                    | (q.hash.is_some() as u64) << 1
                    | (q.seek.is_some() as u64) << 2
                    | (q.upgrade.is_some() as u64) << 3
                    | (r.manifest as u64) << 4
                    | ((r.priority != 0) as u64) << 5;
                e.uint(flags);
                e.uint(r.id);
                e.uint(q.fork);
                for b in [q.block, q.hash].into_iter().flatten() {
                    e.uint(b.index);
                    e.uint(b.nodes);
                }
                if let Some(s) = q.seek {
                    e.uint(s.bytes);
                    e.uint(s.padding);
                }
                if let Some(u) = q.upgrade {
                    e.uint(u.start);
                    e.uint(u.length);
                }
                if r.priority != 0 {
                    e.uint(r.priority);
                }
            }
            Message::Cancel { request } | Message::NoData { request } => e.uint(*request),
            Message::Data(d) => {
                let p = &d.proof;
                let flags = p.block.is_some() as u64
                    | (p.hash.is_some() as u64) << 1
                    | (p.seek.is_some() as u64) << 2
                    | (p.upgrade.is_some() as u64) << 3
                    | (d.manifest.is_some() as u64) << 4;
                e.uint(flags);
                e.uint(d.request);
                e.uint(p.fork);
                if let Some(b) = &p.block {
                    e.uint(b.index);
                    e.buffer(Some(&b.value));
                    nodes(&mut e, &b.nodes);
                }
                if let Some(h) = &p.hash {
                    e.uint(h.index);
                    nodes(&mut e, &h.nodes);
                }
                if let Some(s) = &p.seek {
                    e.uint(s.bytes);
                    nodes(&mut e, &s.nodes);
                }
                if let Some(u) = &p.upgrade {
                    e.uint(u.start);
                    e.uint(u.length);
                    nodes(&mut e, &u.nodes);
                    nodes(&mut e, &u.additional_nodes);
                    e.buffer(Some(&u.signature));
                }
                if let Some(m) = &d.manifest {
                    m.encode(&mut e);
                }
            }
            Message::Want { start, length } | Message::Unwant { start, length } => {
                e.uint(*start);
                e.uint(*length);
            }
            Message::Bitfield { start, bitfield } => {
                e.uint(*start);
                e.uint(bitfield.len() as u64);
                for w in bitfield {
                    e.raw(&w.to_le_bytes());
                }
            }
            Message::Range { drop, start, length } => {
                e.uint(*drop as u64 | ((*length == 1) as u64) << 1);
                e.uint(*start);
                if *length != 1 {
                    e.uint(*length);
                }
            }
            Message::Extension { name, message } => {
                e.string(name);
                e.raw(message);
            }
        }
        e.buf
    }

    pub fn decode(kind: u64, body: &[u8]) -> Result<Message> {
        let mut d = Decoder::new(body);
        let m = match kind {
            SYNC => {
                let f = d.uint()?;
                Message::Sync(Sync {
                    can_upgrade: f & 1 != 0,
                    uploading: f & 2 != 0,
                    downloading: f & 4 != 0,
                    has_manifest: f & 8 != 0,
                    fork: d.uint()?,
                    length: d.uint()?,
                    remote_length: d.uint()?,
                })
            }
            REQUEST => {
                let f = d.uint()?;
                let id = d.uint()?;
                let fork = d.uint()?;
                let mut pair = |on: bool| -> Result<Option<(u64, u64)>> { if on { Ok(Some((d.uint()?, d.uint()?))) } else { Ok(None) } };
                let block = pair(f & 1 != 0)?.map(|(index, nodes)| RequestBlock { index, nodes });
                let hash = pair(f & 2 != 0)?.map(|(index, nodes)| RequestBlock { index, nodes });
                let seek = pair(f & 4 != 0)?.map(|(bytes, padding)| RequestSeek { bytes, padding });
                let upgrade = pair(f & 8 != 0)?.map(|(start, length)| RequestUpgrade { start, length });
                let priority = if f & 32 != 0 { d.uint()? } else { 0 };
                Message::Request(Request { id, req: ProofRequest { fork, block, hash, seek, upgrade }, manifest: f & 16 != 0, priority })
            }
            CANCEL => Message::Cancel { request: d.uint()? },
            DATA => {
                let f = d.uint()?;
                let request = d.uint()?;
                let fork = d.uint()?;
                let block = if f & 1 != 0 {
                    Some(DataBlock { index: d.uint()?, value: d.buffer()?.unwrap_or_default(), nodes: read_nodes(&mut d)? })
                } else {
                    None
                };
                let hash = if f & 2 != 0 { Some(DataHash { index: d.uint()?, nodes: read_nodes(&mut d)? }) } else { None };
                let seek = if f & 4 != 0 { Some(DataSeek { bytes: d.uint()?, nodes: read_nodes(&mut d)? }) } else { None };
                let upgrade = if f & 8 != 0 {
                    Some(DataUpgrade {
                        start: d.uint()?,
                        length: d.uint()?,
                        nodes: read_nodes(&mut d)?,
                        additional_nodes: read_nodes(&mut d)?,
                        signature: d.buffer()?.unwrap_or_default(),
                    })
                } else {
                    None
                };
                let manifest = if f & 16 != 0 { Some(Manifest::decode(&mut d)?) } else { None };
                Message::Data(Data { request, proof: Proof { fork, block, hash, seek, upgrade }, manifest })
            }
            NO_DATA => Message::NoData { request: d.uint()? },
            WANT => Message::Want { start: d.uint()?, length: d.uint()? },
            UNWANT => Message::Unwant { start: d.uint()?, length: d.uint()? },
            BITFIELD => {
                let start = d.uint()?;
                let n = d.array_len(4)?;
                let bitfield = (0..n).map(|_| Ok(u32::from_le_bytes(d.fixed::<4>()?))).collect::<Result<Vec<_>>>()?;
                Message::Bitfield { start, bitfield }
            }
            RANGE => {
                let f = d.uint()?;
                let start = d.uint()?;
                let length = if f & 2 != 0 { 1 } else { d.uint()? };
                Message::Range { drop: f & 1 != 0, start, length }
            }
            EXTENSION => {
                let name = d.string()?;
                Message::Extension { name, message: d.take(d.remaining())?.to_vec() }
            }
            other => return Err(err::encoding(format!("unknown hypercore message type {other}"))),
        };
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    fn round_trip(kind: u64, body: &str) -> Message {
        let m = Message::decode(kind, &h(body)).unwrap();
        assert_eq!(m.kind(), kind);
        assert_eq!(hex::encode(m.encode()), body, "{m:?}");
        m
    }

    #[test]
    fn transcript_messages_round_trip_byte_for_byte() {
        let s = round_trip(SYNC, "07000300");
        assert_eq!(s, Message::Sync(Sync { fork: 0, length: 3, remote_length: 0, can_upgrade: true, uploading: true, downloading: true, has_manifest: false }));
        round_trip(SYNC, "06000303");
        assert_eq!(round_trip(RANGE, "000003"), Message::Range { drop: false, start: 0, length: 3 });
        let r = round_trip(REQUEST, "0801000003");
        let Message::Request(r) = r else { panic!() };
        assert_eq!(r.req.upgrade, Some(RequestUpgrade { start: 0, length: 3 }));
        let Message::Request(r) = round_trip(REQUEST, "0101000101") else { panic!() };
        assert_eq!((r.id, r.req.block), (1, Some(RequestBlock { index: 1, nodes: 1 })));
        // data{req2, block{2,"ccc",[]}} and data{req1, block{1,"bb",[n0]}}
        let Message::Data(d) = round_trip(DATA, "0102000203636363 00".replace(' ', "").as_str()) else { panic!() };
        assert_eq!(d.proof.block.unwrap().value, b"ccc");
        let Message::Data(d) = round_trip(DATA, "0101000102626201000142 3177bd3da55c6ac57419beff9c763bab05e12a6d8908b38b7fc14360228d4a".replace(' ', "").as_str()) else { panic!() };
        assert_eq!(d.proof.block.unwrap().nodes[0].index, 0);
        // The upgrade answer with a 64-byte signature.
        let up = "0801000003020103a9ba77952227bd3e3b8c83475e170e0eaf80010896d20aa735ff4b44d6bb01b90403368b18a729fedd9e4c4867b2d90df10d9650318a15c97959bca7bb69ddd27fff0040212209844b0bd4a9db2c3ab9f8c98ae6aa6b2ea5f3f04aeb9925190caacec1a9d43f4cf5a806451b09c935de172851e9f6c1f455811b045675facafa06446d0b";
        let Message::Data(d) = round_trip(DATA, up) else { panic!() };
        let u = d.proof.upgrade.unwrap();
        assert_eq!((u.nodes.len(), u.nodes[1].index, u.signature.len()), (2, 4, 64));
    }

    #[test]
    fn every_type_round_trips() {
        let all = vec![
            Message::Request(Request {
                id: 300,
                req: ProofRequest {
                    fork: 2,
                    block: None,
                    hash: Some(RequestBlock { index: 5, nodes: 1 }),
                    seek: Some(RequestSeek { bytes: 70_000, padding: 1 }),
                    upgrade: Some(RequestUpgrade { start: 1, length: 9 }),
                },
                manifest: true,
                priority: 1,
            }),
            Message::Cancel { request: 7 },
            Message::NoData { request: 1 << 40 },
            Message::Want { start: 0, length: 2_097_152 },
            Message::Unwant { start: 4, length: 1 },
            Message::Bitfield { start: 32768, bitfield: vec![0xffff_ffff, 1] },
            Message::Range { drop: true, start: 9, length: 1 },
            Message::Range { drop: false, start: 9, length: 0 },
            Message::Extension { name: "x".into(), message: b"raw tail".to_vec() },
            Message::Data(Data {
                request: 3,
                proof: Proof {
                    fork: 0,
                    block: None,
                    hash: Some(DataHash { index: 2, nodes: vec![Node { index: 2, size: 2, hash: [1; 32] }] }),
                    seek: Some(DataSeek { bytes: 3, nodes: vec![] }),
                    upgrade: None,
                },
                manifest: Some(Manifest::default_signer([4; 32])),
            }),
        ];
        for m in all {
            assert_eq!(Message::decode(m.kind(), &m.encode()).unwrap(), m);
        }
        assert!(Message::decode(SYNC, &[]).is_err());
        assert!(Message::decode(42, &[0]).is_err());
    }

    #[test]
    fn hypercore11_trailing_fields_are_ignored() {
        // sync with allowPush (flag 16): the flag is read and dropped.
        let Message::Sync(s) = Message::decode(SYNC, &h("17000500")).unwrap() else { panic!() };
        assert_eq!((s.length, s.can_upgrade), (5, true));
        // noData{request 3} as v11 writes it: a flags uint after the request, then a reason.
        assert_eq!(Message::decode(NO_DATA, &h("0300")).unwrap(), Message::NoData { request: 3 });
        assert_eq!(Message::decode(NO_DATA, &h("030102")).unwrap(), Message::NoData { request: 3 });
        // want/unwant with `any` set.
        assert_eq!(Message::decode(WANT, &h("008001")).unwrap(), Message::Want { start: 0, length: 128 });
        assert_eq!(Message::decode(UNWANT, &h("040101")).unwrap(), Message::Unwant { start: 4, length: 1 });
        // Unknown bytes at the end of any message.
        assert_eq!(Message::decode(RANGE, &h("000003ff07")).unwrap(), Message::Range { drop: false, start: 0, length: 3 });
        assert_eq!(Message::decode(CANCEL, &h("0909")).unwrap(), Message::Cancel { request: 9 });
    }
}
