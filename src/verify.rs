//! `compareLogs` for `lib/verifier.js`: the comparison runs in Rust, off the JS thread, on verified runs of blocks.
use napi_derive::napi;

use crate::call_log::NativeLog;
use crate::errors::blocking;

/// Resolves if both logs hold the same entries; rejects with `VERIFICATION_MISMATCH@index` otherwise.
#[napi]
pub async fn compare_logs(a: &NativeLog, b: &NativeLog) -> napi::Result<()> {
    let (a, b) = (a.core.clone(), b.core.clone());
    blocking(move || libvms_verify::compare_logs(&a, &b)).await
}
