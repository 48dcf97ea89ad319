package crypto

import (
	"math"
	"runtime"
	"sync/atomic"
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
//
// The returned func, called once Argon2 is done and its buffer returned,
// marks the range MADV_NOHUGEPAGE unless KeepKDFHugePages(true): left
// marked, khugepaged could later rebuild huge pages over heap memory the Go
// runtime has partly returned, raising a long-lived server's RSS (why the Go
// runtime itself stopped using the advice). A short-lived command keeps the
// mark: what it allocates next (indexes, trees) then faults in fewer, larger
// pages, worth ~15 ms to a no-change backup.
func prepareKDFMemory(kib uint32) (done func()) {
	const huge = 2 << 20
	size := uint64(kib) * 1024
	if size < 2*huge || size > math.MaxInt/2 {
		return func() {} // too small to hold a whole huge page for sure: no allocation, no GC
	}
	b := make([]byte, int(size))
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (base + huge - 1) &^ (huge - 1)
	end := (base + uintptr(len(b))) &^ (huge - 1)
	marked := unix.Madvise(b[start-base:end-base], unix.MADV_HUGEPAGE) == nil
	runtime.KeepAlive(b)
	b = nil
	runtime.GC() // the range goes back to the heap, for Argon2 to take
	if !marked {
		return func() {}
	}
	return func() {
		if keepHugePages.Load() {
			return
		}
		// The range is heap memory, mapped for the life of the process.
		unix.Syscall(unix.SYS_MADVISE, start, end-start, unix.MADV_NOHUGEPAGE)
	}
}

var keepHugePages atomic.Bool

// KeepKDFHugePages says whether the process is short-lived enough to leave
// the key derivation's range advised for huge pages (see prepareKDFMemory).
// The default, false, suits a server.
func KeepKDFHugePages(keep bool) { keepHugePages.Store(keep) }
