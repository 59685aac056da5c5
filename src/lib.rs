//! The Node binding layer of libvms: `#[napi]` types only, argument conversion and error mapping.
//! Everything that does work lives in `crates/*` and knows nothing of Node.
mod archive;
mod auth;
mod call_log;
mod errors;
mod fault;
mod replicate;
mod rpc;
mod verify;
