//! The RPC transport of libvms: JSON-RPC 2.0 over WebSocket, wire-compatible with libvms 2.0.2 (rpc-websockets
//! server, nodevms-client). Knows nothing of Node: a VM is a [`Backend`].
//!
//! Server: [`RpcServer`] mounts backends at paths; each mount has one FIFO queue, so calls reach the backend in
//! arrival order across all connections. [`Pipelined`] is the backend of a VM that runs its calls on its own thread. Client: [`RpcClient`] connects, handshakes, and calls with id matching.
#![forbid(unsafe_code)]

mod auth;
mod backend;
mod client;
mod client_auth;
mod config;
mod conn;
mod inflight;
mod limits;
mod pipeline;
mod queue;
mod reply;
mod reply_queue;
mod server;
mod shared;
mod wire;

pub use auth::{MountAuth, AUTH_MESSAGE, AUTH_REFUSED};
pub use backend::{Backend, BoxFuture, Call, Outcome};
pub use client::{SignedReply, CallReply, ClientState, CloseInfo, RpcClient};
pub use config::ServerConfig;
pub use pipeline::{LogTail, Logged, Pipelined, Tickets, VmThread};
pub use reply_queue::ReplyQueue;
pub use server::RpcServer;
pub use wire::{
    WireError, INIT_REFUSED, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, QUEUE_FULL, SERVER_ERROR,
};
