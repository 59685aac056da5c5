//! Signed mode over real WebSockets: each refusal the issue lists, driven with captured frames replayed, altered
//! and sent to another mount; none of them reaches the VM.
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use libvms_auth::call::{generate_key_pair, sign};
use libvms_rpc::{Backend, BoxFuture, Call, MountAuth, Outcome, RpcClient, RpcServer, ServerConfig};
use serde_json::{json, Map, Value};

const T: Duration = Duration::from_secs(5);
const KEY1: [u8; 32] = [0xfd; 32];
const KEY2: [u8; 32] = [0x51; 32];

/// A test VM in signed mode for `log_key`.
struct Signed(Arc<dyn Backend>, MountAuth);

impl Backend for Signed {
    fn methods(&self) -> Vec<String> {
        self.0.methods()
    }
    fn info(&self) -> Map<String, Value> {
        let mut m = self.0.info();
        m.insert("callLogUrl".into(), json!(format!("dat://{}", hex::encode(self.1.log_key))));
        m
    }
    fn auth(&self) -> Option<MountAuth> {
        Some(self.1.clone())
    }
    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        self.0.call(call)
    }
}

fn signed(vm: &Arc<TestVm>, log_key: [u8; 32], last: &[([u8; 32], u64)]) -> Arc<dyn Backend> {
    Arc::new(Signed(backend(vm), MountAuth { log_key, last_seqs: last.iter().copied().collect::<HashMap<_, _>>() }))
}

async fn serve(vm1: &Arc<TestVm>, vm2: &Arc<TestVm>, last: &[([u8; 32], u64)]) -> (RpcServer, std::net::SocketAddr) {
    let server = RpcServer::new(ServerConfig::default().close_timeout(Duration::from_millis(200)));
    server.mount("/vm1", signed(vm1, KEY1, last)).unwrap();
    server.mount("/vm2", signed(vm2, KEY2, &[])).unwrap();
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    (server, addr)
}

fn frame(secret: &[u8], log_key: &[u8; 32], seq: u64, method: &str, params: Value, id: u64) -> String {
    let c = sign(secret, log_key, seq, method, params.as_array().unwrap()).unwrap();
    json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id, "auth": c.to_json()}).to_string()
}

fn refused(reply: &str, why: &str) {
    let v: Value = serde_json::from_str(reply).unwrap();
    assert_eq!(v["error"]["code"], json!(-32010), "{reply}");
    assert_eq!(v["error"]["message"], json!("Unauthorized"));
    assert!(v["error"]["data"].as_str().unwrap().contains(why), "{reply} lacks {why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_mount_refuses_unsigned_forged_replayed_and_misdirected_calls() {
    let (vm1, vm2) = (TestVm::new(), TestVm::new());
    let (server, addr) = serve(&vm1, &vm2, &[]).await;
    let (public, secret) = generate_key_pair();

    // A signing client works, and the caller's id is its public key.
    let c = RpcClient::open(&format!("ws://{addr}/vm1"), Some("mallory"), T).await.unwrap();
    c.set_signer(&secret).unwrap();
    c.handshake().await.unwrap().unwrap();
    assert_eq!(c.call("whoami", vec![]).await.unwrap(), Ok(Some(json!(hex::encode(public)))));
    assert_eq!(c.call("add", vec![json!(2), json!(3)]).await.unwrap(), Ok(Some(json!(5))));
    c.close().await;
    assert_eq!(vm1.calls(), 2);

    let mut a = raw(addr, "/vm1").await;
    // Unsigned.
    refused(&rt(&mut a, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}"#).await, "unsigned");
    // A captured frame, sent once: accepted.
    let captured = frame(&secret, &KEY1, 1 << 52, "add", json!([1, 2]), 2);
    assert_eq!(rt(&mut a, &captured).await, r#"{"jsonrpc":"2.0","result":3,"id":2}"#);
    // Replayed on the same and on another connection.
    refused(&rt(&mut a, &captured).await, "does not exceed");
    let mut b = raw(addr, "/vm1").await;
    refused(&rt(&mut b, &captured).await, "does not exceed");
    // Altered: the arguments, the method, the sequence number, the signature.
    let fresh = frame(&secret, &KEY1, (1 << 52) + 10, "add", json!([1, 2]), 3);
    refused(&rt(&mut b, &fresh.replace("[1,2]", "[1,3]")).await, "bad signature");
    refused(&rt(&mut b, &fresh.replace("\"add\"", "\"hello\"")).await, "bad signature");
    refused(&rt(&mut b, &fresh.replace(&format!("{}", (1u64 << 52) + 10), &format!("{}", (1u64 << 52) + 11))).await, "bad signature");
    let sig_at = fresh.find("\"sig\":\"").unwrap() + 7;
    let mut flipped = fresh.clone().into_bytes();
    flipped[sig_at] = if flipped[sig_at] == b'0' { b'1' } else { b'0' };
    refused(&rt(&mut b, std::str::from_utf8(&flipped).unwrap()).await, "bad signature");
    // Signed for this VM, sent to another mount.
    let mut other = raw(addr, "/vm2").await;
    refused(&rt(&mut other, &fresh).await, "bad signature");
    // Malformed auth.
    refused(&rt(&mut b, r#"{"jsonrpc":"2.0","method":"add","params":[1,2],"id":4,"auth":{"key":"00"}}"#).await, "malformed");
    // None of them reached a VM; the untouched fresh frame still works once.
    assert_eq!((vm1.calls(), vm2.calls()), (3, 0));
    assert_eq!(rt(&mut b, &fresh).await, r#"{"jsonrpc":"2.0","result":3,"id":3}"#);
    server.close().await;

    // After a restart the host's last sequence numbers come from its log: the captured frame is still refused.
    let vm3 = TestVm::new();
    let (server, addr) = serve(&vm3, &vm2, &[(public, (1 << 52) + 10)]).await;
    let mut a = raw(addr, "/vm1").await;
    refused(&rt(&mut a, &captured).await, "does not exceed");
    assert_eq!(vm3.calls(), 0);
    server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_mounts_ignore_auth_and_keep_the_user() {
    let (server, vm, addr) = start(ServerConfig::default()).await;
    let (_, secret) = generate_key_pair();
    let mut a = raw(addr, "/vm1?user=alice").await;
    assert_eq!(rt(&mut a, &frame(&secret, &KEY1, 1, "whoami", json!([]), 1)).await, r#"{"jsonrpc":"2.0","result":"alice","id":1}"#);
    assert_eq!(vm.calls(), 1);
    server.close().await;
}
