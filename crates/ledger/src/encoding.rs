//! compact-encoding (the npm package hypercore uses for every on-disk and wire structure):
//! `uint` (1/3/5/9 bytes), `buffer`/`string` (uint length prefix), fixed-size raw fields, arrays.
//! Decoding never panics: every read is bounds-checked and fails with `StorageCorrupt` (callers
//! that decode network input re-map the code).

use libvms_errors::{err, Result};

/// Append-only encoder into a growable buffer.
#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { buf: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Encoder { buf: Vec::with_capacity(n) }
    }

    pub fn uint(&mut self, n: u64) {
        if n <= 0xfc {
            self.buf.push(n as u8);
        } else if n <= 0xffff {
            self.buf.push(0xfd);
            self.buf.extend_from_slice(&(n as u16).to_le_bytes());
        } else if n <= 0xffff_ffff {
            self.buf.push(0xfe);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        } else {
            self.buf.push(0xff);
            self.buf.extend_from_slice(&n.to_le_bytes());
        }
    }

    pub fn byte(&mut self, b: u8) {
        self.buf.push(b);
    }

    pub fn uint64(&mut self, n: u64) {
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    /// `buffer`: null and empty are both written as a zero length.
    pub fn buffer(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.uint(b.len() as u64);
                self.buf.extend_from_slice(b);
            }
            None => self.uint(0),
        }
    }

    pub fn string(&mut self, s: &str) {
        self.buffer(Some(s.as_bytes()));
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
}

/// Size in bytes of `uint(n)`.
pub fn uint_len(n: u64) -> usize {
    if n <= 0xfc {
        1
    } else if n <= 0xffff {
        3
    } else if n <= 0xffff_ffff {
        5
    } else {
        9
    }
}

/// Cursor over untrusted bytes.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn short() -> libvms_errors::Error {
    err::corrupt("truncated compact-encoding value")
}

impl<'a> Decoder<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(short());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn uint(&mut self) -> Result<u64> {
        let a = self.byte()?;
        Ok(match a {
            0xfd => u16::from_le_bytes(self.fixed::<2>()?) as u64,
            0xfe => u32::from_le_bytes(self.fixed::<4>()?) as u64,
            0xff => u64::from_le_bytes(self.fixed::<8>()?),
            n => n as u64,
        })
    }

    /// A uint that must fit a `usize` length and the bytes left (guards allocations on bad input).
    pub fn len_prefix(&mut self) -> Result<usize> {
        let n = self.uint()?;
        if n > self.remaining() as u64 {
            return Err(short());
        }
        Ok(n as usize)
    }

    pub fn uint64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.fixed::<8>()?))
    }

    pub fn fixed<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(s);
        Ok(out)
    }

    /// `buffer`: a zero length decodes to None, as in JS (null).
    pub fn buffer(&mut self) -> Result<Option<Vec<u8>>> {
        let n = self.len_prefix()?;
        if n == 0 {
            return Ok(None);
        }
        Ok(Some(self.take(n)?.to_vec()))
    }

    pub fn string(&mut self) -> Result<String> {
        let n = self.len_prefix()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| err::corrupt("invalid UTF-8 string"))
    }

    /// An array count, bounded by the bytes left (each item takes at least `min_item` bytes).
    pub fn array_len(&mut self, min_item: usize) -> Result<usize> {
        let n = self.uint()?;
        let max = (self.remaining() / min_item.max(1)) as u64;
        if n > max {
            return Err(short());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_round_trip() {
        for n in [0u64, 1, 0xfc, 0xfd, 0xffff, 0x10000, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            let mut e = Encoder::new();
            e.uint(n);
            assert_eq!(e.buf.len(), uint_len(n));
            let mut d = Decoder::new(&e.buf);
            assert_eq!(d.uint().unwrap(), n);
            assert!(d.is_empty());
        }
    }

    #[test]
    fn uint_encodings_match_compact_encoding() {
        let mut e = Encoder::new();
        e.uint(0xfd);
        assert_eq!(e.buf, [0xfd, 0xfd, 0x00]);
        let mut e = Encoder::new();
        e.uint(0x10000);
        assert_eq!(e.buf, [0xfe, 0, 0, 1, 0]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        for bad in [&[0xfdu8][..], &[0xfe, 1, 2], &[0xff, 1, 2, 3, 4, 5, 6, 7], &[5, 1, 2]] {
            let mut d = Decoder::new(bad);
            let r = if bad[0] == 5 { d.buffer().map(|_| 0) } else { d.uint() };
            assert!(r.is_err());
        }
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.array_len(1).is_err());
    }

    #[test]
    fn buffer_null_and_empty() {
        let mut e = Encoder::new();
        e.buffer(None);
        e.buffer(Some(&[]));
        e.buffer(Some(b"ab"));
        e.string("hé");
        assert_eq!(e.buf, [0, 0, 2, b'a', b'b', 3, b'h', 0xc3, 0xa9]);
        let mut d = Decoder::new(&e.buf);
        assert_eq!(d.buffer().unwrap(), None);
        assert_eq!(d.buffer().unwrap(), None);
        assert_eq!(d.buffer().unwrap(), Some(b"ab".to_vec()));
        assert_eq!(d.string().unwrap(), "hé");
    }
}
