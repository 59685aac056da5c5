//! The one error type of libvms: every failure carries a stable `code` (the contract with JavaScript,
//! where each code becomes a named Error class) and a human message. Tests assert codes, not wording.
#![forbid(unsafe_code)]

use std::fmt;

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal as $class:literal ),* $(,)?) => {
        /// Stable error codes, each with the name of its JavaScript class. Never rename either: JavaScript callers
        /// and tests match on both (`err.code`, `err.name`, `instanceof`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $(#[$doc])* $variant ),* }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];

            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code ),* }
            }

            /// The JavaScript class this code is thrown as (`lib/errors.js` builds one per code from this list).
            pub fn class_name(self) -> &'static str {
                match self { $( ErrorCode::$variant => $class ),* }
            }
        }
    };
}

// `Variant => "CODE" as "ClassName"`. Archive names follow Beaker's DatArchive; the verifier's is VerificationError.
codes! {
    /// The operating system refused a file operation.
    Io => "IO_ERROR" as "StorageIOError",
    /// Another open handle (this process or another) holds the storage lock.
    StorageLocked => "STORAGE_LOCKED" as "StorageLockedError",
    /// Stored files are damaged: bad frames, missing tree nodes, sizes that do not add up.
    StorageCorrupt => "STORAGE_CORRUPT" as "StorageCorruptError",
    /// The directory holds something that is not ours (or nothing at all).
    NotACore => "NOT_A_CORE" as "NotACoreError",
    /// A stored block or tree does not match the signed Merkle tree.
    VerificationFailed => "VERIFICATION_FAILED" as "IntegrityError",
    /// A signature does not verify against the core's key.
    InvalidSignature => "INVALID_SIGNATURE" as "InvalidSignatureError",
    /// A read past the end of the log, or of data not held locally.
    OutOfBounds => "OUT_OF_BOUNDS" as "OutOfBoundsError",
    /// A write to a core opened without its secret key.
    NotWritable => "NOT_WRITABLE" as "NotWritableError",
    /// The handle was closed.
    Closed => "CLOSED" as "ClosedError",
    /// An argument has the wrong type or value.
    BadArgument => "BAD_ARGUMENT" as "BadArgumentError",
    /// A value cannot be encoded (not JSON-serialisable, bad encoding name...).
    EncodingError => "ENCODING_ERROR" as "EncodingError",
    /// An invalid proof, or one that does not fit the tree it is applied to.
    InvalidProof => "INVALID_PROOF" as "InvalidProofError",
    /// A bug: a Rust panic caught at the binding boundary.
    Internal => "INTERNAL" as "InternalError",
    // Files archive (Beaker's DatArchive names).
    NotFound => "NOT_FOUND" as "NotFoundError",
    EntryAlreadyExists => "ENTRY_ALREADY_EXISTS" as "EntryAlreadyExistsError",
    ParentFolderDoesntExist => "PARENT_FOLDER_DOESNT_EXIST" as "ParentFolderDoesntExistError",
    InvalidPath => "INVALID_PATH" as "InvalidPathError",
    ArchiveNotWritable => "ARCHIVE_NOT_WRITABLE" as "ArchiveNotWritableError",
    DestDirectoryNotEmpty => "DEST_DIRECTORY_NOT_EMPTY" as "DestDirectoryNotEmpty",
    InvalidEncoding => "INVALID_ENCODING" as "InvalidEncodingError",
    // Verifier.
    VerificationMismatch => "VERIFICATION_MISMATCH" as "VerificationError",
    // Network.
    Timeout => "TIMEOUT" as "TimeoutError",
    ConnectionFailed => "CONNECTION_FAILED" as "ConnectionError",
    // Sandbox.
    /// A VM call was stopped by a limit (time or memory); the host's word, recorded in the log.
    LimitExceeded => "LIMIT_EXCEEDED" as "LimitError",
    /// Two validly signed heads of one log with the same length and fork disagree: the host rewrote history.
    Fork => "FORK" as "ForkError",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code, a message, and (for verification failures) the first bad index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    pub index: Option<u64>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into(), index: None }
    }

    /// Attach the index of the block (or entry) the error is about.
    pub fn at(mut self, index: u64) -> Self {
        self.index = Some(index);
        self
    }

    /// Prefix the message with where it happened, keeping the code.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages start with the code, as in hypercore-errors, so logs are greppable.
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(ErrorCode::Io, e.to_string())
    }
}

/// What a caught panic said (its `&str` or `String` payload), if it said anything: every place that turns a panic
/// into an `INTERNAL` error names it the same way.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Short constructors, one per code: `err::corrupt("bad frame")`.
pub mod err {
    use super::{Error, ErrorCode};

    macro_rules! ctor {
        ($($name:ident => $code:ident),* $(,)?) => {
            $(pub fn $name(message: impl Into<String>) -> Error { Error::new(ErrorCode::$code, message) })*
        };
    }

    ctor! {
        io => Io,
        locked => StorageLocked,
        corrupt => StorageCorrupt,
        not_a_core => NotACore,
        verification => VerificationFailed,
        signature => InvalidSignature,
        out_of_bounds => OutOfBounds,
        not_writable => NotWritable,
        closed => Closed,
        bad_argument => BadArgument,
        encoding => EncodingError,
        invalid_proof => InvalidProof,
        internal => Internal,
        not_found => NotFound,
        entry_exists => EntryAlreadyExists,
        parent_missing => ParentFolderDoesntExist,
        invalid_path => InvalidPath,
        archive_not_writable => ArchiveNotWritable,
        dest_not_empty => DestDirectoryNotEmpty,
        invalid_encoding => InvalidEncoding,
        mismatch => VerificationMismatch,
        timeout => Timeout,
        connection => ConnectionFailed,
        limit => LimitExceeded,
        fork => Fork,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_upper_snake() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'), "{s}");
        }
    }

    #[test]
    fn class_names_are_unique_identifiers() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            let n = c.class_name();
            assert!(seen.insert(n), "duplicate class name {n}");
            assert!(n.starts_with(|ch: char| ch.is_ascii_uppercase()) && n.chars().all(|ch| ch.is_ascii_alphanumeric()), "{n}");
        }
        assert_eq!(ErrorCode::VerificationMismatch.class_name(), "VerificationError");
    }

    #[test]
    fn display_starts_with_code() {
        let e = err::corrupt("bad frame").at(7);
        assert_eq!(e.to_string(), "STORAGE_CORRUPT: bad frame");
        assert_eq!(e.index, Some(7));
        assert_eq!(e.context("oplog").message, "oplog: bad frame");
    }

    #[test]
    fn io_errors_map_to_io_code() {
        let e: Error = std::io::Error::new(std::io::ErrorKind::Other, "disk gone").into();
        assert_eq!(e.code, ErrorCode::Io);
    }
}
