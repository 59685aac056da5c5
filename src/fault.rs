//! Test hook: a disk that fills up (see `libvms_ledger::fault`). Not part of the public API.
use napi_derive::napi;

/// `bytes`: disk writes of this process fail with ENOSPC once that many more bytes are written; null: no limit.
#[napi]
pub fn inject_disk_full(bytes: Option<f64>) {
    libvms_ledger::fault::set_disk_full_after(bytes.map(|b| b.max(0.0) as u64));
}
