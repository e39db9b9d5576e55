//! Appending one line to a JSON-lines file durably: the whole line is on disk when the call
//! returns `Ok`, and after an error the file is as it was before the call.
//!
//! Both journals (the speaker's routes, the controller's runs) replay the file later, and
//! neither may be left with part of a line (ENOSPC, EFBIG or EIO half way through `write`)
//! that a later append would follow, turning a torn last line into a corrupt line in the
//! middle.
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

/// Writes `line` at the end of `file` and fdatasyncs; on failure cuts the file back to
/// `good_len` ([`cut_back`]).
pub fn append_line(file: &File, good_len: u64, line: &[u8]) -> Result<(), AppendFailed> {
    let mut w = file;
    match w.write_all(line).and_then(|()| file.sync_data()) {
        Ok(()) => Ok(()),
        Err(source) => Err(AppendFailed {
            source,
            cut_back: cut_back(file, good_len),
        }),
    }
}

/// Truncates `file` to `good_len` and fsyncs that, so that the cut part (a failed append, a
/// torn last line) does not come back after a crash.
pub fn cut_back(file: &File, good_len: u64) -> io::Result<()> {
    file.set_len(good_len)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fs::TinyFs;
    use std::fs::OpenOptions;

    /// ENOSPC half way through a line: the append fails, the file is cut back to its last
    /// whole line, and once space is back the next line lands right after it (O_APPEND: no
    /// run of NUL octets where the failed write's offset had moved).
    #[test]
    fn an_append_that_fails_half_way_is_cut_back_to_the_last_whole_line() {
        let Some(fs) = TinyFs::mount("64k") else {
            return;
        };
        let path = fs.path().join("j.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let line = [vec![b'x'; 1500], vec![b'\n']].concat();
        let mut len = 0u64;
        append_line(&file, len, b"first\n").unwrap();
        len += 6;
        let filler = fs.fill();
        let failed = loop {
            match append_line(&file, len, &line) {
                Ok(()) => len += line.len() as u64,
                Err(failed) => break failed,
            }
            assert!(len < 1 << 20, "the tmpfs never filled");
        };
        assert_eq!(failed.source.raw_os_error(), Some(nix::libc::ENOSPC));
        failed.cut_back.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "cut back");

        std::fs::remove_file(filler).unwrap();
        append_line(&file, len, b"last\n").unwrap();
        let text = std::fs::read(&path).unwrap();
        assert!(!text.contains(&0), "NUL octets");
        assert!(text.starts_with(b"first\n") && text.ends_with(b"\nlast\n"));
        assert_eq!(text.len() as u64, len + 5);
    }
}
