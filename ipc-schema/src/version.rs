//! Version handshake.

use crate::Hello;

/// Protocol major version: a peer with another major cannot talk to us.
pub const PROTOCOL_MAJOR: u16 = 2;
/// Protocol minor version: additions that older peers may ignore.
pub const PROTOCOL_MINOR: u16 = 1;

/// The outcome of a successful handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Common major version.
    pub major: u16,
    /// Minor version both understand (the smaller of the two).
    pub minor: u16,
}

/// Why a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The peer speaks another major version.
    #[error("incompatible protocol version: we speak {ours}.x, the helper speaks {theirs_major}.{theirs_minor}")]
    IncompatibleVersion {
        /// Our major version.
        ours: u16,
        /// The helper's major version.
        theirs_major: u16,
        /// The helper's minor version.
        theirs_minor: u16,
    },
}

impl Hello {
    /// Checks the helper's version against ours. A newer minor is accepted.
    ///
    /// # Errors
    /// [`VersionError::IncompatibleVersion`] when the majors differ.
    pub fn negotiate(&self) -> Result<Negotiated, VersionError> {
        if self.protocol_major != PROTOCOL_MAJOR {
            return Err(VersionError::IncompatibleVersion {
                ours: PROTOCOL_MAJOR,
                theirs_major: self.protocol_major,
                theirs_minor: self.protocol_minor,
            });
        }
        Ok(Negotiated {
            major: PROTOCOL_MAJOR,
            minor: self.protocol_minor.min(PROTOCOL_MINOR),
        })
    }
}
