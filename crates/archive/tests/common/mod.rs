#![allow(dead_code)]
use serde_json::Value;

pub fn fixture(name: &str) -> Value {
    let p = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Builds JS blocks from an experiments.json description (header + key/value/levels).
pub fn build_blocks(desc: &[Value]) -> Vec<Vec<u8>> {
    use libvms_archive::bee::messages::{Header, LevelMsg, NodeMsg, YoloIndex};
    use prost::Message;
    desc.iter()
        .map(|b| {
            if b.get("header").is_some() {
                let feed = b["contentFeed"].as_str().map(|h| hex::decode(h).unwrap());
                return match feed {
                    Some(k) => Header::drive(Some(&k)).encode_to_vec(),
                    None => Header::plain().encode_to_vec(),
                };
            }
            let levels = b["levels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| LevelMsg {
                    keys: l["keys"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|k| k.as_u64().unwrap())
                        .collect(),
                    children: l["children"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .flat_map(|c| [c[0].as_u64().unwrap(), c[1].as_u64().unwrap()])
                        .collect(),
                })
                .collect();
            NodeMsg {
                index: YoloIndex { levels }.encode_to_vec(),
                key: b["key"].as_str().unwrap().as_bytes().to_vec(),
                value: b["value"].as_str().map(|v| v.as_bytes().to_vec()),
            }
            .encode_to_vec()
        })
        .collect()
}
