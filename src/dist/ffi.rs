//! The C interface of `csrc/c10d_bridge.cpp`. Every function that can fail returns null or
//! -1 and sets `err` to a malloc'd message (free with `dst_free_string`).

use std::ffi::{c_char, c_int, CStr, CString};

use torch_sys::C_tensor;

#[repr(C)]
pub struct Store {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Group {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Reducer {
    _private: [u8; 0],
}
#[repr(C)]
pub struct Work {
    _private: [u8; 0],
}

extern "C" {
    pub fn dst_free_string(s: *mut c_char);
    pub fn dst_has_nccl() -> c_int;
    pub fn dst_store_new(
        host: *const c_char,
        port: c_int,
        is_server: c_int,
        world: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut Store;
    pub fn dst_store_free(s: *mut Store);
    pub fn dst_store_add(
        s: *mut Store,
        key: *const c_char,
        delta: i64,
        value: *mut i64,
        err: *mut *mut c_char,
    ) -> c_int;
    pub fn dst_group_new(
        s: *mut Store,
        prefix: *const c_char,
        backend: *const c_char,
        rank: c_int,
        world: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> *mut Group;
    pub fn dst_group_free(g: *mut Group);
    pub fn dst_allreduce_start(g: *mut Group, t: *mut C_tensor, err: *mut *mut c_char)
        -> *mut Work;
    pub fn dst_broadcast_start(
        g: *mut Group,
        t: *mut C_tensor,
        root: c_int,
        err: *mut *mut c_char,
    ) -> *mut Work;
    pub fn dst_work_wait(w: *mut Work, err: *mut *mut c_char) -> c_int;
    pub fn dst_reducer_new(
        g: *mut Group,
        params: *mut *mut C_tensor,
        n: usize,
        bucket_bytes: i64,
        first_bucket_bytes: i64,
        err: *mut *mut c_char,
    ) -> *mut Reducer;
    pub fn dst_reducer_begin(r: *mut Reducer, err: *mut *mut c_char) -> c_int;
    pub fn dst_reducer_expect(r: *mut Reducer, loss: *mut C_tensor, err: *mut *mut c_char)
        -> c_int;
    pub fn dst_reducer_free(r: *mut Reducer);
}

/// Takes ownership of a message set by the bridge.
pub fn take_error(err: *mut c_char) -> String {
    if err.is_null() {
        return "unknown error".into();
    }
    // SAFETY: the bridge sets `err` to a NUL-terminated malloc'd string.
    let s = unsafe { CStr::from_ptr(err) }
        .to_string_lossy()
        .into_owned();
    unsafe { dst_free_string(err) };
    s
}

pub fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).expect("no NUL left")
}
