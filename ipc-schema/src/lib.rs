//! Wire protocol v2 between the coreml-bridge supervisor and its helper process.
//!
//! Control messages are MessagePack bodies behind a 4-byte big-endian length prefix,
//! sent over a Unix stream socket. Tensors never travel through the socket: a
//! [`TensorRef`] names bytes inside a shared-memory region that both sides have
//! mapped; the region travels as a file descriptor (`SCM_RIGHTS`), never by name. `docs/protocol.md` is the normative description; this crate is the
//! Rust implementation and the golden vectors in `golden/` pin the bytes.
//!
//! ```
//! use coreml_ipc_schema::{Envelope, Message, Ping, FrameDecoder, encode_frame, MAX_FRAME_LEN};
//!
//! let frame = encode_frame(&Envelope::new(7, Message::Ping(Ping { nonce: 42 }))).unwrap();
//! let mut decoder = FrameDecoder::new(MAX_FRAME_LEN);
//! decoder.feed(&frame);
//! let body = decoder.next_frame().unwrap().expect("one whole frame");
//! let back = Envelope::decode(&body).unwrap();
//! assert_eq!(back.request_id, 7);
//! assert_eq!(back.message, Message::Ping(Ping { nonce: 42 }));
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod enums;
mod error_code;
mod frame;
mod image;
mod message;
mod payload;
mod tensor;
mod version;

pub use enums::{Backend, ComputeUnits, Device};
pub use error_code::ErrorCode;
pub use frame::{encode_frame, read_frame, write_frame, FrameDecoder, FrameError, MAX_FRAME_LEN};
#[cfg(feature = "tokio")]
pub use frame::{read_frame_async, write_frame_async};
pub use image::{image_ref, ImageError, ImageSpec, PixelFormat, IMAGE_ROW_ALIGN};
pub use message::{DecodeError, EncodeError, Envelope, Message, Tag};
pub use payload::*;
pub use tensor::{DType, TensorRef, TensorRefError, MAX_RANK};
pub use version::{Negotiated, VersionError, PROTOCOL_MAJOR, PROTOCOL_MINOR};

/// Alignment of every tensor slot offset inside a shared-memory region (16 KiB, the
/// Apple Silicon page size, so Core ML can use slots as page-aligned backings).
pub const SLOT_ALIGN: u64 = 16 * 1024;

/// Request id reserved for messages that answer no request (`Hello`, an `Error`
/// about an undecodable frame).
pub const UNSOLICITED: u64 = 0;
