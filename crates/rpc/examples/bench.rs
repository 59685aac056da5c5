//! Round trips through the RPC server against a bare WebSocket echo, on loopback.
//! `cargo run --release -p libvms-rpc --example bench`

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use libvms_rpc::{Backend, BoxFuture, Call, Outcome, RpcClient, RpcServer, ServerConfig};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

struct Adder;

impl Backend for Adder {
    fn methods(&self) -> Vec<String> {
        vec!["add".into()]
    }
    fn info(&self) -> Map<String, Value> {
        Map::new()
    }
    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        let s = call.params.iter().filter_map(Value::as_i64).sum::<i64>();
        Box::pin(async move { Outcome::Value(json!(s)) })
    }
}

const N: usize = 20_000;

async fn echo_server() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() && ws.send(m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::main]
async fn main() {
    let addr = echo_server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/"), None, true).await.unwrap();
    let req = r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#;
    let t = Instant::now();
    for _ in 0..N {
        ws.send(Message::Text(req.into())).await.unwrap();
        ws.next().await.unwrap().unwrap();
    }
    let echo = t.elapsed();
    println!("bare echo:        {:>8.1} µs/round trip", echo.as_secs_f64() * 1e6 / N as f64);

    let server = RpcServer::new(ServerConfig::default());
    server.mount("/b", Arc::new(Adder)).unwrap();
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    let url = format!("ws://{addr}/b");

    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url.clone(), None, true).await.unwrap();
    let t = Instant::now();
    for _ in 0..N {
        ws.send(Message::Text(req.into())).await.unwrap();
        ws.next().await.unwrap().unwrap();
    }
    println!("rpc, raw client:  {:>8.1} µs/call", t.elapsed().as_secs_f64() * 1e6 / N as f64);

    let c = RpcClient::connect(&url, None, Duration::from_secs(5)).await.unwrap();
    let t = Instant::now();
    for _ in 0..N {
        c.call("add", vec![json!(1), json!(2)]).await.unwrap().unwrap();
    }
    println!("rpc, RpcClient:   {:>8.1} µs/call", t.elapsed().as_secs_f64() * 1e6 / N as f64);
    c.close().await;

    let clients = 32;
    let per = N / clients * 4;
    let t = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let c = RpcClient::connect(&url, None, Duration::from_secs(5)).await.unwrap();
                for _ in 0..per {
                    c.call("add", vec![json!(1), json!(2)]).await.unwrap().unwrap();
                }
                c.close().await;
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let total = clients * per;
    println!(
        "rpc, {clients} clients:  {:>8.0} calls/s ({total} calls)",
        total as f64 / t.elapsed().as_secs_f64()
    );
    server.close().await;
}
