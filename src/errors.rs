//! The one conversion point from Rust errors (and panics) to JavaScript errors.
//!
//! The code travels as data, never inside the message text: a thrown native error's `cause` is an Error whose
//! message is the JSON of [`NativeError`] (`{code, message, index?}`), and `lib/errors.js` turns that into the
//! named class for the code. The `cause` is the one field napi-rs carries alike for sync and async functions
//! (its `status`, which becomes `err.code`, is a fixed enum, and async functions keep only `GenericFailure`).
//! The error's own message stays `CODE: message`, for a human who sees it unwrapped.
use std::panic::{catch_unwind, AssertUnwindSafe};

use libvms_errors::{Error, ErrorCode};

/// A native error as data: what `lib/errors.js` builds its named class from.
#[napi_derive::napi(object)]
pub struct NativeError {
    pub code: String,
    pub message: String,
    /// For integrity errors: the first bad block or entry.
    pub index: Option<f64>,
}

/// The error as a plain object, for errors handed to JavaScript as values (e.g. a failed RPC call's reply).
pub fn structured(e: Error) -> NativeError {
    NativeError { code: e.code.as_str().to_string(), message: e.message, index: e.index.map(|i| i as f64) }
}

pub fn to_js(e: Error) -> napi::Error {
    let mut data = serde_json::json!({ "code": e.code.as_str(), "message": e.message });
    if let Some(i) = e.index {
        data["index"] = i.into();
    }
    let mut out = napi::Error::new(napi::Status::GenericFailure, e.to_string());
    out.set_cause(napi::Error::new(napi::Status::GenericFailure, data.to_string()));
    out
}

// Binding functions must spell their return type `napi::Result<T>`: napi-derive recognises `Result` by name.
pub type JsResult<T> = napi::Result<T>;

/// Map a core result into a JS result.
pub fn js<T>(r: libvms_errors::Result<T>) -> JsResult<T> {
    r.map_err(to_js)
}

/// Run `f`, turning a panic into an `INTERNAL` error instead of aborting Node.
pub fn guard<T>(f: impl FnOnce() -> libvms_errors::Result<T>) -> JsResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => js(r),
        Err(p) => {
            let what = libvms_errors::panic_text(&*p).unwrap_or_else(|| "unknown panic".into());
            Err(to_js(Error::new(ErrorCode::Internal, format!("panic: {what}"))))
        }
    }
}

/// One stable error code and the name of the JavaScript class it is thrown as.
#[napi_derive::napi(object)]
pub struct ErrorClass {
    pub code: String,
    pub class_name: String,
}

/// The one error list (crates/errors `codes!`): `lib/errors.js` makes a named class for each entry.
#[napi_derive::napi]
pub fn error_classes() -> Vec<ErrorClass> {
    ErrorCode::ALL.iter().map(|c| ErrorClass { code: c.as_str().into(), class_name: c.class_name().into() }).collect()
}

/// Test hook: panics inside the binding, to prove a panic becomes an `INTERNAL` error.
#[napi_derive::napi(js_name = "__panicForTest")]
pub fn panic_for_test(message: String) -> napi::Result<()> {
    guard(|| -> libvms_errors::Result<()> { panic!("{}", message) })
}

/// Run `f` on tokio's blocking pool (file work that syncs), with panics caught.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> libvms_errors::Result<T> + Send + 'static,
) -> napi::Result<T> {
    match tokio::task::spawn_blocking(move || guard(f)).await {
        Ok(r) => r,
        Err(e) => Err(to_js(Error::new(ErrorCode::Internal, format!("blocking task failed: {e}")))),
    }
}

/// A JavaScript number that must be a block index, version or length.
pub fn js_index(n: f64, what: &str) -> libvms_errors::Result<u64> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 {
        Ok(n as u64)
    } else {
        Err(Error::new(ErrorCode::BadArgument, format!("{what} must be a non-negative integer")))
    }
}
