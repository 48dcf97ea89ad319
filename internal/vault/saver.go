package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/compress"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
)

// saver stores the blobs of one write session (a backup): it dedups against
// the index and the session, packs new blobs, uploads full packs in the
// background, and at Finish writes one index object naming every pack it
// uploaded. Nothing it writes is referenced until the caller's manifest is.
type saver struct {
	v       *Vault
	ctx     context.Context
	uploads chan *pack.Writer
	g       *errgroup.Group

	mu      sync.Mutex
	pending map[blob.ID]blob.PackID // blobs stored this session (pack zero until uploaded)
	open    [3]*pack.Writer         // by blob.Type
	done    []index.PackEntries
	usedPks map[blob.PackID]bool // packs the session's point references
	newPack map[blob.ID]*pack.Writer

	bytesNew int64
	blobsNew int64
}

func (v *Vault) newSaver(ctx context.Context) *saver {
	g, gctx := errgroup.WithContext(ctx)
	s := &saver{v: v, ctx: gctx, g: g, uploads: make(chan *pack.Writer), pending: map[blob.ID]blob.PackID{},
		usedPks: map[blob.PackID]bool{}, newPack: map[blob.ID]*pack.Writer{}}
	for range 2 {
		g.Go(s.uploader)
	}
	return s
}

func (s *saver) uploader() error {
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case w, ok := <-s.uploads:
			if !ok {
				return nil
			}
			data := w.Finish(s.v.sealer)
			if err := s.v.be.Put(s.ctx, w.ID.ObjectName(), data); err != nil {
				return fmt.Errorf("upload pack %s: %w", w.ID, err)
			}
			s.mu.Lock()
			s.done = append(s.done, index.PackEntries{Pack: w.ID, Entries: w.Entries()})
			for _, e := range w.Entries() {
				delete(s.newPack, e.ID)
			}
			s.mu.Unlock()
		}
	}
}

// use records that the point references a blob (for the tombstone check).
func (s *saver) use(id blob.ID) bool {
	loc, ok := s.v.idx.Lookup(id)
	if ok && !s.v.isCondemned(loc.Pack) {
		s.mu.Lock()
		s.usedPks[loc.Pack] = true
		s.mu.Unlock()
		return true
	}
	s.mu.Lock()
	_, ok = s.pending[id]
	s.mu.Unlock()
	return ok
}

// save stores plain as a blob of type t unless it is already stored, and
// returns its id and the sealed bytes it added.
func (s *saver) save(t blob.Type, plain []byte) (blob.ID, int, error) {
	id := s.v.Hash(plain)
	if loc, ok := s.v.idx.Lookup(id); ok && !s.v.isCondemned(loc.Pack) {
		s.mu.Lock()
		s.usedPks[loc.Pack] = true
		s.mu.Unlock()
		return id, 0, nil
	}
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.mu.Unlock()
		return id, 0, nil
	}
	s.pending[id] = blob.PackID{}
	s.mu.Unlock()

	framed := compress.Compress(make([]byte, 0, len(plain)/2+64), plain)
	sealed := s.v.sealer.Seal(make([]byte, 0, len(framed)+64), framed, blob.Context(t, id))

	s.mu.Lock()
	w := s.open[t]
	if w == nil {
		w = pack.NewWriter(newPackID(), s.v.cfg.PackSize+s.v.cfg.PackSize/8)
		s.open[t] = w
	}
	w.Add(t, id, sealed, len(plain))
	s.newPack[id] = w
	s.bytesNew += int64(len(sealed))
	s.blobsNew++
	var full *pack.Writer
	if w.Size() >= s.v.cfg.PackSize {
		full = w
		s.open[t] = nil
	}
	s.mu.Unlock()
	if full != nil {
		select {
		case s.uploads <- full:
		case <-s.ctx.Done():
			return id, 0, s.ctx.Err()
		}
	}
	return id, len(sealed), nil
}

// finish uploads the open packs, waits for every upload, then writes the
// session's index object and adds it to the in-memory index.
func (s *saver) finish() error {
	s.mu.Lock()
	var rest []*pack.Writer
	for i, w := range s.open {
		if w != nil && w.Count() > 0 {
			rest = append(rest, w)
		}
		s.open[i] = nil
	}
	s.mu.Unlock()
	for _, w := range rest {
		select {
		case s.uploads <- w:
		case <-s.ctx.Done():
		}
	}
	close(s.uploads)
	if err := s.g.Wait(); err != nil {
		return err
	}
	if len(s.done) == 0 {
		return nil
	}
	for _, pe := range s.done {
		s.usedPks[pe.Pack] = true
	}
	// Index objects hold at most index.MaxPacks packs each.
	for start := 0; start < len(s.done); start += 1024 {
		part := s.done[start:min(start+1024, len(s.done))]
		name := "index/" + hex.EncodeToString(randBytes(16))
		if err := s.v.putSealed(context.WithoutCancel(s.ctx), name, "index "+name, index.Encode(part)); err != nil {
			return fmt.Errorf("write index %s: %w", name, err)
		}
	}
	for _, pe := range s.done {
		s.v.idx.Add(pe.Pack, pe.Entries)
	}
	return nil
}

// abort stops the uploaders after an error.
func (s *saver) abort() {
	defer func() { recover() }() // uploads may already be closed
	close(s.uploads)
	_ = s.g.Wait()
}

func newPackID() blob.PackID { return blob.PackID(randBytes(16)) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
