//! Length-prefixed framing: a 4-byte big-endian body length, then the body.

use crate::{EncodeError, Envelope};
use std::io::{self, Read, Write};

/// Largest frame body either side sends or accepts (1 MiB). Control messages
/// are small; tensors travel through shared memory.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix exceeds the limit; nothing was allocated for it.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversize {
        /// Claimed body length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// A zero-length frame (never valid).
    #[error("empty frame")]
    Empty,
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected (prefix included).
        want: usize,
    },
    /// An I/O error.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Encodes an envelope as a whole frame (prefix and body).
///
/// # Errors
/// [`EncodeError::TooLarge`] past [`MAX_FRAME_LEN`].
pub fn encode_frame(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0u8; 4];
    env.encode_into(&mut out)?;
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_be_bytes());
    Ok(out)
}

fn check_len(len: u32, max: usize) -> Result<usize, FrameError> {
    let max = max.min(MAX_FRAME_LEN);
    match len as usize {
        0 => Err(FrameError::Empty),
        n if n > max => Err(FrameError::Oversize {
            len: len.into(),
            max,
        }),
        n => Ok(n),
    }
}

/// Sans-I/O frame reassembly: feed bytes as they arrive, take whole bodies out.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    max: usize,
}

impl FrameDecoder {
    /// A decoder that rejects bodies over `max` bytes (capped at [`MAX_FRAME_LEN`]).
    pub fn new(max: usize) -> Self {
        FrameDecoder {
            buf: Vec::new(),
            max: max.min(MAX_FRAME_LEN),
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next whole frame body, if one has arrived.
    ///
    /// # Errors
    /// [`FrameError::Oversize`] or [`FrameError::Empty`] as soon as the prefix is
    /// seen; the decoder is then unusable (the stream has lost sync).
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = check_len(
            u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]),
            self.max,
        )?;
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }

    /// Call at end of stream: an error if a partial frame is left.
    ///
    /// # Errors
    /// [`FrameError::Truncated`].
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let want = if self.buf.len() >= 4 {
            4 + u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize
        } else {
            4
        };
        Err(FrameError::Truncated {
            got: self.buf.len(),
            want,
        })
    }
}

fn read_full<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    already: usize,
    want: usize,
) -> Result<usize, FrameError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => return Ok(got),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = (already, want);
    Ok(got)
}

/// Reads one frame body from a blocking stream. `Ok(None)` at a clean end of
/// stream (no byte of a new frame read).
///
/// # Errors
/// Oversize, empty or truncated frames, and I/O errors.
pub fn read_frame<R: Read>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let got = read_full(r, &mut prefix, 0, 4)?;
    if got == 0 {
        return Ok(None);
    }
    if got < 4 {
        return Err(FrameError::Truncated { got, want: 4 });
    }
    let len = check_len(u32::from_be_bytes(prefix), max)?;
    let mut body = vec![0u8; len];
    let got = read_full(r, &mut body, 4, 4 + len)?;
    if got < len {
        return Err(FrameError::Truncated {
            got: 4 + got,
            want: 4 + len,
        });
    }
    Ok(Some(body))
}

/// Encodes and writes one frame to a blocking stream.
///
/// # Errors
/// Encoding and I/O errors.
pub fn write_frame<W: Write>(w: &mut W, env: &Envelope) -> io::Result<()> {
    let frame = encode_frame(env).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&frame)
}

/// Reads one frame body from an async stream. `Ok(None)` at a clean end of stream.
///
/// # Errors
/// As [`read_frame`].
#[cfg(feature = "tokio")]
pub async fn read_frame_async<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { got, want: 4 })
            };
        }
        got += n;
    }
    let len = check_len(u32::from_be_bytes(prefix), max)?;
    let mut body = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = r.read(&mut body[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated {
                got: 4 + got,
                want: 4 + len,
            });
        }
        got += n;
    }
    Ok(Some(body))
}

/// Encodes and writes one frame to an async stream.
///
/// # Errors
/// Encoding and I/O errors.
#[cfg(feature = "tokio")]
pub async fn write_frame_async<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    env: &Envelope,
) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let frame = encode_frame(env).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    w.write_all(&frame).await
}
