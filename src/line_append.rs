//! Appending one line to a JSON-lines file durably: the whole line is on disk when the call
//! returns `Ok`, and after an error the file is as it was before the call.
//!
//! Used by the speaker's route journal ([`crate::speaker::store`]) and the controller's run
//! journal ([`crate::controller::journal`]): both replay the file later, and both must not be
//! left with part of a line (ENOSPC, EFBIG or EIO half way through `write`) that a later append
//! would follow, turning a torn last line into a corrupt line in the middle.
//!
//! Contract: the caller opens the file with O_APPEND (after the cut back, a plain descriptor's
//! offset would stay past the end and the next line would land after a run of NUL octets) and
//! passes the length it knows to be good; a caller that shares the file with other processes
//! holds its lock across the call, so that the cut back removes only its own bytes.
//!
//! Never does: open, lock or create files, or decide what a failed cut back means.

use std::fs::File;
use std::io::{self, Write};

/// An append that failed; the file may still hold part of the line when `cut_back` failed too.
#[derive(Debug)]
pub struct AppendFailed {
    /// Why the write or its fdatasync failed.
    pub source: io::Error,
    /// Cutting the file back to its good length: `Err` leaves part of the line at the end
    /// (a torn last line, without its newline, which replay drops).
    pub cut_back: io::Result<()>,
}

/// Writes `line` at the end of `file` and fdatasyncs; on failure truncates the file back to
/// `good_len` and fdatasyncs that (so the partial line does not come back after a crash).
pub fn append_line(file: &File, good_len: u64, line: &[u8]) -> Result<(), AppendFailed> {
    let mut w = file;
    match w.write_all(line).and_then(|()| file.sync_data()) {
        Ok(()) => Ok(()),
        Err(source) => Err(AppendFailed {
            source,
            cut_back: file.set_len(good_len).and_then(|()| file.sync_data()),
        }),
    }
}
