//! RPC-made entries are the bytes lib/call-log.js writes: each fixture case holds a call's params as a client sent
//! them and the entry JavaScript made for it (scripts/call-entry-fixtures.js, through a real CallLog).
use libvms_calllog::{CallEntry, Ended};
use serde_json::Value;

#[test]
fn entries_built_in_rust_are_the_bytes_javascript_writes() {
    let cases: Vec<Value> = serde_json::from_str(include_str!("fixtures/call-entries.json")).unwrap();
    assert!(cases.len() >= 100);
    for (i, c) in cases.iter().enumerate() {
        let text = |k: &str| c[k].as_str().map(str::to_owned);
        let params: Vec<Value> = serde_json::from_str(c["params"].as_str().unwrap()).unwrap();
        let ended = match (text("res"), text("err")) {
            (_, Some(err)) => Ended::Threw(err),
            (Some(res), None) => Ended::Value(res),
            (None, None) => Ended::Undefined,
        };
        let extra: Vec<(String, String)> = serde_json::from_value(c["extra"].clone()).unwrap();
        let entry = CallEntry {
            method: c["methodName"].as_str().unwrap(),
            args: &params,
            user_id: c["userId"].as_str(),
            files_version: c["filesVersion"].as_u64().unwrap(),
            ended: &ended,
            extra: &extra,
        };
        assert_eq!(String::from_utf8(entry.to_bytes()).unwrap(), c["entry"].as_str().unwrap(), "case {i}: {}", c["params"]);
    }
}
