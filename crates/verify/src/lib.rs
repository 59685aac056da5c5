//! libvms-verify: does a replayed VM tell the same story as the host?
//!
//! `compare_logs` walks two call logs side by side in verified runs of blocks (never whole logs in memory) and
//! names the first entry where they diverge. Entries are compared as canonical JSON, so key order never matters;
//! the byte-equal case, by far the common one, costs no parsing at all. The init entries (index 0) name different
//! files archives by design, so only their `type` and `code` are compared.
//! Archives are compared by their content diff (`libvms_archive::digest`), next to this in the binding.
#![forbid(unsafe_code)]

use libvms_calllog::canonical_json;
use libvms_errors::{err, Error, Result};
use libvms_ledger::{BlockRun, SharedCore};
use serde_json::Value;

/// Entries read from each log per step.
const RUN: u64 = 16_384;
/// Longest excerpt of an entry quoted in a mismatch message.
const EXCERPT: usize = 2048;

/// Something entries can be streamed from: a call log.
pub trait EntrySource: Sync {
    fn len(&self) -> u64;
    fn read(&self, start: u64, end: u64) -> Result<BlockRun>;
}

impl EntrySource for SharedCore {
    fn len(&self) -> u64 {
        self.length()
    }
    fn read(&self, start: u64, end: u64) -> Result<BlockRun> {
        self.with(|c| c.read_run(start, end))
    }
}

/// The first `len` entries of a log: the snapshot an audit fixed at its start (the log may grow meanwhile).
pub struct Prefix<'a, S: EntrySource>(pub &'a S, pub u64);

impl<S: EntrySource> EntrySource for Prefix<'_, S> {
    fn len(&self) -> u64 {
        self.0.len().min(self.1)
    }
    fn read(&self, start: u64, end: u64) -> Result<BlockRun> {
        self.0.read(start, end.min(self.1))
    }
}

/// Ok if both logs hold the same entries; otherwise a `VERIFICATION_MISMATCH` error at the first divergent index.
pub fn compare_logs(a: &impl EntrySource, b: &impl EntrySource) -> Result<()> {
    let (len_a, len_b) = (a.len(), b.len());
    let common = len_a.min(len_b);
    let mut at = 0;
    while at < common {
        let end = (at + RUN).min(common);
        // Each run is verified (hashed) as it is read: read both logs at once, on two threads.
        let (ra, rb) = std::thread::scope(|s| {
            let other = s.spawn(|| b.read(at, end));
            let ra = a.read(at, end);
            (ra, other.join().unwrap_or_else(|_| Err(err::internal("reader thread panicked"))))
        });
        let (ra, rb) = (ra?, rb?);
        for k in 0..ra.len() {
            let index = at + k as u64;
            let (ea, eb) = (ra.block(k), rb.block(k));
            let same = if index == 0 { same_init(ea, eb) } else { ea == eb || same_json(ea, eb) };
            if !same {
                return Err(mismatch(index, Some(ea), Some(eb), len_a, len_b));
            }
        }
        at = end;
    }
    if len_a != len_b {
        let (ea, eb) = (entry_at(a, common)?, entry_at(b, common)?);
        return Err(mismatch(common, ea.as_deref(), eb.as_deref(), len_a, len_b));
    }
    Ok(())
}

fn entry_at(src: &impl EntrySource, index: u64) -> Result<Option<Vec<u8>>> {
    if index >= src.len() {
        return Ok(None);
    }
    Ok(Some(src.read(index, index + 1)?.block(0).to_vec()))
}

fn same_json(a: &[u8], b: &[u8]) -> bool {
    match (serde_json::from_slice::<Value>(a), serde_json::from_slice::<Value>(b)) {
        (Ok(x), Ok(y)) => canonical_json(&x) == canonical_json(&y),
        _ => false,
    }
}

/// Init entries agree when both are `init` entries of the same code.
fn same_init(a: &[u8], b: &[u8]) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<Value>(bytes).ok();
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => x["type"] == "init" && y["type"] == "init" && x["code"] == y["code"],
        _ => false,
    }
}

fn mismatch(index: u64, a: Option<&[u8]>, b: Option<&[u8]>, len_a: u64, len_b: u64) -> Error {
    let show = |e: Option<&[u8]>| match e {
        None => "(no entry)".to_string(),
        Some(bytes) => {
            let text = String::from_utf8_lossy(bytes);
            if text.len() > EXCERPT {
                let cut = (0..=EXCERPT).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                format!("{}…", &text[..cut])
            } else {
                text.into_owned()
            }
        }
    };
    let lengths = if len_a != len_b { format!(" (the logs hold {len_a} and {len_b} entries)") } else { String::new() };
    err::mismatch(format!("call logs diverge at entry {index}{lengths}: {} vs {}", show(a), show(b))).at(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_ledger::{Core, Storage};

    fn log(entries: &[&str]) -> SharedCore {
        let log = SharedCore::new(Core::create(Storage::Memory).unwrap(), "call log");
        let blocks: Vec<&[u8]> = entries.iter().map(|e| e.as_bytes()).collect();
        if !blocks.is_empty() {
            log.write(|c| c.append_batch(&blocks)).unwrap();
        }
        log
    }

    const INIT_A: &str = r#"{"type":"init","code":"exports.f = v => v","filesArchiveUrl":"dat://aa"}"#;
    const INIT_B: &str = r#"{"type":"init","code":"exports.f = v => v","filesArchiveUrl":"dat://bb"}"#;

    #[test]
    fn equal_logs_pass_whatever_the_archive_url_and_key_order() {
        let a = log(&[INIT_A, r#"{"type":"call","call":{"methodName":"f","args":[1]},"result":{"filesVersion":1,"res":1}}"#]);
        let b = log(&[INIT_B, r#"{"call":{"args":[1],"methodName":"f"},"type":"call","result":{"res":1,"filesVersion":1}}"#]);
        compare_logs(&a, &b).unwrap();
        compare_logs(&log(&[]), &log(&[])).unwrap();
    }

    #[test]
    fn the_first_divergent_entry_is_named() {
        let mut a = vec![INIT_A.to_string()];
        let mut b = vec![INIT_B.to_string()];
        for i in 1..10_000 {
            a.push(format!(r#"{{"type":"call","n":{i}}}"#));
            b.push(format!(r#"{{"type":"call","n":{}}}"#, if i == 7777 { 0 } else { i }));
        }
        let (ra, rb): (Vec<&str>, Vec<&str>) = (a.iter().map(|s| s.as_str()).collect(), b.iter().map(|s| s.as_str()).collect());
        let e = compare_logs(&log(&ra), &log(&rb)).unwrap_err();
        assert_eq!(e.code, libvms_errors::ErrorCode::VerificationMismatch);
        assert_eq!(e.index, Some(7777));
        assert!(e.message.contains(r#""n":7777"#) && e.message.contains(r#""n":0"#), "{}", e.message);
    }

    #[test]
    fn different_code_or_length_is_a_mismatch() {
        let other = r#"{"type":"init","code":"exports.f = v => v + 1","filesArchiveUrl":"dat://aa"}"#;
        assert_eq!(compare_logs(&log(&[INIT_A]), &log(&[other])).unwrap_err().index, Some(0));
        let e = compare_logs(&log(&[INIT_A, "{}", "[1]"]), &log(&[INIT_B, "{}"])).unwrap_err();
        assert_eq!(e.index, Some(2));
        assert!(e.message.contains("3 and 2 entries") && e.message.contains("(no entry)"), "{}", e.message);
        let not_init = r#"{"type":"call","code":"exports.f = v => v"}"#;
        assert_eq!(compare_logs(&log(&[not_init]), &log(&[not_init])).unwrap_err().index, Some(0));
    }

    #[test]
    fn a_prefix_compares_only_the_snapshot() {
        let host = log(&[INIT_A, "{}", "[1]", "[2]"]);
        let replay = log(&[INIT_B, "{}", "[1]"]);
        compare_logs(&Prefix(&host, 3), &replay).unwrap();
        assert_eq!(compare_logs(&Prefix(&host, 4), &replay).unwrap_err().index, Some(3));
        assert_eq!(compare_logs(&Prefix(&host, 2), &replay).unwrap_err().index, Some(2));
    }

    #[test]
    fn non_json_entries_compare_by_bytes() {
        compare_logs(&log(&[INIT_A, "not json"]), &log(&[INIT_B, "not json"])).unwrap();
        assert_eq!(compare_logs(&log(&[INIT_A, "not json"]), &log(&[INIT_B, "not jsoN"])).unwrap_err().index, Some(1));
    }
}
