//! Benchmark runner for `cargo xtask bench core`: times the operations of `benches/ops` with one
//! harness, natively (`std::time::Instant`) and in headless Chromium (`performance.now()`), and prints
//! one JSON line per operation. Only built with the `bench` feature, so test runs never time anything:
//!
//! ```text
//! cargo test -p client-wasm --profile bench-speed --features bench --test bench_wasm -- --nocapture
//! cargo test -p client-wasm --profile bench-speed --features bench --test bench_wasm \
//!     --target wasm32-unknown-unknown -- --nocapture   # with the wasm-bindgen-test-runner env set
//! ```
//!
//! Each sample is a batch of iterations long enough (`BATCH_MS`) that the browser's coarse timer
//! (about 0.1 ms without cross-origin isolation) costs well under 1 %; the per-iteration time of a
//! sample is the batch time over the batch size, as criterion computes it. Nothing is asserted.

#![cfg(feature = "bench")]

#[path = "../benches/ops/mod.rs"]
mod ops;

#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// Marks the result lines in the runner's output.
const PREFIX: &str = "DOORLESS-BENCH ";
/// Target length of one timed batch.
const BATCH_MS: f64 = 20.0;
/// Warm-up time before sampling (caches, JIT tiers in the browser).
const WARMUP_MS: f64 = 300.0;
/// Timed batches per operation.
const SAMPLES: usize = 41;

#[cfg(target_arch = "wasm32")]
mod clock {
    use wasm_bindgen::prelude::wasm_bindgen;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = performance, js_name = now)]
        fn performance_now() -> f64;
    }

    /// Milliseconds from an arbitrary origin.
    pub fn now_ms() -> f64 {
        performance_now()
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod clock {
    use std::sync::OnceLock;
    use std::time::Instant;

    /// Milliseconds from an arbitrary origin.
    pub fn now_ms() -> f64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_secs_f64() * 1e3
    }
}

/// Runs `iters` iterations and returns the elapsed milliseconds.
fn batch(op: &mut ops::Op, iters: u64) -> f64 {
    let start = clock::now_ms();
    for _ in 0..iters {
        (op.run)();
    }
    clock::now_ms() - start
}

/// The value at quantile `q` of sorted `v`, interpolated linearly.
fn quantile(v: &[f64], q: f64) -> f64 {
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

/// Calibrates the batch size, warms up, takes `SAMPLES` batches and returns the JSON line (summary
/// figures plus every sample, so that several runs can be pooled).
fn measure(op: &mut ops::Op) -> String {
    let mut iters = 1u64;
    let warmup_start = clock::now_ms();
    loop {
        let ms = batch(op, iters);
        if ms >= BATCH_MS {
            break;
        }
        iters = if ms <= 0.0 {
            iters * 2
        } else {
            ((iters as f64 * BATCH_MS * 1.1 / ms).ceil() as u64).max(iters + 1)
        };
    }
    while clock::now_ms() - warmup_start < WARMUP_MS {
        batch(op, iters);
    }
    let mut ns: Vec<f64> = (0..SAMPLES).map(|_| batch(op, iters) * 1e6 / iters as f64).collect();
    ns.sort_by(f64::total_cmp);
    let throughput = match op.bytes {
        // Bytes per ns is GB/s; reported in MiB/s.
        Some(bytes) => {
            format!(
                ",\"bytes\":{bytes},\"mib_per_s\":{:.1}",
                bytes as f64 / quantile(&ns, 0.5) * 1e9 / 1048576.0
            )
        }
        None => String::new(),
    };
    let samples: Vec<String> = ns.iter().map(|x| format!("{x:.1}")).collect();
    format!(
        "{PREFIX}{{\"op\":\"{}\",\"target\":\"{}\",\"simd128\":{},\"iters_per_sample\":{},\
         \"median_ns\":{:.1},\"q1_ns\":{:.1},\"q3_ns\":{:.1},\"min_ns\":{:.1},\"max_ns\":{:.1}{throughput},\
         \"samples_ns\":[{}]}}",
        op.name,
        std::env::consts::ARCH,
        cfg!(target_feature = "simd128"),
        iters,
        quantile(&ns, 0.5),
        quantile(&ns, 0.25),
        quantile(&ns, 0.75),
        ns[0],
        ns[ns.len() - 1],
        samples.join(","),
    )
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn core_ops() {
    for mut op in ops::all() {
        let line = measure(&mut op);
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!("{line}");
        #[cfg(not(target_arch = "wasm32"))]
        println!("{line}");
    }
}
