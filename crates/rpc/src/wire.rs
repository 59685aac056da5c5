//! JSON-RPC 2.0 as libvms 2 spoke it (rpc-websockets 3.4.6, pfrazee's fork): parsing, validation, and the
//! exact bytes of every reply. Objects are written by hand so that key order is always
//! `jsonrpc, result|error, id` and `code, message, data`, as in the reference transcript.

use serde_json::Value;

use crate::backend::Outcome;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
/// The code of every error thrown by a method (and of libvms' own refusals).
pub const SERVER_ERROR: i64 = -32000;

/// Data of the refusal of `init` over RPC (`-32000`, message `"Error"`).
pub const INIT_REFUSED: &str = "RPC method not supported";
/// Data of the refusal of a call to a full queue (`-32000`, message `"Error"`).
pub const QUEUE_FULL: &str = "Too many active requests. Try again in a few minutes.";

/// The `error` member of a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub code: i64,
    pub message: String,
    /// Absent when the wire object has no `data` key.
    pub data: Option<Value>,
    /// The `error` member exactly as received: nodevms-client rejected with it as is (a thrown string, extra
    /// keys...), so a JavaScript caller must get this, not a rebuilt object.
    pub raw: Value,
}

impl WireError {
    /// A standard error as a server would send it (`raw` built from the other fields).
    pub fn new(code: i64, message: impl Into<String>, data: Option<Value>) -> WireError {
        let mut e = WireError { code, message: message.into(), data, raw: Value::Null };
        e.raw = e.build_json();
        e
    }

    /// What a JavaScript caller rejects with: the `error` member as received.
    pub fn to_json(&self) -> Value {
        self.raw.clone()
    }

    fn build_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("code".into(), Value::from(self.code));
        m.insert("message".into(), Value::from(self.message.clone()));
        if let Some(d) = &self.data {
            m.insert("data".into(), d.clone());
        }
        Value::Object(m)
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.message)?;
        match &self.data {
            Some(Value::String(s)) => write!(f, ": {s}"),
            Some(d) => write!(f, ": {d}"),
            None => Ok(()),
        }
    }
}

/// The standard message of a JSON-RPC error code, as rpc-websockets wrote it.
pub fn standard_message(code: i64) -> &'static str {
    match code {
        PARSE_ERROR => "Parse error",
        INVALID_REQUEST => "Invalid Request",
        METHOD_NOT_FOUND => "Method not found",
        INVALID_PARAMS => "Invalid params",
        -32603 => "Internal error",
        _ => "Internal Server Error",
    }
}

/// `params` of a request.
#[derive(Debug, PartialEq)]
pub(crate) enum Params {
    /// Missing or `null`: no arguments.
    Missing,
    Args(Vec<Value>),
    /// Anything else (object, string, number...): answered -32602 and never executed.
    Invalid,
}

#[derive(Debug, PartialEq)]
pub(crate) struct Request {
    pub method: String,
    pub params: Params,
    /// `None`: a notification (no `id` member at all). `Some(Value::Null)` is a request with id null.
    pub id: Option<Value>,
    /// The `auth` member of a signed call (see auth.rs), if any.
    pub auth: Option<Value>,
}

/// One element of what a frame carried.
#[derive(Debug, PartialEq)]
pub(crate) enum Entry {
    Request(Request),
    /// Answered -32600 with this id (null when unknown) and optional `data`, even without an id.
    Invalid { id: Value, data: Option<&'static str> },
}

#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    One(Entry),
    Batch(Vec<Entry>),
    /// `[]`: one -32600 reply, data "Invalid array".
    EmptyBatch,
    /// Not JSON: -32700 with id null; the string is the `data`.
    ParseError(String),
}

pub(crate) fn parse(text: &[u8]) -> Incoming {
    match serde_json::from_slice::<Value>(text) {
        Err(e) => Incoming::ParseError(format!("SyntaxError: {e}")),
        Ok(Value::Array(items)) if items.is_empty() => Incoming::EmptyBatch,
        Ok(Value::Array(items)) => Incoming::Batch(items.into_iter().map(entry).collect()),
        Ok(v) => Incoming::One(entry(v)),
    }
}

fn entry(v: Value) -> Entry {
    let Value::Object(mut m) = v else {
        return Entry::Invalid { id: Value::Null, data: None };
    };
    let id = match m.remove("id") {
        None => None,
        Some(id @ (Value::Number(_) | Value::String(_) | Value::Null)) => Some(id),
        Some(_) => return Entry::Invalid { id: Value::Null, data: Some("Invalid id") },
    };
    let reply_id = || id.clone().unwrap_or(Value::Null);
    if !matches!(m.get("jsonrpc"), Some(Value::String(s)) if s == "2.0") {
        return Entry::Invalid { id: reply_id(), data: Some("Invalid JSON RPC version") };
    }
    let method = match m.remove("method") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => return Entry::Invalid { id: reply_id(), data: Some("Method not specified") },
        Some(_) => return Entry::Invalid { id: reply_id(), data: Some("Invalid method name") },
    };
    let params = match m.remove("params") {
        None | Some(Value::Null) => Params::Missing,
        Some(Value::Array(a)) => Params::Args(a),
        Some(_) => Params::Invalid,
    };
    Entry::Request(Request { method, params, id, auth: m.remove("auth") })
}

/// `data` of an error reply.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrData<'a> {
    None,
    Str(&'a str),
}

fn push_json(buf: &mut Vec<u8>, v: &Value) {
    serde_json::to_writer(&mut *buf, v).expect("a serde_json::Value always serialises");
}

fn push_str(buf: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *buf, s).expect("a str always serialises");
}

fn finish(mut buf: Vec<u8>, id: &Value) -> String {
    buf.extend_from_slice(b",\"id\":");
    push_json(&mut buf, id);
    buf.push(b'}');
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

const HEAD: &[u8] = b"{\"jsonrpc\":\"2.0\"";

/// `{"jsonrpc":"2.0","result":<result>,"id":<id>}`
pub(crate) fn result_reply(result: &Value, id: &Value) -> String {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(HEAD);
    buf.extend_from_slice(b",\"result\":");
    push_json(&mut buf, result);
    finish(buf, id)
}

/// A result already serialised (the cached handshake).
pub(crate) fn raw_result_reply(raw: &str, id: &Value) -> String {
    let mut buf = Vec::with_capacity(raw.len() + 48);
    buf.extend_from_slice(HEAD);
    buf.extend_from_slice(b",\"result\":");
    buf.extend_from_slice(raw.as_bytes());
    finish(buf, id)
}

/// `{"jsonrpc":"2.0","id":<id>}`: the method returned `undefined` (JSON.stringify drops the key).
pub(crate) fn undefined_reply(id: &Value) -> String {
    let mut buf = Vec::with_capacity(32);
    buf.extend_from_slice(HEAD);
    finish(buf, id)
}

/// `{"jsonrpc":"2.0","error":{"code":..,"message":..,"data"?:..},"id":<id>}`
pub(crate) fn error_reply(code: i64, message: &str, data: ErrData<'_>, id: &Value) -> String {
    let mut buf = Vec::with_capacity(96);
    buf.extend_from_slice(HEAD);
    buf.extend_from_slice(b",\"error\":{\"code\":");
    buf.extend_from_slice(code.to_string().as_bytes());
    buf.extend_from_slice(b",\"message\":");
    push_str(&mut buf, message);
    if let ErrData::Str(d) = data {
        buf.extend_from_slice(b",\"data\":");
        push_str(&mut buf, d);
    }
    buf.push(b'}');
    finish(buf, id)
}

/// A standard error (`message` from the code), as rpc-websockets' `createError(code, details)`.
pub(crate) fn std_error_reply(code: i64, data: ErrData<'_>, id: &Value) -> String {
    error_reply(code, standard_message(code), data, id)
}

/// `{"jsonrpc":"2.0","error":<value>,"id":<id>}`: a method threw something that is not an Error.
pub(crate) fn thrown_value_reply(error: &Value, id: &Value) -> String {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(HEAD);
    buf.extend_from_slice(b",\"error\":");
    push_json(&mut buf, error);
    finish(buf, id)
}

/// Replies of a batch, in one array frame.
pub(crate) fn batch_reply<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, p) in parts.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(p);
    }
    out.push(']');
    out
}

/// A request as the client writes it: `{"jsonrpc":"2.0","method":..,"params":..,"id":..}`.
pub(crate) fn request(method: &str, params: Option<&[Value]>, id: u64) -> String {
    let mut buf = Vec::with_capacity(64);
    buf.extend_from_slice(HEAD);
    buf.extend_from_slice(b",\"method\":");
    push_str(&mut buf, method);
    buf.extend_from_slice(b",\"params\":");
    match params {
        None => buf.extend_from_slice(b"null"),
        Some(p) => {
            serde_json::to_writer(&mut buf, p).expect("a Value slice always serialises");
        }
    }
    buf.extend_from_slice(b",\"id\":");
    buf.extend_from_slice(id.to_string().as_bytes());
    buf.push(b'}');
    String::from_utf8(buf).expect("serde_json writes UTF-8")
}

/// A reply as the client reads it.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub id: Value,
    /// `Ok(None)`: no `result` key (undefined).
    pub outcome: Result<Option<Value>, WireError>,
    /// A signed call's receipt (auth.rs).
    pub receipt: Option<Value>,
}

/// Parse one reply object (elements of a batch reply are parsed one by one by the caller).
pub(crate) fn parse_reply(v: Value) -> Option<Reply> {
    let Value::Object(mut m) = v else { return None };
    let id = m.remove("id").unwrap_or(Value::Null);
    let receipt = m.remove("receipt");
    if let Some(e) = m.remove("error") {
        let err = match &e {
            Value::Object(em) => WireError {
                code: em.get("code").and_then(|c| c.as_i64()).unwrap_or(0),
                message: match em.get("message") {
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                data: em.get("data").cloned(),
                raw: e.clone(),
            },
            // A thrown non-Error value: keep it whole as `data`.
            other => WireError { code: 0, message: String::new(), data: Some(other.clone()), raw: e.clone() },
        };
        return Some(Reply { id, outcome: Err(err), receipt });
    }
    Some(Reply { id, outcome: Ok(m.remove("result")), receipt })
}

/// The numeric id of a reply, if it is one the client could have sent.
pub(crate) fn id_u64(id: &Value) -> Option<u64> {
    match id {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// The reply to a call that ran.
pub(crate) fn outcome_reply(outcome: &Outcome, id: &Value) -> String {
    match outcome {
        Outcome::Value(v) => result_reply(v, id),
        Outcome::Undefined => undefined_reply(id),
        Outcome::Thrown { name, message } => error_reply(SERVER_ERROR, name, ErrData::Str(message), id),
        Outcome::ThrownValue(v) => thrown_value_reply(v, id),
        Outcome::WithReceipt(o, receipt) => crate::auth::with_receipt(outcome_reply(o, id), receipt),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(s: &str) -> Entry {
        match parse(s.as_bytes()) {
            Incoming::One(e) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_match_the_transcript() {
        assert_eq!(result_reply(&json!(5), &json!(3)), r#"{"jsonrpc":"2.0","result":5,"id":3}"#);
        assert_eq!(undefined_reply(&json!(4)), r#"{"jsonrpc":"2.0","id":4}"#);
        assert_eq!(
            error_reply(SERVER_ERROR, "Error", ErrData::Str("boom"), &json!(5)),
            r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Error","data":"boom"},"id":5}"#
        );
        assert_eq!(
            std_error_reply(METHOD_NOT_FOUND, ErrData::None, &json!(1)),
            r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1}"#
        );
        assert_eq!(
            request("handshake", None, 1),
            r#"{"jsonrpc":"2.0","method":"handshake","params":null,"id":1}"#
        );
        assert_eq!(
            request("add", Some(&[json!(2), json!(3)]), 3),
            r#"{"jsonrpc":"2.0","method":"add","params":[2,3],"id":3}"#
        );
        assert_eq!(batch_reply(["1", "2"]), "[1,2]");
    }

    #[test]
    fn result_keeps_key_order() {
        let v: Value = serde_json::from_str(r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#).unwrap();
        assert_eq!(result_reply(&v, &json!("x")), r#"{"jsonrpc":"2.0","result":{"z":1,"a":2,"m":{"y":1,"b":2}},"id":"x"}"#);
    }

    #[test]
    fn validation() {
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"a","params":null,"id":1}"#),
            Entry::Request(Request { method: "a".into(), params: Params::Missing, id: Some(json!(1)), auth: None })
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"a"}"#),
            Entry::Request(Request { method: "a".into(), params: Params::Missing, id: None, auth: None })
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"a","params":[1],"id":null}"#),
            Entry::Request(Request { method: "a".into(), params: Params::Args(vec![json!(1)]), id: Some(Value::Null), auth: None })
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"a","params":{"x":1},"id":"s"}"#),
            Entry::Request(Request { method: "a".into(), params: Params::Invalid, id: Some(json!("s")), auth: None })
        );
        assert_eq!(one("5"), Entry::Invalid { id: Value::Null, data: None });
        assert_eq!(
            one(r#"{"jsonrpc":"1.0","method":"a","id":2}"#),
            Entry::Invalid { id: json!(2), data: Some("Invalid JSON RPC version") }
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":7,"id":2}"#),
            Entry::Invalid { id: json!(2), data: Some("Invalid method name") }
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","id":2}"#),
            Entry::Invalid { id: json!(2), data: Some("Method not specified") }
        );
        assert_eq!(
            one(r#"{"jsonrpc":"2.0","method":"a","id":{"x":1}}"#),
            Entry::Invalid { id: Value::Null, data: Some("Invalid id") }
        );
        assert_eq!(parse(b"[]"), Incoming::EmptyBatch);
        assert!(matches!(parse(b"{nope"), Incoming::ParseError(_)));
        assert!(matches!(parse(b"[1,{}]"), Incoming::Batch(v) if v.len() == 2));
    }

    #[test]
    fn reply_parsing() {
        let r = parse_reply(json!({"jsonrpc":"2.0","id":4})).unwrap();
        assert_eq!(r.outcome, Ok(None));
        let r = parse_reply(json!({"jsonrpc":"2.0","result":null,"id":4})).unwrap();
        assert_eq!(r.outcome, Ok(Some(Value::Null)));
        let r = parse_reply(json!({"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":1})).unwrap();
        assert_eq!(r.outcome, Err(WireError::new(-32601, "Method not found", None)));
        assert_eq!(id_u64(&json!(7)), Some(7));
        // JavaScript gets the error member exactly as sent: a thrown string, or an object with extra keys.
        let r = parse_reply(json!({"jsonrpc":"2.0","error":"oops","id":5})).unwrap();
        assert_eq!(r.outcome.unwrap_err().to_json(), json!("oops"));
        let odd = json!({"code":-32000,"message":"Error","data":"x","extra":[1]});
        let r = parse_reply(json!({"jsonrpc":"2.0","error":odd.clone(),"id":6})).unwrap();
        let e = r.outcome.unwrap_err();
        assert_eq!((e.code, e.to_json()), (-32000, odd));
    }
}
