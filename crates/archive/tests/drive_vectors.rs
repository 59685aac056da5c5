//! drive.json and experiments.json (drive part): the Rust writer reproduces the JS blocks, and the
//! reader gives the JS answers on JS-written blocks.

use libvms_archive::bee::RangeOptions;
use libvms_archive::drive::{path, Drive, DriveEntry, PutOptions};
use libvms_archive::{BlockStore, MemoryStore};
use libvms_errors::ErrorCode;
use serde_json::Value;

mod common;
use common::{build_blocks, fixture};

fn big() -> Vec<u8> {
    (0..150_000u32).map(|i| (i % 251) as u8).collect()
}

fn key32(hex_: &str) -> [u8; 32] {
    hex::decode(hex_).unwrap().try_into().unwrap()
}

#[test]
fn drive_json_blocks_byte_identical() {
    let v = fixture("drive.json");
    let (m, c) = (MemoryStore::new(), MemoryStore::new());
    let mut d = Drive::new(
        m.clone(),
        c.clone(),
        Some(key32(v["blobsKey"].as_str().unwrap())),
    )
    .unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(d.version(), steps[0]["version"].as_u64().unwrap());
    d.put("/a.txt", b"hello", PutOptions::default()).unwrap();
    d.put("/dir/b.bin", &big(), PutOptions::default()).unwrap();
    d.put("/a.txt", b"bye", PutOptions::default()).unwrap();
    assert!(d.del("/dir/b.bin").unwrap());
    assert!(!d.del("/nope").unwrap());
    assert_eq!(d.version(), steps[5]["version"].as_u64().unwrap());
    let got: Vec<String> = m.blocks().iter().map(hex::encode).collect();
    let want: Vec<&str> = v["dbBlocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["hex"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    let lens: Vec<u64> = c.blocks().iter().map(|b| b.len() as u64).collect();
    let want: Vec<u64> = v["blobBlocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["length"].as_u64().unwrap())
        .collect();
    assert_eq!(lens, want);
    assert_eq!(c.byte_len(), 150_008);
}

/// The JS-written metadata blocks plus content re-made from the vector's description.
fn js_drive() -> (Value, Drive<MemoryStore, MemoryStore>) {
    let v = fixture("drive.json");
    let meta: Vec<Vec<u8>> = v["dbBlocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode(b["hex"].as_str().unwrap()).unwrap())
        .collect();
    let data = big();
    let content = vec![
        b"hello".to_vec(),
        data[..65536].to_vec(),
        data[65536..131072].to_vec(),
        data[131072..].to_vec(),
        b"bye".to_vec(),
    ];
    // opened without a content key: the key comes from the stored header
    let d = Drive::new(
        MemoryStore::from_blocks(meta),
        MemoryStore::from_blocks(content),
        None,
    )
    .unwrap();
    (v, d)
}

#[test]
fn drive_json_reads_match_js() {
    let (v, d) = js_drive();
    assert_eq!(
        d.content_key().unwrap(),
        Some(key32(v["blobsKey"].as_str().unwrap()))
    );
    for view in v["views"].as_array().unwrap() {
        let ver = view["version"].as_u64().unwrap();
        let mut co = d.checkout(ver).unwrap();
        assert_eq!(co.version(), ver);
        // list
        let list: Vec<(u64, String, Value)> = co
            .bee()
            .range(RangeOptions {
                gte: Some(b"files\0".to_vec()),
                lt: Some(b"files\x01".to_vec()),
                ..Default::default()
            })
            .map(|e| {
                let e = e.unwrap();
                (
                    e.seq,
                    path::from_key(&e.key).unwrap(),
                    serde_json::from_slice(&e.value.unwrap()).unwrap(),
                )
            })
            .collect();
        let want: Vec<(u64, String, Value)> = view["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["seq"].as_u64().unwrap(),
                    e["key"].as_str().unwrap().to_string(),
                    e["value"].clone(),
                )
            })
            .collect();
        assert_eq!(list, want, "version {ver}");
        let names = |x: &Value| -> Vec<String> {
            x.as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().into())
                .collect()
        };
        assert_eq!(
            co.readdir("/", false).unwrap(),
            names(&view["readdir_root"])
        );
        match co.readdir("/dir", false) {
            Ok(n) => assert_eq!(n, names(&view["readdir_dir"])),
            Err(e) => {
                assert_eq!(e.code, ErrorCode::NotFound);
                assert!(view["readdir_dir"].as_array().unwrap().is_empty());
            }
        }
        assert_eq!(
            co.stat("/a.txt").is_ok(),
            view["exists_a"].as_bool().unwrap()
        );
        assert_eq!(
            co.stat("/dir/b.bin").is_ok(),
            view["exists_b"].as_bool().unwrap()
        );
        for (p, f) in view["files"].as_object().unwrap() {
            let bytes = co.read_file(p).unwrap();
            assert_eq!(bytes.len() as u64, f["byteLength"].as_u64().unwrap());
            match f["text"].as_str() {
                Some(t) => assert_eq!(bytes, t.as_bytes()),
                None => assert_eq!(bytes, big()),
            }
            let st = co.stat(p).unwrap();
            assert!(st.is_file);
            assert_eq!(st.size, f["byteLength"].as_u64().unwrap());
        }
        // an implicit folder (no marker in JS drives) is a folder
        if view["exists_b"].as_bool().unwrap() {
            assert!(co.stat("/dir").unwrap().is_dir);
        }
    }
    // diffs (JS createDiffStream)
    for df in v["diffs"].as_array().unwrap() {
        let mut co = d.checkout(df["to"].as_u64().unwrap()).unwrap();
        let got: Vec<Value> = co
            .bee()
            .diff(df["from"].as_u64().unwrap(), RangeOptions::default())
            .unwrap()
            .map(|x| {
                let x = x.unwrap();
                let side = |e: Option<libvms_archive::bee::Entry>| match e {
                    None => Value::Null,
                    Some(e) => {
                        serde_json::json!({"seq": e.seq, "key": path::from_key(&e.key).unwrap()})
                    }
                };
                serde_json::json!({"left": side(x.left), "right": side(x.right)})
            })
            .collect();
        assert_eq!(Value::Array(got), df["entries"]);
    }
    // history of the JS drive
    let mut d = d;
    let h = d.history(0, None, false).unwrap();
    let kinds: Vec<String> = h
        .iter()
        .map(|r| format!("{:?} {} {}", r.kind, r.path, r.version))
        .collect();
    assert_eq!(
        kinds,
        [
            "Put /a.txt 2",
            "Put /dir/b.bin 3",
            "Put /a.txt 4",
            "Del /dir/b.bin 5"
        ]
    );
}

#[test]
fn experiments_drive_reads_batches_links_and_dir0() {
    let v = fixture("experiments.json");
    let x = &v["drive"];
    let blocks = build_blocks(x["blocks"].as_array().unwrap());
    let mut d = Drive::new(MemoryStore::from_blocks(blocks), MemoryStore::new(), None).unwrap();
    assert_eq!(d.version(), x["versionAfterBatch"].as_u64().unwrap());
    // JS skips "dir0" (a quirk of its seek); we list it.
    let mut want: Vec<String> = x["readdirRoot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().into())
        .collect();
    want.push("dir0".into());
    want.sort();
    assert_eq!(d.readdir("/", false).unwrap(), want);
    let want: Vec<String> = x["readdirDir"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().into())
        .collect();
    assert_eq!(d.readdir("/dir", false).unwrap(), want);
    let (seq, e) = d.entry("/link").unwrap().unwrap();
    assert_eq!((seq, e.linkname.as_deref()), (3, Some("/bin/run.sh")));
    let follow = &x["entryLinkFollow"];
    let st = d.stat("/link").unwrap();
    assert_eq!(st.seq, follow["seq"].as_u64());
    assert_eq!(
        st.size,
        follow["value"]["blob"]["byteLength"].as_u64().unwrap()
    );
    let (_, run) = d.entry("/bin/run.sh").unwrap().unwrap();
    assert!(run.executable);
    assert_eq!(run.metadata, follow["value"]["metadata"]);
    // the non-batch blocks are reproduced by the writer
    let m = MemoryStore::new();
    let key = key32(x["blocks"][0]["contentFeed"].as_str().unwrap());
    let mut w = Drive::new(m.clone(), MemoryStore::new(), Some(key)).unwrap();
    let raw = |e: &Value| DriveEntry::decode(e["value"].as_str().unwrap().as_bytes()).unwrap();
    for b in &x["blocks"].as_array().unwrap()[1..8] {
        let p = path::from_key(b["key"].as_str().unwrap().as_bytes()).unwrap();
        let e = raw(b);
        // write the entry exactly (blob ids come from the JS run)
        w.bee().put(&path::key(&p), Some(&e.encode())).unwrap();
        assert_eq!(e.encode(), b["value"].as_str().unwrap().as_bytes());
    }
    assert_eq!(
        m.blocks(),
        build_blocks(&x["blocks"].as_array().unwrap()[..8])
    );
}
