//! Rough timings of the disk archive without the Node hop: `cargo run --release -p libvms-archive --example perf`.
use libvms_archive::disk;
use std::time::Instant;

fn main() {
    let dir = std::env::temp_dir().join(format!("archive-perf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut d = disk::create(&dir).unwrap();
    d.write_file("/dat.json", b"{}").unwrap();
    d.mkdir("/small").unwrap();
    let n = 500;
    let t = Instant::now();
    for i in 0..n {
        d.write_file(&format!("/small/f{i}.json"), format!("{{\"i\":{i},\"v\":\"{}\"}}", "x".repeat(40)).as_bytes()).unwrap();
    }
    println!("small write: {:.0}/s", n as f64 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    for i in 0..20000 {
        d.read_file(&format!("/small/f{}.json", i % n)).unwrap();
    }
    println!("small read: {:.0}/s", 20000.0 / t.elapsed().as_secs_f64());
    d.mkdir("/big").unwrap();
    let t = Instant::now();
    for i in 0..3000 {
        d.write_file(&format!("/big/e{i}"), b"").unwrap();
    }
    println!("3000 empty writes: {:.2}s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    let names = d.readdir("/big", false).unwrap();
    println!("readdir {}: {:.1} ms", names.len(), t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let names = d.readdir("/big", false).unwrap();
    println!("readdir again {}: {:.1} ms", names.len(), t.elapsed().as_secs_f64() * 1e3);
    let big = vec![7u8; 50 << 20];
    let t = Instant::now();
    d.write_file("/big.bin", &big).unwrap();
    println!("50MB write: {:.0} MB/s", 50.0 / t.elapsed().as_secs_f64());
    let t = Instant::now();
    let back = d.read_file("/big.bin").unwrap();
    println!("50MB read: {:.0} MB/s", 50.0 / t.elapsed().as_secs_f64());
    assert!(back == big);
    std::fs::remove_dir_all(&dir).unwrap();
}
