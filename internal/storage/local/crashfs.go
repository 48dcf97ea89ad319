package local

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"
)

// ErrCrashed is returned by every CrashFS operation after the simulated
// machine died (SetFailAfter), until Crash is called.
var ErrCrashed = errors.New("crashfs: machine is down")

// CrashFS is an in-memory FS that models what survives power loss, for the
// power-loss tests: file contents are volatile until the file is fsynced,
// directory entries (create, mkdir, rename, link, remove) are volatile until
// their directory is fsynced. Crash reverts everything to the durable state,
// as a reboot after power loss would, and the FS stays usable.
type CrashFS struct {
	mu        sync.Mutex
	root      *cnode
	failAfter int // mutating operations left before the machine dies; <0: never
	down      bool
	Ops       int // mutating operations performed
	Syncs     int // fsyncs performed
}

type cnode struct {
	dir      bool
	data     []byte // current content (files)
	durable  []byte // content as of the last fsync (files)
	entries  map[string]*cnode
	dentries map[string]*cnode // entries as of the last fsync (dirs)
	mod      time.Time
}

func newDir() *cnode {
	return &cnode{dir: true, entries: map[string]*cnode{}, dentries: map[string]*cnode{}, mod: time.Now()}
}

var _ FS = (*CrashFS)(nil)

// NewCrashFS returns an empty file system with a durable root "/".
func NewCrashFS() *CrashFS { return &CrashFS{root: newDir(), failAfter: -1} }

// SetFailAfter makes the machine die after n more mutating operations
// (n < 0: never).
func (c *CrashFS) SetFailAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failAfter = n
}

// Crash reverts to the durable state and brings the machine back up.
func (c *CrashFS) Crash() {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*cnode]bool{}
	var revert func(n *cnode)
	revert = func(n *cnode) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.dir {
			n.data = bytes.Clone(n.durable)
			return
		}
		n.entries = map[string]*cnode{}
		for k, v := range n.dentries {
			n.entries[k] = v
			revert(v)
		}
	}
	revert(c.root)
	c.down = false
	c.failAfter = -1
}

// mutate counts a mutating operation and reports whether it may proceed.
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

// lookup finds the node at name.
func (c *CrashFS) lookup(name string) (*cnode, error) {
	n := c.root
	for _, p := range split(name) {
		if !n.dir {
			return nil, &fs.PathError{Op: "lookup", Path: name, Err: fs.ErrNotExist}
		}
		next, ok := n.entries[p]
		if !ok {
			return nil, &fs.PathError{Op: "lookup", Path: name, Err: fs.ErrNotExist}
		}
		n = next
	}
	return n, nil
}

// parent finds the directory holding name and the last component.
func (c *CrashFS) parent(name string) (*cnode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", &fs.PathError{Op: "parent", Path: name, Err: fs.ErrInvalid}
	}
	d, err := c.lookup(strings.Join(parts[:len(parts)-1], "/"))
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", &fs.PathError{Op: "parent", Path: name, Err: fmt.Errorf("not a directory")}
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
	d, base, err := c.parent(name)
	if err != nil {
		return nil, err
	}
	if _, ok := d.entries[base]; ok {
		return nil, &fs.PathError{Op: "create", Path: name, Err: fs.ErrExist}
	}
	n := &cnode{mod: time.Now()}
	d.entries[base] = n
	return &crashFile{c: c, n: n, write: true}, nil
}

// Open implements FS.
func (c *CrashFS) Open(name string) (File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, ErrCrashed
	}
	n, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	if n.dir {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("is a directory")}
	}
	return &crashFile{c: c, n: n}, nil
}

// RenameNoReplace implements FS.
func (c *CrashFS) RenameNoReplace(oldname, newname string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	od, ob, err := c.parent(oldname)
	if err != nil {
		return err
	}
	nd, nb, err := c.parent(newname)
	if err != nil {
		return err
	}
	n, ok := od.entries[ob]
	if !ok {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	if _, ok := nd.entries[nb]; ok {
		return &fs.PathError{Op: "rename", Path: newname, Err: fs.ErrExist}
	}
	delete(od.entries, ob)
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
	d, b, err := c.parent(name)
	if err != nil {
		return err
	}
	n, ok := d.entries[b]
	if !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.entries) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: fmt.Errorf("directory not empty")}
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
	d, b, err := c.parent(name)
	if err != nil {
		return err
	}
	if _, ok := d.entries[b]; ok {
		return &fs.PathError{Op: "mkdir", Path: name, Err: fs.ErrExist}
	}
	d.entries[b] = newDir()
	return nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (c *CrashFS) SyncDir(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.mutate(); err != nil {
		return err
	}
	n, err := c.lookup(name)
	if err != nil {
		return err
	}
	if !n.dir {
		return &fs.PathError{Op: "syncdir", Path: name, Err: fmt.Errorf("not a directory")}
	}
	n.dentries = map[string]*cnode{}
	for k, v := range n.entries {
		n.dentries[k] = v
	}
	c.Syncs++
	return nil
}

// ReadDir implements FS.
func (c *CrashFS) ReadDir(name string) ([]DirEntry, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down {
		return nil, ErrCrashed
	}
	n, err := c.lookup(name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fmt.Errorf("not a directory")}
	}
	var out []DirEntry
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
	n, err := c.lookup(name)
	if err != nil {
		return Info{}, err
	}
	return Info{Size: int64(len(n.data)), ModTime: n.mod, IsDir: n.dir}, nil
}

type crashFile struct {
	c     *CrashFS
	n     *cnode
	write bool
}

func (f *crashFile) Write(p []byte) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.c.mutate(); err != nil {
		return 0, err
	}
	if !f.write {
		return 0, fmt.Errorf("crashfs: file not open for writing")
	}
	f.n.data = append(f.n.data, p...)
	return len(p), nil
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if f.c.down {
		return 0, ErrCrashed
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

// Sync makes the file's current content durable.
func (f *crashFile) Sync() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	if err := f.c.mutate(); err != nil {
		return err
	}
	f.n.durable = bytes.Clone(f.n.data)
	f.c.Syncs++
	return nil
}

func (f *crashFile) Close() error { return nil }
