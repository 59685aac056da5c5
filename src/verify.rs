//! `compareLogs` for `lib/verifier.js`: the comparison runs in Rust, off the JS thread, on verified runs of blocks.
use napi_derive::napi;

use crate::call_log::NativeLog;
use crate::errors::blocking;

/// Resolves if both logs hold the same entries; rejects with `VERIFICATION_MISMATCH@index` otherwise.
/// `length`: compare only the first `length` entries of `a` (an audit's snapshot of a log that may grow).
#[napi]
pub async fn compare_logs(a: &NativeLog, b: &NativeLog, length: Option<f64>) -> napi::Result<()> {
    let (a, b) = (a.core.core().clone(), b.core.core().clone());
    let length = match length {
        Some(l) => Some(crate::errors::js_index(l, "length").map_err(crate::errors::to_js)?),
        None => None,
    };
    blocking(move || match length {
        Some(l) => libvms_verify::compare_logs(&libvms_verify::Prefix(&a, l), &b),
        None => libvms_verify::compare_logs(&a, &b),
    })
    .await
}
