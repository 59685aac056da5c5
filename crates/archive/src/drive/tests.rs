use super::*;
use crate::MemoryStore;
use libvms_errors::ErrorCode;

type D = Drive<MemoryStore, MemoryStore>;

fn drive() -> (D, MemoryStore, MemoryStore) {
    let (m, c) = (MemoryStore::new(), MemoryStore::new());
    let mut d = Drive::new(m.clone(), c.clone(), Some([7; 32])).unwrap();
    d.set_clock(fixed_clock(1000));
    (d, m, c)
}

fn code<T: std::fmt::Debug>(r: Result<T>) -> ErrorCode {
    r.unwrap_err().code
}

#[test]
fn versions_count_writes() {
    let (mut d, m, _) = drive();
    assert_eq!(d.version(), 1);
    assert_eq!(d.write_file("/a.txt", b"hi").unwrap(), 2);
    assert_eq!(m.len(), 2);
    assert_eq!(d.mkdir("/d").unwrap(), 3);
    assert_eq!(d.write_file("/d/x", b"1").unwrap(), 4);
    assert_eq!(d.write_file("/d/x", b"22").unwrap(), 5);
    assert_eq!(d.unlink("/d/x").unwrap(), 6);
    assert_eq!(d.rmdir("/d", false).unwrap(), 7);
    assert_eq!(d.read_file("/a.txt").unwrap(), b"hi");
    assert_eq!(d.readdir("/", false).unwrap(), ["a.txt"]);
}

#[test]
fn errors_change_nothing() {
    let (mut d, m, c) = drive();
    d.write_file("/f", b"x").unwrap();
    d.mkdir("/d").unwrap();
    d.write_file("/d/in", b"y").unwrap();
    let (mv, cv) = (m.blocks(), c.blocks());
    assert_eq!(
        code(d.write_file("/nope/x", b"1")),
        ErrorCode::ParentFolderDoesntExist
    );
    assert_eq!(
        code(d.write_file("/f/x", b"1")),
        ErrorCode::ParentFolderDoesntExist
    );
    assert_eq!(
        code(d.write_file("/d", b"1")),
        ErrorCode::EntryAlreadyExists
    );
    assert_eq!(code(d.write_file("/", b"1")), ErrorCode::InvalidPath);
    assert_eq!(code(d.write_file("/../x", b"1")), ErrorCode::InvalidPath);
    assert_eq!(code(d.write_file("", b"1")), ErrorCode::InvalidPath);
    assert_eq!(code(d.write_file("/a\0b", b"1")), ErrorCode::InvalidPath);
    assert_eq!(code(d.mkdir("/d")), ErrorCode::EntryAlreadyExists);
    assert_eq!(code(d.mkdir("/f")), ErrorCode::EntryAlreadyExists);
    assert_eq!(code(d.mkdir("/")), ErrorCode::EntryAlreadyExists);
    assert_eq!(code(d.mkdir("/x/y")), ErrorCode::ParentFolderDoesntExist);
    assert_eq!(code(d.unlink("/missing")), ErrorCode::NotFound);
    assert_eq!(code(d.unlink("/d")), ErrorCode::NotFound);
    assert_eq!(code(d.rmdir("/d", false)), ErrorCode::DestDirectoryNotEmpty);
    assert_eq!(code(d.rmdir("/f", false)), ErrorCode::NotFound);
    assert_eq!(code(d.rmdir("/missing", true)), ErrorCode::NotFound);
    assert_eq!(code(d.rename("/f", "/d")), ErrorCode::EntryAlreadyExists);
    assert_eq!(code(d.rename("/missing", "/z")), ErrorCode::NotFound);
    assert_eq!(code(d.rename("/d", "/d/sub")), ErrorCode::InvalidPath);
    assert_eq!(
        code(d.copy("/f", "/nope/f")),
        ErrorCode::ParentFolderDoesntExist
    );
    assert_eq!(code(d.read_file("/missing")), ErrorCode::NotFound);
    assert_eq!(code(d.read_file("/d")), ErrorCode::NotFound);
    assert_eq!(code(d.stat("/missing")), ErrorCode::NotFound);
    assert_eq!(code(d.readdir("/f", false)), ErrorCode::NotFound);
    assert_eq!(m.blocks(), mv);
    assert_eq!(c.blocks(), cv);
}

#[test]
fn read_only_and_checkouts_refuse_writes() {
    let (mut d, m, c) = drive();
    d.write_file("/f", b"x").unwrap();
    let mut ro = Drive::new(m.read_only(), c.read_only(), None).unwrap();
    assert_eq!(ro.read_file("/f").unwrap(), b"x");
    assert_eq!(ro.content_key().unwrap(), Some([7; 32]));
    assert_eq!(
        code(ro.write_file("/g", b"1")),
        ErrorCode::ArchiveNotWritable
    );
    assert_eq!(code(ro.mkdir("/g")), ErrorCode::ArchiveNotWritable);
    let mut co = d.checkout(1).unwrap();
    assert_eq!(co.version(), 1);
    assert_eq!(co.readdir("/", false).unwrap(), Vec::<String>::new());
    assert_eq!(
        code(co.write_file("/g", b"1")),
        ErrorCode::ArchiveNotWritable
    );
    assert_eq!(code(co.rmdir("/x", true)), ErrorCode::ArchiveNotWritable);
    assert_eq!(d.checkout(5).err().unwrap().code, ErrorCode::BadArgument);
    d.write_file("/f", b"yy").unwrap();
    let mut co = d.checkout(2).unwrap();
    assert_eq!(co.read_file("/f").unwrap(), b"x");
    assert_eq!(d.read_file("/f").unwrap(), b"yy");
}

#[test]
fn stat_times_and_dirs() {
    let (mut d, _, c) = drive();
    d.mkdir("/d").unwrap();
    d.set_clock(fixed_clock(2000));
    let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    d.write_file("/d/big", &big).unwrap();
    d.set_clock(fixed_clock(3000));
    d.write_file("/d/big", &big).unwrap();
    let s = d.stat("/d/big").unwrap();
    assert!(s.is_file && !s.is_dir);
    assert_eq!(
        (s.size, s.blocks, s.downloaded, s.mtime, s.ctime),
        (200_000, 4, 4, 3000, 2000)
    );
    let s = d.stat("/d").unwrap();
    assert!(s.is_dir && !s.is_file);
    assert_eq!((s.mtime, s.ctime), (1000, 1000));
    assert!(d.stat("/").unwrap().is_dir);
    let mut n = 0;
    for ch in d.read_file_chunks("/d/big").unwrap() {
        let ch = ch.unwrap();
        assert!(ch.len() <= blobs::BLOCK_SIZE);
        n += ch.len();
    }
    assert_eq!(n, 200_000);
    assert_eq!(c.len(), 8);
    // streaming write
    let chunks = (0..10).map(|i| Ok(vec![i as u8; 30_000]));
    d.write_file_chunks("/d/s", chunks).unwrap();
    assert_eq!(d.stat("/d/s").unwrap().size, 300_000);
    let failing = vec![Ok(vec![1u8; 10]), Err(err::io("source broke"))];
    let v = d.version();
    assert_eq!(code(d.write_file_chunks("/d/t", failing)), ErrorCode::Io);
    assert_eq!(d.version(), v);
    assert_eq!(code(d.stat("/d/t")), ErrorCode::NotFound);
}

#[test]
fn readdir_shallow_and_recursive() {
    let (mut d, _, _) = drive();
    d.mkdir("/a").unwrap();
    d.mkdir("/a/b").unwrap();
    d.write_file("/a/b/c.txt", b"1").unwrap();
    d.write_file("/a/b.txt", b"1").unwrap();
    d.write_file("/a/b!", b"1").unwrap();
    d.mkdir("/a0").unwrap();
    d.write_file("/z", b"1").unwrap();
    assert_eq!(d.readdir("/", false).unwrap(), ["a", "a0", "z"]);
    assert_eq!(d.readdir("/a", false).unwrap(), ["b", "b!", "b.txt"]);
    assert_eq!(
        d.readdir("a/", true).unwrap(),
        ["b", "b!", "b.txt", "b/c.txt"]
    );
    assert_eq!(
        d.readdir("/", true).unwrap(),
        ["a", "a/b", "a/b!", "a/b.txt", "a/b/c.txt", "a0", "z"]
    );
    assert_eq!(d.readdir("/a/b", false).unwrap(), ["c.txt"]);
}

#[test]
fn rename_copy_rmdir_recursive() {
    let (mut d, _, _) = drive();
    d.mkdir("/a").unwrap();
    d.mkdir("/a/s").unwrap();
    d.write_file("/a/s/x", b"x").unwrap();
    d.write_file("/a/y", b"y").unwrap();
    let v = d.version();
    // 4 entries: 4 puts
    assert_eq!(d.copy("/a", "/b").unwrap(), v + 4);
    assert_eq!(d.readdir("/b", true).unwrap(), ["s", "s/x", "y"]);
    assert_eq!(d.read_file("/b/s/x").unwrap(), b"x");
    // 4 puts + 4 dels
    assert_eq!(d.rename("/a", "/c").unwrap(), v + 12);
    assert_eq!(code(d.stat("/a")), ErrorCode::NotFound);
    assert_eq!(d.read_file("/c/y").unwrap(), b"y");
    assert!(d.stat("/c/s").unwrap().is_dir);
    assert_eq!(d.rename("/c/y", "/y").unwrap(), v + 14);
    assert_eq!(d.rmdir("/c", true).unwrap(), v + 17);
    assert_eq!(d.readdir("/", false).unwrap(), ["b", "y"]);
    let h = d.history(0, None, false).unwrap();
    assert_eq!(h.len() as u64, d.version() - 1);
    assert_eq!(
        h[0],
        HistoryRecord {
            kind: ChangeType::Put,
            path: "/a".into(),
            version: 2
        }
    );
    assert_eq!(
        h.last().unwrap(),
        &HistoryRecord {
            kind: ChangeType::Del,
            path: "/c".into(),
            version: v + 17
        }
    );
    let r = d.history(3, Some(5), true).unwrap();
    assert_eq!(r.iter().map(|r| r.version).collect::<Vec<_>>(), [4, 3]);
}

#[test]
fn one_batch_per_operation() {
    struct Counting(MemoryStore, Arc<Mutex<usize>>);
    impl BlockStore for Counting {
        fn len(&self) -> u64 {
            self.0.len()
        }
        fn byte_len(&self) -> u64 {
            self.0.byte_len()
        }
        fn get(&mut self, i: u64) -> Result<Vec<u8>> {
            self.0.get(i)
        }
        fn append_batch(&mut self, b: &[&[u8]]) -> Result<u64> {
            *self.1.lock().unwrap() += 1;
            self.0.append_batch(b)
        }
    }
    let n = Arc::new(Mutex::new(0));
    let mut d = Drive::new(
        Counting(MemoryStore::new(), n.clone()),
        MemoryStore::new(),
        None,
    )
    .unwrap();
    d.mkdir("/a").unwrap();
    for i in 0..20 {
        d.write_file(&format!("/a/{i}"), b"v").unwrap();
    }
    *n.lock().unwrap() = 0;
    d.rmdir("/a", true).unwrap();
    assert_eq!(*n.lock().unwrap(), 1);
    assert_eq!(d.version(), 2 + 20 + 21);
}

#[test]
fn fixed_clock_replays_byte_for_byte() {
    let run = || {
        let (mut d, m, c) = drive();
        d.mkdir("/x").unwrap();
        d.write_file("/x/a", b"abc").unwrap();
        d.rename("/x", "/y").unwrap();
        (m.blocks(), c.blocks())
    };
    assert_eq!(run(), run());
}

#[test]
fn readdir_of_a_big_folder_with_sub_folders_matches_the_recursive_listing() {
    let (mut d, _, _) = drive();
    d.mkdir("/big").unwrap();
    for i in 0..600 {
        d.write_file(&format!("/big/e{i}"), b"").unwrap();
        if i % 50 == 0 {
            d.mkdir(&format!("/big/s{i}")).unwrap();
            d.write_file(&format!("/big/s{i}/inner"), b"1").unwrap();
        }
    }
    let v = d.version();
    let mut want: Vec<String> = d
        .readdir("/big", true)
        .unwrap()
        .into_iter()
        .filter(|n| !n.contains('/'))
        .collect();
    want.sort();
    assert_eq!(want.len(), 612);
    assert_eq!(d.readdir("/big", false).unwrap(), want);
    // a checkout sees only what it had
    d.write_file("/big/late", b"").unwrap();
    let mut co = d.checkout(v).unwrap();
    assert_eq!(co.readdir("/big", false).unwrap(), want);
    assert_eq!(d.readdir("/big", false).unwrap().len(), 613);
}

#[test]
fn read_file_if_small_reads_only_small_files() {
    let (mut d, _, _) = drive();
    d.write_file("/s", b"small").unwrap();
    d.write_file("/b", &vec![1u8; 100_000]).unwrap();
    d.write_file("/e", b"").unwrap();
    assert_eq!(d.read_file_if_small("/s", 5).unwrap().unwrap(), b"small");
    assert_eq!(d.read_file_if_small("/s", 4).unwrap(), None);
    assert_eq!(d.read_file_if_small("/b", 65_536).unwrap(), None);
    assert_eq!(d.read_file_if_small("/e", 0).unwrap().unwrap(), b"");
    assert_eq!(code(d.read_file_if_small("/missing", 10)), ErrorCode::NotFound);
    // a rewrite is seen at once
    d.write_file("/s", b"other").unwrap();
    assert_eq!(d.read_file_if_small("/s", 10).unwrap().unwrap(), b"other");
}
