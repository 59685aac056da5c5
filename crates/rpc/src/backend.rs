//! What the server calls: a VM, implemented by the binding layer over JavaScript.

use std::future::Future;
use std::pin::Pin;

use serde_json::{Map, Value};

/// One call to execute, as it will be logged.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Call {
    pub method: String,
    pub params: Vec<Value>,
    /// `?user=` of the connection (URL-decoded), `""` without it; on a signed mount, the caller's key in hex.
    pub user_id: String,
    /// On a signed mount: the checked signature (its entry fields go into the log entry).
    pub auth: Option<libvms_auth::SignedCall>,
    /// With `auth`: the call's hash (what its receipt names), computed as it was verified, on the connection's task.
    pub auth_hash: Option<[u8; 32]>,
}

impl Call {
    pub fn new(method: impl Into<String>, params: Vec<Value>, user_id: impl Into<String>) -> Self {
        Call { method: method.into(), params, user_id: user_id.into(), auth: None, auth_hash: None }
    }
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `{"result": value}`.
    Value(Value),
    /// The method returned `undefined`: the reply has no `result` key.
    Undefined,
    /// The method threw an `Error`: `{"code":-32000,"message":name,"data":message}`.
    Thrown { name: String, message: String },
    /// The method threw something that is not an `Error` (`throw "x"`): rpc-websockets sent the thrown value
    /// itself as the `error` member.
    ThrownValue(Value),
    /// A signed call's outcome and its receipt (the reply gets a `receipt` member).
    WithReceipt(Box<Outcome>, Value),
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A mounted VM.
pub trait Backend: Send + Sync + 'static {
    /// Exported function names in definition order, without "init". Read once, when mounted.
    fn methods(&self) -> Vec<String>;
    /// Extra fields of the handshake result (callLogUrl, filesArchiveUrl, ...), in wire order. Read once, when
    /// mounted.
    fn info(&self) -> Map<String, Value>;
    /// Signed mode: every call must be signed for this log key (read once, when mounted). Default: debug mode.
    fn auth(&self) -> Option<crate::auth::MountAuth> {
        None
    }
    /// Execute one call. With the defaults below the server runs one call at a time per mount, in arrival order.
    fn call(&self, call: Call) -> BoxFuture<Outcome>;
    /// Most calls the server hands over at once (see `call_many`). Default: one.
    fn max_handoff(&self) -> usize {
        1
    }
    /// Resolves when the next hand-off is welcome; calls arriving meanwhile wait in the queue and go over together.
    /// `answered` resolves once every earlier hand-off is answered. Default: that, so calls run one at a time. A
    /// backend that takes calls into its own serial queue (a JS VM) resolves as soon as it has taken the last
    /// hand-off: the outcomes' slow tail (making log entries durable) then overlaps and calls share a group commit.
    fn ready(&self, answered: BoxFuture<()>) -> BoxFuture<()> {
        answered
    }
    /// Hand several calls over at once, in order. Resolves with their outcomes in the same order. Default: `call`
    /// for each, one after the other.
    fn call_many(&self, calls: Vec<Call>) -> BoxFuture<Vec<Outcome>> {
        let started: Vec<BoxFuture<Outcome>> = calls.into_iter().map(|c| self.call(c)).collect();
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(started.len());
            for f in started {
                outcomes.push(f.await);
            }
            outcomes
        })
    }
}
