//! Frames to the helper, in order, without a task hop in the common case: the
//! calling task writes the frame itself with a non-blocking `try_write`; only when
//! the socket is full is the rest queued for the writer task, and then every later
//! frame queues behind it so frames never interleave. A frame may carry a file
//! descriptor (an `AttachRegion`'s region): it goes out as `SCM_RIGHTS` ancillary
//! data with the frame's first byte (docs/protocol.md, section 6).
//!
//! ```text
//! let written = outbox.send(frame)?; // never blocks; true: written now, false: queued
//! outbox.send_with_fd(frame, region)?; // the region's descriptor rides on byte 0
//! tokio::spawn(outbox.run());   // drains the queue when the socket is writable again
//! ```

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use tokio::io::Interest;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::shm::Region;

/// A frame, how much of it is written, and the region whose descriptor goes
/// with its first byte (until that byte is sent).
struct Queued {
    frame: Vec<u8>,
    done: usize,
    fd: Option<Arc<Region>>,
}

pub(crate) struct Outbox {
    half: OwnedWriteHalf,
    /// Frames waiting for the writer task.
    queue: Mutex<VecDeque<Queued>>,
    wake: Notify,
}

impl Outbox {
    pub(crate) fn new(half: OwnedWriteHalf) -> Arc<Self> {
        Arc::new(Self {
            half,
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
        })
    }

    /// Writes `frame` now if the socket takes it whole (`true`), else queues (the
    /// rest of) it for the writer task (`false`).
    pub(crate) fn send(&self, frame: Vec<u8>) -> io::Result<bool> {
        self.enqueue(Queued {
            frame,
            done: 0,
            fd: None,
        })
    }

    /// As [`Outbox::send`], with `region`'s descriptor attached to the frame's
    /// first byte. The region is kept alive until that byte is sent.
    pub(crate) fn send_with_fd(&self, frame: Vec<u8>, region: Arc<Region>) -> io::Result<bool> {
        self.enqueue(Queued {
            frame,
            done: 0,
            fd: Some(region),
        })
    }

    fn enqueue(&self, mut item: Queued) -> io::Result<bool> {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.is_empty() {
            while item.done < item.frame.len() {
                match self.write_some(&mut item) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if item.done == item.frame.len() {
                return Ok(true);
            }
        }
        q.push_back(item);
        drop(q);
        self.wake.notify_one();
        Ok(false)
    }

    /// One non-blocking write of the rest of `item`: with its descriptor (as
    /// ancillary data) while that is not sent yet, plainly afterwards.
    fn write_some(&self, item: &mut Queued) -> io::Result<usize> {
        let rest = &item.frame[item.done..];
        let n = match &item.fd {
            Some(region) => {
                let sock = self.half.as_ref();
                sock.try_io(Interest::WRITABLE, || {
                    crate::sys::send_with_fd(sock.as_fd(), rest, region.fd())
                })?
            }
            None => self.half.try_write(rest)?,
        };
        if n > 0 {
            item.fd = None;
            item.done += n;
        }
        Ok(n)
    }

    /// The writer task: drains queued frames as the socket becomes writable.
    /// Returns the error that ended the connection.
    pub(crate) async fn run(self: Arc<Self>) -> io::Error {
        loop {
            self.wake.notified().await;
            loop {
                let blocked = {
                    let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                    let Some(item) = q.front_mut() else {
                        break;
                    };
                    match self.write_some(item) {
                        Ok(0) => return io::ErrorKind::WriteZero.into(),
                        Ok(_) => {
                            if item.done == item.frame.len() {
                                q.pop_front();
                            }
                            false
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
                        Err(e) => return e,
                    }
                };
                if blocked {
                    if let Err(e) = self.half.writable().await {
                        return e;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn frames_stay_whole_and_ordered_when_the_socket_is_full() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let (_r, w) = a.into_split();
        let outbox = Outbox::new(w);
        let writer = tokio::spawn(outbox.clone().run());
        // 64 frames of 64 KiB: far more than the socket buffer holds, nobody reads yet.
        let frames: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 64 * 1024]).collect();
        let written: Vec<bool> = frames
            .iter()
            .map(|f| outbox.send(f.clone()).unwrap())
            .collect();
        assert!(written[0], "the first frame fits");
        assert!(!written[63], "the last frame waits in the queue");
        assert!(
            !outbox.queue.lock().unwrap().is_empty(),
            "expected a backlog"
        );
        let mut got = vec![0u8; 64 * 64 * 1024];
        tokio::time::timeout(std::time::Duration::from_secs(10), b.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, frames.concat());
        writer.abort();
    }
}
