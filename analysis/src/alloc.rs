//! The C allocator's settings for processes that run the networks.
//!
//! glibc hands every block above its mmap threshold (at most 32 MB by
//! default) straight back to the kernel when it is freed, so each
//! full-resolution activation (a 16-channel 128³ tensor is 134 MB) costs
//! fresh page faults and kernel zeroing every time one is made. Raising the
//! threshold to 1 GB and never trimming the heap keeps freed activations
//! for reuse: the attention U-Net's forward on 1×2×128³ went from 1.68–1.83
//! s to 1.18–1.29 s on the 2-core benchmark machine. Trimming is turned off
//! altogether (-1), not merely raised: the largest value `mallopt` takes
//! (2 GB) still let the heap shrink after a whole U-Net pass once a network
//! was loaded, and the forward slowed to 1.75 s again. The price is that
//! the process keeps its peak memory until it exits, which suits a worker.
#![allow(unsafe_code)] // one call into the C library

/// Applies the settings (glibc only; elsewhere nothing happens). Call once,
/// early, from a binary's `main`.
pub fn keep_freed_activations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes the allocator's thresholds; it is
        // called before the networks allocate anything large.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 30);
            mallopt(M_TRIM_THRESHOLD, -1); // documented: never trim
        }
    }
}

/// Sets flush-to-zero and denormals-are-zero for SSE/AVX arithmetic on the
/// calling thread (x86-64 only): for threads outside rayon's pool that
/// compute (a job's blocking thread).
pub fn flush_denormals_here() {
    #[cfg(target_arch = "x86_64")]
    {
        #[allow(deprecated)]
        // SAFETY: MXCSR bits 15 (FTZ) and 6 (DAZ) only change how
        // subnormal floats are rounded; every x86-64 CPU has them.
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            _mm_setcsr(_mm_getcsr() | 0x8040);
        }
    }
}

/// Treats subnormal floats as zero on this thread and on every thread of
/// rayon's global pool (which it builds; call before anything uses it).
/// Intel cores take a microcode assist of ~100 cycles per subnormal operand;
/// trained networks' activations and gradients are full of them, and HD-BET
/// ran 20 times slower on an Emerald Rapids machine than on a Zen one for
/// it. Values below 1.2e-38 change nothing a network computes.
pub fn flush_denormals() {
    flush_denormals_here();
    // the pool may exist already (a second call, or a test harness): then
    // its threads keep their settings
    let _ = rayon::ThreadPoolBuilder::new()
        .start_handler(|_| flush_denormals_here())
        .build_global();
}
