//! Criterion view of the protocol core's benchmark operations (`benches/ops`), natively:
//! `cargo bench -p client-wasm --bench core --profile bench-speed`. `cargo xtask bench core` runs it
//! next to the identical closures timed natively and in headless Chromium by `tests/bench_wasm.rs`.

#[cfg(not(target_arch = "wasm32"))]
mod ops;

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use criterion::{Criterion, Throughput};

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("core");
    for mut op in ops::all() {
        if let Some(bytes) = op.bytes {
            group.throughput(Throughput::Bytes(bytes));
        }
        group.bench_function(op.name, |b| b.iter(&mut op.run));
    }
    group.finish();
    criterion.final_summary();
}

// Criterion is a native-only dev-dependency; `cargo clippy --all-targets --target wasm32-unknown-unknown`
// still builds this target, so it gets an empty main there.
#[cfg(target_arch = "wasm32")]
fn main() {}
