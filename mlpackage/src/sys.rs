//! The one unsafe operation of the crate: memory-mapping the weight file.
//!
//! ```
//! let f = tempfile::tempfile().unwrap();
//! std::io::Write::write_all(&mut &f, b"abc").unwrap();
//! let map = coreml_mlpackage::sys::map_read_only(&f).unwrap();
//! assert_eq!(&map[..], b"abc");
//! ```

use std::fs::File;
use std::io;

use memmap2::Mmap;

/// Maps `file` read-only.
pub fn map_read_only(file: &File) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this process. Its contents can
    // only change if another process rewrites or truncates the package's weight file
    // while it is mapped; packages are immutable inputs (the compiled-model cache
    // installs them atomically and never rewrites them in place), and every read
    // goes through bounds-checked slices of the map's length taken at map time.
    unsafe { Mmap::map(file) }
}
