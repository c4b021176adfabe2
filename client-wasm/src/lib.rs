//! placeholder

#[cfg(target_arch = "wasm32")]
pub mod browser;
pub mod core;
pub mod engine;
pub mod groups;
pub mod lock;
