//! Browser adapters: the only place the engine meets the web platform. Compiled for wasm32 only.

mod socket;
mod storage;
mod tabs;

pub use socket::{RelaySocket, SocketEvent};
pub use storage::{NamedRecords, StorageError, Vault};
pub use tabs::{TabChannel, request_ownership};

/// The browser's cryptographic random number generator (`crypto.getRandomValues`).
pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Wall-clock time, unix seconds.
pub fn now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Wall-clock time, unix milliseconds.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}
