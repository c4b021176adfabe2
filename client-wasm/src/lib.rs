//! placeholder

pub mod core;
