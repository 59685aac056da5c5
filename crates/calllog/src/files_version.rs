//! Reading a log back for the archive version it accounts for: what a follower may be shown of the archive.

use libvms_errors::Result;
use libvms_ledger::SharedCore;

/// The archive version `log` accounts for: its last call entry's `filesVersion` (1 before any call: the
/// `/dat.json` a new VM writes). Reads backwards from the end, past trailing non-call entries (restarts), and
/// stops at the init entry.
pub fn logged_files_version(log: &SharedCore) -> Result<u64> {
    let len = log.length();
    log.with(|c| {
        for i in (0..len).rev() {
            let e: serde_json::Value = serde_json::from_slice(&c.get(i)?).unwrap_or_default();
            if e["type"] == "call" {
                if let Some(v) = e["result"]["filesVersion"].as_u64() {
                    return Ok(v);
                }
            }
            if e["type"] == "init" {
                break;
            }
        }
        Ok(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libvms_ledger::{Core, Storage};

    fn log(entries: &[&str]) -> SharedCore {
        let core = SharedCore::new(Core::create(Storage::Memory).unwrap(), "test log");
        for e in entries {
            core.with(|c| c.append_batch(&[e.as_bytes()]).map(|_| ())).unwrap();
        }
        core
    }

    #[test]
    fn the_last_call_entry_names_the_version() {
        const INIT: &str = r#"{"type":"init","code":"","filesArchiveUrl":"dat://x"}"#;
        assert_eq!(logged_files_version(&log(&[INIT])).unwrap(), 1);
        let calls = [
            INIT,
            r#"{"type":"call","call":{"methodName":"f","args":[]},"result":{"filesVersion":4}}"#,
            r#"{"type":"call","call":{"methodName":"g","args":[]},"result":{"filesVersion":7,"err":"Error"}}"#,
            r#"{"type":"restart"}"#,
        ];
        assert_eq!(logged_files_version(&log(&calls)).unwrap(), 7, "past a trailing restart");
        assert_eq!(logged_files_version(&log(&calls[..2])).unwrap(), 4);
    }
}
