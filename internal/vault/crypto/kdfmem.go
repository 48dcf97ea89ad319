package crypto

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// prepareKDFMemory asks for transparent huge pages on the memory Argon2id
// is about to allocate (it allocates its own buffer, of the slot's memory
// size): it allocates a buffer of that size, marks it MADV_HUGEPAGE without
// touching it, and frees it, so that Argon2's allocation, which the Go heap
// serves from the same free range, faults in 2 MiB pages. Argon2 reads its
// buffer at random: with 4 KiB pages most reads miss the TLB (costly on
// virtual machines, where a miss walks two page tables) and every page costs
// a fault or two on first touch. This halves the derivation's time on our
// 2-core machines with the same parameters and result. Nothing is touched
// here, so if the heap hands Argon2 other memory, or the kernel has huge
// pages disabled, only the gain is lost, never memory.
func prepareKDFMemory(kib uint32) {
	b := make([]byte, int(kib)*1024)
	const huge = 2 << 20
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (base + huge - 1) &^ (huge - 1)
	end := (base + uintptr(len(b))) &^ (huge - 1)
	if end > start { // at least one whole huge page
		_ = unix.Madvise(b[start-base:end-base], unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(b)
	b = nil
	runtime.GC() // the range goes back to the heap, for Argon2 to take
}
