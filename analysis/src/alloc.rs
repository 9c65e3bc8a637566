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
