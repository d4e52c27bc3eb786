// Keeps glibc from returning the relay's read buffers to the kernel after every garbage
// collection. Node allocates a fresh 64 KiB buffer with malloc for every socket read, and V8
// frees those buffers in batches when it collects them. With glibc's default trim threshold of
// 128 KiB, each batch that ends at the top of the heap is handed back to the kernel, and the
// next reads fault the same memory in again. On the inline benchmark (bench/inline-relay.ts,
// 2-core VM, Node 20, glibc 2.36) that was up to one page fault per 4 KiB relayed and about
// 0.6 of the gateway's 1.4 CPU seconds per GB.
//
// glibc raises its mmap threshold to the size of a freed mmapped block (at most 32 MiB on 64-bit
// systems) and its trim threshold to twice that (mallopt(3), man-pages 6.03, M_MMAP_THRESHOLD).
// Node has no mallopt, so raiseMallocTrimThreshold allocates one ArrayBuffer just under 32 MiB,
// which glibc serves with mmap, and drops it. The thresholds rise when V8 collects the buffer.
// The cost: the process may keep up to 64 MiB of freed heap instead of returning it, and
// allocations under 32 MiB come from the heap instead of their own mappings. glibc skips the
// adjustment when MALLOC_TRIM_THRESHOLD_ or a similar malloc setting is given, so an operator's
// explicit setting wins. With another C library the buffer is only allocated and freed.

/** glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems: the dynamic threshold stops there. */
const MMAP_THRESHOLD_MAX_BYTES = 32 * 1024 * 1024;
/** Room for malloc's chunk header, so the chunk stays under the maximum. */
const CHUNK_OVERHEAD_BYTES = 64 * 1024;

let raised = false;

/** Raises glibc's mmap and trim thresholds once per process (see the file comment). */
export function raiseMallocTrimThreshold(): void {
  if (raised) return;
  raised = true;
  // calloc serves this with a fresh mapping and skips zeroing it, so no page is touched.
  void new ArrayBuffer(MMAP_THRESHOLD_MAX_BYTES - CHUNK_OVERHEAD_BYTES);
}
