//! uint24le framing: every message on the TCP stream (handshake, header, data) is
//! `u24le(len) ‖ len bytes`. Readers own a buffer so a frame is read with two `read_exact`s.

use libvms_errors::{err, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const MAX_FRAME: usize = (1 << 24) - 1;

/// Read one frame; `Ok(None)` on a clean EOF between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>> {
    let mut len = [0u8; 3];
    match r.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(err::connection(format!("read: {e}"))),
    }
    r.read_exact(&mut len[1..]).await.map_err(|e| err::connection(format!("read: {e}")))?;
    let n = len[0] as usize | (len[1] as usize) << 8 | (len[2] as usize) << 16;
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf).await.map_err(|e| err::connection(format!("read: {e}")))?;
    Ok(Some(buf))
}

/// Prefix `payload` with its u24le length (into `out`, so several frames share one write).
pub fn encode_frame(payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(err::bad_argument(format!("frame of {} bytes is over the 16 MiB limit", payload.len())));
    }
    let n = payload.len();
    out.extend_from_slice(&[n as u8, (n >> 8) as u8, (n >> 16) as u8]);
    out.extend_from_slice(payload);
    Ok(())
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    encode_frame(payload, &mut out)?;
    w.write_all(&out).await.map_err(|e| err::connection(format!("write: {e}")))?;
    w.flush().await.map_err(|e| err::connection(format!("write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_use_u24le() {
        let mut out = Vec::new();
        encode_frame(&[7u8; 32], &mut out).unwrap();
        encode_frame(&vec![1u8; 0x10203], &mut out).unwrap();
        encode_frame(&[], &mut out).unwrap();
        assert_eq!(&out[..3], &[0x20, 0, 0]);
        assert_eq!(&out[35..38], &[0x03, 0x02, 0x01]);
        let mut r = &out[..];
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), vec![7u8; 32]);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap().len(), 0x10203);
        assert_eq!(read_frame(&mut r).await.unwrap().unwrap(), Vec::<u8>::new());
        assert!(read_frame(&mut r).await.unwrap().is_none());
        // A frame cut short is an error, not an EOF.
        let mut cut = &out[..10];
        assert!(read_frame(&mut cut).await.is_err());
    }
}
