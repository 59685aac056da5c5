//! Corestore 6 layout helpers (FORMAT.md §3): primary key, core names → key pairs, discovery keys,
//! z-base-32 names and core directories. Pure functions except `load_or_create_primary_key`.

use blake2::digest::consts::U32;
use blake2::digest::Mac;
use blake2::{Blake2b, Blake2bMac, Digest};
use libvms_errors::{err, Result};
use std::path::{Path, PathBuf};

type Blake2b256 = Blake2b<U32>;
type Blake2bMac256 = Blake2bMac<U32>;

/// The default namespace (`store.namespace` not used).
pub const DEFAULT_NAMESPACE: [u8; 32] = [0; 32];
/// Name of a drive's metadata core.
pub const DB_CORE_NAME: &str = "db";

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn keyed_hash(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2bMac256::new_from_slice(key).expect("BLAKE2b keys are 1..=64 bytes");
    for p in parts {
        h.update(p);
    }
    h.finalize().into_bytes().into()
}

/// Corestore's NS: hypercore-crypto `namespace('corestore', 1)[0]` = BLAKE2b(BLAKE2b("corestore") ‖ 0).
pub fn corestore_ns() -> [u8; 32] {
    hash(&[&hash(&[b"corestore"]), &[0]])
}

/// `store.namespace(name)`: BLAKE2b-256(parent ‖ name).
pub fn namespace(parent: &[u8; 32], name: &[u8]) -> [u8; 32] {
    hash(&[parent, name])
}

/// Seed of core `name`: BLAKE2b-256 keyed with the primary key over NS ‖ namespace ‖ name.
pub fn core_seed(primary_key: &[u8; 32], namespace: &[u8; 32], name: &str) -> [u8; 32] {
    keyed_hash(primary_key, &[&corestore_ns(), namespace, name.as_bytes()])
}

/// Ed25519 (secret seed, public key) of core `name`; with `compat: true` the public key is the core key.
pub fn core_key_pair(
    primary_key: &[u8; 32],
    namespace: &[u8; 32],
    name: &str,
) -> ([u8; 32], [u8; 32]) {
    let seed = core_seed(primary_key, namespace, name);
    let pk = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    (seed, pk)
}

/// Discovery key: BLAKE2b-256 keyed with the core key over "hypercore".
pub fn discovery_key(key: &[u8; 32]) -> [u8; 32] {
    keyed_hash(key, &[b"hypercore"])
}

const Z32: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// z-base-32 (bits taken most significant first, last group zero-padded): 52 chars for 32 bytes.
pub fn z32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity((bytes.len() * 8).div_ceil(5));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(Z32[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(Z32[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Corestore name of a drive's blobs core: `z32(dbKey) + "/blobs"`.
pub fn blobs_core_name(db_key: &[u8; 32]) -> String {
    format!("{}/blobs", z32_encode(db_key))
}

/// `cores/<dk[0:2]>/<dk[2:4]>/<dk>` (relative to the store root), dk in lowercase hex.
pub fn core_dir(discovery_key: &[u8; 32]) -> String {
    let dk: String = discovery_key.iter().map(|b| format!("{b:02x}")).collect();
    format!("cores/{}/{}/{dk}", &dk[0..2], &dk[2..4])
}

/// A `primary-key` file's key: its first 32 bytes, or None when shorter (corestore then makes a new one).
pub fn parse_primary_key(file: &[u8]) -> Option<[u8; 32]> {
    file.get(..32).map(|k| k.try_into().expect("32 bytes"))
}

pub fn primary_key_path(root: &Path) -> PathBuf {
    root.join("primary-key")
}

/// Reads `<root>/primary-key`, or writes 32 fresh random bytes there when it is missing or too short.
pub fn load_or_create_primary_key(root: &Path) -> Result<[u8; 32]> {
    let p = primary_key_path(root);
    match std::fs::read(&p) {
        Ok(b) => {
            if let Some(k) = parse_primary_key(&b) {
                return Ok(k);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut k = [0u8; 32];
    getrandom::getrandom(&mut k)
        .map_err(|e| err::io(format!("no randomness for the primary key: {e}")))?;
    std::fs::create_dir_all(root)?;
    std::fs::write(&p, k)?;
    Ok(k)
}

/// Keys of a compat drive made by `new Hyperdrive(new Corestore(root))`: (db key, blobs key).
pub fn compat_drive_keys(primary_key: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let (_, db) = core_key_pair(primary_key, &DEFAULT_NAMESPACE, DB_CORE_NAME);
    let (_, blobs) = core_key_pair(primary_key, &DEFAULT_NAMESPACE, &blobs_core_name(&db));
    (db, blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let p = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn hx(b: &[u8]) -> String {
        b.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn pk() -> [u8; 32] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn drive_json_keys() {
        let v = fixture("drive.json");
        assert_eq!(hx(&pk()), v["primaryKey"].as_str().unwrap());
        assert_eq!(hx(&corestore_ns()), v["corestoreNS"].as_str().unwrap());
        let (db, blobs) = compat_drive_keys(&pk());
        assert_eq!(hx(&db), v["dbKey"].as_str().unwrap());
        assert_eq!(hx(&blobs), v["blobsKey"].as_str().unwrap());
        assert_eq!(z32_encode(&db), v["dbId_z32"].as_str().unwrap());
        assert_eq!(blobs_core_name(&db), v["blobsCoreName"].as_str().unwrap());
        assert_eq!(
            hx(&discovery_key(&db)),
            v["dbDiscoveryKey"].as_str().unwrap()
        );
        assert_eq!(
            hx(&discovery_key(&blobs)),
            v["blobsDiscoveryKey"].as_str().unwrap()
        );
        assert_eq!(
            core_dir(&discovery_key(&db)),
            v["dbCoreDir"].as_str().unwrap()
        );
        assert_eq!(
            core_dir(&discovery_key(&blobs)),
            v["blobsCoreDir"].as_str().unwrap()
        );
    }

    #[test]
    fn bee20_and_modes_keys() {
        let v = fixture("bee20.json");
        let (_, key) = core_key_pair(&pk(), &DEFAULT_NAMESPACE, "bee");
        assert_eq!(hx(&key), v["key"].as_str().unwrap());
        assert_eq!(
            hx(&discovery_key(&key)),
            v["discoveryKey"].as_str().unwrap()
        );
        assert_eq!(
            core_dir(&discovery_key(&key)),
            v["coreDir"].as_str().unwrap()
        );
        let modes = fixture("modes.json");
        for m in modes.as_array().unwrap() {
            // every mode's db signer is the "db" key pair's public key
            let (_, db_pk) = core_key_pair(&pk(), &DEFAULT_NAMESPACE, DB_CORE_NAME);
            assert_eq!(hx(&db_pk), m["dbPublicKey"].as_str().unwrap());
            if m["compat"].as_bool().unwrap() {
                let (_, blobs) = core_key_pair(&pk(), &DEFAULT_NAMESPACE, &blobs_core_name(&db_pk));
                assert_eq!(hx(&blobs), m["blobsKey"].as_str().unwrap());
                let h = crate::bee::Header::drive(Some(&blobs));
                assert_eq!(
                    hx(&prost::Message::encode_to_vec(&h)),
                    m["header0"].as_str().unwrap()
                );
            }
        }
        let v1 = &modes[2];
        assert_eq!(
            hx(&prost::Message::encode_to_vec(&crate::bee::Header::drive(
                None
            ))),
            v1["header0"].as_str().unwrap()
        );
    }

    #[test]
    fn primary_key_file() {
        assert_eq!(parse_primary_key(&[1; 31]), None);
        assert_eq!(parse_primary_key(&[1; 40]), Some([1; 32]));
        let dir = std::env::temp_dir().join(format!("libvms-archive-pk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = load_or_create_primary_key(&dir).unwrap();
        assert_eq!(load_or_create_primary_key(&dir).unwrap(), a);
        std::fs::write(primary_key_path(&dir), [9u8; 32]).unwrap();
        assert_eq!(load_or_create_primary_key(&dir).unwrap(), [9; 32]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
