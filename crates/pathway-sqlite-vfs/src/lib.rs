//! A SQLite VFS shim that writes the WAL in few large writes.
//!
//! SQLite appends a write transaction's frames to the WAL with two `pwrite`s
//! per frame (a 24-byte frame header, then the page). A group commit of the
//! embedded log writes about 140 frames, so its writer thread spent a third
//! of its time entering the kernel for small writes. Connections opened with
//! [`VFS_NAME`] go through this shim, which delegates everything to the
//! default VFS except that WAL writes are gathered in a per-file buffer (up
//! to [`WAL_WRITE_BUFFER_BYTES_MAX`]) and written with one `pwrite` before
//! anything could depend on them:
//!
//! - **before a commit becomes visible.** SQLite publishes a commit by
//!   writing the WAL-index header in shared memory in two halves with a
//!   memory barrier (`xShmBarrier` on the database file) between them;
//!   readers accept a header only when both halves agree. The shim writes
//!   the buffer out in that barrier, so no reader, in this process or
//!   another, sees a commit whose frames are not in the WAL file.
//! - **before the WAL file is read, synced, truncated or sized** through the
//!   handle that wrote the buffer (a transaction that rereads its own frames,
//!   checkpoints, `fsync`).
//!
//! What is still in the buffer when the connection releases the WAL write
//! lock belongs to a transaction that did not commit (a commit flushed it in
//! its barrier), and is dropped: writing it later could overwrite frames that
//! another connection has committed at the same offsets since.
//!
//! A barrier cannot return an error. If writing the buffer fails there, the
//! commit has already been published without its frames: the failure is
//! recorded ([`WalWatch::write_failed`]), every later operation on that WAL fails with
//! the same error, and the embedded log treats it as a failed fsync (nothing
//! further is acknowledged until the store is opened again; SQLite's WAL
//! checksums discard the frames that are missing on the next open).
//!
//! The shim is meant for a connection that writes from one thread at a time
//! (the embedded log's writer); other connections on the same database may
//! use it or the default VFS. Not with `locking_mode=EXCLUSIVE`: SQLite then
//! keeps the WAL index in heap memory and calls no barrier, so a commit's
//! frames would stay buffered until the next read, sync or close.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, ThreadId};

use rusqlite::ffi;

/// Name under which the shim is registered (pass it to
/// `Connection::open_with_flags_and_vfs`).
pub const VFS_NAME: &str = "pathway-wal-buffer";
/// Largest run of WAL bytes held before it is written out. A group commit
/// of the embedded log is about 300 KiB of frames.
pub const WAL_WRITE_BUFFER_BYTES_MAX: usize = 1 << 20;
/// Bytes handed to the default VFS per write: its `xWrite` takes at most
/// 128 KiB at a time (SQLite itself never writes more than a page and a
/// frame header).
const WAL_WRITE_CHUNK_BYTES: usize = 64 * 1024;
/// `WAL_WRITE_LOCK` of SQLite's WAL-index locks (`wal.c`).
const WAL_WRITE_LOCK: c_int = 0;

/// Why the shim could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterError(pub String);

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "register SQLite VFS {VFS_NAME}: {}", self.0)
    }
}

impl std::error::Error for RegisterError {}

/// Registers the shim (once per process) and returns its name.
pub fn register() -> Result<&'static str, RegisterError> {
    static REGISTERED: OnceLock<Result<(), RegisterError>> = OnceLock::new();
    REGISTERED
        .get_or_init(register_once)
        .clone()
        .map(|()| VFS_NAME)
}

/// What the shim knows of one database's WAL writes, from [`watch`]: cheap
/// to ask (one atomic load), so a syncer may ask at every fsync.
#[derive(Clone)]
pub struct WalWatch(Arc<WalBuffer>);

impl WalWatch {
    /// The SQLite error code of a deferred WAL write that failed, if one did.
    pub fn write_failed(&self) -> Option<i32> {
        self.0.failed()
    }
}

impl std::fmt::Debug for WalWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWatch")
            .field("write_failed", &self.write_failed())
            .finish()
    }
}

/// The watch on the WAL of `conn`'s main database; `None` when `conn` was
/// not opened through the shim (or has no file, e.g. in memory).
pub fn watch(conn: &rusqlite::Connection) -> Option<WalWatch> {
    let mut file: *mut ffi::sqlite3_file = ptr::null_mut();
    // SAFETY: the handle is valid while `conn` is borrowed; for
    // SQLITE_FCNTL_FILE_POINTER SQLite itself writes the main database's
    // file object (the one the VFS opened) through the pointer.
    let rc = unsafe {
        ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            ffi::SQLITE_FCNTL_FILE_POINTER,
            (&raw mut file).cast(),
        )
    };
    if rc != ffi::SQLITE_OK || file.is_null() {
        return None;
    }
    // SAFETY: the file is open while `conn` is; only files this shim opened
    // have its methods.
    if !ptr::eq(unsafe { (*file).pMethods }, &SHIM_IO) {
        return None;
    }
    // SAFETY: a file this shim opened and SQLite has not closed.
    let this = unsafe { shim(file) };
    if this.buffer.is_null() {
        return None;
    }
    // SAFETY: `buffer` is from `Arc::into_raw` and alive while the file is;
    // the count taken here is released by the returned `Arc`.
    Some(WalWatch(unsafe {
        Arc::increment_strong_count(this.buffer);
        Arc::from_raw(this.buffer)
    }))
}

/// The default VFS this shim delegates to, set once by `register_once`.
struct RealVfs(*mut ffi::sqlite3_vfs);
// SAFETY: the pointer is to SQLite's default VFS, a process-lifetime object
// that SQLite itself shares between threads.
unsafe impl Send for RealVfs {}
// SAFETY: as above; it is only read after registration.
unsafe impl Sync for RealVfs {}
static REAL_VFS: OnceLock<RealVfs> = OnceLock::new();

fn register_once() -> Result<(), RegisterError> {
    // SAFETY: sqlite3_vfs_find with a null name returns the default VFS (or
    // null); it initialises SQLite if needed and is thread-safe.
    let real = unsafe { ffi::sqlite3_vfs_find(ptr::null()) };
    if real.is_null() {
        return Err(RegisterError("SQLite has no default VFS".into()));
    }
    REAL_VFS
        .set(RealVfs(real))
        .map_err(|_| RegisterError("registered twice".into()))?;
    let name = CString::new(VFS_NAME).expect("no NUL in the name");
    // SAFETY: `real` is a valid VFS for the life of the process. The copy
    // keeps all of its methods (none of which but xOpen depends on which VFS
    // object it is called through); ours replaces name, file size and xOpen.
    let mut shim: ffi::sqlite3_vfs = unsafe { ptr::read(real) };
    // SAFETY: `real` is valid (see above).
    let real_file_bytes = usize::try_from(unsafe { (*real).szOsFile }).unwrap_or(0);
    shim.szOsFile = c_int::try_from(real_file_offset() + real_file_bytes)
        .map_err(|_| RegisterError("file object too large".into()))?;
    shim.zName = name.into_raw();
    shim.pNext = ptr::null_mut();
    shim.xOpen = Some(shim_open);
    let shim = Box::into_raw(Box::new(shim));
    // SAFETY: `shim` is a valid, leaked (process-lifetime) VFS object; SQLite
    // keeps the pointer.
    let rc = unsafe { ffi::sqlite3_vfs_register(shim, 0) };
    if rc != ffi::SQLITE_OK {
        return Err(RegisterError(format!("sqlite3_vfs_register returned {rc}")));
    }
    Ok(())
}

/// WAL bytes written by a transaction and not yet in the file, shared by
/// every handle of one WAL (and the database handles that publish it).
struct WalBuffer {
    /// Whether `state.data` is non-empty (read without the lock in the
    /// barrier, which SQLite calls often).
    pending: AtomicBool,
    /// SQLite error code of a failed deferred write; 0 while none failed.
    failed: AtomicI32,
    state: Mutex<BufferState>,
}

struct BufferState {
    /// File offset of `data[0]`.
    start: i64,
    data: Vec<u8>,
    /// The real file of the handle that wrote `data`, and its thread: only
    /// that handle, on that thread, writes it out.
    sink: *mut ffi::sqlite3_file,
    owner: Option<ThreadId>,
}

// SAFETY: `sink` is only dereferenced under the mutex, by the thread in
// `owner`, while the handle it belongs to is open (its xClose clears it).
unsafe impl Send for BufferState {}

impl WalBuffer {
    fn lock(&self) -> MutexGuard<'_, BufferState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self) -> Option<c_int> {
        match self.failed.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Writes the buffer out through `via` (a handle of this WAL).
    ///
    /// # Safety
    /// `via` must be an open real file of this WAL, used by no other thread.
    unsafe fn flush(&self, state: &mut BufferState, via: *mut ffi::sqlite3_file) -> c_int {
        if state.data.is_empty() {
            return ffi::SQLITE_OK;
        }
        let mut rc = ffi::SQLITE_OK;
        let mut offset = state.start;
        for chunk in state.data.chunks(WAL_WRITE_CHUNK_BYTES) {
            // SAFETY: the caller guarantees `via` is open and ours to use;
            // `chunk` outlives the call.
            rc = unsafe {
                real_method(via, |m| m.xWrite).map_or(ffi::SQLITE_IOERR_WRITE, |write| {
                    write(via, chunk.as_ptr().cast(), chunk.len() as c_int, offset)
                })
            };
            if rc != ffi::SQLITE_OK {
                break;
            }
            offset += chunk.len() as i64;
        }
        self.discard(state);
        if rc != ffi::SQLITE_OK {
            self.failed.store(rc, Ordering::Release);
        }
        rc
    }

    fn discard(&self, state: &mut BufferState) {
        state.data.clear();
        state.sink = ptr::null_mut();
        state.owner = None;
        self.pending.store(false, Ordering::Release);
    }
}

fn registry() -> MutexGuard<'static, HashMap<Vec<u8>, Weak<WalBuffer>>> {
    static BUFFERS: OnceLock<Mutex<HashMap<Vec<u8>, Weak<WalBuffer>>>> = OnceLock::new();
    BUFFERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn wal_key_for_db(db_name: &[u8]) -> Vec<u8> {
    let mut key = db_name.to_vec();
    key.extend_from_slice(b"-wal");
    key
}

/// The buffer of the WAL named `key`, created if no open handle has it.
fn buffer_for(key: Vec<u8>) -> Arc<WalBuffer> {
    let mut buffers = registry();
    if let Some(buffer) = buffers.get(&key).and_then(Weak::upgrade) {
        return buffer;
    }
    buffers.retain(|_, weak| weak.strong_count() > 0);
    let buffer = Arc::new(WalBuffer {
        pending: AtomicBool::new(false),
        failed: AtomicI32::new(0),
        state: Mutex::new(BufferState {
            start: 0,
            data: Vec::new(),
            sink: ptr::null_mut(),
            owner: None,
        }),
    });
    buffers.insert(key, Arc::downgrade(&buffer));
    buffer
}

/// A file opened through the shim: SQLite's `sqlite3_file` header first
/// (SQLite sees only that), then what the shim keeps, then the real VFS's
/// file object in the same allocation.
#[repr(C)]
struct ShimFile {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// The WAL's buffer (from `Arc::into_raw`), or null.
    buffer: *const WalBuffer,
    /// Whether this is the WAL itself (else the database whose WAL it is).
    is_wal: bool,
}

/// Where the real file object starts inside a shim file (8-byte aligned).
const fn real_file_offset() -> usize {
    std::mem::size_of::<ShimFile>().next_multiple_of(8)
}

static SHIM_IO: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(shim_close),
    xRead: Some(shim_read),
    xWrite: Some(shim_write),
    xTruncate: Some(shim_truncate),
    xSync: Some(shim_sync),
    xFileSize: Some(shim_file_size),
    xLock: Some(shim_lock),
    xUnlock: Some(shim_unlock),
    xCheckReservedLock: Some(shim_check_reserved_lock),
    xFileControl: Some(shim_file_control),
    xSectorSize: Some(shim_sector_size),
    xDeviceCharacteristics: Some(shim_device_characteristics),
    xShmMap: Some(shim_shm_map),
    xShmLock: Some(shim_shm_lock),
    xShmBarrier: Some(shim_shm_barrier),
    xShmUnmap: Some(shim_shm_unmap),
    xFetch: Some(shim_fetch),
    xUnfetch: Some(shim_unfetch),
};

/// One method of a real file, if its VFS provides it.
///
/// # Safety
/// `real` must be an open real file.
unsafe fn real_method<T>(
    real: *mut ffi::sqlite3_file,
    pick: impl FnOnce(&ffi::sqlite3_io_methods) -> Option<T>,
) -> Option<T> {
    // SAFETY: an open file has valid methods (the caller's guarantee).
    let methods = unsafe { (*real).pMethods };
    if methods.is_null() {
        return None;
    }
    // SAFETY: non-null methods of an open file are valid for its life.
    pick(unsafe { &*methods })
}

/// The shim file behind SQLite's pointer.
///
/// # Safety
/// `file` must be a file this shim opened and SQLite has not closed.
unsafe fn shim<'a>(file: *mut ffi::sqlite3_file) -> &'a ShimFile {
    // SAFETY: SQLite passes back the object `shim_open` initialised, whose
    // first field is the `sqlite3_file` header.
    unsafe { &*file.cast::<ShimFile>() }
}

/// The shim's WAL buffer, if the file has one.
///
/// # Safety
/// As for [`shim`].
unsafe fn buffer_of(file: &ShimFile) -> Option<&WalBuffer> {
    // SAFETY: `buffer` is null or from `Arc::into_raw`, released only in
    // `shim_close`.
    unsafe { file.buffer.as_ref() }
}

/// Before anything but a write reaches a WAL: fails after a failed deferred
/// write, and writes out the buffer if this handle wrote it.
///
/// # Safety
/// As for [`shim`].
unsafe fn settle(file: &ShimFile) -> c_int {
    if !file.is_wal {
        return ffi::SQLITE_OK;
    }
    // SAFETY: the caller's guarantee.
    let Some(buffer) = (unsafe { buffer_of(file) }) else {
        return ffi::SQLITE_OK;
    };
    if let Some(code) = buffer.failed() {
        return code;
    }
    if !buffer.pending.load(Ordering::Acquire) {
        return ffi::SQLITE_OK;
    }
    let mut state = buffer.lock();
    if state.sink == file.real {
        // SAFETY: this handle wrote the buffer; SQLite calls a connection's
        // file from one thread at a time.
        unsafe { buffer.flush(&mut state, file.real) }
    } else {
        ffi::SQLITE_OK
    }
}

unsafe extern "C" fn shim_open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let Some(real_vfs) = REAL_VFS.get().map(|v| v.0) else {
        return ffi::SQLITE_ERROR;
    };
    let shim_file = file.cast::<ShimFile>();
    // SAFETY: SQLite gives us `szOsFile` bytes (header, shim fields and the
    // real file object at `real_file_offset`), suitably aligned.
    let real = unsafe { file.cast::<u8>().add(real_file_offset()) }.cast::<ffi::sqlite3_file>();
    // SAFETY: writing our fields into memory SQLite gave us for this file.
    unsafe {
        ptr::write(
            shim_file,
            ShimFile {
                base: ffi::sqlite3_file {
                    pMethods: ptr::null(),
                },
                real,
                buffer: ptr::null(),
                is_wal: false,
            },
        );
    }
    // SAFETY: the default VFS opens its file object in the space reserved
    // for it; the arguments are SQLite's own.
    let rc = unsafe {
        match (*real_vfs).xOpen {
            Some(open) => open(real_vfs, name, real, flags, out_flags),
            None => ffi::SQLITE_ERROR,
        }
    };
    if rc != ffi::SQLITE_OK {
        // `pMethods` stays null: SQLite will not call xClose.
        return rc;
    }
    let is_wal = flags & ffi::SQLITE_OPEN_WAL != 0;
    let is_main = flags & ffi::SQLITE_OPEN_MAIN_DB != 0;
    if (is_wal || is_main) && !name.is_null() {
        // SAFETY: SQLite's file names are NUL-terminated.
        let name = unsafe { CStr::from_ptr(name as *const c_char) }.to_bytes();
        let key = if is_wal {
            name.to_vec()
        } else {
            wal_key_for_db(name)
        };
        // SAFETY: initialised above.
        unsafe {
            (*shim_file).buffer = Arc::into_raw(buffer_for(key));
            (*shim_file).is_wal = is_wal;
        }
    }
    // SAFETY: as above; from now on SQLite calls our methods.
    unsafe { (*shim_file).base.pMethods = &SHIM_IO };
    ffi::SQLITE_OK
}

unsafe extern "C" fn shim_close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each file it opened once.
    let this = unsafe { shim(file) };
    // SAFETY: as above.
    if let Some(buffer) = unsafe { buffer_of(this) } {
        let mut state = buffer.lock();
        if state.sink == this.real {
            // Committed frames were written in their barrier; what is left
            // did not commit.
            buffer.discard(&mut state);
        }
    }
    // SAFETY: the real file is open; it is closed exactly once, here.
    let rc = unsafe {
        real_method(this.real, |m| m.xClose).map_or(ffi::SQLITE_OK, |close| close(this.real))
    };
    if !this.buffer.is_null() {
        // SAFETY: from `Arc::into_raw` in `shim_open`, released once.
        drop(unsafe { Arc::from_raw(this.buffer) });
    }
    rc
}

unsafe extern "C" fn shim_write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: ffi::sqlite3_int64,
) -> c_int {
    // SAFETY: an open shim file.
    let this = unsafe { shim(file) };
    let direct = |this: &ShimFile| {
        // SAFETY: forwarding SQLite's own arguments to the real file.
        unsafe {
            real_method(this.real, |m| m.xWrite).map_or(ffi::SQLITE_IOERR_WRITE, |write| {
                write(this.real, data, amount, offset)
            })
        }
    };
    // SAFETY: as above.
    let buffer = match unsafe { buffer_of(this) } {
        Some(buffer) if this.is_wal => buffer,
        _ => return direct(this),
    };
    if let Some(code) = buffer.failed() {
        return code;
    }
    let Ok(len) = usize::try_from(amount) else {
        return ffi::SQLITE_IOERR_WRITE;
    };
    let mut state = buffer.lock();
    if !state.data.is_empty() && state.sink != this.real {
        // Another handle's leftovers: a transaction that did not commit.
        buffer.discard(&mut state);
    }
    let end = state.start + state.data.len() as i64;
    let joins = !state.data.is_empty() && offset >= state.start && offset <= end;
    let at = (offset - state.start).max(0) as usize;
    if !(joins && at + len <= WAL_WRITE_BUFFER_BYTES_MAX) {
        // SAFETY: this handle wrote the buffer (or it is empty).
        let rc = unsafe { buffer.flush(&mut state, this.real) };
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if len >= WAL_WRITE_BUFFER_BYTES_MAX {
            drop(state);
            return direct(this);
        }
        state.start = offset;
    }
    let at = (offset - state.start) as usize;
    if state.data.len() < at + len {
        state.data.resize(at + len, 0);
    }
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) };
    state.data[at..at + len].copy_from_slice(bytes);
    state.sink = this.real;
    state.owner = Some(thread::current().id());
    buffer.pending.store(true, Ordering::Release);
    ffi::SQLITE_OK
}

/// Methods that settle the WAL buffer, then forward.
macro_rules! settled {
    ($name:ident, $method:ident, $fail:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> c_int {
            // SAFETY: an open shim file.
            let this = unsafe { shim(file) };
            // SAFETY: as above.
            let rc = unsafe { settle(this) };
            if rc != ffi::SQLITE_OK {
                return rc;
            }
            // SAFETY: forwarding SQLite's own arguments to the real file.
            unsafe {
                real_method(this.real, |m| m.$method).map_or($fail, |f| f(this.real, $($arg),*))
            }
        }
    };
}

/// Methods forwarded as they are.
macro_rules! forwarded {
    ($name:ident, $method:ident, $ret:ty, $fail:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file, $($arg: $ty),*) -> $ret {
            // SAFETY: an open shim file.
            let this = unsafe { shim(file) };
            // SAFETY: forwarding SQLite's own arguments to the real file.
            unsafe {
                real_method(this.real, |m| m.$method).map_or($fail, |f| f(this.real, $($arg),*))
            }
        }
    };
}

settled!(shim_read, xRead, ffi::SQLITE_IOERR_READ, (out: *mut c_void, amount: c_int, offset: ffi::sqlite3_int64));
settled!(shim_truncate, xTruncate, ffi::SQLITE_IOERR_TRUNCATE, (size: ffi::sqlite3_int64));
settled!(shim_sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int));
settled!(shim_file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut ffi::sqlite3_int64));
settled!(shim_file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void));
forwarded!(shim_lock, xLock, c_int, ffi::SQLITE_IOERR_LOCK, (level: c_int));
forwarded!(shim_unlock, xUnlock, c_int, ffi::SQLITE_IOERR_UNLOCK, (level: c_int));
forwarded!(shim_check_reserved_lock, xCheckReservedLock, c_int, ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, (out: *mut c_int));
forwarded!(shim_sector_size, xSectorSize, c_int, 4096, ());
forwarded!(
    shim_device_characteristics,
    xDeviceCharacteristics,
    c_int,
    0,
    ()
);
forwarded!(shim_shm_map, xShmMap, c_int, ffi::SQLITE_IOERR_SHMMAP, (page: c_int, page_bytes: c_int, extend: c_int, out: *mut *mut c_void));
forwarded!(shim_shm_unmap, xShmUnmap, c_int, ffi::SQLITE_OK, (delete: c_int));
forwarded!(shim_fetch, xFetch, c_int, ffi::SQLITE_OK, (offset: ffi::sqlite3_int64, amount: c_int, out: *mut *mut c_void));
forwarded!(shim_unfetch, xUnfetch, c_int, ffi::SQLITE_OK, (offset: ffi::sqlite3_int64, page: *mut c_void));

unsafe extern "C" fn shim_shm_lock(
    file: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: an open shim file.
    let this = unsafe { shim(file) };
    let releases_write_lock = offset == WAL_WRITE_LOCK
        && flags & ffi::SQLITE_SHM_UNLOCK != 0
        && flags & ffi::SQLITE_SHM_EXCLUSIVE != 0;
    // SAFETY: as above.
    if let (true, Some(buffer)) = (releases_write_lock, unsafe { buffer_of(this) })
        && buffer.pending.load(Ordering::Acquire)
    {
        let mut state = buffer.lock();
        if state.owner == Some(thread::current().id()) {
            // The transaction ended without a commit that wrote these
            // frames out (a rollback usually rereads, and so writes, them
            // first): they are not part of the log.
            buffer.discard(&mut state);
        }
    }
    // SAFETY: forwarding SQLite's own arguments to the real file.
    unsafe {
        real_method(this.real, |m| m.xShmLock).map_or(ffi::SQLITE_IOERR_SHMLOCK, |lock| {
            lock(this.real, offset, n, flags)
        })
    }
}

unsafe extern "C" fn shim_shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: an open shim file.
    let this = unsafe { shim(file) };
    // SAFETY: as above.
    if let Some(buffer) = unsafe { buffer_of(this) }
        && buffer.pending.load(Ordering::Acquire)
    {
        let mut state = buffer.lock();
        if state.owner == Some(thread::current().id()) && !state.sink.is_null() {
            let sink = state.sink;
            // SAFETY: the sink is the WAL handle of the connection running
            // on this thread (the one publishing its commit), open until its
            // xClose clears it. A failure is recorded in `failed` by `flush`.
            unsafe { buffer.flush(&mut state, sink) };
        }
    }
    // SAFETY: forwarding to the real file.
    unsafe {
        if let Some(barrier) = real_method(this.real, |m| m.xShmBarrier) {
            barrier(this.real);
        }
    }
}
