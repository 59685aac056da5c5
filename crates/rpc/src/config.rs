//! Limits and timings of an [`RpcServer`](crate::RpcServer).

use std::time::Duration;

/// Bytes asked of the socket per read, on both ends. tungstenite zero-fills this much on every read attempt (its
/// default, 128 KiB, made the memset the client's largest cost); JSON-RPC messages are small, and a big one reserves
/// its whole length once its header is read.
pub(crate) const WS_READ_BUFFER: usize = 8 * 1024;

/// Server limits. `ServerConfig::default()` is what production uses; tests shrink the numbers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Largest incoming WebSocket message (and frame), in bytes. A bigger one closes that connection with
    /// close code 1009 (message too big). Default 16 MiB.
    pub max_message_bytes: usize,
    /// Most open WebSocket connections at once; further upgrades get HTTP 503. Default 1024.
    pub max_connections: usize,
    /// Most calls waiting per mount (the running one not counted), as libvms 2 (`MAX_QUEUE_LENGTH = 1e3`).
    /// Beyond it a call is answered `-32000 "Error" / "Too many active requests. ..."`. Default 1000.
    pub max_queue: usize,
    /// Most reply bytes waiting to be written to one connection. A reader slower than that is dropped (its
    /// calls still run). Default 64 MiB.
    pub max_outgoing_bytes: usize,
    /// How often an idle connection is pinged. Default 30 s.
    pub ping_interval: Duration,
    /// A connection from which nothing (not even a pong) arrived for this long is dropped. `None` keeps idle
    /// connections forever. Default 60 s.
    pub idle_timeout: Option<Duration>,
    /// Longest time a client may take to complete the HTTP upgrade. Default 10 s.
    pub handshake_timeout: Duration,
    /// Longest wait for the client's answer to our close frame before the socket is dropped. Default 1 s.
    pub close_timeout: Duration,
    /// Most connections (open or upgrading) from one IP address; further ones are closed at once. Default 128.
    pub max_connections_per_address: usize,
    /// Most bytes of unfinished messages that the connections of one IP address may hold, beyond the first 64 KiB
    /// of each connection. A read past it closes the connection that made it. Default 32 MiB.
    pub max_buffered_bytes_per_address: usize,
    /// The same across all connections. Default 256 MiB.
    pub max_buffered_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_bytes: 16 << 20,
            max_connections: 1024,
            max_queue: 1000,
            max_outgoing_bytes: 64 << 20,
            ping_interval: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(60)),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(1),
            max_connections_per_address: 128,
            max_buffered_bytes_per_address: 32 << 20,
            max_buffered_bytes: 256 << 20,
        }
    }
}

impl ServerConfig {
    pub fn max_message_bytes(mut self, v: usize) -> Self {
        self.max_message_bytes = v;
        self
    }
    pub fn max_connections(mut self, v: usize) -> Self {
        self.max_connections = v;
        self
    }
    pub fn max_queue(mut self, v: usize) -> Self {
        self.max_queue = v;
        self
    }
    pub fn max_outgoing_bytes(mut self, v: usize) -> Self {
        self.max_outgoing_bytes = v;
        self
    }
    pub fn ping_interval(mut self, v: Duration) -> Self {
        self.ping_interval = v;
        self
    }
    pub fn idle_timeout(mut self, v: Option<Duration>) -> Self {
        self.idle_timeout = v;
        self
    }
    pub fn handshake_timeout(mut self, v: Duration) -> Self {
        self.handshake_timeout = v;
        self
    }
    pub fn close_timeout(mut self, v: Duration) -> Self {
        self.close_timeout = v;
        self
    }
    pub fn max_connections_per_address(mut self, v: usize) -> Self {
        self.max_connections_per_address = v;
        self
    }
    pub fn max_buffered_bytes_per_address(mut self, v: usize) -> Self {
        self.max_buffered_bytes_per_address = v;
        self
    }
    pub fn max_buffered_bytes(mut self, v: usize) -> Self {
        self.max_buffered_bytes = v;
        self
    }
}
