//! The global allocator the `object` crate's `alloc` dependency requires.
//! civ allocates nothing on purpose (the engine is written without
//! allocation, and hooks never allocate); this is a safety net for a path
//! inside a dependency, and takes NX nonpaged pool as HVCI wants.
//! ExAllocatePoolWithTag rather than ExAllocatePool2, which Wine 8 lacks.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;

/// 'civA'
const TAG: u32 = u32::from_le_bytes(*b"civA");
/// NonPagedPoolNx.
const NON_PAGED_POOL_NX: i32 = 0x200;
/// Pool blocks are 16-byte aligned on x64.
const POOL_ALIGN: usize = 16;

#[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
unsafe extern "system" {
    // windows-sys leaves the deprecated allocators out of its bindings.
    fn ExAllocatePoolWithTag(pool_type: i32, size: usize, tag: u32) -> *mut c_void;
    fn ExFreePoolWithTag(p: *mut c_void, tag: u32);
}

/// NX nonpaged pool.
pub struct PoolAllocator;

// SAFETY: blocks come from the pool, aligned to 16, and go back to it;
// larger alignments are refused with null, as GlobalAlloc allows.
unsafe impl GlobalAlloc for PoolAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() > POOL_ALIGN {
            return core::ptr::null_mut();
        }
        // SAFETY: a plain pool request; may return null.
        unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, layout.size(), TAG).cast() }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above.
        unsafe { ExFreePoolWithTag(ptr.cast(), TAG) }
    }
}

#[global_allocator]
static ALLOCATOR: PoolAllocator = PoolAllocator;
