//! Decode errors and their NOTIFICATION, in one place; RFC 7606 outcomes that do not reset.
//!
//! A [`DecodeError`] is an error that resets the session: it names the field, the octet offset
//! from the start of the message and the bad value, and [`DecodeError::notification`] gives the
//! NOTIFICATION (code, subcode, data) that RFC 4271 §6 prescribes for it. Errors that RFC 7606
//! handles without a reset are [`AttributeIssue`]s carried on the decoded UPDATE.
//!
//! Never does: I/O, logging.

use bytes::Bytes;
use std::fmt;

use super::notification::{
    message_header_error, open_message_error, route_refresh_message_error, update_message_error,
    Notification, UNSPECIFIC,
};

/// Which RFC 4271 §6 (and later RFCs') error a malformed message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    // Message Header Error (1), RFC 4271 §6.1.
    ConnectionNotSynchronized,
    BadMessageLength,
    BadMessageType,
    // OPEN Message Error (2), RFC 4271 §6.2.
    OpenUnspecific,
    UnsupportedVersionNumber,
    BadPeerAs,
    BadBgpIdentifier,
    UnsupportedOptionalParameter,
    UnacceptableHoldTime,
    /// RFC 5492 §5.
    UnsupportedCapability,
    /// RFC 9234 §4.2.
    RoleMismatch,
    // UPDATE Message Error (3), RFC 4271 §6.3.
    MalformedAttributeList,
    UnrecognizedWellKnownAttribute,
    MissingWellKnownAttribute,
    AttributeFlagsError,
    AttributeLengthError,
    InvalidOriginAttribute,
    InvalidNextHopAttribute,
    OptionalAttributeError,
    InvalidNetworkField,
    MalformedAsPath,
    /// ROUTE-REFRESH Message Error (7), RFC 7313 §5.
    RouteRefreshInvalidLength,
}

impl ErrorKind {
    /// NOTIFICATION error code and subcode (IANA "BGP Error (Notification) Codes").
    pub fn code_subcode(self) -> (u8, u8) {
        use message_header_error as h;
        use open_message_error as o;
        use route_refresh_message_error as r;
        use update_message_error as u;
        use ErrorKind::*;
        match self {
            ConnectionNotSynchronized => (h::CODE, h::CONNECTION_NOT_SYNCHRONIZED),
            BadMessageLength => (h::CODE, h::BAD_MESSAGE_LENGTH),
            BadMessageType => (h::CODE, h::BAD_MESSAGE_TYPE),
            OpenUnspecific => (o::CODE, UNSPECIFIC),
            UnsupportedVersionNumber => (o::CODE, o::UNSUPPORTED_VERSION_NUMBER),
            BadPeerAs => (o::CODE, o::BAD_PEER_AS),
            BadBgpIdentifier => (o::CODE, o::BAD_BGP_IDENTIFIER),
            UnsupportedOptionalParameter => (o::CODE, o::UNSUPPORTED_OPTIONAL_PARAMETER),
            UnacceptableHoldTime => (o::CODE, o::UNACCEPTABLE_HOLD_TIME),
            UnsupportedCapability => (o::CODE, o::UNSUPPORTED_CAPABILITY),
            RoleMismatch => (o::CODE, o::ROLE_MISMATCH),
            MalformedAttributeList => (u::CODE, u::MALFORMED_ATTRIBUTE_LIST),
            UnrecognizedWellKnownAttribute => (u::CODE, u::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE),
            MissingWellKnownAttribute => (u::CODE, u::MISSING_WELL_KNOWN_ATTRIBUTE),
            AttributeFlagsError => (u::CODE, u::ATTRIBUTE_FLAGS_ERROR),
            AttributeLengthError => (u::CODE, u::ATTRIBUTE_LENGTH_ERROR),
            InvalidOriginAttribute => (u::CODE, u::INVALID_ORIGIN_ATTRIBUTE),
            InvalidNextHopAttribute => (u::CODE, u::INVALID_NEXT_HOP_ATTRIBUTE),
            OptionalAttributeError => (u::CODE, u::OPTIONAL_ATTRIBUTE_ERROR),
            InvalidNetworkField => (u::CODE, u::INVALID_NETWORK_FIELD),
            MalformedAsPath => (u::CODE, u::MALFORMED_AS_PATH),
            RouteRefreshInvalidLength => (r::CODE, r::INVALID_MESSAGE_LENGTH),
        }
    }
}

/// A malformed message that resets the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: ErrorKind,
    /// The field that is wrong, e.g. `"withdrawn_routes_length"`.
    pub field: &'static str,
    /// Octets from the start of the message (the first marker octet) to the field.
    pub offset: usize,
    /// What is wrong, with the bad value.
    pub detail: String,
    /// The NOTIFICATION's data field, as RFC 4271 §6 prescribes for this error.
    pub data: Bytes,
}

impl DecodeError {
    pub fn new(
        kind: ErrorKind,
        field: &'static str,
        offset: usize,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            field,
            offset,
            detail: detail.into(),
            data: Bytes::new(),
        }
    }

    pub fn with_data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = data.into();
        self
    }

    /// The NOTIFICATION to send for this error.
    pub fn notification(&self) -> Notification {
        let (code, subcode) = self.kind.code_subcode();
        Notification {
            code,
            subcode,
            data: self.data.clone(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, subcode) = self.kind.code_subcode();
        write!(
            f,
            "{} at offset {}: {} (NOTIFICATION {code}/{subcode})",
            self.field, self.offset, self.detail
        )
    }
}

impl std::error::Error for DecodeError {}

/// What RFC 7606 does with a malformed attribute when the session stays up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rfc7606Action {
    /// RFC 7606 §2: the UPDATE's NLRI are handled as if withdrawn.
    TreatAsWithdraw,
    /// RFC 7606 §2: the attribute is dropped, the rest of the UPDATE is used.
    AttributeDiscard,
}

impl Rfc7606Action {
    pub fn name(self) -> &'static str {
        match self {
            Self::TreatAsWithdraw => "treat-as-withdraw",
            Self::AttributeDiscard => "attribute-discard",
        }
    }
}

/// A malformed attribute handled by RFC 7606 without a session reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeIssue {
    pub action: Rfc7606Action,
    /// The attribute type code.
    pub type_code: u8,
    /// Offset of the attribute's flags octet from the start of the message.
    pub offset: usize,
    pub detail: String,
}
