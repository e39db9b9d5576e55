//! Durable files, written one way: the speaker's route store and leases, the controller's run
//! journals and their repair, the lab's state file.
//!
//! - [`append`]: one line appended and fdatasynced, or the file cut back to its last whole
//!   line ([`append_line`], [`cut_back`]).
//! - [`lines`]: a JSON-lines journal read with the torn-tail rule: a last line without its
//!   newline is dropped, a whole line that does not parse is an error naming its line
//!   ([`json_lines`]).
//! - [`replace`](mod@replace): a whole file replaced atomically: temporary file in the same
//!   directory, fsync, rename, fsync of the directory ([`replace()`], [`rename_into_place`],
//!   [`sync_dir`]).
//!
//! Never does: choose file names or modes, lock files, or map errors to a caller's messages
//! (each caller keeps its own error type; the errors here carry the path and the step).

pub mod append;
pub mod lines;
pub mod replace;

pub use append::{append_line, cut_back, AppendFailed};
pub use lines::{json_lines, BadLine, JsonLines, Record};
pub use replace::{rename_into_place, replace, sync_dir, temp_path, write_new, ReplaceError, Step};
