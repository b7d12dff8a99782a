//! Hints to the processor's cache: asking for a line a few steps before it is read, so that
//! the misses of independent lookups overlap instead of each stalling in turn. Batches use
//! it; it changes no value, only when memory arrives.

/// Asks for the cache line holding `value` (a hint: it reads nothing and cannot fault).
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads no memory into the program and cannot fault; `value` is a live
    // reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(value as *const T as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// Asks for every cache line `value` spans (an account of 112 bytes spans two or three).
#[inline(always)]
pub fn prefetch_all<T>(value: &T) {
    let start = value as *const T as usize;
    let end = start + std::mem::size_of::<T>();
    let mut line = start & !63;
    while line < end {
        // SAFETY: as in `prefetch`: a hint that reads nothing; the lines are those of a live
        // value.
        prefetch(unsafe { &*(line.max(start) as *const u8) });
        line += 64;
    }
}

/// How many steps ahead a batch asks for what it will read: enough to cover a miss to main
/// memory at the pace of a purchase, few enough to stay within the line-fill buffers.
pub const PREFETCH_DISTANCE: usize = 8;

/// Asks the kernel to back the `bytes` from `start` with huge pages (2 MiB) where it can: a
/// table of tens of megabytes read at random costs a TLB miss and a page walk per read on
/// 4 KiB pages. Only the 2 MiB-aligned parts of the range qualify, and only pages not yet
/// touched (so ask before filling); on systems without transparent huge pages, or where
/// they are off, nothing changes. A hint, like a prefetch: no value changes.
pub fn huge_pages<T>(start: *const T, bytes: usize) {
    const HUGE: usize = 2 << 20;
    if bytes < HUGE {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let start = start as usize;
        let aligned = start.next_multiple_of(HUGE);
        let end = (start + bytes) / HUGE * HUGE;
        if aligned < end {
            // SAFETY: madvise with MADV_HUGEPAGE changes how pages are backed, not their
            // contents, on a range this process owns.
            unsafe { libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = start;
}

/// A vector of `len` values from `fill`, on huge pages where the system has them.
pub fn huge_vec<T>(len: usize, fill: impl FnMut() -> T) -> Vec<T> {
    let mut vec = Vec::with_capacity(len);
    huge_pages(vec.as_ptr(), len * std::mem::size_of::<T>());
    vec.extend(std::iter::repeat_with(fill).take(len));
    vec
}

/// Reserves room for `additional` more values, the new room on huge pages where the system
/// has them.
pub fn reserve_huge<T>(vec: &mut Vec<T>, additional: usize) {
    vec.reserve(additional);
    let spare = vec.spare_capacity_mut();
    huge_pages(spare.as_ptr(), std::mem::size_of_val(spare));
}
