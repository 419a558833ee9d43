//! The message envelope: `[tag, request_id, payload]` as one MessagePack array.

use crate::payload::*;
use crate::MAX_FRAME_LEN;
use serde::{de::DeserializeOwned, Serialize};

macro_rules! messages {
    ($($(#[$m:meta])* $variant:ident($body:ty) = $tag:expr,)+) => {
        /// Wire tag of each message. Values never change; new messages get new tags.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Tag { $($(#[$m])* $variant = $tag,)+ }

        impl Tag {
            /// Every tag, in wire order.
            pub const ALL: &'static [Tag] = &[$(Tag::$variant),+];

            /// Parses a wire tag.
            pub fn from_wire(v: u64) -> Option<Tag> {
                match v { $($tag => Some(Tag::$variant),)+ _ => None }
            }

            /// The message name as in docs/protocol.md.
            pub fn name(self) -> &'static str {
                match self { $(Tag::$variant => stringify!($variant),)+ }
            }
        }

        /// Every v2 message.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Message { $($(#[$m])* $variant($body),)+ }

        impl Message {
            /// The message's wire tag.
            pub fn tag(&self) -> Tag {
                match self { $(Message::$variant(_) => Tag::$variant,)+ }
            }

            fn write_payload(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
                let mut ser = rmp_serde::Serializer::new(out).with_struct_map();
                match self { $(Message::$variant(b) => b.serialize(&mut ser),)+ }
            }

            fn read_payload(tag: Tag, bytes: &[u8]) -> Result<Message, String> {
                match tag { $(Tag::$variant => decode_exact::<$body>(bytes).map(Message::$variant),)+ }
            }
        }
    };
}

messages! {
    /// Helper's first message.
    Hello(Hello) = 1,
    /// Liveness probe.
    Ping(Ping) = 2,
    /// Answer to `Ping`.
    Pong(Pong) = 3,
    /// Orderly exit request.
    Shutdown(Shutdown) = 4,
    /// The helper is about to exit.
    ShutdownAck(ShutdownAck) = 5,
    /// A request failed.
    Error(ErrorReply) = 6,
    /// The supervisor's version, right after `Hello`.
    Welcome(Welcome) = 7,
    /// Map a shared-memory region.
    AttachRegion(AttachRegion) = 10,
    /// Region mapped.
    RegionAttached(RegionAttached) = 11,
    /// Unmap a region.
    DetachRegion(DetachRegion) = 12,
    /// Region unmapped.
    RegionDetached(RegionDetached) = 13,
    /// Compile a model.
    Compile(Compile) = 20,
    /// Compiled bundle.
    Compiled(Compiled) = 21,
    /// Load a compiled model.
    Load(Load) = 22,
    /// Model loaded, with its schema.
    Loaded(Loaded) = 23,
    /// Drop a model.
    Unload(Unload) = 24,
    /// Model dropped.
    Unloaded(Unloaded) = 25,
    /// Ask for the compute plan.
    GetComputePlan(GetComputePlan) = 26,
    /// The compute plan.
    ComputePlan(ComputePlan) = 27,
    /// Run a prediction.
    Predict(Predict) = 30,
    /// Prediction done.
    Predicted(Predicted) = 31,
    /// Input slots of a prediction released.
    InputsReleased(InputsReleased) = 32,
    /// Ask for counters.
    GetStats(GetStats) = 40,
    /// Counters.
    Stats(Stats) = 41,
}

/// A message with the request id it carries or answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Chosen by the supervisor per request (never 0); echoed by replies; 0 on
    /// unsolicited messages.
    pub request_id: u64,
    /// The message.
    pub message: Message,
}

/// Why a message could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded body exceeds [`MAX_FRAME_LEN`].
    #[error("encoded message of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Encoded body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The serializer failed.
    #[error("MessagePack encoding failed: {0}")]
    Serialize(#[from] rmp_serde::encode::Error),
}

/// Why a frame body could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body is not a 3-element array starting with two unsigned integers.
    #[error("malformed envelope: {0}")]
    Envelope(String),
    /// The tag is not a v2 message. The request id is kept so the receiver can
    /// answer with `Error{UNKNOWN_MESSAGE}`.
    #[error("unknown message tag {tag} (request {request_id})")]
    UnknownTag {
        /// The tag.
        tag: u64,
        /// The request id.
        request_id: u64,
    },
    /// The payload does not match the tag's schema.
    #[error("bad {tag:?} payload (request {request_id}): {reason}")]
    Payload {
        /// The message kind.
        tag: Tag,
        /// The request id.
        request_id: u64,
        /// What was wrong.
        reason: String,
    },
}

impl DecodeError {
    /// The request id, when the envelope got that far.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            DecodeError::Envelope(_) => None,
            DecodeError::UnknownTag { request_id, .. }
            | DecodeError::Payload { request_id, .. } => Some(*request_id),
        }
    }
}

impl Envelope {
    /// Wraps a message.
    pub fn new(request_id: u64, message: Message) -> Self {
        Envelope {
            request_id,
            message,
        }
    }

    /// Encodes the frame body (without the length prefix).
    ///
    /// # Errors
    /// [`EncodeError::TooLarge`] past [`MAX_FRAME_LEN`].
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the frame body to `out`.
    ///
    /// # Errors
    /// As [`Envelope::encode`].
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        // Writing into a Vec cannot fail.
        let _ = rmp::encode::write_array_len(out, 3);
        let _ = rmp::encode::write_uint(out, self.message.tag() as u64);
        let _ = rmp::encode::write_uint(out, self.request_id);
        self.message.write_payload(out)?;
        let len = out.len() - start;
        if len > MAX_FRAME_LEN {
            out.truncate(start);
            return Err(EncodeError::TooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        Ok(())
    }

    /// Decodes a frame body. Never panics and never allocates more than the body
    /// holds.
    ///
    /// # Errors
    /// [`DecodeError`] naming what was wrong.
    pub fn decode(body: &[u8]) -> Result<Envelope, DecodeError> {
        let mut rd = body;
        let n = rmp::decode::read_array_len(&mut rd)
            .map_err(|e| DecodeError::Envelope(format!("{e:?}")))?;
        if n != 3 {
            return Err(DecodeError::Envelope(format!(
                "array of {n} elements, expected 3"
            )));
        }
        let tag: u64 = rmp::decode::read_int(&mut rd)
            .map_err(|e| DecodeError::Envelope(format!("tag: {e:?}")))?;
        let request_id: u64 = rmp::decode::read_int(&mut rd)
            .map_err(|e| DecodeError::Envelope(format!("request id: {e:?}")))?;
        let tag_known = Tag::from_wire(tag).ok_or(DecodeError::UnknownTag { tag, request_id })?;
        let message =
            Message::read_payload(tag_known, rd).map_err(|reason| DecodeError::Payload {
                tag: tag_known,
                request_id,
                reason,
            })?;
        Ok(Envelope {
            request_id,
            message,
        })
    }
}

/// Deepest nesting a payload may have: the payload map is depth 0, each element of
/// an array or map one deeper than its container; an element at depth 17 is rejected
/// (the deepest real one is 4).
const MAX_DEPTH: usize = 16;

/// Deserializes exactly one value from `bytes`, rejecting trailing bytes and
/// nesting deeper than [`MAX_DEPTH`].
fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let used = value_len(bytes, 0)?;
    if used != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the payload",
            bytes.len() - used
        ));
    }
    let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
    T::deserialize(&mut de).map_err(|e| e.to_string())
}

/// Length in bytes of the MessagePack value at the start of `b`.
fn value_len(b: &[u8], depth: usize) -> Result<usize, String> {
    if depth > MAX_DEPTH {
        return Err(format!("nesting deeper than {MAX_DEPTH}"));
    }
    let truncated = || "truncated value".to_string();
    let m = *b.first().ok_or_else(truncated)?;
    let be = |n: usize| -> Result<usize, String> {
        let s = b.get(1..1 + n).ok_or_else(truncated)?;
        Ok(s.iter().fold(0usize, |acc, &x| (acc << 8) | x as usize))
    };
    let fixed = |n: usize| {
        if b.len() >= n {
            Ok(n)
        } else {
            Err(truncated())
        }
    };
    let blob = |hdr: usize, len: usize| {
        hdr.checked_add(len)
            .filter(|&t| t <= b.len())
            .ok_or_else(truncated)
    };
    let seq = |hdr: usize, items: usize| -> Result<usize, String> {
        let mut pos = hdr;
        for _ in 0..items {
            pos += value_len(b.get(pos..).ok_or_else(truncated)?, depth + 1)?;
        }
        Ok(pos)
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Ok(1),
        0x80..=0x8f => seq(1, 2 * (m & 0x0f) as usize),
        0x90..=0x9f => seq(1, (m & 0x0f) as usize),
        0xa0..=0xbf => blob(1, (m & 0x1f) as usize),
        0xc4 | 0xd9 => blob(2, be(1)?),
        0xc5 | 0xda => blob(3, be(2)?),
        0xc6 | 0xdb => blob(5, be(4)?),
        0xc7 => blob(3, be(1)?),
        0xc8 => blob(4, be(2)?),
        0xc9 => blob(6, be(4)?),
        0xca => fixed(5),
        0xcb => fixed(9),
        0xcc | 0xd0 => fixed(2),
        0xcd | 0xd1 => fixed(3),
        0xce | 0xd2 => fixed(5),
        0xcf | 0xd3 => fixed(9),
        0xd4 => fixed(3),
        0xd5 => fixed(4),
        0xd6 => fixed(6),
        0xd7 => fixed(10),
        0xd8 => fixed(18),
        0xdc => seq(3, be(2)?),
        0xdd => seq(5, be(4)?),
        0xde => seq(3, 2 * be(2)?),
        0xdf => seq(5, be(4)?.checked_mul(2).ok_or_else(truncated)?),
        0xc1 => Err("reserved marker 0xc1".into()),
    }
}
