//! The shared Valkey cluster of a test binary (see the `valkey-harness` crate).

pub use valkey_harness::*;

/// Options for a store on the shared cluster, under a fresh prefix.
pub fn options() -> relay::store::ClusterOptions {
    let mut options = relay::store::ClusterOptions::new(shared().seeds());
    options.prefix = unique_prefix();
    options
}
