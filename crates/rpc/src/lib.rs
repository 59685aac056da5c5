//! The RPC transport of libvms: JSON-RPC 2.0 over WebSocket, wire-compatible with libvms 2.0.2 (rpc-websockets
//! server, nodevms-client). Knows nothing of Node: a VM is a [`Backend`].
//!
//! Server: [`RpcServer`] mounts backends at paths; each mount has one FIFO queue, so calls run one at a time in
//! arrival order across all connections. Client: [`RpcClient`] connects, handshakes, and calls with id matching.
#![forbid(unsafe_code)]

mod backend;
mod client;
mod config;
mod conn;
mod limits;
mod queue;
mod server;
mod wire;

pub use backend::{Backend, BoxFuture, Call, Outcome};
pub use client::{CallReply, ClientState, CloseInfo, RpcClient};
pub use config::ServerConfig;
pub use server::RpcServer;
pub use wire::{
    WireError, INIT_REFUSED, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, QUEUE_FULL, SERVER_ERROR,
};
