//! Shared test helpers: fixture loading (hex dumps of JS-written cores) and small utilities.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub const CASES: [&str; 4] = ["a_compat_v0", "b_default", "c_manifest_v1", "d_manifest_v0_noncompat"];
pub const FILES: [&str; 4] = ["oplog", "tree", "bitfield", "data"];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures").join("hypercore10")
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(s).expect("valid hex")
}

/// Bytes of one JS-written file, e.g. ("b_default", "flushed", "oplog").
pub fn vector_file(case: &str, snap: &str, file: &str) -> Vec<u8> {
    let p = fixtures().join(case).join(snap).join(format!("{file}.hex"));
    unhex(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// Materialise a JS-written core into `dir`.
pub fn write_vector(case: &str, snap: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for f in FILES {
        std::fs::write(dir.join(f), vector_file(case, snap, f)).unwrap();
    }
}

pub fn vectors_json() -> String {
    std::fs::read_to_string(fixtures().join("vectors.json")).unwrap()
}

/// Pull `"field": "hex"` for a case out of vectors.json without a JSON dependency.
pub fn case_field(case: &str, field: &str) -> String {
    let j = vectors_json();
    let start = j.find(&format!("\"case\": \"{case}\"")).expect("case present");
    let rest = &j[start..];
    let key = format!("\"{field}\": \"");
    let mut from = 0;
    loop {
        // Skip same-named fields with non-hex values (e.g. a signer's "signature": "ed25519").
        let at = from + rest[from..].find(&key).expect("field present") + key.len();
        let end = rest[at..].find('"').unwrap();
        let v = &rest[at..at + end];
        if v.len() >= 32 && v.chars().all(|c| c.is_ascii_hexdigit()) {
            return v.to_string();
        }
        from = at;
    }
}

pub fn seed_keypair() -> libvms_ledger::KeyPair {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    libvms_ledger::KeyPair::from_seed(seed)
}

pub fn read_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    FILES.iter().map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap_or_default())).collect()
}

/// Assert a directory holds exactly the bytes of a vector snapshot.
pub fn assert_same_as_vector(dir: &Path, case: &str, snap: &str, why: &str) {
    for f in FILES {
        let got = std::fs::read(dir.join(f)).unwrap_or_default();
        let want = vector_file(case, snap, f);
        if got != want {
            let first = got.iter().zip(&want).position(|(a, b)| a != b);
            panic!("{why}: {f} differs from {case}/{snap} (len {} vs {}, first difference at {:?})", got.len(), want.len(), first);
        }
    }
}

pub fn h32(s: &str) -> [u8; 32] {
    unhex(s).try_into().unwrap()
}

pub fn flip_byte(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[at as usize] ^= 0x01;
    std::fs::write(path, b).unwrap();
}

/// What a crash during the last append's sync leaves in the journal: its record torn (a byte of it never reached
/// the disk). Open then redoes the records before it and not that one. False when the journal holds no record.
pub fn tear_last_journal_record(dir: &Path) -> bool {
    let path = dir.join("journal");
    let Ok(mut buf) = std::fs::read(&path) else { return false };
    let Some(epoch) = buf.get(8..16).map(|e| e.to_vec()) else { return false };
    let mut pos = 4096usize;
    let mut last = None;
    while pos + 8 <= buf.len() {
        let crc = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap());
        let len = u32::from_le_bytes(buf[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if len == 0 || pos + 8 + len > buf.len() {
            break;
        }
        let mut h = crc32fast::Hasher::new();
        h.update(&epoch);
        h.update(&buf[pos + 4..pos + 8 + len]);
        if h.finalize() != crc {
            break;
        }
        last = Some(pos);
        pos += 8 + len;
    }
    let Some(at) = last else { return false };
    buf[at + 8] ^= 0xff;
    std::fs::write(&path, &buf).unwrap();
    true
}
