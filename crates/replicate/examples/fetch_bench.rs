//! Fetch an N-entry core over loopback TCP (host and fetcher in one process), into memory or a
//! directory, from a host core in memory or a directory:
//! `cargo run --release -p libvms-replicate --example fetch_bench -- [entries] [replica dir|-] [host dir]`.

use std::time::{Duration, Instant};

use libvms_ledger::{Core, SharedCore, Storage};
use libvms_replicate::{core_set, Fetch, FetchOptions, Host, ReplCore};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let dir = args.next().filter(|d| d != "-");
    let host_dir = args.next();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async move {
        let mut core = Core::create(host_dir.map_or(Storage::Memory, |d| Storage::Disk(d.into()))).unwrap();
        let data: Vec<Vec<u8>> = (0..n)
            .map(|i| format!(r#"{{"type":"call","call":{{"methodName":"f","args":[{i}]}},"result":{{"filesVersion":1,"res":{i}}}}}"#).into_bytes())
            .collect();
        for chunk in data.chunks(1000) {
            let refs: Vec<&[u8]> = chunk.iter().map(|v| &v[..]).collect();
            core.append_batch(&refs).unwrap();
        }
        let src = ReplCore::new(SharedCore::new(core, "core"), false).unwrap();
        let host = Host::bind("127.0.0.1:0", core_set(vec![src.clone()])).await.unwrap();
        let storage = match &dir {
            Some(d) => Storage::Disk(d.into()),
            None => Storage::Memory,
        };
        let (rep, owned) = ReplCore::replica(storage, src.key()).unwrap();
        let t = Instant::now();
        let f = Fetch::start(vec![rep.clone()], vec![host.local_addr().to_string()], FetchOptions::default());
        f.synced(Duration::from_secs(600)).await.unwrap();
        let s = t.elapsed().as_secs_f64();
        println!("{n} entries in {s:.3} s: {:.0} entries/s", n as f64 / s);
        f.close().await;
        owned.close().unwrap();
        host.close().await;
    });
}
