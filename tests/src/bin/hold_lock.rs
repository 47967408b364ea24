//! `hold_lock DB`: locks `DB/LOCK` as C++ LevelDB does (an fcntl write lock on the whole file)
//! and as rusty-leveldb does (flock), prints `locked`, and holds both until stdin closes.

use std::io::{Read, Write};

fn main() {
    let db = std::env::args().nth(1).expect("usage: hold_lock DB");
    let path = std::path::Path::new(&db).join("LOCK");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.lock().expect("flock");
    fcntl_write_lock(&file);
    println!("locked");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// `fcntl(F_SETLK)` with a whole-file write lock, as LevelDB's `LockOrUnlock` does.
fn fcntl_write_lock(file: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: a zeroed `flock` is a valid value; the fd is open for the duration of the call.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    // SAFETY: F_SETLK reads the `flock` we pass by pointer.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
    assert_eq!(rc, 0, "fcntl: {}", std::io::Error::last_os_error());
}
