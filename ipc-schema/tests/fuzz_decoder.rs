//! Bounded fuzzing in `cargo test`: 100,000+ random and mutated frames through the
//! frame decoder and the message decoder. Nothing may panic, hang or allocate
//! past the frame limit, and anything that decodes must re-encode to a message
//! that decodes to the same value. (The cargo-fuzz target in `fuzz/` runs the
//! same property without a bound.)

#[path = "common/cases.rs"]
mod cases;

use coreml_ipc_schema::*;
use std::sync::mpsc;
use std::time::Duration;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut f = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] ^= 1 << rng.below(8);
            }
            1 if !f.is_empty() => {
                let i = rng.below(f.len());
                f[i] = rng.next() as u8;
            }
            2 => f.truncate(rng.below(f.len() + 1)),
            3 => {
                let i = rng.below(f.len() + 1);
                let interesting = [
                    0x00, 0x7f, 0x80, 0x90, 0xc0, 0xc1, 0xcf, 0xdc, 0xdd, 0xde, 0xdf, 0xff,
                ];
                f.insert(i, interesting[rng.below(interesting.len())]);
            }
            4 if f.len() >= 4 => {
                // Lie about the length.
                let len = match rng.below(4) {
                    0 => 0u32,
                    1 => u32::MAX,
                    2 => (MAX_FRAME_LEN as u32) + 1,
                    _ => rng.next() as u32 % 4096,
                };
                f[..4].copy_from_slice(&len.to_be_bytes());
            }
            5 if f.len() > 8 => {
                // Big claimed container/string sizes inside the body.
                let i = 4 + rng.below(f.len() - 4);
                let marker = [0xdd, 0xdf, 0xdb, 0xc6][rng.below(4)];
                f[i] = marker;
            }
            6 => {
                let n = rng.below(16);
                for _ in 0..n {
                    f.push(rng.next() as u8);
                }
            }
            _ => {
                let a = rng.below(f.len() + 1);
                let b = rng.below(f.len() + 1);
                let (a, b) = (a.min(b), a.max(b));
                let chunk = f[a..b].to_vec();
                let at = rng.below(f.len() + 1);
                f.splice(at..at, chunk);
            }
        }
    }
    f
}

fn check(bytes: &[u8]) -> bool {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.feed(bytes);
    let mut decoded_any = false;
    while let Ok(Some(body)) = dec.next_frame() {
        assert!(body.len() <= MAX_FRAME_LEN);
        if let Ok(env) = Envelope::decode(&body) {
            decoded_any = true;
            // Whatever decodes re-encodes to something that decodes the same.
            if let Ok(again) = env.encode() {
                assert_eq!(
                    Envelope::decode(&again).expect("re-encoded message decodes"),
                    env
                );
            }
        }
    }
    let _ = dec.finish();
    // The blocking reader sees the same bytes.
    let mut cursor = bytes;
    while let Ok(Some(body)) = read_frame(&mut cursor, MAX_FRAME_LEN) {
        let _ = Envelope::decode(&body);
    }
    // And the body decoder alone, without framing.
    let _ = Envelope::decode(bytes);
    decoded_any
}

fn with_watchdog(secs: u64, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => h.join().unwrap(), // propagate the panic
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("decoder fuzzing did not finish within {secs} s")
        }
    }
}

#[test]
fn hundred_thousand_mutated_and_random_frames_never_panic() {
    with_watchdog(240, || {
        let seeds: Vec<Vec<u8>> = cases::cases()
            .iter()
            .map(|(_, e)| encode_frame(e).unwrap())
            .collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut ok, mut total) = (0usize, 0usize);
        for i in 0..100_000 {
            let frame = if i % 10 == 0 {
                let n = rng.below(64);
                let mut f = ((n as u32).to_be_bytes()).to_vec();
                f.extend((0..n).map(|_| rng.next() as u8));
                f
            } else {
                let seed = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, seed)
            };
            total += 1;
            ok += check(&frame) as usize;
        }
        assert_eq!(total, 100_000);
        // The mutator is gentle enough that some frames still decode; if none did,
        // the test would only be exercising the first error path.
        assert!(ok > 1_000, "only {ok} of {total} mutated frames decoded");
        assert!(
            ok < total,
            "every mutated frame decoded: the mutator is not mutating"
        );
    });
}

#[test]
fn oversize_and_bad_prefixes_fail_typed_without_allocating() {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.feed(&0xFFFF_FFF0u32.to_be_bytes());
    assert!(matches!(
        dec.next_frame(),
        Err(FrameError::Oversize {
            len: 0xFFFF_FFF0,
            ..
        })
    ));
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.feed(&[0, 0, 0, 0]);
    assert!(matches!(dec.next_frame(), Err(FrameError::Empty)));
    let mut cursor: &[u8] = &[0, 0, 0, 9, 0x93, 1];
    assert!(matches!(
        read_frame(&mut cursor, MAX_FRAME_LEN),
        Err(FrameError::Truncated { got: 6, want: 13 })
    ));
    let mut cursor: &[u8] = &[0, 0];
    assert!(matches!(
        read_frame(&mut cursor, MAX_FRAME_LEN),
        Err(FrameError::Truncated { got: 2, want: 4 })
    ));
    // A body claiming a 4 GiB string is rejected, not allocated.
    let body = [
        0x93, 0x06, 0x01, 0x82, 0xa4, b'c', b'o', b'd', b'e', 0x01, 0xa7, b'm', b'e', b's', b's',
        b'a', b'g', b'e', 0xdb, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(matches!(
        Envelope::decode(&body),
        Err(DecodeError::Payload {
            tag: Tag::Error,
            request_id: 1,
            ..
        })
    ));
    // Unknown tags keep the request id for the error reply.
    assert_eq!(
        Envelope::decode(&[0x93, 0xcd, 0x03, 0xe7, 0x05, 0x80]),
        Err(DecodeError::UnknownTag {
            tag: 999,
            request_id: 5
        })
    );
    // Deep nesting in an ignored field is bounded.
    let mut deep = vec![
        0x93, 0x02, 0x01, 0x82, 0xa5, b'n', b'o', b'n', b'c', b'e', 0x01, 0xa1, b'x',
    ];
    deep.extend(std::iter::repeat_n(0x91, 100_000));
    deep.push(0xc0);
    assert!(matches!(
        Envelope::decode(&deep),
        Err(DecodeError::Payload { .. })
    ));
}

/// docs/protocol.md: the payload map is depth 0, each element one deeper than its
/// container; an element at depth 16 is accepted, one at depth 17 rejected.
#[test]
fn nesting_depth_is_counted_from_the_payload_map() {
    let ping_with = |arrays: usize| {
        let mut b = vec![
            0x93, 0x02, 0x01, 0x82, 0xa5, b'n', b'o', b'n', b'c', b'e', 0x01, 0xa1, b'x',
        ];
        b.extend(std::iter::repeat_n(0x91, arrays));
        b.push(0xc0);
        b
    };
    // "x" is at depth 1; 15 arrays put the nil at depth 16.
    assert_eq!(
        Envelope::decode(&ping_with(15)).unwrap().message,
        Message::Ping(Ping { nonce: 1 })
    );
    assert!(matches!(
        Envelope::decode(&ping_with(16)),
        Err(DecodeError::Payload { .. })
    ));
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn async_reader_matches_blocking_reader() {
    let frame = encode_frame(&Envelope::new(3, Message::Ping(Ping { nonce: 9 }))).unwrap();
    let mut stream = frame.clone();
    stream.extend_from_slice(&frame[..5]);
    let mut rd = &stream[..];
    let first = read_frame_async(&mut rd, MAX_FRAME_LEN)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, frame[4..]);
    assert!(matches!(
        read_frame_async(&mut rd, MAX_FRAME_LEN).await,
        Err(FrameError::Truncated { got: 5, .. })
    ));
    assert!(read_frame_async(&mut &[][..], MAX_FRAME_LEN)
        .await
        .unwrap()
        .is_none());
}
