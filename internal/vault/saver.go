package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/compress"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/pack"
)

// saver stores the blobs of one write session (a backup): it dedups against
// the index and the session, packs new blobs, hands full packs to an
// uploader, and at finish writes one index object naming every pack it
// stored. Nothing it writes is referenced until the caller's manifest is.
//
// With checkpoints on (backups), it also writes an index object for the
// packs stored so far every checkpointEvery, and when it is aborted: a
// later backup dedups against them, so a backup that was interrupted,
// failed or killed does not upload them again.
//
// Data packs stream straight into the backend when it can take a stream
// (local: the temp file), so no pack-sized buffer exists; otherwise (S3)
// they are assembled in a few recycled buffers.
type saver struct {
	v       *Vault
	ctx     context.Context
	cancel  context.CancelFunc
	uploads chan *openPack
	g       *errgroup.Group
	stream  storage.Streamer
	// sealer is taken once: a session seals its blobs, pack trailers and
	// index object under one data key version, even if the key rotates
	// meanwhile (Reencrypt tells a pack's version from its index object's).
	sealer *crypto.Sealer

	mu       sync.Mutex
	pending  map[blob.ID]struct{} // blobs stored this session
	open     [3]*openPack         // by blob.Type
	done     []index.PackEntries
	usedPks  map[blob.PackID]bool // packs the session's point references
	bytesNew int64
	rawNew   int64
	blobsNew int64

	checkpointEvery time.Duration // 0: one index object at finish only
	lastIndex       time.Time
	indexed         int   // s.done[:indexed] are named by index objects
	keptBytes       int64 // sealed bytes in those packs
}

type openPack struct {
	w  *pack.Writer
	ow storage.ObjectWriter // streaming only
}

func (v *Vault) newSaver(ctx context.Context) *saver {
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	s := &saver{v: v, ctx: gctx, cancel: cancel, g: g, uploads: make(chan *openPack), pending: map[blob.ID]struct{}{},
		usedPks: map[blob.PackID]bool{}, sealer: v.sealer(), lastIndex: time.Now()}
	s.stream, _ = v.be.(storage.Streamer)
	// One uploader: with the pack being filled and one waiting, at most three
	// packs are in flight; uploads overlap with chunking and sealing.
	g.Go(s.uploader)
	return s
}

func (s *saver) uploader() error {
	for {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case op, ok := <-s.uploads:
			if !ok {
				return nil
			}
			if err := s.store(op); err != nil {
				return err
			}
		}
	}
}

// store finishes a pack and makes it durable.
func (s *saver) store(op *openPack) error {
	data, err := op.w.Finish(s.sealer)
	if err == nil {
		if op.ow != nil {
			err = op.ow.Commit()
		} else {
			err = s.v.be.Put(s.ctx, op.w.ID.ObjectName(), data)
			s.v.releasePackBuf(op.w.Release())
		}
	}
	if err != nil {
		if op.ow != nil {
			op.ow.Abort()
		}
		return fmt.Errorf("store pack %s: %w", op.w.ID, err)
	}
	s.mu.Lock()
	s.done = append(s.done, index.PackEntries{Pack: op.w.ID, Entries: op.w.Entries()})
	s.mu.Unlock()
	testStop("backup-pack-stored")
	if s.checkpointEvery > 0 && time.Since(s.lastIndex) >= s.checkpointEvery {
		return s.writeIndexes(s.ctx)
	}
	return nil
}

// writeIndexes writes index objects naming the stored packs no index object
// names yet. Only the uploader calls it, or finish and abort once the
// uploader has stopped.
func (s *saver) writeIndexes(ctx context.Context) error {
	s.mu.Lock()
	packs := s.done[s.indexed:]
	s.mu.Unlock()
	// Index objects hold at most 1024 packs each.
	for len(packs) > 0 {
		part := packs[:min(1024, len(packs))]
		packs = packs[len(part):]
		name := "index/" + hex.EncodeToString(randBytes(16))
		sealed := s.sealer.Seal(nil, index.Encode(part), "index "+name)
		if err := s.v.be.Put(ctx, name, sealed); err != nil {
			return fmt.Errorf("write index %s: %w", name, err)
		}
		s.v.mu.Lock()
		s.v.indexSeen[name] = true
		s.v.mu.Unlock()
		// Seen, so loaded: a later backup or restore through this handle
		// finds these blobs. (Replace, not Add: a blob stored again because
		// its old pack is condemned is read and deduped from its new copy.)
		for _, pe := range part {
			s.v.idx.Replace(pe.Pack, pe.Entries)
		}
		s.mu.Lock()
		s.indexed += len(part)
		for _, pe := range part {
			for _, e := range pe.Entries {
				s.keptBytes += int64(e.Length)
			}
		}
		s.mu.Unlock()
	}
	s.lastIndex = time.Now()
	return nil
}

// use records that the point references a blob (for the tombstone check);
// false if the blob is not available for dedup.
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

func (s *saver) newPack(t blob.Type) (*openPack, error) {
	id := newPackID()
	if s.stream != nil && t == blob.Data {
		ow, err := s.stream.Create(s.ctx, id.ObjectName())
		if err != nil {
			return nil, err
		}
		return &openPack{w: pack.NewStreamWriter(id, ow), ow: ow}, nil
	}
	var buf []byte // tree packs are small: let them grow
	if t == blob.Data {
		buf = s.v.packBuf()
	}
	return &openPack{w: pack.NewWriter(id, buf)}, nil
}

// save stores plain as a blob of type t unless it is already stored, and
// returns its id and the sealed bytes it added.
func (s *saver) save(t blob.Type, plain []byte) (blob.ID, int, error) {
	id := s.v.Hash(plain)
	if s.use(id) {
		return id, 0, nil
	}
	return s.saveNew(t, id, plain)
}

// saveNew stores a blob whose id is computed and not known to the index.
func (s *saver) saveNew(t blob.Type, id blob.ID, plain []byte) (blob.ID, int, error) {
	s.mu.Lock()
	if _, ok := s.pending[id]; ok {
		s.mu.Unlock()
		return id, 0, nil
	}
	s.pending[id] = struct{}{}
	s.mu.Unlock()

	scratch := s.v.scratch.Get().(*[]byte)
	defer s.v.scratch.Put(scratch)
	framed := compress.Compress((*scratch)[:0], plain)
	*scratch = framed[:0]
	ctxs := blob.Context(t, id)
	var sealed []byte
	if s.stream != nil && t == blob.Data {
		// Seal outside the lock; only the write to the temp file is serialised.
		sb := s.v.scratch.Get().(*[]byte)
		defer s.v.scratch.Put(sb)
		sealed = s.sealer.Seal((*sb)[:0], framed, ctxs)
		*sb = sealed[:0]
	}
	size := len(framed) + crypto.Overhead

	s.mu.Lock()
	var full *openPack
	op := s.open[t]
	if op != nil && op.w.Count() > 0 && op.w.Size()+size > s.v.cfg.PackSize {
		full, op = op, nil
	}
	if op == nil {
		var err error
		if op, err = s.newPack(t); err != nil {
			s.mu.Unlock()
			return id, 0, err
		}
		s.open[t] = op
	}
	var e blob.Entry
	var err error
	if sealed != nil {
		e, err = op.w.Add(t, id, sealed, len(plain))
	} else {
		// In memory: seal straight into the pack buffer, no copy.
		e = op.w.AppendSealed(t, id, len(plain), func(dst []byte) []byte { return s.sealer.Seal(dst, framed, ctxs) })
	}
	s.bytesNew += int64(e.Length)
	s.rawNew += int64(len(plain))
	s.blobsNew++
	s.mu.Unlock()
	if err != nil {
		return id, 0, fmt.Errorf("write pack %s: %w", op.w.ID, err)
	}
	if full != nil {
		select {
		case s.uploads <- full:
		case <-s.ctx.Done():
			full.discard()
			return id, 0, s.ctx.Err()
		}
	}
	return id, int(e.Length), nil
}

// finish stores the open packs, waits for every upload, then writes the
// session's index object and adds it to the in-memory index. After an
// error, the caller calls abort (which keeps what was stored).
func (s *saver) finish() error {
	s.mu.Lock()
	var rest []*openPack
	for i, op := range s.open {
		if op != nil && op.w.Count() > 0 {
			rest = append(rest, op)
		}
		s.open[i] = nil
	}
	s.mu.Unlock()
	for _, op := range rest {
		select {
		case s.uploads <- op:
		case <-s.ctx.Done():
			op.discard()
		}
	}
	close(s.uploads)
	err := s.g.Wait()
	s.cancel()
	if err != nil {
		return err
	}
	if len(s.done) == 0 {
		return nil
	}
	for _, pe := range s.done {
		s.usedPks[pe.Pack] = true
	}
	return s.writeIndexes(context.WithoutCancel(s.ctx))
}

// abort stops the uploader after an error and discards open packs. It does
// not close uploads: goroutines still saving see the cancelled context.
// It returns the uploader's error, the cause when the workers only saw the
// cancellation it triggered. With checkpoints on, the packs already stored
// are kept for the next backup: an index object names them, if the storage
// takes it within abortIndexTimeout.
func (s *saver) abort() error {
	s.cancel()
	err := s.g.Wait()
	if s.checkpointEvery > 0 {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), abortIndexTimeout)
		_ = s.writeIndexes(ctx) // best effort: the packs stay leftovers otherwise
		cancel()
	}
	s.mu.Lock()
	for i, op := range s.open {
		if op != nil {
			op.discard()
		}
		s.open[i] = nil
	}
	s.mu.Unlock()
	return err
}

// discard drops a pack that will not be stored: its temp object (and the
// writer's buffers and goroutine, for a streamed one) goes.
func (op *openPack) discard() {
	if op.ow != nil {
		op.ow.Abort()
	}
}

// abortIndexTimeout bounds the index write of an aborted backup.
const abortIndexTimeout = 20 * time.Second

func newPackID() blob.PackID { return blob.PackID(randBytes(16)) }

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}
