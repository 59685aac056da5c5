//! Replays the JS vectors through the Rust writer (byte-identical blocks) and reads JS-written blocks back.

use libvms_archive::bee::{Bee, ChangeType, Level, NodePtr, RangeOptions};
use libvms_archive::{BlockStore, MemoryStore};
use serde_json::Value;

mod common;
use common::{build_blocks, fixture};

fn replay_ops(ops: &[Value], blocks: &[Value]) {
    let store = MemoryStore::new();
    let mut bee = Bee::new(store.clone()).unwrap();
    for (n, op) in ops.iter().enumerate() {
        let key = op[1].as_str().unwrap().as_bytes();
        match op[0].as_str().unwrap() {
            "put" => {
                bee.put(key, Some(op[2].as_str().unwrap().as_bytes()))
                    .unwrap();
            }
            "del" => {
                bee.del(key).unwrap();
            }
            o => panic!("op {o}"),
        }
        let len = store.len() as usize;
        // check the newest block right away, so a mismatch names the first wrong op
        if len > 0 {
            let got = hex::encode(store.clone().get(len as u64 - 1).unwrap());
            assert_eq!(
                got,
                blocks[len - 1].as_str().unwrap(),
                "op #{n} {op:?}, block {}",
                len - 1
            );
        }
    }
    let all: Vec<String> = store.blocks().iter().map(hex::encode).collect();
    let want: Vec<&str> = blocks.iter().map(|b| b.as_str().unwrap()).collect();
    assert_eq!(all.len(), want.len());
    assert!(all.iter().zip(&want).all(|(a, b)| a == b));
}

fn check_final(bee: &mut Bee<MemoryStore>, fin: &[Value]) {
    let got: Vec<(u64, String, String)> = bee
        .range(RangeOptions::default())
        .map(|e| {
            let e = e.unwrap();
            (
                e.seq,
                String::from_utf8(e.key).unwrap(),
                String::from_utf8(e.value.unwrap()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = fin
        .iter()
        .map(|f| {
            (
                f[0].as_u64().unwrap(),
                f[1].as_str().unwrap().into(),
                f[2].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn stress_all_blocks_byte_identical() {
    let v = fixture("stress.json");
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2971);
    replay_ops(v["ops"].as_array().unwrap(), blocks);
    // and the JS-written blocks read back as JS listed them
    let store = MemoryStore::from_blocks(
        blocks
            .iter()
            .map(|b| hex::decode(b.as_str().unwrap()).unwrap())
            .collect(),
    );
    let mut bee = Bee::new(store).unwrap();
    check_final(&mut bee, v["final"].as_array().unwrap());
}

#[test]
fn stress2_all_blocks_byte_identical() {
    let v = fixture("stress2.json");
    let blocks = v["blocks"].as_array().unwrap();
    replay_ops(v["ops"].as_array().unwrap(), blocks);
    let store = MemoryStore::from_blocks(
        blocks
            .iter()
            .map(|b| hex::decode(b.as_str().unwrap()).unwrap())
            .collect(),
    );
    let mut bee = Bee::new(store).unwrap();
    check_final(&mut bee, v["final"].as_array().unwrap());
}

#[test]
fn bee20_write_and_read() {
    let v = fixture("bee20.json");
    let blocks = v["blocks"].as_array().unwrap();
    let hexes: Vec<Value> = blocks.iter().map(|b| b["hex"].clone()).collect();
    let mut ops: Vec<Value> = (0..20)
        .map(|i| serde_json::json!(["put", format!("k{i:02}"), format!("v{i:02}")]))
        .collect();
    ops.push(serde_json::json!(["del", "k07"]));
    replay_ops(&ops, &hexes);

    let store = MemoryStore::from_blocks(
        hexes
            .iter()
            .map(|h| hex::decode(h.as_str().unwrap()).unwrap())
            .collect(),
    );
    let mut bee = Bee::new(store).unwrap();
    assert_eq!(bee.version(), 22);
    let keys = |bee: &mut Bee<MemoryStore>, o: RangeOptions| -> Vec<String> {
        bee.range(o)
            .map(|e| String::from_utf8(e.unwrap().key).unwrap())
            .collect()
    };
    let fin: Vec<String> = v["finalEntries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().into())
        .collect();
    assert_eq!(keys(&mut bee, RangeOptions::default()), fin);
    let r = RangeOptions {
        gt: Some(b"k05".to_vec()),
        lt: Some(b"k10".to_vec()),
        ..Default::default()
    };
    assert_eq!(keys(&mut bee, r), ["k06", "k08", "k09"]);
    let r = RangeOptions {
        reverse: true,
        limit: Some(3),
        ..Default::default()
    };
    assert_eq!(keys(&mut bee, r), ["k19", "k18", "k17"]);
    let p = bee
        .peek(RangeOptions {
            gte: Some(b"k07".to_vec()),
            ..Default::default()
        })
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.seq, p.key.as_slice(), p.value.as_deref()),
        (9, &b"k08"[..], Some(&b"v08"[..]))
    );
    assert_eq!(bee.get(b"k07").unwrap(), None);
    let mut old = bee.checkout(21).unwrap();
    let e = old.get(b"k07").unwrap().unwrap();
    assert_eq!((e.seq, e.value.as_deref()), (8, Some(&b"v07"[..])));
    assert!(old.put(b"x", None).is_err());
    // every bound combination against a brute-force filter, both directions
    let all = keys(&mut bee, RangeOptions::default());
    let probes = [
        "", "k", "k00", "k05", "k07", "k075", "k10", "k19", "k2", "z",
    ];
    for a in probes {
        for b in probes {
            for (lo_incl, hi_incl, rev) in [
                (false, false, false),
                (true, true, false),
                (true, false, true),
                (false, true, true),
            ] {
                let o = RangeOptions {
                    gt: (!lo_incl).then(|| a.as_bytes().to_vec()),
                    gte: lo_incl.then(|| a.as_bytes().to_vec()),
                    lt: (!hi_incl).then(|| b.as_bytes().to_vec()),
                    lte: hi_incl.then(|| b.as_bytes().to_vec()),
                    reverse: rev,
                    limit: None,
                };
                let mut want: Vec<String> = all
                    .iter()
                    .filter(|k| {
                        if lo_incl {
                            k.as_str() >= a
                        } else {
                            k.as_str() > a
                        }
                    })
                    .filter(|k| {
                        if hi_incl {
                            k.as_str() <= b
                        } else {
                            k.as_str() < b
                        }
                    })
                    .cloned()
                    .collect();
                if rev {
                    want.reverse();
                }
                assert_eq!(keys(&mut bee, o), want, "{a} {b} {lo_incl} {hi_incl} {rev}");
            }
        }
    }
    // history: 20 puts then a del
    let h: Vec<_> = bee.history(None, None, false).map(|h| h.unwrap()).collect();
    assert_eq!(h.len(), 21);
    assert!(h[..20].iter().all(|e| e.kind == ChangeType::Put));
    assert_eq!(
        (h[20].kind, h[20].key.as_slice()),
        (ChangeType::Del, &b"k07"[..])
    );
    let h: Vec<u64> = bee
        .history(Some(5), Some(8), true)
        .map(|h| h.unwrap().seq)
        .collect();
    assert_eq!(h, [7, 6, 5]);
}

fn levels_json(levels: &[Level]) -> Value {
    Value::Array(
        levels
            .iter()
            .map(|l| {
                serde_json::json!({"keys": l.keys, "children": l.children.iter().map(|c| vec![c.seq, c.offset]).collect::<Vec<_>>()})
            })
            .collect(),
    )
}

fn decoded_levels(bytes: &[u8]) -> Value {
    use libvms_archive::bee::messages::{NodeMsg, YoloIndex};
    use prost::Message;
    let n = NodeMsg::decode(bytes).unwrap();
    let idx = YoloIndex::decode(n.index.as_slice()).unwrap();
    let levels: Vec<Level> = idx
        .levels
        .iter()
        .map(|l| Level {
            keys: l.keys.clone(),
            children: l
                .children
                .chunks(2)
                .map(|c| NodePtr {
                    seq: c[0],
                    offset: c[1],
                })
                .collect(),
        })
        .collect();
    levels_json(&levels)
}

#[test]
fn experiments_stale_shortcut_and_empty_dup() {
    let v = fixture("experiments.json");
    // staleShortcut: replay and compare every block's levels; the plain search does not resurrect a4.
    let desc = v["staleShortcut"]["blocks"].as_array().unwrap();
    let store = MemoryStore::new();
    let mut bee = Bee::new(store.clone()).unwrap();
    for b in &desc[1..] {
        let k = b["key"].as_str().unwrap().as_bytes();
        match b["value"].as_str() {
            Some(val) => {
                bee.put(k, Some(val.as_bytes())).unwrap();
            }
            None => assert!(bee.del(k).unwrap()),
        }
    }
    let blocks = store.blocks();
    for (i, b) in desc.iter().enumerate().skip(1) {
        assert_eq!(decoded_levels(&blocks[i]), b["levels"], "block {i}");
    }
    assert_eq!(blocks, build_blocks(desc));
    assert_eq!(bee.get(b"a4").unwrap(), None);
    let keys: Vec<String> = bee
        .range(RangeOptions::default())
        .map(|e| String::from_utf8(e.unwrap().key).unwrap())
        .collect();
    let want: Vec<String> = v["staleShortcut"]["listKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().into())
        .collect();
    assert_eq!(keys, want);

    // emptyAndDup
    let e = &v["emptyAndDup"];
    let store = MemoryStore::new();
    let mut bee = Bee::new(store.clone()).unwrap();
    bee.put(b"only", Some(b"1")).unwrap();
    assert!(bee.del(b"only").unwrap());
    assert_eq!(hex::encode(&store.blocks()[2]), e["hex2"].as_str().unwrap());
    assert_eq!(store.len(), 3);
    assert!(!bee.del(b"missing").unwrap());
    assert_eq!(store.len(), 3);
    bee.put(b"dup", Some(b"same")).unwrap();
    bee.put(b"dup", Some(b"same")).unwrap();
    assert_eq!(store.len(), 5);
    assert_eq!(
        store.blocks(),
        build_blocks(e["blocks"].as_array().unwrap())
    );
    let l: Vec<(u64, Vec<u8>)> = bee
        .range(RangeOptions::default())
        .map(|e| e.map(|e| (e.seq, e.key)).unwrap())
        .collect();
    assert_eq!(l, [(4, b"dup".to_vec())]);

    // a del on a fresh bee writes only the header
    let store = MemoryStore::new();
    let mut bee = Bee::new(store.clone()).unwrap();
    assert!(!bee.del(b"x").unwrap());
    assert_eq!(
        store.blocks(),
        [hex::decode("0a086879706572626565").unwrap()]
    );
}

#[test]
fn experiments_batch_blocks_are_read() {
    let v = fixture("experiments.json");
    let b = &v["batch"];
    let store = MemoryStore::from_blocks(build_blocks(b["blocks"].as_array().unwrap()));
    let bee = Bee::new(store).unwrap();
    for c in b["checkouts"].as_array().unwrap() {
        let mut view = bee.checkout(c["v"].as_u64().unwrap()).unwrap();
        let got: Result<Vec<String>, _> = view
            .range(RangeOptions::default())
            .map(|e| e.map(|e| String::from_utf8(e.key).unwrap()))
            .collect();
        match c.get("keys") {
            Some(keys) => {
                let want: Vec<String> = keys
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|k| k.as_str().unwrap().into())
                    .collect();
                assert_eq!(got.unwrap(), want);
            }
            None => assert_eq!(
                got.unwrap_err().code,
                libvms_errors::ErrorCode::StorageCorrupt
            ),
        }
    }
}

#[test]
fn diff_matches_js_semantics() {
    let store = MemoryStore::new();
    let mut bee = Bee::new(store).unwrap();
    for i in 0..40u32 {
        bee.put(format!("k{i:02}").as_bytes(), Some(b"v")).unwrap();
    }
    let v1 = bee.version();
    bee.put(b"k05", Some(b"w")).unwrap();
    bee.del(b"k10").unwrap();
    bee.put(b"k99", Some(b"n")).unwrap();
    let d: Vec<_> = bee
        .diff(v1, RangeOptions::default())
        .unwrap()
        .map(|d| d.unwrap())
        .collect();
    let shape: Vec<(Option<String>, Option<String>)> = d
        .iter()
        .map(|d| {
            (
                d.left
                    .as_ref()
                    .map(|e| String::from_utf8(e.key.clone()).unwrap()),
                d.right
                    .as_ref()
                    .map(|e| String::from_utf8(e.key.clone()).unwrap()),
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        shape,
        [(s("k05"), s("k05")), (None, s("k10")), (s("k99"), None)]
    );
}

#[test]
fn corrupt_blocks_give_errors_not_panics() {
    // random bytes, truncations and bit flips of real blocks: every read returns Ok or an error
    let v = fixture("bee20.json");
    let good: Vec<Vec<u8>> = v["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| hex::decode(b["hex"].as_str().unwrap()).unwrap())
        .collect();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..3000 {
        let mut blocks = good.clone();
        let i = 1 + (rnd() % 21) as usize;
        let b = &mut blocks[i];
        match round % 3 {
            0 => b.truncate((rnd() as usize) % (b.len() + 1)),
            1 => {
                let j = (rnd() as usize) % b.len();
                b[j] ^= 1 << (rnd() % 8);
            }
            _ => *b = (0..(rnd() % 40)).map(|_| rnd() as u8).collect(),
        }
        let mut bee = Bee::new(MemoryStore::from_blocks(blocks)).unwrap();
        let _ = bee.range(RangeOptions::default()).take(100).count();
        let _ = bee
            .range(RangeOptions {
                reverse: true,
                ..Default::default()
            })
            .take(100)
            .count();
        let _ = bee.get(b"k13");
        let _ = bee.history(None, None, false).count();
        let _ = bee.put(b"k07x", Some(b"v"));
        let _ = bee.del(b"k03");
    }
}

#[test]
fn random_ops_match_a_model_at_every_checkout() {
    use std::collections::BTreeMap;
    let store = MemoryStore::new();
    let mut bee = Bee::new(store).unwrap();
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    type Model = BTreeMap<Vec<u8>, Vec<u8>>;
    let mut snapshots: Vec<(u64, Model)> = Vec::new();
    let mut seed = 42u64;
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for i in 0..3000u64 {
        let k = format!("k{}", rnd(400)).into_bytes();
        if rnd(3) == 0 {
            let had = model.remove(&k).is_some();
            assert_eq!(bee.del(&k).unwrap(), had);
        } else {
            let v = format!("v{i}").into_bytes();
            bee.put(&k, Some(&v)).unwrap();
            model.insert(k, v);
        }
        if i % 300 == 0 {
            snapshots.push((bee.version(), model.clone()));
        }
    }
    snapshots.push((bee.version(), model.clone()));
    for (v, m) in snapshots {
        let mut co = bee.checkout(v).unwrap();
        let got: Vec<(Vec<u8>, Vec<u8>)> = co
            .range(RangeOptions {
                reverse: true,
                ..Default::default()
            })
            .map(|e| e.map(|e| (e.key, e.value.unwrap())).unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = m
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "version {v}");
        for probe in 0..400 {
            let k = format!("k{probe}").into_bytes();
            assert_eq!(
                co.get(&k).unwrap().map(|e| e.value.unwrap()),
                m.get(&k).cloned()
            );
        }
    }
}
