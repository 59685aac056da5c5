mod common;

use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use libvms_errors::ErrorCode;
use libvms_rpc::{ClientState, RpcClient, ServerConfig, WireError};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_handshake_and_calls() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let url = format!("ws://{addr}/vm1");
    let c = RpcClient::connect(&url, None, T).await.unwrap();
    assert_eq!(c.url(), url);
    assert_eq!(c.backend_info(), serde_json::from_str::<Value>(HANDSHAKE_RESULT).unwrap());
    assert_eq!(serde_json::to_string(&c.backend_info()).unwrap(), HANDSHAKE_RESULT, "key order kept");
    assert_eq!(c.methods()[..3], ["hello", "add", "noop"]);
    assert_eq!(c.state(), ClientState::Open);

    assert_eq!(c.call("hello", vec![json!("bob")]).await.unwrap(), Ok(Some(json!("hello bob"))));
    assert_eq!(c.call("add", vec![json!(2), json!(3)]).await.unwrap(), Ok(Some(json!(5))));
    assert_eq!(c.call("noop", vec![]).await.unwrap(), Ok(None));
    assert_eq!(
        c.call("fail", vec![]).await.unwrap(),
        Err(WireError::new(-32000, "Error", Some(json!("boom"))))
    );
    let nf = c.call("nope", vec![]).await.unwrap().unwrap_err();
    assert_eq!(nf.to_json(), json!({"code": -32601, "message": "Method not found"}));
    assert_eq!(c.call("whoami", vec![]).await.unwrap(), Ok(Some(json!(""))));
    let v: Value = serde_json::from_str(r#"{"z":1,"a":{"y":2,"b":3}}"#).unwrap();
    let echoed = c.call("echo", vec![v.clone()]).await.unwrap().unwrap().unwrap();
    assert_eq!(serde_json::to_string(&echoed).unwrap(), r#"[{"z":1,"a":{"y":2,"b":3}}]"#);

    c.notify("echo", vec![json!("n")]).unwrap();
    assert_eq!(c.call("add", vec![json!(1), json!(1)]).await.unwrap(), Ok(Some(json!(2))));
    assert_eq!(vm.methods_called().iter().filter(|m| *m == "echo").count(), 2);

    c.close().await;
    assert!(matches!(c.state(), ClientState::Closed(_)));
    assert_eq!(c.call("add", vec![json!(1), json!(1)]).await.unwrap_err().code, ErrorCode::Closed);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_is_percent_encoded() {
    let (server, _vm, addr) = start(ServerConfig::default()).await;
    for user in ["alice", "al ice", "a&b=c+d?é/"] {
        let c = RpcClient::connect(&format!("ws://{addr}/vm1"), Some(user), T).await.unwrap();
        assert_eq!(c.call("whoami", vec![]).await.unwrap(), Ok(Some(json!(user))));
        c.close().await;
    }
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_one_client() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let c = RpcClient::connect(&format!("ws://{addr}/vm1"), None, T).await.unwrap();
    let calls = (0..200).map(|i| c.call("add", vec![json!(i), json!(1000)]));
    for (i, r) in join_all(calls).await.into_iter().enumerate() {
        assert_eq!(r.unwrap(), Ok(Some(json!(i + 1000))));
    }
    assert_eq!(vm.calls(), 200);
    c.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_calls_arrive_in_start_order_whatever_thread_awaits_them() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let c = RpcClient::connect(&format!("ws://{addr}/vm1"), None, T).await.unwrap();
    // Started in order, then each awaited on its own task (as the Node binding does): the server sees 0..50.
    let tasks: Vec<_> = (0..50).map(|i| tokio::spawn(c.start_call("echo", vec![json!(i)], Some(T)))).collect();
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await.unwrap().unwrap(), Ok(Some(json!([i]))));
    }
    let seen: Vec<Value> = vm.log.lock().unwrap().iter().map(|call| call.params[0].clone()).collect();
    assert_eq!(seen, (0..50).map(|i| json!(i)).collect::<Vec<_>>());
    c.close().await;
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_timeout_and_close_events() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let c = RpcClient::connect(&format!("ws://{addr}/vm1"), None, T).await.unwrap();
    let e = c.call_with_timeout("block", vec![], Some(Duration::from_millis(50))).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::Timeout);
    // A call pending when the connection closes fails with Closed.
    let mut events = c.events();
    let pending = c.call_with_timeout("echo", vec![json!(1)], None);
    let unmount = async {
        until(|| server.queued("/vm1") == Some(1)).await;
        server.unmount("/vm1");
    };
    let (r, _) = tokio::join!(pending, unmount);
    assert_eq!(r.unwrap_err().code, ErrorCode::Closed);
    let info = c.closed().await;
    assert_eq!(info.code, Some(1000));
    assert_eq!(info.error, None);
    events.wait_for(|s| matches!(s, ClientState::Closed(_))).await.unwrap();
    vm.gate.add_permits(1);
    server.close().await;
    assert_eq!(vm.done(), 2, "the timed-out and the orphaned call both ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failures() {
    let (server, _vm, addr) = start(ServerConfig::default()).await;
    let e = RpcClient::connect(&format!("ws://{addr}/other"), None, T).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::ConnectionFailed);
    // open + handshake gives the wire error itself.
    let c = RpcClient::open(&format!("ws://{addr}/other"), None, T).await.unwrap();
    let wire = c.handshake().await.unwrap().unwrap_err();
    assert_eq!(wire.to_json(), json!({"code": -32601, "message": "Method not found"}));
    assert_eq!(c.backend_info(), Value::Null);
    c.close().await;
    assert_eq!(RpcClient::connect("http://x", None, T).await.err().unwrap().code, ErrorCode::BadArgument);
    server.close().await;
    let e = RpcClient::connect(&format!("ws://{addr}/vm1"), None, T).await.err().unwrap();
    assert_eq!(e.code, ErrorCode::ConnectionFailed);
}
