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

func TestDefaultKDFIsStrong(t *testing.T) {
	d := DefaultKDF()
	if d.MemoryKiB < 64*1024 || d.Time < 3 {
		t.Fatalf("default KDF lowered: %+v", d)
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
