//! The pipelined backend (a VM whose calls run on a thread of its own) through a real server, without Node: a fake
//! VM thread and a fake call log stand in for JavaScript and the ledger. The pipeline builds each call's entry from
//! the call it holds and the outcome the VM reports, commits it, and replies once it is durable.
mod common;

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use libvms_calllog::Ended;
use libvms_rpc::{BoxFuture, Call, LogTail, Logged, Outcome, Pipelined, RpcServer, ServerConfig, Tickets, VmThread};
use serde_json::{json, Value};
use tokio::sync::watch;

type Handoff = (u32, Vec<Call>, Box<dyn FnOnce() + Send>);

/// Records hand-offs; the test takes them up and answers them when it chooses.
struct FakeThread {
    tx: Mutex<mpsc::Sender<Handoff>>,
    gone: bool,
}

impl VmThread for FakeThread {
    fn hand_over(&self, ticket: u32, calls: &[Call], taken: Box<dyn FnOnce() + Send>) -> Result<(), String> {
        if self.gone {
            return Err("closing".into());
        }
        self.tx.lock().unwrap().send((ticket, calls.to_vec(), taken)).map_err(|e| e.to_string())
    }
}

/// A log that keeps appended entries in memory; the test moves its durable length, or fails it.
struct FakeLog {
    entries: Mutex<Vec<String>>,
    durable: watch::Sender<(u64, bool)>,
}

impl LogTail for FakeLog {
    fn append(&self, entry: Vec<u8>) -> BoxFuture<Result<u64, String>> {
        let index = {
            let mut entries = self.entries.lock().unwrap();
            entries.push(String::from_utf8(entry).unwrap());
            entries.len() as u64 - 1
        };
        let mut rx = self.durable.subscribe();
        Box::pin(async move {
            match rx.wait_for(|&(l, failed)| l > index || failed).await {
                Ok(s) if s.0 > index => Ok(index),
                _ => Err("disk full".into()),
            }
        })
    }
    fn receipt(&self, _index: u64, _call: [u8; 32]) -> Option<Value> {
        None
    }
}

struct Setup {
    server: RpcServer,
    tickets: Arc<Tickets>,
    handoffs: mpsc::Receiver<Handoff>,
    log: Arc<FakeLog>,
    ws: Raw,
}

async fn setup(gone: bool) -> Setup {
    let (tx, handoffs) = mpsc::channel();
    let tickets = Arc::new(Tickets::default());
    let log = Arc::new(FakeLog { entries: Mutex::new(Vec::new()), durable: watch::Sender::new((0, false)) });
    let mut backend = Pipelined::new(Box::new(FakeThread { tx: Mutex::new(tx), gone }), tickets.clone());
    backend.methods = vec!["echo".into()];
    backend.log = Some(log.clone());
    let server = RpcServer::new(ServerConfig::default());
    server.mount("/vm1", Arc::new(backend)).unwrap();
    let addr = server.listen("127.0.0.1", 0).await.unwrap();
    let ws = raw(addr, "/vm1").await;
    Setup { server, tickets, handoffs, log, ws }
}

fn echo(id: u32) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"echo","params":[{id}],"id":{id}}}"#)
}

async fn next_handoff(rx: &mpsc::Receiver<Handoff>) -> Handoff {
    for _ in 0..500 {
        if let Ok(h) = rx.try_recv() {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no hand-off")
}

fn values(calls: &[Call]) -> Vec<Outcome> {
    calls.iter().map(|c| Outcome::Value(Value::Array(c.params.clone()))).collect()
}

/// The VM ran the calls of a hand-off: each reports its outcome for the log, as JavaScript's `_execute` does.
fn run(s: &Setup, ticket: u32, calls: &[Call]) {
    for (slot, c) in calls.iter().enumerate() {
        let ended = Ended::Value(serde_json::to_string(&c.params).unwrap());
        s.tickets.commit(ticket, slot, Logged { files_version: 7, ended, extra: Vec::new() });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_gather_while_the_vm_thread_is_busy_and_replies_wait_for_durability() {
    let mut s = setup(false).await;
    send(&mut s.ws, &echo(1)).await;
    let (t1, calls1, taken1) = next_handoff(&s.handoffs).await;
    assert_eq!(calls1.len(), 1);
    // Not taken up yet: later calls wait in the queue and go over together.
    for id in 2..=4 {
        send(&mut s.ws, &echo(id)).await;
    }
    until(|| s.server.queued("/vm1") == Some(3)).await;
    assert!(s.handoffs.try_recv().is_err(), "nothing goes over before the thread has taken the last hand-off");
    taken1();
    let (t2, calls2, taken2) = next_handoff(&s.handoffs).await;
    taken2();
    assert_eq!(calls2.iter().map(|c| c.params[0].as_u64().unwrap()).collect::<Vec<_>>(), vec![2, 3, 4]);
    // Run in order; the second hand-off is answered first. Entries are made here, from the calls as received.
    run(&s, t1, &calls1);
    run(&s, t2, &calls2);
    s.tickets.answer(t2, Some(values(&calls2)));
    s.tickets.answer(t1, Some(values(&calls1)));
    let entries = s.log.entries.lock().unwrap().clone();
    assert_eq!(entries.len(), 4);
    for (i, e) in entries.iter().enumerate() {
        let id = i + 1;
        assert_eq!(
            e,
            &format!(r#"{{"type":"call","call":{{"methodName":"echo","args":[{id}],"userId":""}},"result":{{"filesVersion":7,"res":[{id}]}}}}"#)
        );
    }
    s.log.durable.send_replace((3, false));
    // Entry 0 is durable: the first hand-off's reply goes; the second's wait for all of its entries (up to 3).
    assert_eq!(recv(&mut s.ws).await, r#"{"jsonrpc":"2.0","result":[1],"id":1}"#);
    let early = tokio::time::timeout(Duration::from_millis(100), s.ws.next()).await;
    assert!(early.is_err(), "a reply left before its entry was durable");
    s.log.durable.send_replace((4, false));
    for id in 2..=4 {
        assert_eq!(recv(&mut s.ws).await, format!(r#"{{"jsonrpc":"2.0","result":[{id}],"id":{id}}}"#));
    }
    s.server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_log_fails_the_calls_and_a_bad_answer_is_an_internal_error() {
    let mut s = setup(false).await;
    send(&mut s.ws, &echo(1)).await;
    let (t1, calls1, taken1) = next_handoff(&s.handoffs).await;
    taken1();
    run(&s, t1, &calls1);
    s.tickets.answer(t1, Some(values(&calls1)));
    s.log.durable.send_replace((0, true));
    let reply: Value = serde_json::from_str(&recv(&mut s.ws).await).unwrap();
    assert_eq!(reply["error"]["data"], json!("Internal error: the call log failed: disk full"));

    send(&mut s.ws, &echo(2)).await;
    let (t2, _, taken2) = next_handoff(&s.handoffs).await;
    taken2();
    s.tickets.answer(t2, Some(Vec::new()));
    let reply: Value = serde_json::from_str(&recv(&mut s.ws).await).unwrap();
    assert_eq!(reply["error"]["data"], json!("Internal error: bad outcomes"));
    s.server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_made_no_entry_is_answered_without_waiting() {
    let mut s = setup(false).await;
    send(&mut s.ws, &echo(1)).await;
    let (t1, _, taken1) = next_handoff(&s.handoffs).await;
    taken1();
    // Refused before it ran (say, the VM stopped): an error outcome, no entry, nothing to wait for.
    s.tickets.answer(t1, Some(vec![Outcome::Thrown { name: "StorageIOError".into(), message: "reopen it".into() }]));
    let reply: Value = serde_json::from_str(&recv(&mut s.ws).await).unwrap();
    assert_eq!(reply["error"]["message"], json!("StorageIOError"));
    assert!(s.log.entries.lock().unwrap().is_empty());
    s.server.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_thread_that_is_gone_fails_its_calls_at_once() {
    let mut s = setup(true).await;
    send(&mut s.ws, &echo(1)).await;
    let reply: Value = serde_json::from_str(&recv(&mut s.ws).await).unwrap();
    assert_eq!(reply["error"]["data"], json!("Internal error: the VM is gone (closing)"));
    s.server.close().await;
}
