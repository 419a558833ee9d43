//! Frames from the helper, read by whoever gets there first: the reader task when
//! the socket turns readable, or a caller that spins for a short, bounded time on
//! its own reply (the fast lane, [`Inbox::spin`]). Either way every frame is
//! decoded and handed on in arrival order, under one lock.
//!
//! Why a caller spins: on a virtual machine an idle CPU that sleeps in `epoll_wait`
//! takes tens of microseconds to wake (measured in docs/benchmarks.md), more than a
//! small prediction itself. A caller that keeps its CPU busy for the few
//! microseconds the helper needs skips that wake-up and the task hand-off behind it.
//!
//! ```text
//! loop { inbox.readable().await?; match inbox.pump(&deliver) { .. } }  // reader task
//! let got = inbox.spin(budget, || rx.try_recv().ok(), &deliver, |cause| conn.die(cause));  // caller
//! ```

use std::io;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::{Duration, Instant};

use coreml_ipc_schema::{Envelope, FrameDecoder, MAX_FRAME_LEN};
use tokio::net::unix::OwnedReadHalf;

use crate::error::DeathCause;
use crate::sys;

/// Bytes read from the socket per `try_read`.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes one pump reads before it gives the socket back, so a helper that streams
/// without pause cannot keep a spinning caller (or the reader task) forever.
const PUMP_LIMIT: usize = 4 * READ_CHUNK;

/// How a pump ended.
#[derive(Debug)]
pub(crate) enum Pumped {
    /// The socket has no more bytes for now.
    Drained,
    /// [`PUMP_LIMIT`] bytes read and more may be waiting.
    Busy,
    /// End of stream (or a read error): the reader task decides what it means.
    Eof,
    /// The helper sent something that is not a frame of the protocol.
    Broken(DeathCause),
}

struct Reassembly {
    decoder: FrameDecoder,
    chunk: Box<[u8]>,
}

/// The read half of the control socket and its frame reassembly.
pub(crate) struct Inbox {
    half: OwnedReadHalf,
    state: Mutex<Reassembly>,
    spinning: AtomicBool,
}

impl Inbox {
    pub(crate) fn new(half: OwnedReadHalf) -> Self {
        Inbox {
            half,
            state: Mutex::new(Reassembly {
                decoder: FrameDecoder::new(MAX_FRAME_LEN),
                chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            }),
            spinning: AtomicBool::new(false),
        }
    }

    /// The socket (to shut it down).
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.half.as_ref().as_fd()
    }

    /// Waits until the socket has bytes (or end of stream).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.half.readable().await
    }

    /// Reads what the socket holds and hands each whole frame to `deliver`, in
    /// order. Reads through tokio, so a drained socket clears tokio's readiness and
    /// the next [`Inbox::readable`] waits for new bytes.
    pub(crate) fn pump(&self, deliver: &dyn Fn(Envelope)) -> Pumped {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        pump_locked(&mut st, &mut |b| self.half.try_read(b), deliver)
    }

    /// A pump for a spinning caller, unless another pump is running (then `None`).
    /// It asks the kernel directly: tokio's readiness is only updated by its I/O
    /// driver, which does not run while this thread spins. Bytes taken behind
    /// tokio's back leave its readiness set at worst, which costs the reader task
    /// one empty read, never a lost wake-up.
    fn try_pump(&self, deliver: &dyn Fn(Envelope)) -> Option<Pumped> {
        let mut st = match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        let fd = self.half.as_ref().as_fd();
        Some(pump_locked(
            &mut st,
            &mut |b| sys::recv_nonblocking(fd, b),
            deliver,
        ))
    }

    /// The fast lane: for at most `budget`, polls `ready` and pumps the socket
    /// itself. Returns what `ready` produced, or `None` when the budget ran out,
    /// another caller is already spinning, or the stream ended or broke (`broken`
    /// gets the cause; the reader task handles an end of stream).
    pub(crate) fn spin<T>(
        &self,
        budget: Duration,
        mut ready: impl FnMut() -> Option<T>,
        deliver: &dyn Fn(Envelope),
        broken: impl FnOnce(DeathCause),
    ) -> Option<T> {
        // One spinner per helper: a second one would only burn a CPU the helper
        // may need.
        if budget.is_zero() || self.spinning.swap(true, Ordering::Acquire) {
            return None;
        }
        let _release = SpinRelease(&self.spinning);
        let until = Instant::now() + budget;
        loop {
            if let Some(v) = ready() {
                return Some(v);
            }
            match self.try_pump(deliver) {
                Some(Pumped::Eof) => return None,
                Some(Pumped::Broken(cause)) => {
                    broken(cause);
                    return None;
                }
                Some(Pumped::Drained | Pumped::Busy) | None => {}
            }
            if let Some(v) = ready() {
                return Some(v);
            }
            if Instant::now() >= until {
                return None;
            }
            std::hint::spin_loop();
        }
    }
}

fn pump_locked(
    st: &mut MutexGuard<'_, Reassembly>,
    read_some: &mut dyn FnMut(&mut [u8]) -> io::Result<usize>,
    deliver: &dyn Fn(Envelope),
) -> Pumped {
    let st = &mut **st;
    let mut read = 0;
    loop {
        if read >= PUMP_LIMIT {
            return Pumped::Busy;
        }
        match read_some(&mut st.chunk) {
            Ok(0) => return Pumped::Eof,
            Ok(n) => {
                read += n;
                st.decoder.feed(&st.chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Pumped::Drained,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Pumped::Eof,
        }
        loop {
            match st.decoder.next_frame() {
                Ok(Some(body)) => match Envelope::decode(&body) {
                    Ok(env) => deliver(env),
                    Err(e) => {
                        return Pumped::Broken(DeathCause::ProtocolViolation {
                            request_id: None,
                            detail: format!("undecodable frame: {e}"),
                        })
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    return Pumped::Broken(DeathCause::ProtocolViolation {
                        request_id: None,
                        detail: format!("bad frame: {e}"),
                    })
                }
            }
        }
    }
}

struct SpinRelease<'a>(&'a AtomicBool);

impl Drop for SpinRelease<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coreml_ipc_schema::{encode_frame, Message, Pong};
    use std::cell::RefCell;
    use tokio::io::AsyncWriteExt;

    fn pong(id: u64) -> Vec<u8> {
        encode_frame(&Envelope::new(id, Message::Pong(Pong { nonce: id }))).unwrap()
    }

    fn inbox() -> (Inbox, tokio::net::UnixStream) {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (r, _w) = a.into_split();
        (Inbox::new(r), b)
    }

    #[tokio::test]
    async fn frames_split_across_writes_arrive_whole_and_in_order() {
        let (inbox, mut peer) = inbox();
        let bytes: Vec<u8> = (1..=5).flat_map(pong).collect();
        let got = RefCell::new(Vec::new());
        let deliver = |e: Envelope| got.borrow_mut().push(e.request_id);
        for piece in bytes.chunks(7) {
            peer.write_all(piece).await.unwrap();
            inbox.readable().await.unwrap();
            assert!(matches!(inbox.pump(&deliver), Pumped::Drained));
        }
        assert_eq!(*got.borrow(), vec![1, 2, 3, 4, 5]);
        drop(peer);
        inbox.readable().await.unwrap();
        assert!(matches!(inbox.pump(&deliver), Pumped::Eof));
    }

    #[tokio::test]
    async fn an_oversize_length_breaks_the_stream() {
        let (inbox, mut peer) = inbox();
        peer.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        inbox.readable().await.unwrap();
        let p = inbox.pump(&|_| panic!("no frame expected"));
        assert!(
            matches!(p, Pumped::Broken(DeathCause::ProtocolViolation { .. })),
            "{p:?}"
        );
    }

    #[tokio::test]
    async fn a_spinner_takes_its_reply_and_a_second_spinner_backs_off() {
        let (inbox, mut peer) = inbox();
        peer.write_all(&pong(9)).await.unwrap();
        let got = RefCell::new(None);
        let deliver = |e: Envelope| *got.borrow_mut() = Some(e.request_id);
        let v = inbox.spin(
            Duration::from_secs(5),
            || got.borrow_mut().take(),
            &deliver,
            |c| panic!("{c}"),
        );
        assert_eq!(v, Some(9));
        // While one caller spins, another gets `None` at once.
        inbox.spinning.store(true, Ordering::SeqCst);
        let t = Instant::now();
        let v = inbox.spin(Duration::from_secs(5), || Some(1), &deliver, |_| {});
        assert_eq!(v, None);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn a_spinner_gives_up_when_its_budget_runs_out() {
        let (inbox, _peer) = inbox();
        let budget = Duration::from_millis(20);
        let t = Instant::now();
        let v: Option<()> = inbox.spin(budget, || None, &|_| {}, |c| panic!("{c}"));
        assert_eq!(v, None);
        assert!(t.elapsed() >= budget);
        assert!(!inbox.spinning.load(Ordering::SeqCst), "spin flag released");
    }
}
