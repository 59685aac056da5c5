//! Hyperbee 2 protobuf messages (proto2, declared by hand with prost derive; FORMAT.md §1.1–1.3).

use libvms_errors::{err, Result};
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Header {
    #[prost(string, required, tag = "1")]
    pub protocol: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<HeaderMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct HeaderMetadata {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub content_feed: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub user_data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeMsg {
    #[prost(bytes = "vec", required, tag = "1")]
    pub index: Vec<u8>,
    #[prost(bytes = "vec", required, tag = "2")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub value: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct YoloIndex {
    #[prost(message, repeated, tag = "1")]
    pub levels: Vec<LevelMsg>,
}

/// Packed on write (JS decodes these tags as packed whatever the wire type); prost accepts both on read.
#[derive(Clone, PartialEq, Message)]
pub struct LevelMsg {
    #[prost(uint64, repeated, packed = "true", tag = "1")]
    pub keys: Vec<u64>,
    #[prost(uint64, repeated, packed = "true", tag = "2")]
    pub children: Vec<u64>,
}

pub const PROTOCOL: &str = "hyperbee";

impl Header {
    /// The header a drive writes: `content_key` Some → compat drive (46 bytes); None → empty metadata (`12 00`).
    pub fn drive(content_key: Option<&[u8]>) -> Header {
        Header {
            protocol: PROTOCOL.into(),
            metadata: Some(HeaderMetadata {
                content_feed: content_key.map(|k| k.to_vec()),
                user_data: None,
            }),
        }
    }

    /// A plain bee's header (`0a 08 "hyperbee"`).
    pub fn plain() -> Header {
        Header {
            protocol: PROTOCOL.into(),
            metadata: None,
        }
    }

    pub fn decode_block(bytes: &[u8]) -> Result<Header> {
        let h = Header::decode(bytes)
            .map_err(|e| err::corrupt(format!("bad hyperbee header: {e}")).at(0))?;
        if h.protocol != PROTOCOL {
            return Err(err::corrupt(format!("not a hyperbee (protocol {:?})", h.protocol)).at(0));
        }
        Ok(h)
    }

    /// The content (blobs) core key: the first 32 bytes of contentFeed (FORMAT.md §2.4).
    pub fn content_key(&self) -> Result<Option<[u8; 32]>> {
        match self.metadata.as_ref().and_then(|m| m.content_feed.as_ref()) {
            None => Ok(None),
            Some(f) if f.len() < 32 => Err(err::corrupt("contentFeed shorter than 32 bytes").at(0)),
            Some(f) => Ok(Some(f[..32].try_into().expect("32 bytes"))),
        }
    }
}
