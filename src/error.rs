//! Errors shared by every stage.
//!
//! A user error (bad input, bad configuration, a file that cannot be read) is kept apart from an
//! internal error (a fault in clipaudit or in a library it calls). Both end the process with exit
//! status 2, but only the message of an internal error requests a report.

use std::fmt;
use std::path::Path;

/// The error type of every fallible clipaudit operation.
#[derive(Debug)]
pub enum Error {
    /// Invalid input: the message names the file, row or key and what is wrong, and the hint gives
    /// the fix.
    Input { message: String, hint: Option<String> },
    /// A fault that the user cannot fix by changing the input.
    Internal { message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds a user error without a hint.
    pub fn input(message: impl Into<String>) -> Self {
        Error::Input { message: message.into(), hint: None }
    }

    /// Builds a user error with the fix on a separate `hint:` line.
    pub fn input_hint(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Input { message: message.into(), hint: Some(hint.into()) }
    }

    /// Builds an internal error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal { message: message.into() }
    }

    /// Builds the error for a file that could not be read, created or written.
    pub fn io(action: &str, path: &Path, source: std::io::Error) -> Self {
        Error::input(format!("failed to {action} {} ({source})", path.display()))
    }

    /// Adds a hint, replacing any earlier one.
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        match self {
            Error::Input { message, .. } => Error::Input { message, hint: Some(hint.into()) },
            other => other,
        }
    }

    /// Prefixes the message with the context it arose in, e.g. the file being read.
    pub fn context(self, context: impl fmt::Display) -> Self {
        match self {
            Error::Input { message, hint } => {
                Error::Input { message: format!("{context}: {message}"), hint }
            }
            Error::Internal { message } => Error::Internal { message: format!("{context}: {message}") },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input { message, hint } => {
                write!(f, "{message}")?;
                if let Some(hint) = hint {
                    write!(f, "\nhint: {hint}")?;
                }
                Ok(())
            }
            Error::Internal { message } => write!(
                f,
                "internal error: {message}\nhint: this is a fault in clipaudit; please report it with the command you ran"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<polars::error::PolarsError> for Error {
    fn from(error: polars::error::PolarsError) -> Self {
        Error::input(error.to_string())
    }
}

impl From<candle_core::Error> for Error {
    fn from(error: candle_core::Error) -> Self {
        Error::internal(format!("tensor operation failed ({error})"))
    }
}

impl From<crate::evidence::signing::Error> for Error {
    fn from(error: crate::evidence::signing::Error) -> Self {
        Error::input(error.to_string())
    }
}
