package crypto

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

var weak = KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 1024, Threads: 1}

func TestSlotRoundTrip(t *testing.T) {
	k := NewKeys()
	s, err := NewSlot(k, []byte("pw"), weak, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Marshal()
	s2, err := ParseSlot(b)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := s2.Unwrap([]byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	if k2.Master != k.Master || k2.DataKeys[1] != k.DataKeys[1] || k2.IDKey() != k.IDKey() || k2.ChunkerSeed() == k2.IDKey() {
		t.Fatal("keys differ after unwrap")
	}
	if _, err := s2.Unwrap([]byte("wrong")); !errors.Is(err, ErrWrongPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// Lowered or absurd KDF parameters are refused when parsing.
	for _, mut := range []func(*Slot){
		func(s *Slot) { s.KDF.MemoryKiB = 1 << 30 },
		func(s *Slot) { s.KDF.Time = 0 },
		func(s *Slot) { s.KDF.Alg = "md5" },
		func(s *Slot) { s.KDF.Salt = nil },
	} {
		c := *s
		mut(&c)
		b, _ := c.Marshal()
		if _, err := ParseSlot(b); err == nil {
			t.Errorf("accepted slot with kdf %+v", c.KDF)
		}
	}
}

// TestDefaultKDFIsStrong holds the default to every default new slots had
// before (CostsAtLeast), with at least OWASP's floor of memory.
func TestDefaultKDFIsStrong(t *testing.T) {
	d := DefaultKDF()
	earlier := []KDFParams{
		{Alg: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 4}, // RFC 9106's second option, until 2026-12
	}
	if d.Alg != "argon2id" || d.MemoryKiB < 46*1024 {
		t.Fatalf("default KDF %+v: not argon2id, or under 46 MiB", d)
	}
	for _, e := range earlier {
		if !d.CostsAtLeast(e) {
			t.Errorf("default KDF %+v costs a guess less than the earlier default %+v", d, e)
		}
	}
	if err := (KDFParams{Alg: d.Alg, Time: d.Time, MemoryKiB: d.MemoryKiB, Threads: d.Threads, Salt: make([]byte, 16)}).validate(); err != nil {
		t.Fatalf("default KDF %+v: %v", d, err)
	}
}

func TestKDFCostsAtLeast(t *testing.T) {
	rfc := KDFParams{Alg: "argon2id", Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
	for _, c := range []struct {
		p    KDFParams
		want bool
	}{
		{rfc, true},
		{KDFParams{Alg: "argon2id", Time: 6, MemoryKiB: 48 * 1024, Threads: 4}, true},
		{KDFParams{Alg: "argon2id", Time: 5, MemoryKiB: 48 * 1024, Threads: 4}, false},  // same bandwidth and more, less area-time
		{KDFParams{Alg: "argon2id", Time: 1, MemoryKiB: 128 * 1024, Threads: 4}, false}, // more area-time, less bandwidth
		{KDFParams{Alg: "argon2id", Time: 6, MemoryKiB: 48 * 1024, Threads: 2}, false},
		{KDFParams{Alg: "argon2i", Time: 6, MemoryKiB: 64 * 1024, Threads: 4}, false},
	} {
		if got := c.p.CostsAtLeast(rfc); got != c.want {
			t.Errorf("%+v CostsAtLeast %+v = %v, want %v", c.p, rfc, got, c.want)
		}
	}
}

func TestEnvelope(t *testing.T) {
	k := NewKeys()
	s, _ := k.Sealer()
	sealed := s.Seal(nil, []byte("hello"), "ctx")
	if v, _ := KeyVersion(sealed); v != 1 {
		t.Fatalf("version %d", v)
	}
	if p, err := s.Open(nil, sealed, "ctx"); err != nil || string(p) != "hello" {
		t.Fatalf("open: %q %v", p, err)
	}
	if _, err := s.Open(nil, sealed, "other"); !errors.Is(err, ErrAuth) {
		t.Fatal("opened under another context")
	}
	for i := range sealed {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		if _, err := s.Open(nil, c, "ctx"); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	// A second data key version still opens the old objects.
	k.DataKeys[2] = [32]byte{7}
	k.Current = 2
	s2, _ := k.Sealer()
	if _, err := s2.Open(nil, sealed, "ctx"); err != nil {
		t.Fatalf("old version after rotation: %v", err)
	}
	if v, _ := KeyVersion(s2.Seal(nil, nil, "x")); v != 2 {
		t.Fatalf("new objects use version %d", v)
	}
}

func FuzzParseSlot(f *testing.F) {
	s, _ := NewSlot(NewKeys(), []byte("pw"), weak, time.Unix(0, 0))
	b, _ := s.Marshal()
	f.Add(b)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSlot(b)
		if err != nil {
			return
		}
		if s.KDF.MemoryKiB > maxKDFMemoryKiB || s.KDF.Time > maxKDFTime {
			t.Fatalf("accepted expensive kdf %+v", s.KDF)
		}
		if s.KDF.MemoryKiB <= 64*1024 && s.KDF.Time <= 4 {
			_, _ = s.Unwrap([]byte("pw")) // never panics
		}
	})
}

func FuzzOpen(f *testing.F) {
	k := NewKeys()
	s, _ := k.Sealer()
	f.Add(s.Seal(nil, []byte("x"), "c"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := s.Open(nil, b, "c"); err == nil && len(b) < Overhead {
			t.Fatal("short envelope opened")
		}
	})
}

func BenchmarkSeal1MiB(b *testing.B) {
	s, _ := NewKeys().Sealer()
	in := make([]byte, 1<<20)
	b.SetBytes(int64(len(in)))
	dst := make([]byte, 0, len(in)+Overhead)
	for b.Loop() {
		dst = s.Seal(dst[:0], in, "blob")
	}
}

func BenchmarkDefaultKDF(b *testing.B) {
	p := DefaultKDF()
	p.Salt = make([]byte, 16)
	for b.Loop() {
		p.DeriveKEK([]byte("passphrase"))
	}
}

func TestDataKeyObject(t *testing.T) {
	k := NewKeys()
	d := NewDataKey(2, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))
	b, err := k.WrapDataKey(d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.UnwrapDataKey(2, b)
	if err != nil || got != d {
		t.Fatalf("unwrap: %+v %v", got, err)
	}
	if bytes.Contains(b, d.Key[:]) {
		t.Fatal("key in the clear")
	}
	// Under another version's name, another master secret, or flipped: refused.
	if _, err := k.UnwrapDataKey(3, b); err == nil {
		t.Error("opened as version 3")
	}
	if _, err := NewKeys().UnwrapDataKey(2, b); !errors.Is(err, ErrAuth) {
		t.Errorf("opened under another master secret: %v", err)
	}
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 1
		if _, err := k.UnwrapDataKey(2, c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	// A header rewritten to another version does not authenticate either.
	c := bytes.Clone(b)
	c[3] = 3
	if _, err := k.UnwrapDataKey(3, c); err == nil {
		t.Error("version in the header swapped")
	}
	if _, err := k.WrapDataKey(DataKey{}); err == nil {
		t.Error("version 0 wrapped")
	}
	// Errors never hold key bytes.
	_, err = NewKeys().UnwrapDataKey(2, b)
	if bytes.Contains([]byte(err.Error()), d.Key[:8]) {
		t.Error("error holds key material")
	}
	for name, want := range map[string]uint32{"datakeys/00000002": 2, "datakeys/0000000a": 10, "datakeys/00000000": 0, "datakeys/0000000A": 0, "datakeys/2": 0, "keys/00000002": 0} {
		if v, _ := ParseDataKeyObjectName(name); v != want {
			t.Errorf("%s: version %d, want %d", name, v, want)
		}
	}
	if DataKeyObjectName(10) != "datakeys/0000000a" {
		t.Error(DataKeyObjectName(10))
	}
}

func TestUnknownKeyVersion(t *testing.T) {
	k := NewKeys()
	k2 := k.Clone()
	k2.DataKeys[5] = [32]byte{5}
	k2.Current = 5
	s2, _ := k2.Sealer()
	sealed := s2.Seal(nil, []byte("x"), "c")
	s, _ := k.Sealer()
	_, err := s.Open(nil, sealed, "c")
	var uk *UnknownKeyError
	if !errors.As(err, &uk) || uk.Version != 5 {
		t.Fatalf("open under an unknown version: %v", err)
	}
	if len(k.DataKeys) != 1 {
		t.Fatal("Clone shares its map")
	}
	if _, ok := KeyVersion([]byte("LK\x01\x02\x00\x00\x00" + string(make([]byte, 12)))); ok {
		t.Error("KeyVersion read a data key object's header as an envelope")
	}
}

func FuzzUnwrapDataKey(f *testing.F) {
	k := NewKeys()
	b, _ := k.WrapDataKey(NewDataKey(2, time.Unix(0, 0)))
	f.Add(b, uint32(2))
	f.Add([]byte("LK\x01"), uint32(1))
	f.Fuzz(func(t *testing.T, b []byte, ver uint32) {
		d, err := k.UnwrapDataKey(ver, b)
		if err != nil {
			return
		}
		if d.Version != ver {
			t.Fatalf("opened version %d as %d", d.Version, ver)
		}
		if _, ok := ParseDataKeyObjectName(DataKeyObjectName(ver)); !ok && ver != 0 {
			t.Fatalf("name of version %d does not parse", ver)
		}
	})
}
