//! The one conversion point from Rust errors (and panics) to JavaScript errors.
//!
//! A native error's message is `CODE: message` or `CODE@index: message`; `lib/errors.js` turns that into the named
//! class for the code. This works the same for sync and async functions (napi-rs only keeps custom status codes on
//! sync ones).
use std::panic::{catch_unwind, AssertUnwindSafe};

use libvms_errors::{Error, ErrorCode};

pub fn to_js(e: Error) -> napi::Error {
    let reason = match e.index {
        Some(i) => format!("{}@{}: {}", e.code, i, e.message),
        None => format!("{}: {}", e.code, e.message),
    };
    napi::Error::new(napi::Status::GenericFailure, reason)
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
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(to_js(Error::new(ErrorCode::Internal, format!("panic: {what}"))))
        }
    }
}

/// Every stable error code, so JavaScript can check it has a class for each.
#[napi_derive::napi]
pub fn error_codes() -> Vec<String> {
    ErrorCode::ALL.iter().map(|c| c.as_str().to_string()).collect()
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
