package local

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Streamed objects (packs of tens of MiB) are written with O_DIRECT: whole
// aligned blocks go from our buffer to the device without passing through
// the page cache. Buffered writes of fresh data cost the kernel a page
// allocation and a copy per 4 KiB, several times the CPU of the write
// itself on virtual machines; a backup never reads its packs back, so the
// cache gains nothing from them. The tail that does not fill a block is
// written through the page cache at Sync. Where the file system refuses
// O_DIRECT (tmpfs, some FUSE and network file systems), the file is written
// the ordinary way.

// DirectFS is implemented by file systems that can create a file for large
// sequential writes bypassing the page cache.
type DirectFS interface {
	// CreateExclDirect is CreateExcl for a file written once, start to
	// end, and then Synced before Close.
	CreateExclDirect(name string) (File, error)
}

var _ DirectFS = OSFS{}

// directBlock is the unit of a direct write: a multiple of any logical
// block size in use (512 or 4096), and the size of the buffers.
const (
	directAlign = 4096
	directBlock = 1 << 20
)

// directBufs are page-aligned buffers of directBlock bytes, kept outside the
// Go heap and reused (fresh pages are what we are avoiding), at most
// maxFreeDirectBufs of them.
const maxFreeDirectBufs = 8

var directBufs struct {
	mu   sync.Mutex
	free [][]byte
}

func getDirectBuf() ([]byte, error) {
	directBufs.mu.Lock()
	defer directBufs.mu.Unlock()
	if n := len(directBufs.free); n > 0 {
		b := directBufs.free[n-1]
		directBufs.free = directBufs.free[:n-1]
		return b, nil
	}
	return unix.Mmap(-1, 0, directBlock, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}

func putDirectBuf(b []byte) {
	directBufs.mu.Lock()
	defer directBufs.mu.Unlock()
	if len(directBufs.free) < maxFreeDirectBufs {
		directBufs.free = append(directBufs.free, b[:directBlock])
		return
	}
	unix.Munmap(b[:directBlock])
}

// CreateExclDirect implements DirectFS. The file is created without
// O_DIRECT and then switched to it (opening with O_DIRECT where it is
// refused fails with EINVAL after creating the file, which O_EXCL then
// refuses to reopen); if the switch is refused, the file is an ordinary one.
func (o OSFS) CreateExclDirect(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if setDirect(f, true) != nil {
		return osFile{f}, nil
	}
	return newDirectFile(f), nil
}

// setDirect sets or clears O_DIRECT on an open file.
func setDirect(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		var fl int
		if fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0); ferr == nil {
			if on {
				fl |= unix.O_DIRECT
			} else {
				fl &^= unix.O_DIRECT
			}
			_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl)
		}
	}); err != nil {
		return err
	}
	if ferr != nil {
		return fmt.Errorf("set O_DIRECT %v on %s: %w", on, f.Name(), ferr)
	}
	return nil
}

// directFile fills one aligned buffer while a goroutine writes the previous
// one, so a caller's Write rarely waits for the device.
type directFile struct {
	f      *os.File
	cur    []byte        // buffer being filled (len = bytes in it); nil before the first Write
	queue  chan []byte   // full buffers to the writer goroutine
	done   chan struct{} // closed when the writer goroutine exits
	mu     sync.Mutex
	err    error // first error of the writer goroutine
	direct bool  // O_DIRECT still set (cleared on EINVAL and for the tail)
	off    int64 // bytes written to the file (by the writer goroutine, then by Sync)
	closed bool
	synced error // what Sync returned, for a second call
}

func newDirectFile(f *os.File) *directFile {
	d := &directFile{f: f, queue: make(chan []byte, 1), done: make(chan struct{}), direct: true}
	go d.writer()
	return d
}

func (d *directFile) writer() {
	defer close(d.done)
	for b := range d.queue {
		if d.failed() == nil {
			if err := d.writeBlock(b); err != nil {
				d.mu.Lock()
				d.err = err
				d.mu.Unlock()
			}
		}
		putDirectBuf(b)
	}
}

// writeBlock writes one buffer at the end of what is written; a file system
// that took O_DIRECT but refuses the write gets the rest of it, and every
// later one, buffered.
func (d *directFile) writeBlock(b []byte) error {
	n, err := writeAt(d.f, b, d.off)
	if err != nil && d.direct && errors.Is(err, unix.EINVAL) {
		if err = d.clearDirect(); err == nil {
			var m int
			m, err = writeAt(d.f, b[n:], d.off+int64(n))
			n += m
		}
	}
	d.off += int64(n)
	return err
}

// writeAt is (*os.File).WriteAt; tests replace it to refuse direct writes
// as a file system that takes O_DIRECT at open but not for a write would.
var writeAt = (*os.File).WriteAt

func (d *directFile) clearDirect() error {
	if !d.direct {
		return nil
	}
	if err := setDirect(d.f, false); err != nil {
		return err
	}
	d.direct = false
	return nil
}

func (d *directFile) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Write implements File. It is not safe for concurrent use.
func (d *directFile) Write(p []byte) (int, error) {
	if d.closed {
		return 0, os.ErrClosed
	}
	if err := d.failed(); err != nil {
		return 0, err
	}
	n := 0
	for len(p) > 0 {
		if d.cur == nil {
			b, err := getDirectBuf()
			if err != nil {
				return n, fmt.Errorf("write %s: buffer: %w", d.f.Name(), err)
			}
			d.cur = b[:0]
		}
		c := copy(d.cur[len(d.cur):directBlock], p)
		d.cur = d.cur[:len(d.cur)+c]
		n += c
		p = p[c:]
		if len(d.cur) == directBlock {
			d.queue <- d.cur
			d.cur = nil
		}
	}
	return n, nil
}

// drain waits for the writer goroutine to finish every queued buffer.
func (d *directFile) drain() error {
	if !d.closed {
		close(d.queue)
		<-d.done
		d.closed = true
	}
	return d.failed()
}

// Sync writes what is buffered (the tail through the page cache) and
// fsyncs. Nothing can be written after it; a second call returns what the
// first did.
func (d *directFile) Sync() error {
	if d.closed {
		if d.synced == nil {
			d.synced = d.failed()
		}
		return d.synced
	}
	d.synced = d.sync()
	return d.synced
}

func (d *directFile) sync() error {
	if err := d.drain(); err != nil {
		return err
	}
	if b := d.cur; b != nil {
		d.cur = nil
		defer putDirectBuf(b)
		if len(b)%directAlign != 0 {
			if err := d.clearDirect(); err != nil {
				return err
			}
		}
		if err := d.writeBlock(b); err != nil {
			return err
		}
	}
	return d.f.Sync()
}

// ReadAt implements File.
func (d *directFile) ReadAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("read %s: file is open for writing only", d.f.Name())
}

// Stat implements File.
func (d *directFile) Stat() (Info, error) {
	fi, err := d.f.Stat()
	if err != nil {
		return Info{}, err
	}
	return info(fi), nil
}

// Close implements File; buffered bytes not yet Synced are dropped.
func (d *directFile) Close() error {
	d.drain()
	if d.cur != nil {
		putDirectBuf(d.cur)
		d.cur = nil
	}
	return d.f.Close()
}
