package crypto

import (
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// kiB reads a "Name:   N kB" line of a /proc file.
func kiB(t *testing.T, file, name string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in %s", name, file)
	return 0
}

// The pages prepared for Argon2id are the ones it then uses: the derivation
// costs its memory parameter once, not twice, and gives Argon2id's result.
func TestDeriveKEKOnHugePagesAndMemoryOnce(t *testing.T) {
	p := DefaultKDF()
	p.Salt = []byte("0123456789abcdef")
	want := argon2.IDKey([]byte("pw"), p.Salt, p.Time, p.MemoryKiB, p.Threads, 32)
	debug.FreeOSMemory()
	// Reset the peak RSS to the current RSS (Linux >= 4.0).
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	var huge int // huge pages under Argon2's buffer, before it is returned
	testHookKDFDone = func() { huge = kiB(t, "/proc/self/smaps_rollup", "AnonHugePages") }
	defer func() { testHookKDFDone = nil }()
	base := kiB(t, "/proc/self/status", "VmRSS")
	got := p.DeriveKEK([]byte("pw"))
	peak := kiB(t, "/proc/self/status", "VmHWM")
	after := kiB(t, "/proc/self/status", "VmRSS")
	if got != [32]byte(want) {
		t.Fatal("DeriveKEK differs from argon2.IDKey")
	}
	// No range stays advised for huge pages once the derivation is done.
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(smaps), "\n") {
		if f, ok := strings.CutPrefix(line, "VmFlags:"); ok && slices.Contains(strings.Fields(f), "hg") {
			t.Errorf("a mapping is still MADV_HUGEPAGE after the derivation: %s", line)
		}
	}
	mem := int(p.MemoryKiB)
	if grew := peak - base; grew > mem+mem/4 {
		t.Fatalf("peak RSS grew by %d KiB for a %d KiB derivation", grew, mem)
	}
	if kept := after - base; kept > mem/4 {
		t.Errorf("%d KiB still resident after the derivation: its buffer was not returned", kept)
	}
	thp, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(thp), "[never]") {
		t.Logf("transparent huge pages are off here (%q, %v): the derivation ran on 4 KiB pages", thp, err)
		return
	}
	// The heap may now and then hand Argon2 another range (the scavenger
	// holds the prepared one for a moment): one of three tries must get
	// huge pages.
	for try := 1; huge < mem/2; try++ {
		if try == 3 {
			t.Fatalf("Argon2's buffer got %d KiB of huge pages in %d tries, want most of %d KiB", huge, try, mem)
		}
		p.DeriveKEK([]byte("pw"))
	}
}
