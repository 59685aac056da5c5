//! Drive entry values: JSON in the exact key order JS hyperdrive writes (FORMAT.md §2.1).

use crate::blobs::BlobId;
use libvms_errors::{err, Result};
use serde_json::{json, Map, Value};

#[derive(Clone, Debug, PartialEq)]
pub struct DriveEntry {
    pub executable: bool,
    pub linkname: Option<String>,
    pub blob: Option<BlobId>,
    /// Any JSON. libvms writes `{"ctime":ms,"mtime":ms}` for files and adds `"type":"directory"` for
    /// directory markers, keys always in sorted order (see `directory` and `Drive::write_file_chunks`).
    pub metadata: Value,
}

impl DriveEntry {
    pub fn file(blob: BlobId, metadata: Value) -> Self {
        DriveEntry {
            executable: false,
            linkname: None,
            blob: Some(blob),
            metadata,
        }
    }

    /// A directory marker: no blob, no link, metadata type "directory".
    pub fn directory(mtime: u64, ctime: u64) -> Self {
        DriveEntry {
            executable: false,
            linkname: None,
            blob: None,
            // Keys in sorted order, written in that order whether or not serde_json preserves insertion order.
            metadata: json!({"ctime": ctime, "mtime": mtime, "type": "directory"}),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.blob.is_none()
            && self.linkname.is_none()
            && self.metadata.get("type").and_then(Value::as_str) == Some("directory")
    }

    pub fn is_symlink(&self) -> bool {
        self.linkname.is_some()
    }

    fn time(&self, field: &str) -> u64 {
        self.metadata
            .get(field)
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    pub fn mtime(&self) -> u64 {
        self.time("mtime")
    }

    pub fn ctime(&self) -> u64 {
        self.time("ctime")
    }

    /// `JSON.stringify` of `{executable, linkname, blob, metadata}` in that order.
    pub fn encode(&self) -> Vec<u8> {
        let blob = match &self.blob {
            None => "null".to_string(),
            Some(b) => format!(
                "{{\"blockOffset\":{},\"byteOffset\":{},\"blockLength\":{},\"byteLength\":{}}}",
                b.block_offset, b.byte_offset, b.block_length, b.byte_length
            ),
        };
        let link = serde_json::to_string(&self.linkname).expect("string encodes");
        let meta = serde_json::to_string(&self.metadata).expect("json value encodes");
        format!(
            "{{\"executable\":{},\"linkname\":{link},\"blob\":{blob},\"metadata\":{meta}}}",
            self.executable
        )
        .into_bytes()
    }

    /// Missing fields read as null/false, like JS readers.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = |m: &str| err::corrupt(format!("bad drive entry: {m}"));
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let o: &Map<String, Value> = v.as_object().ok_or_else(|| bad("not an object"))?;
        let executable = match o.get("executable") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            _ => return Err(bad("executable")),
        };
        let linkname = match o.get("linkname") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            _ => return Err(bad("linkname")),
        };
        let blob = match o.get("blob") {
            None | Some(Value::Null) => None,
            Some(Value::Object(b)) => {
                let f = |k: &str| b.get(k).and_then(Value::as_u64).ok_or_else(|| bad(k));
                Some(BlobId {
                    block_offset: f("blockOffset")?,
                    byte_offset: f("byteOffset")?,
                    block_length: f("blockLength")?,
                    byte_length: f("byteLength")?,
                })
            }
            _ => return Err(bad("blob")),
        };
        let metadata = o.get("metadata").cloned().unwrap_or(Value::Null);
        Ok(DriveEntry {
            executable,
            linkname,
            blob,
            metadata,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_key_order() {
        let e = DriveEntry::file(
            BlobId {
                block_offset: 1,
                byte_offset: 5,
                block_length: 3,
                byte_length: 150000,
            },
            Value::Null,
        );
        let want = r#"{"executable":false,"linkname":null,"blob":{"blockOffset":1,"byteOffset":5,"blockLength":3,"byteLength":150000},"metadata":null}"#;
        assert_eq!(String::from_utf8(e.encode()).unwrap(), want);
        assert_eq!(DriveEntry::decode(want.as_bytes()).unwrap(), e);
        let link = r#"{"executable":false,"linkname":"/bin/run.sh","blob":null,"metadata":null}"#;
        let l = DriveEntry::decode(link.as_bytes()).unwrap();
        assert!(l.is_symlink() && !l.is_dir());
        assert_eq!(String::from_utf8(l.encode()).unwrap(), link);
        let d = DriveEntry::directory(5, 3);
        assert_eq!(
            String::from_utf8(d.encode()).unwrap(),
            r#"{"executable":false,"linkname":null,"blob":null,"metadata":{"ctime":3,"mtime":5,"type":"directory"}}"#
        );
        assert!(DriveEntry::decode(&d.encode()).unwrap().is_dir());
        assert_eq!(DriveEntry::decode(b"{}").unwrap().blob, None);
        for bad in [
            &b"[]"[..],
            b"{\"blob\":{\"blockOffset\":-1}}",
            b"nope",
            b"{\"executable\":3}",
        ] {
            assert!(DriveEntry::decode(bad).is_err());
        }
    }
}
