//! How fast can *any* program hand back a 4-h, 1-s Cp/Ce curve on this machine? Measures the two
//! floors under `single_subject_4h_1s_cp_ce`: allocating the two 14 401-point output vectors, and
//! merely writing 230 KB into buffers that already exist. Issue 2 asks for ≥ 1000× opentiva
//! (6.4 ms for this run), i.e. ≤ 6.4 µs in total; compare these floors with that budget.
//!
//! `cargo run --release -p ketaflow-pkpd --example output_ceiling`

use std::hint::black_box;
use std::time::Instant;

const POINTS: usize = 4 * 3600 + 1;
const REPEATS: usize = 5000;

fn best(mut f: impl FnMut()) -> f64 {
    (0..REPEATS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let alloc = best(|| {
        let cp = vec![0.0f64; POINTS];
        let ce = vec![0.0f64; POINTS];
        black_box((cp, ce));
    });
    let (mut cp, mut ce) = (vec![0.0f64; POINTS], vec![0.0f64; POINTS]);
    let mut v = 0.0;
    let write = best(|| {
        v += 1.0;
        cp.fill(v);
        ce.fill(v);
        black_box((&mut cp, &mut ce));
    });
    println!(
        "points per output: {POINTS} (two outputs, {} KB)",
        2 * POINTS * 8 / 1024
    );
    println!(
        "allocate and zero both outputs: {:.2} µs (best of {REPEATS})",
        alloc * 1e6
    );
    println!(
        "write both outputs in place:    {:.2} µs (best of {REPEATS})",
        write * 1e6
    );
    println!("budget for 1000x opentiva (6.4 ms / 1000): 6.40 µs");
}
