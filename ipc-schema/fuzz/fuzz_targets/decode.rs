//! Unbounded version of `tests/fuzz_decoder.rs`: arbitrary bytes through the frame
//! decoder and the message decoder. Run with `make fuzz` (needs nightly and
//! `cargo install cargo-fuzz`).
#![no_main]

use coreml_ipc_schema::{Envelope, FrameDecoder, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = FrameDecoder::new(MAX_FRAME_LEN);
    dec.feed(data);
    while let Ok(Some(body)) = dec.next_frame() {
        if let Ok(env) = Envelope::decode(&body) {
            let again = env.encode().expect("a decoded message re-encodes");
            assert_eq!(Envelope::decode(&again).expect("re-encoded message decodes"), env);
        }
    }
    let _ = Envelope::decode(data);
});
