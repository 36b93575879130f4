//! A `GlobalAlloc` that counts this thread's allocations (alloc, alloc_zeroed, realloc) and
//! forwards everything to `System`: the exact allocation counts of the `*_alloc` tests.
//!
//! Only the type and the counter live here; each test binary that wants it installs it itself,
//! since `#[global_allocator]` is one per binary:
//!
//! ```ignore
//! #[path = "util/counting_alloc.rs"]
//! mod counting_alloc;
//! #[global_allocator]
//! static GLOBAL: counting_alloc::Counting = counting_alloc::Counting;
//! ```
//!
//! The counter is per thread (toolchain.md §6), so tests running in parallel do not disturb
//! each other's counts. Tests that need sizes or bytes held (`push_alloc`, `reactor_alloc`,
//! `ws_tungstenite_allocs`) keep allocators of their own.

#![allow(unsafe_code)] // a GlobalAlloc impl is unsafe by definition; it only forwards to System
#![allow(dead_code)] // each binary uses the part it needs

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Allocations made by this thread. Const-initialised and without a destructor, so touching
    /// it never allocates and never re-enters the allocator.
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

/// The counting allocator; install it with `#[global_allocator]`.
pub struct Counting;

fn count_one() {
    // `try_with`: during thread teardown the slot may be gone; such allocations are not ours.
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which implements
// `GlobalAlloc` correctly, so `Counting` upholds the trait's contract exactly as `System` does.
// The only extra work is bumping a thread-local `Cell`, which neither allocates nor unwinds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract; we pass it through.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`; the
        // caller upholds the rest of `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocations this thread has made so far.
pub fn allocs_so_far() -> u64 {
    ALLOCS.with(Cell::get)
}

/// How many allocations `f` made on this thread, and its result.
pub fn allocs_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = allocs_so_far();
    let result = f();
    (allocs_so_far() - before, result)
}
