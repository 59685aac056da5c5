//! RFC 8785 JSON Canonicalization Scheme over `serde_json` values: object members sorted by their names' UTF-16
//! code units, no whitespace, strings with the minimal escapes, numbers as ECMAScript writes doubles.
//!
//! Values JCS cannot represent are refused rather than rewritten: `-0` (JSON would write `0`, so the signer and the
//! host would disagree on what was signed), NaN and infinities. Lone surrogates cannot occur in a Rust string:
//! parsing JSON text that escapes one fails, and the JavaScript client refuses them before anything is signed.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JcsError {
    NegativeZero,
    NotFinite,
}

impl std::fmt::Display for JcsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JcsError::NegativeZero => "-0 has no canonical JSON form",
            JcsError::NotFinite => "NaN and Infinity are not JSON",
        })
    }
}

/// The canonical bytes of `v`.
pub fn to_vec(v: &Value) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(64);
    write(v, &mut out)?;
    Ok(out)
}

/// Canonical JSON of JSON text (parsed as JavaScript's `JSON.parse` would: duplicate names, the last wins).
pub fn from_text(text: &str) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if text_has_negative_zero(text) && has_negative_zero(&v) {
        return Err(JcsError::NegativeZero.to_string());
    }
    to_vec(&v).map_err(|e| e.to_string())
}

fn text_has_negative_zero(text: &str) -> bool {
    text.contains("-0")
}

fn has_negative_zero(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().is_some_and(|f| f == 0.0 && f.is_sign_negative()),
        Value::Array(a) => a.iter().any(has_negative_zero),
        Value::Object(m) => m.values().any(has_negative_zero),
        _ => false,
    }
}

pub fn write(v: &Value, out: &mut Vec<u8>) -> Result<(), JcsError> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => {
            // Every JSON number is an IEEE double to JCS (and to JavaScript, which the VM runs).
            let f = n.as_f64().ok_or(JcsError::NotFinite)?;
            number(f, out)?
        }
        Value::String(s) => string(s, out),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(x, out)?;
            }
            out.push(b']');
        }
        Value::Object(m) => {
            let mut keys: Vec<(&String, Vec<u16>)> = m.keys().map(|k| (k, k.encode_utf16().collect())).collect();
            keys.sort_by(|a, b| a.1.cmp(&b.1));
            out.push(b'{');
            for (i, (k, _)) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                write(&m[k.as_str()], out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// ECMAScript `Number.prototype.toString` of a finite double (RFC 8785 §3.2.2.3).
pub fn number(f: f64, out: &mut Vec<u8>) -> Result<(), JcsError> {
    if !f.is_finite() {
        return Err(JcsError::NotFinite);
    }
    if f == 0.0 {
        if f.is_sign_negative() {
            return Err(JcsError::NegativeZero);
        }
        out.push(b'0');
        return Ok(());
    }
    let a = f.abs();
    if (1e-6..1e21).contains(&a) {
        // Rust's Display is the shortest round-trip decimal without an exponent: ECMAScript's form in this range.
        out.extend_from_slice(f.to_string().as_bytes());
    } else {
        // `{:e}` gives the shortest digits as d.ddde±x; ECMAScript writes a '+' on positive exponents.
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e').expect("{:e} has an exponent");
        out.extend_from_slice(mant.as_bytes());
        out.push(b'e');
        if !exp.starts_with('-') {
            out.push(b'+');
        }
        out.extend_from_slice(exp.as_bytes());
    }
    Ok(())
}

fn string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn num(f: f64) -> String {
        let mut o = Vec::new();
        number(f, &mut o).unwrap();
        String::from_utf8(o).unwrap()
    }

    #[test]
    fn numbers_as_ecmascript_writes_them() {
        // RFC 8785 appendix B samples, and the edges of the decimal range.
        let cases: &[(u64, &str)] = &[
            (0x0000000000000000, "0"),
            (0x0000000000000001, "5e-324"),
            (0x7fefffffffffffff, "1.7976931348623157e+308"),
            (0x4340000000000000, "9007199254740992"),
            (0x444b1ae4d6e2ef50, "1e+21"),
            (0x444b1ae4d6e2ef4f, "999999999999999900000"),
            (0x3eb0c6f7a0b5ed8d, "0.000001"),
            (0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"),
            (0xc3e0000000000000, "-9223372036854776000"),
            (0x41b3de4355555553, "333333333.3333332"),
            (0x4086c29999999999, "728.3249999999999"),
        ];
        for (bits, want) in cases {
            assert_eq!(num(f64::from_bits(*bits)), *want, "{bits:x}");
        }
        assert_eq!(num(1e-7), "1e-7");
        assert_eq!(num(123e25), "1.23e+27");
    }

    #[test]
    fn refuses_what_json_cannot_say() {
        assert_eq!(number(-0.0, &mut Vec::new()), Err(JcsError::NegativeZero));
        assert_eq!(number(f64::NAN, &mut Vec::new()), Err(JcsError::NotFinite));
        assert_eq!(number(f64::INFINITY, &mut Vec::new()), Err(JcsError::NotFinite));
        assert!(from_text("[-0]").unwrap_err().contains("-0"));
        assert!(from_text("[{\"a\":-0.0}]").unwrap_err().contains("-0"));
        assert_eq!(from_text("[-10, 0.5e-0]").unwrap(), b"[-10,0.5]");
        // A lone surrogate escape is not a string Rust (or JCS) can hold.
        assert!(from_text(r#"["\ud800"]"#).is_err());
        assert!(from_text(r#"["\udc00x"]"#).is_err());
    }

    #[test]
    fn objects_sorted_by_utf16_strings_escaped_minimally() {
        // RFC 8785 §3.2.3's sort example: code units, not code points or UTF-8.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let keys: Vec<String> = match serde_json::from_slice::<Value>(&to_vec(&v).unwrap()).unwrap() {
            Value::Object(m) => m.keys().cloned().collect(),
            _ => unreachable!(),
        };
        // serde_json keeps insertion order on parse (preserve_order), so this is the canonical order.
        assert_eq!(keys, ["\r", "1", "\u{80}", "\u{f6}", "\u{20ac}", "\u{1f600}", "\u{fb33}"]);
        let s = json!(["\u{0}\u{1f}\"\\\u{7f}\u{2028}é\n"]);
        assert_eq!(String::from_utf8(to_vec(&s).unwrap()).unwrap(), "[\"\\u0000\\u001f\\\"\\\\\u{7f}\u{2028}é\\n\"]");
        assert_eq!(to_vec(&json!({"b": [1, {"d": true, "c": null}], "a": 2.5})).unwrap(), br#"{"a":2.5,"b":[1,{"c":null,"d":true}]}"#);
        // Integers are doubles: what JSON.parse in the VM sees.
        assert_eq!(to_vec(&json!([9007199254740993u64])).unwrap(), b"[9007199254740992]");
    }
}
