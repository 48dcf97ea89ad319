package crypto

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/crypto/argon2"
)

// KDFParams are Argon2id parameters, recorded in every slot.
type KDFParams struct {
	Alg       string `json:"alg"` // "argon2id"
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// DefaultKDF is what every new slot uses: 48 MiB, 6 passes, 4 lanes. It is
// never lowered for speed; changing it is a format-compatible change (the
// slot records its own).
//
// It costs a guessing attacker more than RFC 9106's second recommended
// option (64 MiB, 3 passes, 4 lanes), which slots used before, under both
// usual measures of a memory-hard function's cost: the memory bandwidth of
// one guess, passes × memory (288 against 192 MiB), and its area-time
// product, passes × memory² (13,824 against 12,288 MiB²). It is also well
// above OWASP's floor (46 MiB, 1 pass). Taking 25% less memory and twice
// the passes keeps a short-lived command's peak memory, which the buffer
// dominates, 16 MiB lower, for about 20% more derivation time.
// TestDefaultKDFIsStrong holds every new default to both measures.
func DefaultKDF() KDFParams {
	return KDFParams{Alg: "argon2id", Time: 6, MemoryKiB: 48 * 1024, Threads: 4}
}

// CostsAtLeast says whether a guess with p costs an attacker at least as much
// as with q by both usual measures, memory bandwidth (passes × memory) and
// area-time (passes × memory²), with at least as many lanes.
func (p KDFParams) CostsAtLeast(q KDFParams) bool {
	bandwidth := func(k KDFParams) uint64 { return uint64(k.Time) * uint64(k.MemoryKiB) }
	areaTime := func(k KDFParams) float64 { return float64(bandwidth(k)) * float64(k.MemoryKiB) }
	return p.Alg == q.Alg && p.Threads >= q.Threads &&
		bandwidth(p) >= bandwidth(q) && areaTime(p) >= areaTime(q)
}

// Limits on decoded parameters: a crafted slot must not make opening a vault
// exhaust memory or time.
const (
	maxKDFMemoryKiB = 4 << 20 // 4 GiB
	maxKDFTime      = 64
	minKDFMemoryKiB = 1024
)

func (p KDFParams) validate() error {
	switch {
	case p.Alg != "argon2id":
		return fmt.Errorf("unknown kdf %q", p.Alg)
	case p.Time < 1 || p.Time > maxKDFTime:
		return fmt.Errorf("kdf time %d out of range", p.Time)
	case p.MemoryKiB < minKDFMemoryKiB || p.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("kdf memory %d KiB out of range", p.MemoryKiB)
	case p.Threads < 1:
		return fmt.Errorf("kdf threads %d out of range", p.Threads)
	case len(p.Salt) < 16 || len(p.Salt) > 64:
		return fmt.Errorf("kdf salt of %d bytes out of range", len(p.Salt))
	}
	return nil
}

// testHookKDFDone runs after Argon2id, before its buffer is returned.
var testHookKDFDone func()

// DeriveKEK runs Argon2id. Its buffer (48 MiB by default) dwarfs what a
// process does next: it goes back to the OS before DeriveKEK returns, so it
// does not add to what comes after (indexes, trees) in the peak memory.
func (p KDFParams) DeriveKEK(passphrase []byte) [32]byte {
	done := prepareKDFMemory(p.MemoryKiB)
	k := [32]byte(argon2.IDKey(passphrase, p.Salt, p.Time, p.MemoryKiB, p.Threads, 32))
	if testHookKDFDone != nil {
		testHookKDFDone()
	}
	// Freed while still on huge pages (whole ones go cheaply), then the
	// range is unmarked.
	debug.FreeOSMemory()
	done()
	return k
}

// Slot is a key slot: the vault's Keys wrapped by a passphrase-derived key.
// Slots are immutable objects named keys/<ID>.
type Slot struct {
	Format  string    `json:"format"` // "lifeboat-key-slot"
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Note    string    `json:"note,omitempty"`
	KDF     KDFParams `json:"kdf"`
	Wrap    string    `json:"wrap"` // "aes-256-gcm"
	Payload []byte    `json:"payload"`
}

type slotPayload struct {
	Master   []byte            `json:"master"`
	DataKeys map[string][]byte `json:"data_keys"`
	Current  uint32            `json:"current"`
}

// ErrWrongPassphrase: no slot opened with the passphrase given.
var ErrWrongPassphrase = errors.New("wrong passphrase")

func slotAD(id string) []byte { return []byte("lifeboat key slot v1 " + id) }

// NewSlot wraps keys under passphrase with params p (a fresh salt is drawn).
func NewSlot(keys *Keys, passphrase []byte, p KDFParams, now time.Time) (*Slot, error) {
	p.Salt = make([]byte, 16)
	mustRand(p.Salt)
	if err := p.validate(); err != nil {
		return nil, err
	}
	idb := make([]byte, 16)
	mustRand(idb)
	s := &Slot{Format: "lifeboat-key-slot", Version: 1, ID: hex.EncodeToString(idb), Created: now.UTC(), KDF: p, Wrap: "aes-256-gcm"}
	pl := slotPayload{Master: keys.Master[:], DataKeys: map[string][]byte{}, Current: keys.Current}
	for v, k := range keys.DataKeys {
		pl.DataKeys[strconv.FormatUint(uint64(v), 10)] = k[:]
	}
	plain, err := json.Marshal(pl)
	if err != nil {
		return nil, err
	}
	kek := p.DeriveKEK(passphrase)
	a, err := newGCM(kek[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	s.Payload = a.Seal(nonce, nonce, plain, slotAD(s.ID))
	return s, nil
}

// Marshal encodes the slot as stored.
func (s *Slot) Marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// ParseSlot decodes and validates a stored slot (it does not unwrap it).
func ParseSlot(b []byte) (*Slot, error) {
	var s Slot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("key slot: %w", err)
	}
	if s.Format != "lifeboat-key-slot" || s.Version != 1 {
		return nil, fmt.Errorf("key slot: unknown format %q version %d", s.Format, s.Version)
	}
	if s.Wrap != "aes-256-gcm" {
		return nil, fmt.Errorf("key slot: unknown wrap %q", s.Wrap)
	}
	if _, err := hex.DecodeString(s.ID); err != nil || len(s.ID) != 32 {
		return nil, fmt.Errorf("key slot: bad id %q", s.ID)
	}
	if err := s.KDF.validate(); err != nil {
		return nil, fmt.Errorf("key slot %s: %w", s.ID, err)
	}
	if len(s.Payload) < 12+16 {
		return nil, fmt.Errorf("key slot %s: payload too short", s.ID)
	}
	return &s, nil
}

// Unwrap derives the KEK from passphrase and opens the slot.
func (s *Slot) Unwrap(passphrase []byte) (*Keys, error) {
	kek := s.KDF.DeriveKEK(passphrase)
	return s.UnwrapKEK(kek)
}

// UnwrapKEK opens the slot with an already derived key-encryption key.
func (s *Slot) UnwrapKEK(kek [32]byte) (*Keys, error) {
	a, err := newGCM(kek[:])
	if err != nil {
		return nil, err
	}
	plain, err := a.Open(nil, s.Payload[:12], s.Payload[12:], slotAD(s.ID))
	if err != nil {
		return nil, ErrWrongPassphrase
	}
	var pl slotPayload
	if err := json.Unmarshal(plain, &pl); err != nil {
		return nil, fmt.Errorf("key slot %s: payload: %w", s.ID, err)
	}
	if len(pl.Master) != 32 {
		return nil, fmt.Errorf("key slot %s: master secret of %d bytes", s.ID, len(pl.Master))
	}
	k := &Keys{Master: [32]byte(pl.Master), DataKeys: map[uint32][32]byte{}, Current: pl.Current}
	for vs, dk := range pl.DataKeys {
		v, err := strconv.ParseUint(vs, 10, 32)
		if err != nil || len(dk) != 32 {
			return nil, fmt.Errorf("key slot %s: bad data key %q", s.ID, vs)
		}
		k.DataKeys[uint32(v)] = [32]byte(dk)
	}
	if _, ok := k.DataKeys[k.Current]; !ok {
		return nil, fmt.Errorf("key slot %s: current data key %d missing", s.ID, k.Current)
	}
	return k, nil
}
