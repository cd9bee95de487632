//! CoreError: what the core reports to a caller, by kind. The binding turns
//! each kind into one Python exception class (ssmd.exceptions).

use std::fmt;

use crate::archive::ArchiveError;
use crate::codec::CodecError;
use crate::nats::ProtocolError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// Bytes that should hold packed records could not be decoded.
    Decode(String),
    /// An archive is damaged somewhere other than a truncated tail.
    Archive(String),
    /// NATS protocol trouble: from the server, or in a message to publish.
    Protocol(String),
    /// An argument outside what the call accepts.
    Invalid(String),
}

impl CoreError {
    pub fn decode(reason: impl fmt::Display) -> Self {
        CoreError::Decode(reason.to_string())
    }

    pub fn invalid(reason: impl fmt::Display) -> Self {
        CoreError::Invalid(reason.to_string())
    }

    pub fn message(&self) -> &str {
        match self {
            CoreError::Decode(m)
            | CoreError::Archive(m)
            | CoreError::Protocol(m)
            | CoreError::Invalid(m) => m,
        }
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CoreError {}

impl From<CodecError> for CoreError {
    fn from(e: CodecError) -> Self {
        CoreError::decode(e)
    }
}

impl From<ArchiveError> for CoreError {
    fn from(e: ArchiveError) -> Self {
        CoreError::Archive(e.to_string())
    }
}

impl From<ProtocolError> for CoreError {
    fn from(e: ProtocolError) -> Self {
        CoreError::Protocol(e.0)
    }
}
