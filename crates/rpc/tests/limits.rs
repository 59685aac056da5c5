//! Bounds against hostile clients, each driven over real sockets from distinct loopback addresses (127.0.0.x all
//! reach the server on 127.0.0.1): the connection that would exceed a bound is refused, honest ones keep working.
mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use libvms_rpc::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn tcp_from(src: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(src.parse::<IpAddr>().unwrap(), 0))?;
    s.connect(addr).await
}

/// A WebSocket client on a connection from `src`.
async fn ws_from(src: &str, addr: SocketAddr) -> Option<tokio_tungstenite::WebSocketStream<TcpStream>> {
    let tcp = tcp_from(src, addr).await.ok()?;
    let url = format!("ws://{addr}/vm1");
    match tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::client_async(url, tcp)).await {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

/// An honest call from `src`, answered.
async fn honest(src: &str, addr: SocketAddr) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws_from(src, addr).await.expect("honest client connects");
    ws.send(Message::Text(r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#.into())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
}

/// A raw upgraded connection from `src` that sends one text frame in parts.
struct Partial {
    tcp: TcpStream,
    frame: Vec<u8>,
    sent: usize,
}

impl Partial {
    async fn open(src: &str, addr: SocketAddr, message: &[u8]) -> Partial {
        let mut tcp = tcp_from(src, addr).await.unwrap();
        let req = format!(
            "GET /vm1 HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            tcp.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
        // Client frames are masked; a zero mask keeps the payload as is.
        let mut frame = vec![0x81, 0x80 | 127];
        frame.extend_from_slice(&(message.len() as u64).to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend_from_slice(message);
        Partial { tcp, frame, sent: 0 }
    }

    /// Send up to `n` more bytes of the frame; false if the server dropped us meanwhile.
    async fn send(&mut self, n: usize) -> bool {
        let end = (self.sent + n).min(self.frame.len());
        let ok = self.tcp.write_all(&self.frame[self.sent..end]).await.is_ok();
        self.sent = end;
        ok
    }

    /// The server dropped this connection (end of stream or reset) within 10 s.
    async fn dropped(&mut self) -> bool {
        let mut buf = [0u8; 256];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), self.tcp.read(&mut buf)).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Finish the frame and read the reply text.
    async fn finish(mut self) -> String {
        let rest = self.frame.len() - self.sent;
        assert!(self.send(rest).await);
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await.unwrap();
        let len = match head[1] & 0x7f {
            126 => self.tcp.read_u16().await.unwrap() as usize,
            127 => self.tcp.read_u64().await.unwrap() as usize,
            n => n as usize,
        };
        let mut body = vec![0u8; len];
        self.tcp.read_exact(&mut body).await.unwrap();
        String::from_utf8(body).unwrap()
    }
}

fn echo_request(len: usize) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","method":"echo","params":["{}"],"id":7}}"#, "x".repeat(len)).into_bytes()
}

const K: usize = 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_bounded() {
    let (server, _vm, addr) = start(ServerConfig::default().max_connections_per_address(3)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(ws_from("127.0.0.1", addr).await.expect("within the bound"));
    }
    assert!(ws_from("127.0.0.1", addr).await.is_none(), "a fourth connection from the same address is refused");
    honest("127.0.0.2", addr).await;
    // A held slot freed is a slot again.
    drop(held.pop());
    until(|| server.connections() == 2).await;
    assert!(ws_from("127.0.0.1", addr).await.is_some());
    drop(held);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_frame_bytes_per_address_are_bounded() {
    let cfg = ServerConfig::default().max_buffered_bytes_per_address(K * K).max_buffered_bytes(64 * K * K);
    let (server, _vm, addr) = start(cfg).await;
    let msg = echo_request(800 * K);
    let mut a = Partial::open("127.0.0.1", addr, &msg).await;
    assert!(a.send(700 * K).await);
    until(|| server.buffered_bytes() >= 600 * K).await;
    // A second 700 KiB from the same address would pass 1 MiB: that connection is dropped, not the first.
    let mut b = Partial::open("127.0.0.1", addr, &msg).await;
    b.send(700 * K).await;
    assert!(b.dropped().await, "the connection that would exceed the bound is refused");
    honest("127.0.0.2", addr).await;
    let reply = a.finish().await;
    assert!(reply.starts_with(r#"{"jsonrpc":"2.0","result":[""#) && reply.ends_with(r#""],"id":7}"#), "{}", &reply[..60]);
    until(|| server.buffered_bytes() == 0).await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_buffered_bytes_are_bounded() {
    let cfg = ServerConfig::default().max_buffered_bytes_per_address(K * K).max_buffered_bytes(1536 * K);
    let (server, _vm, addr) = start(cfg).await;
    let msg = echo_request(800 * K);
    let mut a = Partial::open("127.0.0.1", addr, &msg).await;
    let mut b = Partial::open("127.0.0.2", addr, &msg).await;
    assert!(a.send(700 * K).await && b.send(700 * K).await);
    until(|| server.buffered_bytes() >= 2 * 600 * K).await;
    // A third address fits its own bound but not the total: refused; the two before it and small messages are not.
    let mut c = Partial::open("127.0.0.3", addr, &msg).await;
    c.send(700 * K).await;
    assert!(c.dropped().await, "the connection that would exceed the total is refused");
    honest("127.0.0.4", addr).await;
    assert!(a.finish().await.ends_with(r#""],"id":7}"#));
    assert!(b.finish().await.ends_with(r#""],"id":7}"#));
    until(|| server.buffered_bytes() == 0).await;
    server.close().await;
}
