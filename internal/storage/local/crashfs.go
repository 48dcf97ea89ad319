package local

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrCrashed is returned by every CrashFS operation once the simulated
// machine has died (SetFailAfter), until Crash brings it back, and by file
// handles opened before a crash.
var ErrCrashed = errors.New("crashfs: machine is down")

// CrashFS is an in-memory FS that models what survives power loss, like a
// kernel that keeps everything in its page cache until told to fsync:
//
//   - a file's content is volatile until the file is fsynced; fsync makes
//     its current content durable, whatever names it has;
//   - a directory's entries (create, mkdir, rename, link, remove) are
//     volatile until that directory is fsynced; fsync makes its current
//     entry list durable;
//   - so a renamed file keeps, after a crash, the content last fsynced on
//     the file, under the names its directories last fsynced; and a
//     directory made by mkdir whose parent was not fsynced disappears with
//     everything in it.
//
// Crash reverts to exactly the durable state. CrashRandom is harsher and as
// real: each volatile change may or may not have reached the disk (the
// kernel writes dirty data back on its own), and an appended file may keep
// any length between what was fsynced and what was written. After either,
// the machine is up again and the FS usable, as after a reboot; handles
// opened before are dead.
//
// SetFailAfter kills the machine after n more mutating operations, so that a
// test can stop a program at every possible point. Paths are slash paths
// from the root "/", which exists and is durable. All methods are safe for
// concurrent use.
type CrashFS struct {
	// Now stamps modification times; default time.Now. Set it before use.
	Now func() time.Time

	mu        sync.Mutex
	root      *cnode
	failAfter int // mutating operations left before the machine dies; <0: never
	down      bool
	epoch     int // number of crashes; handles from an older epoch are dead
	noRename  bool

	// Counters, for tests; read them while no operation runs (or use
	// Counters). Ops counts mutating operations performed (create, write,
	// fsync, mkdir, rename, link, remove); Syncs the fsyncs of files and
	// directories among them; Crashes the calls of Crash and CrashRandom.
	Ops, Syncs, Crashes int
}

type cnode struct {
	dir      bool
	data     []byte            // file: current content
	durable  []byte            // file: content as of the last fsync
	entries  map[string]*cnode // dir: current entries
	dentries map[string]*cnode // dir: entries as of the last fsync
	mod      time.Time
}

var _ FS = (*CrashFS)(nil)

// NewCrashFS returns an empty file system: a durable root directory "/".
func NewCrashFS() *CrashFS {
	c := &CrashFS{failAfter: -1}
	c.root = c.newDir()
	return c
}

func (c *CrashFS) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *CrashFS) newDir() *cnode {
	return &cnode{dir: true, entries: map[string]*cnode{}, dentries: map[string]*cnode{}, mod: c.now()}
}

// SetFailAfter makes the machine die after n more mutating operations
// (n < 0: never): from then on every operation fails with ErrCrashed, and
// the test calls Crash or CrashRandom.
func (c *CrashFS) SetFailAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failAfter = n
}

// SetNoRenameNoReplace makes RenameNoReplace fail with an error wrapping
// errors.ErrUnsupported, like a file system without RENAME_NOREPLACE, so
// that the backend's link + unlink fallback runs.
func (c *CrashFS) SetNoRenameNoReplace(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.noRename = on
}

// IsDown reports whether the machine has died (SetFailAfter) and not been
// brought back by a crash yet.
func (c *CrashFS) IsDown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// Counters returns Ops, Syncs and Crashes under the lock.
func (c *CrashFS) Counters() (ops, syncs, crashes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Ops, c.Syncs, c.Crashes
}

// Crash is power loss and reboot: everything reverts to the durable state.
func (c *CrashFS) Crash() { c.crash(nil) }

// CrashRandom is power loss and reboot where, using r, each change not yet
// fsynced independently did or did not reach the disk: every directory
// entry added, removed or replaced since its directory's last fsync, and the
// length of every file appended to since its last fsync (anywhere between
// the fsynced length and the written one). What was fsynced always stays.
func (c *CrashFS) CrashRandom(r *rand.Rand) { c.crash(r) }

func (c *CrashFS) crash(r *rand.Rand) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*cnode]bool{}
	var reboot func(n *cnode)
	reboot = func(n *cnode) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.dir {
			content := n.durable
			if r != nil && len(n.data) > len(n.durable) && bytes.HasPrefix(n.data, n.durable) {
				content = n.data[:len(n.durable)+r.IntN(len(n.data)-len(n.durable)+1)]
			}
			n.data, n.durable = bytes.Clone(content), bytes.Clone(content)
			return
		}
		after := map[string]*cnode{}
		for k, v := range n.dentries {
			after[k] = v
		}
		if r != nil {
			names := make([]string, 0, len(n.entries)+len(n.dentries))
			for k := range n.entries {
				names = append(names, k)
			}
			for k := range n.dentries {
				if _, ok := n.entries[k]; !ok {
					names = append(names, k)
				}
			}
			sort.Strings(names) // map order must not change what a seed does
			for _, k := range names {
				cur, ok := n.entries[k]
				if cur == n.dentries[k] || r.IntN(2) == 0 {
					continue
				}
				if ok {
					after[k] = cur
				} else {
					delete(after, k)
				}
			}
		}
		n.entries = after
		n.dentries = map[string]*cnode{}
		names := make([]string, 0, len(after))
		for k, v := range after {
			n.dentries[k] = v
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			reboot(after[k])
		}
	}
	reboot(c.root)
	c.down = false
	c.failAfter = -1
	c.epoch++
	c.Crashes++
}

// mutate counts a mutating operation and reports whether it may proceed.
// Callers hold c.mu.
func (c *CrashFS) mutate() error {
	if c.down {
		return ErrCrashed
	}
	if c.failAfter == 0 {
		c.down = true
		return ErrCrashed
	}
	if c.failAfter > 0 {
		c.failAfter--
	}
	c.Ops++
	return nil
}

func split(name string) []string {
	name = strings.Trim(name, "/")
	if name == "" {
		return nil
	}
	return strings.Split(name, "/")
}

// lookup finds the node at name. Callers hold c.mu.
func (c *CrashFS) lookup(op, name string) (*cnode, error) {
	n := c.root
	for _, p := range split(name) {
		if !n.dir {
			return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		next, ok := n.entries[p]
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
		}
		n = next
	}
	return n, nil
}

// parent finds the directory holding name and the last component.
func (c *CrashFS) parent(op, name string) (*cnode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.EBUSY}
	}
	d, err := c.lookup(op, strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
	}
	return d, parts[len(parts)-1], nil
}

// CreateExcl implements FS.
func (c *CrashFS) CreateExcl(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return nil, err
	}
	d, base, err := c.parent("open", name)
	if err != nil {
		return nil, err
	}
	if _, ok := d.entries[base]; ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	}
	n := &cnode{mod: c.now()}
	d.entries[base] = n
	return &crashFile{c: c, n: n, name: name, write: true, epoch: c.epoch}, nil
}

// Open implements FS.
func (c *CrashFS) Open(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, ErrCrashed
	}
	n, err := c.lookup("open", name)
	if err != nil {
		return nil, err
	}
	return &crashFile{c: c, n: n, name: name, epoch: c.epoch}, nil
}

// RenameNoReplace implements FS.
func (c *CrashFS) RenameNoReplace(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	if c.noRename {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: fmt.Errorf("%w (%w)", errors.ErrUnsupported, syscall.EINVAL)}
	}
	od, ob, err := c.parent("rename", oldname)
	if err != nil {
		return err
	}
	nd, nb, err := c.parent("rename", newname)
	if err != nil {
		return err
	}
	n, ok := od.entries[ob]
	if !ok {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: syscall.ENOENT}
	}
	if _, ok := nd.entries[nb]; ok {
		return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: syscall.EEXIST}
	}
	delete(od.entries, ob)
	nd.entries[nb] = n
	return nil
}

// Link implements FS.
func (c *CrashFS) Link(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	n, err := c.lookup("link", oldname)
	if err != nil {
		return err
	}
	if n.dir {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EPERM}
	}
	nd, nb, err := c.parent("link", newname)
	if err != nil {
		return err
	}
	if _, ok := nd.entries[nb]; ok {
		return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: syscall.EEXIST}
	}
	nd.entries[nb] = n
	return nil
}

// Remove implements FS.
func (c *CrashFS) Remove(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	d, b, err := c.parent("remove", name)
	if err != nil {
		return err
	}
	n, ok := d.entries[b]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	}
	if n.dir && len(n.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(d.entries, b)
	return nil
}

// Mkdir implements FS.
func (c *CrashFS) Mkdir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	d, b, err := c.parent("mkdir", name)
	if err != nil {
		return err
	}
	if _, ok := d.entries[b]; ok {
		return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.EEXIST}
	}
	d.entries[b] = c.newDir()
	return nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (c *CrashFS) SyncDir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	n, err := c.lookup("fsync", name)
	if err != nil {
		return err
	}
	if !n.dir {
		return &fs.PathError{Op: "fsync", Path: name, Err: syscall.ENOTDIR}
	}
	n.dentries = make(map[string]*cnode, len(n.entries))
	for k, v := range n.entries {
		n.dentries[k] = v
	}
	c.Syncs++
	return nil
}

// ReadDir implements FS; entries are sorted by name.
func (c *CrashFS) ReadDir(name string) ([]DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, ErrCrashed
	}
	n, err := c.lookup("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]DirEntry, 0, len(n.entries))
	for k, v := range n.entries {
		out = append(out, DirEntry{Name: k, IsDir: v.dir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Stat implements FS.
func (c *CrashFS) Stat(name string) (Info, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return Info{}, ErrCrashed
	}
	n, err := c.lookup("stat", name)
	if err != nil {
		return Info{}, err
	}
	return n.info(), nil
}

func (n *cnode) info() Info {
	return Info{Size: int64(len(n.data)), ModTime: n.mod, IsDir: n.dir}
}

// crashFile is an open CrashFS file: appends if opened by CreateExcl,
// reads otherwise.
type crashFile struct {
	c      *CrashFS
	n      *cnode
	name   string
	write  bool
	epoch  int
	closed bool
}

// alive reports why the handle cannot be used. Callers hold c.mu.
func (f *crashFile) alive() error {
	switch {
	case f.c.down || f.epoch != f.c.epoch:
		return ErrCrashed
	case f.closed:
		return &fs.PathError{Op: "use", Path: f.name, Err: fs.ErrClosed}
	}
	return nil
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.alive(); err != nil {
		return 0, err
	}
	if !f.write {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	if err := f.c.mutate(); err != nil {
		return 0, err
	}
	f.n.data = append(f.n.data, p...)
	f.n.mod = f.c.now()
	return len(p), nil
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.alive(); err != nil {
		return 0, err
	}
	if f.n.dir {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EISDIR}
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Sync makes the file's current content durable (a directory's entries,
// for a directory opened with Open).
func (f *crashFile) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.alive(); err != nil {
		return err
	}
	if err := f.c.mutate(); err != nil {
		return err
	}
	if f.n.dir {
		f.n.dentries = make(map[string]*cnode, len(f.n.entries))
		for k, v := range f.n.entries {
			f.n.dentries[k] = v
		}
	} else {
		f.n.durable = bytes.Clone(f.n.data)
	}
	f.c.Syncs++
	return nil
}

func (f *crashFile) Stat() (Info, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.alive(); err != nil {
		return Info{}, err
	}
	return f.n.info(), nil
}

// Close never fails, as a close after a crash has nothing left to lose.
func (f *crashFile) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	f.closed = true
	return nil
}
