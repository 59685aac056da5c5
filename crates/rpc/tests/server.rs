mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use libvms_rpc::{Backend, BoxFuture, Call, Outcome, RpcServer, ServerConfig};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const NOT_FOUND: &str = r#"{"code":-32601,"message":"Method not found"}"#;

fn err_reply(error: &str, id: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","error":{error},"id":{id}}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcript_calls() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"handshake","params":null,"id":1}"#).await,
        format!(r#"{{"jsonrpc":"2.0","result":{HANDSHAKE_RESULT},"id":1}}"#)
    );
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"hello","params":["bob"],"id":2}"#).await,
        r#"{"jsonrpc":"2.0","result":"hello bob","id":2}"#
    );
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"add","params":[2,3],"id":3}"#).await,
        r#"{"jsonrpc":"2.0","result":5,"id":3}"#
    );
    assert_eq!(rt(&mut ws, r#"{"jsonrpc":"2.0","method":"noop","params":[],"id":4}"#).await, r#"{"jsonrpc":"2.0","id":4}"#);
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"fail","params":[],"id":5}"#).await,
        r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Error","data":"boom"},"id":5}"#
    );
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"failType","params":[],"id":6}"#).await,
        r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"TypeError","data":"Cannot read properties of null (reading 'x')"},"id":6}"#
    );
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"whoami","params":[],"id":7}"#).await,
        r#"{"jsonrpc":"2.0","result":"","id":7}"#
    );
    // Ids come back with their type; a result keeps its key order; a non-Error throw is sent as is.
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"echo","params":[{"z":1,"a":[true,null]}],"id":"abc"}"#).await,
        r#"{"jsonrpc":"2.0","result":[{"z":1,"a":[true,null]}],"id":"abc"}"#
    );
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"throwValue","id":null}"#).await,
        r#"{"jsonrpc":"2.0","error":"oops","id":null}"#
    );
    // Missing params mean no arguments.
    assert_eq!(rt(&mut ws, r#"{"jsonrpc":"2.0","method":"echo","id":9}"#).await, r#"{"jsonrpc":"2.0","result":[],"id":9}"#);
    ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })).await.unwrap();
    assert_eq!(closed(&mut ws).await, Some(1000));
    assert_eq!(vm.methods_called(), ["hello", "add", "noop", "fail", "failType", "whoami", "echo", "throwValue", "echo"]);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_from_query() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    for (q, want) in [
        ("/vm1?user=alice", "alice"),
        ("/vm1?user=al%20ice", "al ice"),
        ("/vm1?x=1&user=b+o%C3%A9", "b oé"),
        ("/vm1?user", ""),
        ("/vm1", ""),
    ] {
        let mut ws = raw(addr, q).await;
        let r = rt(&mut ws, r#"{"jsonrpc":"2.0","method":"whoami","params":[],"id":2}"#).await;
        assert_eq!(r, format!(r#"{{"jsonrpc":"2.0","result":{},"id":2}}"#, Value::from(want)), "{q}");
        ws.close(None).await.unwrap();
    }
    assert_eq!(vm.log.lock().unwrap()[1].user_id, "al ice");
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_exported_methods_are_callable() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;
    for m in ["nope", "__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", "length", "0", ""] {
        let req = format!(r#"{{"jsonrpc":"2.0","method":{},"params":null,"id":1}}"#, Value::from(m));
        assert_eq!(rt(&mut ws, &req).await, err_reply(NOT_FOUND, "1"), "{m}");
    }
    // init is refused and never executed.
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"init","params":null,"id":2}"#).await,
        r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Error","data":"RPC method not supported"},"id":2}"#
    );
    assert_eq!(vm.calls(), 0);

    // Root and unmounted paths have no methods at all, not even handshake or init.
    for path in ["/", "/other", "/vm1/"] {
        let mut ws = raw(addr, path).await;
        for m in ["handshake", "init", "hello"] {
            let req = format!(r#"{{"jsonrpc":"2.0","method":"{m}","params":null,"id":1}}"#);
            assert_eq!(rt(&mut ws, &req).await, err_reply(NOT_FOUND, "1"), "{path} {m}");
        }
    }
    assert_eq!(vm.calls(), 0);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;

    let r = rt(&mut ws, r#"{"jsonrpc":"2.0","method":"#).await;
    assert!(r.starts_with(r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error","data":"SyntaxError: "#), "{r}");
    assert!(r.ends_with(r#"},"id":null}"#), "{r}");

    let invalid = |data: Option<&str>, id: &str| {
        let e = match data {
            None => r#"{"code":-32600,"message":"Invalid Request"}"#.to_owned(),
            Some(d) => format!(r#"{{"code":-32600,"message":"Invalid Request","data":"{d}"}}"#),
        };
        err_reply(&e, id)
    };
    for (req, want) in [
        ("5", invalid(None, "null")),
        (r#""str""#, invalid(None, "null")),
        (r#"{"jsonrpc":"1.0","method":"hello","params":["x"],"id":3}"#, invalid(Some("Invalid JSON RPC version"), "3")),
        (r#"{"method":"hello","params":["x"],"id":3}"#, invalid(Some("Invalid JSON RPC version"), "3")),
        (r#"{"jsonrpc":"2.0","method":5,"id":"q"}"#, invalid(Some("Invalid method name"), r#""q""#)),
        (r#"{"jsonrpc":"2.0","params":[],"id":4}"#, invalid(Some("Method not specified"), "4")),
        (r#"{"jsonrpc":"2.0","method":"hello","id":[1]}"#, invalid(Some("Invalid id"), "null")),
        (r#"{"jsonrpc":"2.0","method":"hello","id":true}"#, invalid(Some("Invalid id"), "null")),
        // Invalid even without an id: still answered, with id null.
        (r#"{"jsonrpc":"2.0","method":7}"#, invalid(Some("Invalid method name"), "null")),
    ] {
        assert_eq!(rt(&mut ws, req).await, want, "{req}");
    }

    // Non-array params: -32602, never executed (the original crashed inside the VM and logged it).
    for params in [r#"{"name":"x"}"#, r#""bob""#, "5", "true"] {
        let req = format!(r#"{{"jsonrpc":"2.0","method":"hello","params":{params},"id":8}}"#);
        assert_eq!(rt(&mut ws, &req).await, err_reply(r#"{"code":-32602,"message":"Invalid params"}"#, "8"));
    }
    assert_eq!(vm.calls(), 0);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_run_without_reply() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"echo","params":["n1"]}"#).await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"fail","params":[]}"#).await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"nope","params":[]}"#).await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"hello","params":{"a":1}}"#).await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"init"}"#).await;
    // The next frame is the answer to this call: none of the notifications was answered.
    assert_eq!(rt(&mut ws, r#"{"jsonrpc":"2.0","method":"add","params":[1,1],"id":0}"#).await, r#"{"jsonrpc":"2.0","result":2,"id":0}"#);
    assert_eq!(vm.methods_called(), ["echo", "fail", "add"]);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;
    assert_eq!(
        rt(&mut ws, "[]").await,
        err_reply(r#"{"code":-32600,"message":"Invalid Request","data":"Invalid array"}"#, "null")
    );
    let r = rt(
        &mut ws,
        r#"[{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1},
            {"jsonrpc":"2.0","method":"echo","params":["note"]},
            1,
            {"jsonrpc":"2.0","method":"nope","id":"x"},
            {"jsonrpc":"2.0","method":"noop","id":2},
            {"jsonrpc":"2.0","method":"handshake","id":3}]"#,
    )
    .await;
    assert_eq!(
        r,
        format!(
            r#"[{{"jsonrpc":"2.0","result":3,"id":1}},{},{},{{"jsonrpc":"2.0","id":2}},{{"jsonrpc":"2.0","result":{HANDSHAKE_RESULT},"id":3}}]"#,
            err_reply(r#"{"code":-32600,"message":"Invalid Request"}"#, "null"),
            err_reply(NOT_FOUND, r#""x""#)
        )
    );
    // A batch of notifications gets no reply at all.
    send(&mut ws, r#"[{"jsonrpc":"2.0","method":"echo","params":[1]},{"jsonrpc":"2.0","method":"echo","params":[2]}]"#).await;
    assert_eq!(rt(&mut ws, r#"{"jsonrpc":"2.0","method":"echo","params":[3],"id":9}"#).await, r#"{"jsonrpc":"2.0","result":[3],"id":9}"#);
    assert_eq!(vm.methods_called(), ["add", "echo", "noop", "echo", "echo", "echo"]);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_run_one_at_a_time_in_arrival_order() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut first = raw(addr, "/vm1").await;
    send(&mut first, r#"{"jsonrpc":"2.0","method":"block","params":[],"id":1}"#).await;
    until(|| vm.calls() == 1).await;

    // Five clients, each call queued behind the previous one; earlier calls sleep longer, so any overlap would
    // reorder their completions.
    let mut clients = Vec::new();
    for i in 0..5u64 {
        let mut ws = raw(addr, &format!("/vm1?user=c{i}")).await;
        let req = format!(r#"{{"jsonrpc":"2.0","method":"sleep","params":[{},"c{i}"],"id":{i}}}"#, 50 - 10 * i);
        send(&mut ws, &req).await;
        until(|| server.queued("/vm1") == Some(i as usize + 1)).await;
        clients.push(ws);
    }
    vm.gate.add_permits(1);
    assert_eq!(recv(&mut first).await, r#"{"jsonrpc":"2.0","result":"unblocked","id":1}"#);
    for (i, ws) in clients.iter_mut().enumerate() {
        assert_eq!(recv(ws).await, format!(r#"{{"jsonrpc":"2.0","result":"c{i}","id":{i}}}"#));
    }
    let users: Vec<String> = vm.log.lock().unwrap().iter().map(|c| c.user_id.clone()).collect();
    assert_eq!(users, ["", "c0", "c1", "c2", "c3", "c4"]);
    assert_eq!(*vm.finished.lock().unwrap(), ["block", "sleep", "sleep", "sleep", "sleep", "sleep"]);
    assert_eq!(vm.max_running.load(Ordering::SeqCst), 1);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_clients_never_overlap() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut tasks = Vec::new();
    for c in 0..16 {
        tasks.push(tokio::spawn(async move {
            let mut ws = raw(addr, "/vm1").await;
            for i in 0..20 {
                let req = format!(r#"{{"jsonrpc":"2.0","method":"add","params":[{c},{i}],"id":{i}}}"#);
                assert_eq!(rt(&mut ws, &req).await, format!(r#"{{"jsonrpc":"2.0","result":{},"id":{i}}}"#, c + i));
            }
            ws.close(None).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(vm.calls(), 16 * 20);
    assert_eq!(vm.max_running.load(Ordering::SeqCst), 1);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_is_bounded() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut ws = raw(addr, "/vm1").await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"block","params":[],"id":0}"#).await;
    until(|| vm.calls() == 1).await;
    for i in 1..=1000 {
        ws.feed(Message::Text(format!(r#"{{"jsonrpc":"2.0","method":"echo","params":[{i}],"id":{i}}}"#).into())).await.unwrap();
    }
    ws.flush().await.unwrap();
    until(|| server.queued("/vm1") == Some(1000)).await;
    assert_eq!(
        rt(&mut ws, r#"{"jsonrpc":"2.0","method":"echo","params":[],"id":1001}"#).await,
        r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Error","data":"Too many active requests. Try again in a few minutes."},"id":1001}"#
    );
    vm.gate.add_permits(1);
    assert_eq!(recv(&mut ws).await, r#"{"jsonrpc":"2.0","result":"unblocked","id":0}"#);
    for i in 1..=1000 {
        assert_eq!(recv(&mut ws).await, format!(r#"{{"jsonrpc":"2.0","result":[{i}],"id":{i}}}"#));
    }
    assert_eq!(vm.calls(), 1001);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_message_closes_only_that_connection() {
    let (server, _vm, addr) = start(ServerConfig::default().max_message_bytes(1024)).await;
    let mut good = raw(addr, "/vm1").await;
    let mut bad = raw(addr, "/vm1").await;
    let big = format!(r#"{{"jsonrpc":"2.0","method":"echo","params":["{}"],"id":1}}"#, "y".repeat(4096));
    let _ = bad.send(Message::Text(big.into())).await;
    let code = closed(&mut bad).await;
    assert!(code.is_none() || code == Some(1009), "{code:?}");
    assert_eq!(rt(&mut good, r#"{"jsonrpc":"2.0","method":"add","params":[1,1],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":2,"id":1}"#);
    // Just under the limit is fine.
    let ok = format!(r#"{{"jsonrpc":"2.0","method":"echo","params":["{}"],"id":2}}"#, "y".repeat(900));
    assert!(rt(&mut good, &ok).await.ends_with(r#""],"id":2}"#));
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmount_closes_connections_and_queued_calls_finish() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut a = raw(addr, "/vm1").await;
    let mut other = raw(addr, "/other").await;
    send(&mut a, r#"{"jsonrpc":"2.0","method":"block","params":[],"id":1}"#).await;
    send(&mut a, r#"{"jsonrpc":"2.0","method":"echo","params":["queued"],"id":2}"#).await;
    until(|| vm.calls() == 1 && server.queued("/vm1") == Some(1)).await;

    assert!(server.unmount("/vm1"));
    assert!(!server.unmount("/vm1"));
    assert_eq!(closed(&mut a).await, Some(1000));
    // Connections to other paths stay.
    assert_eq!(rt(&mut other, r#"{"jsonrpc":"2.0","method":"hello","id":1}"#).await, err_reply(NOT_FOUND, "1"));
    // New connections find nothing there.
    let mut b = raw(addr, "/vm1").await;
    assert_eq!(rt(&mut b, r#"{"jsonrpc":"2.0","method":"handshake","params":null,"id":1}"#).await, err_reply(NOT_FOUND, "1"));

    vm.gate.add_permits(1);
    until(|| vm.done() == 2).await;
    assert_eq!(vm.methods_called(), ["block", "echo"]);

    // Mounting again serves the path again, on open connections too.
    server.mount("/vm1", backend(&vm)).unwrap();
    assert_eq!(
        rt(&mut b, r#"{"jsonrpc":"2.0","method":"add","params":[2,2],"id":2}"#).await,
        r#"{"jsonrpc":"2.0","result":4,"id":2}"#
    );
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_resolves_after_connections_and_calls() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let mut a = raw(addr, "/vm1").await;
    let mut b = raw(addr, "/elsewhere").await;
    send(&mut a, r#"{"jsonrpc":"2.0","method":"block","params":[],"id":1}"#).await;
    until(|| vm.calls() == 1).await;

    let s2 = server.clone();
    let closing = tokio::spawn(async move { s2.close().await });
    assert_eq!(closed(&mut a).await, Some(1000));
    assert_eq!(closed(&mut b).await, Some(1000));
    // The running call holds close() until it finishes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!closing.is_finished());
    vm.gate.add_permits(1);
    tokio::time::timeout(Duration::from_secs(10), closing).await.unwrap().unwrap();
    assert_eq!(vm.done(), 1);
    assert_eq!(server.connections(), 0);
    // The port is released and nothing listens any more.
    assert!(tokio_tungstenite::connect_async(format!("ws://{addr}/vm1")).await.is_err());
    assert!(server.mount("/x", backend(&vm)).is_err());
    assert!(server.listen("127.0.0.1", 0).await.is_err());
    server.close().await; // idempotent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_before_and_after_listen() {
    let server = RpcServer::new(ServerConfig::default());
    let vm1 = TestVm::new();
    let vm2 = TestVm::new();
    server.mount("/a", backend(&vm1)).unwrap();
    assert!(server.mount("nope", backend(&vm1)).is_err());
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    assert_eq!(server.local_addr(), Some(addr));
    assert!(server.listen("127.0.0.1", 0).await.is_err());
    server.mount("/b", backend(&vm2)).unwrap();
    let mut a = raw(addr, "/a").await;
    let mut b = raw(addr, "/b").await;
    assert_eq!(rt(&mut a, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
    assert_eq!(rt(&mut b, r#"{"jsonrpc":"2.0","method":"add","params":[3,4],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":7,"id":1}"#);
    assert_eq!((vm1.calls(), vm2.calls()), (1, 1));
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_refuses_with_503() {
    let (server, _vm, addr) = start(ServerConfig::default().max_connections(2)).await;
    let mut a = raw(addr, "/vm1").await;
    let _b = raw(addr, "/vm1").await;
    match tokio_tungstenite::connect_async(format!("ws://{addr}/vm1")).await {
        Err(WsError::Http(resp)) => assert_eq!(resp.status().as_u16(), 503),
        other => panic!("expected HTTP 503, got {:?}", other.map(|_| ())),
    }
    assert_eq!(rt(&mut a, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
    a.close(None).await.unwrap();
    closed(&mut a).await;
    until(|| server.connections() == 1).await;
    let mut c = raw(addr, "/vm1").await;
    assert_eq!(rt(&mut c, r#"{"jsonrpc":"2.0","method":"add","params":[2,2],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":4,"id":1}"#);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_dropped_live_ones_kept() {
    let cfg = ServerConfig::default().ping_interval(Duration::from_millis(40)).idle_timeout(Some(Duration::from_millis(200)));
    let (server, _vm, addr) = start(cfg).await;
    // A client that never reads never answers pings: it is dropped.
    let mut silent = raw(addr, "/vm1").await;
    let mut alive = raw(addr, "/vm1").await;
    // The live one keeps reading (answering pings) for well past the idle timeout.
    let keep = tokio::spawn(async move {
        let end = tokio::time::Instant::now() + Duration::from_millis(600);
        while let Ok(m) = tokio::time::timeout_at(end, alive.next()).await {
            assert!(matches!(m, Some(Ok(Message::Ping(_)))), "{m:?}");
        }
        alive
    });
    until(|| server.connections() == 1).await;
    let mut alive = keep.await.unwrap();
    assert_eq!(rt(&mut alive, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
    let _ = closed(&mut silent).await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_is_dropped_without_stalling_the_vm() {
    let (server, vm, addr) = start(ServerConfig::default().max_outgoing_bytes(256 * 1024)).await;
    let mut slow = raw(addr, "/vm1").await;
    let mut other = raw(addr, "/vm1").await;
    // 400 replies of 100 kB (40 MB) that the slow client never reads.
    for i in 0..400 {
        slow.feed(Message::Text(format!(r#"{{"jsonrpc":"2.0","method":"big","params":[100000],"id":{i}}}"#).into())).await.unwrap();
    }
    slow.flush().await.unwrap();
    until(|| vm.done() == 400).await;
    until(|| server.connections() == 1).await;
    assert_eq!(rt(&mut other, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#).await, r#"{"jsonrpc":"2.0","result":3,"id":1}"#);
    drop(slow);
    server.close().await;
}

/// A pipelined backend whose first hand-off ends last: its outcomes are ready after the second one's.
struct OutOfOrder(Arc<TestVm>);

impl Backend for OutOfOrder {
    fn methods(&self) -> Vec<String> {
        Vm(self.0.clone()).methods()
    }
    fn info(&self) -> serde_json::Map<String, serde_json::Value> {
        Vm(self.0.clone()).info()
    }
    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        Vm(self.0.clone()).call(call)
    }
    fn max_handoff(&self) -> usize {
        256
    }
    // Welcome a hand-off at once, as a VM that queues calls on its own thread does.
    fn ready(&self, _answered: BoxFuture<()>) -> BoxFuture<()> {
        Box::pin(async {})
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_replies_leave_in_the_order_the_calls_ran() {
    let server = RpcServer::new(ServerConfig::default());
    let vm = TestVm::new();
    server.mount("/vm1", Arc::new(OutOfOrder(vm.clone()))).unwrap();
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    let mut ws = raw(addr, "/vm1").await;
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"sleep","params":[200,"first"],"id":1}"#).await;
    until(|| vm.calls() == 1).await;
    // Handed over on its own, and done long before the sleep: its reply still waits for the sleep's.
    send(&mut ws, r#"{"jsonrpc":"2.0","method":"hello","params":["second"],"id":2}"#).await;
    until(|| vm.done() == 1 && vm.calls() == 2).await;
    assert_eq!(recv(&mut ws).await, r#"{"jsonrpc":"2.0","result":"first","id":1}"#);
    assert_eq!(recv(&mut ws).await, r#"{"jsonrpc":"2.0","result":"hello second","id":2}"#);
    server.close().await;
}
