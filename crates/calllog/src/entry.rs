//! A call's log entry, built in Rust byte for byte as `lib/call-log.js` (`callEntryJSON`) writes it:
//! `{"type":"call","call":{"methodName","args","userId"},"result":{"filesVersion","res","err"},...extra}`.
//!
//! The arguments are written from the parsed request as JavaScript's `JSON.stringify(JSON.parse(text))` would
//! write them (its number format, its key order), so an entry made here and one made in JavaScript are the same
//! bytes.
use serde_json::{Map, Value};

/// How the call ended, as the entry records it.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// The result's JSON text, as the script's realm wrote it.
    Value(String),
    /// No result (`undefined`): the entry has no `res`.
    Undefined,
    /// The thrown error's name (falling back to its message), as JSON text (`"TypeError"`).
    Threw(String),
}

/// The parts of a call's entry.
#[derive(Debug, Clone)]
pub struct CallEntry<'a> {
    pub method: &'a str,
    pub args: &'a [Value],
    /// `None`: no `userId` member.
    pub user_id: Option<&'a str>,
    pub files_version: u64,
    pub ended: &'a Ended,
    /// More members after `result`, in order, each value as JSON text: a signed call's `auth`, a limit's `stopped`,
    /// and whatever else a call records (oracle outcomes). Members named like the fixed ones are left out.
    pub extra: &'a [(String, String)],
}

const FIXED: [&str; 6] = ["userId", "methodName", "args", "res", "err", "filesVersion"];

impl CallEntry<'_> {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(128);
        out.push_str("{\"type\":\"call\",\"call\":{\"methodName\":");
        push_str(&mut out, self.method);
        out.push_str(",\"args\":");
        js_array(self.args, &mut out);
        if let Some(u) = self.user_id {
            out.push_str(",\"userId\":");
            push_str(&mut out, u);
        }
        out.push_str("},\"result\":{\"filesVersion\":");
        out.push_str(&self.files_version.to_string());
        match self.ended {
            Ended::Value(text) => {
                out.push_str(",\"res\":");
                out.push_str(text);
            }
            Ended::Undefined => {}
            Ended::Threw(name) => {
                out.push_str(",\"err\":");
                out.push_str(name);
            }
        }
        out.push('}');
        for (k, v) in self.extra {
            if FIXED.contains(&k.as_str()) {
                continue;
            }
            out.push(',');
            push_str(&mut out, k);
            out.push(':');
            out.push_str(v);
        }
        out.push('}');
        out.into_bytes()
    }
}

fn push_str(out: &mut String, s: &str) {
    // serde_json escapes exactly as JSON.stringify does for well-formed strings (short escapes for \b \t \n \f \r,
    // lowercase \u00xx for other controls, nothing else).
    out.push_str(&serde_json::to_string(s).expect("strings serialise"));
}

/// `JSON.stringify(JSON.parse(text))` of the array parsed from `text`.
pub fn js_json_args(args: &[Value]) -> String {
    let mut out = String::new();
    js_array(args, &mut out);
    out
}

fn js_array(items: &[Value], out: &mut String) {
    out.push('[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        js_value(v, out);
    }
    out.push(']');
}

fn js_value(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&js_number(n.as_f64().unwrap_or(0.0))),
        Value::String(s) => push_str(out, s),
        Value::Array(a) => js_array(a, out),
        Value::Object(m) => js_object(m, out),
    }
}

/// A JavaScript object lists its integer-like keys first, ascending, then the others in insertion order.
fn js_object(m: &Map<String, Value>, out: &mut String) {
    let mut index_keys: Vec<(u32, &String)> = m.keys().filter_map(|k| array_index(k).map(|i| (i, k))).collect();
    index_keys.sort_unstable();
    let others = m.keys().filter(|k| array_index(k).is_none());
    out.push('{');
    for (i, k) in index_keys.into_iter().map(|(_, k)| k).chain(others).enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, k);
        out.push(':');
        js_value(&m[k], out);
    }
    out.push('}');
}

/// An array index as ECMAScript defines it: the canonical decimal text of an integer below 2^32 - 1.
fn array_index(k: &str) -> Option<u32> {
    if k.is_empty() || k.len() > 10 || (k.len() > 1 && k.starts_with('0')) || !k.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = k.parse().ok()?;
    (n < u32::MAX as u64).then_some(n as u32)
}

/// ECMAScript's Number::toString (radix 10) of a finite number: shortest round-trip digits, placed by its rules.
pub fn js_number(x: f64) -> String {
    if x == 0.0 {
        return "0".into(); // -0 too
    }
    if !x.is_finite() {
        return "null".into(); // JSON.stringify's answer; JSON text never holds one
    }
    // Rust's `{:e}` gives the shortest digits that round-trip, closest to the value: `d.ddde±x`.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp writes an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let n = exp.parse::<i64>().expect("an integer exponent") + 1;
    let mut s = String::new();
    if x < 0.0 {
        s.push('-');
    }
    if k <= n && n <= 21 {
        s.push_str(&digits);
        s.extend(std::iter::repeat('0').take((n - k) as usize));
    } else if 0 < n && n <= 21 {
        s.push_str(&digits[..n as usize]);
        s.push('.');
        s.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        s.push_str("0.");
        s.extend(std::iter::repeat('0').take((-n) as usize));
        s.push_str(&digits);
    } else {
        let e = n - 1;
        s.push_str(&digits[..1]);
        if k > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if e >= 0 { '+' } else { '-' });
        s.push_str(&e.abs().to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_javascript_writes_them() {
        let cases = [
            (1.0, "1"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-6, "0.000001"),
            (1e-7, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (2.5e300, "2.5e+300"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9007199254740993.0, "9007199254740992"),
            (0.000123, "0.000123"),
            (123.456, "123.456"),
        ];
        for (x, js) in cases {
            assert_eq!(js_number(x), js, "{x:e}");
        }
    }

    #[test]
    fn args_as_javascript_rewrites_them() {
        let text = r#"[1.0, -0, 12345678901234567891, {"b":1,"10":2,"a":{"2":0,"01":1,"1":2}}, "\u001f\n\u2028é"]"#;
        let parsed: Vec<Value> = serde_json::from_str(text).unwrap();
        assert_eq!(
            js_json_args(&parsed),
            "[1,0,12345678901234567000,{\"10\":2,\"b\":1,\"a\":{\"1\":2,\"2\":0,\"01\":1}},\"\\u001f\\n\u{2028}é\"]"
        );
    }
}
