package vault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault/blob"
	"github.com/lifeboat-vault/lifeboat/internal/vault/index"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// RestoreOptions describe one restore.
type RestoreOptions struct {
	// Target is a directory that does not exist yet or is empty (with
	// Resume, it may hold what an earlier restore of the same point left).
	// The node at Path becomes Target (a directory) or Target/<name>
	// (anything else).
	Target string
	Path   string
	// Resume finishes an earlier restore of the same point and path into
	// Target that was interrupted, failed or killed: Target must hold that
	// restore's record (RestoreRecord) unless it is empty. A file already
	// there with the point's size, mode and modification time whose content
	// hashes to the point's blobs is kept; anything else in the way of the
	// point's files, symlinks and hard links is replaced. A directory of the
	// point found as something else, or a file found as a directory, is
	// refused. Target itself must not be a symlink. A restore holds a lock
	// on its record while it runs: another restore resuming into the same
	// target meanwhile is refused as unavailable.
	Resume bool
	// KeepRecord leaves the record in Target when the restore succeeds, for
	// a caller restoring several components that may resume them all after
	// a failure (a server job's retry); it removes the records once every
	// one is done (RemoveRestoreRecord).
	KeepRecord bool
	// RecordBy names who restores (a server job) in the record: a resumed
	// restore takes over only a record written with the same name.
	RecordBy string
	// Owners restores owner and group (by number); default: when running as root.
	Owners   *bool
	Progress *Progress
	Warn     func(path string, err error)
}

// RestoreResult counts what was restored.
type RestoreResult struct {
	Files, Dirs, Symlinks, HardLinks, Bytes int64
	// Kept counts the files (of Files) a resumed restore found whole and
	// kept, KeptBytes their size.
	Kept, KeptBytes int64
	// Failed lists the paths that could not be restored, with the reason.
	Failed []string
	// Warnings lists what was restored incompletely: an owner, mode or
	// time that could not be set (a root restore onto NFS with root
	// squashing, onto FAT), a damaged file that could not be removed. At
	// most maxRestoreWarnings, then a count of the rest.
	Warnings []string
}

const maxRestoreWarnings = 1000

// ErrNothingRestored is wrapped by the errors of a restore refused before
// it wrote anything (its target missing, not empty, or holding another
// restore's record).
var ErrNothingRestored = errors.New("nothing was restored")

// refused is such an error.
func refused(code lifeboat.Code, format string, args ...any) error {
	return &lifeboat.Error{Code: code, Message: fmt.Sprintf(format, args...), Err: ErrNothingRestored}
}

// RestoreRecord is the file a restore keeps in its target while it runs,
// naming the point and path it restores (and who, with RecordBy): what a
// restore that stopped left is resumed only by a restore of the same point
// and path (by the same one). A restore that
// finishes removes it.
const RestoreRecord = ".lifeboat-restore"

func restoreRecord(p *manifest.Point, path, by string) []byte {
	b := fmt.Appendf(nil, "point %s\npath %s\n", p.ID, strings.Trim(path, "/"))
	if by != "" {
		b = fmt.Appendf(b, "by %s\n", by)
	}
	return b
}

type rdir struct {
	fd     int
	node   *tree.Node
	path   string
	parent int  // index into dirs, -1 for the target
	made   bool // made by this restore (a failed one removes it if empty)
}

type rfile struct {
	dir       int
	name      string
	path      string
	node      *tree.Node
	remaining atomic.Int32
	failed    atomic.Bool
	linkOf    int // for hard links: index of the file restored first, else -1
}

type rref struct {
	loc  index.Location
	file int
	off  int64
}

type restorer struct {
	v      *Vault
	ctx    context.Context
	opts   RestoreOptions
	owners bool
	record bool // RestoreRecord is in the target, to remove when done
	// recordFd holds the lock on the record while the restore runs (-1:
	// none).
	recordFd int
	prog     *Progress
	dirs     []*rdir
	files    []*rfile
	links    []int // files that are hard links of earlier ones
	syms     []int // files slice index of symlinks
	packs    map[blob.PackID][]rref
	inodes   map[[2]uint64]int

	fdmu sync.Mutex
	fds  map[int]int

	// Descriptor budgets (from RLIMIT_NOFILE): directories kept open after
	// they are planned, and files kept open between their writes.
	keepDirs, keepFiles int

	mu     sync.Mutex
	res    RestoreResult
	failed map[int]string
	nwarn  atomic.Int64 // warnings so far (res.Warnings keeps the first ones)
}

// Restore writes the node at opts.Path of point p into opts.Target. Files
// whose data is damaged are removed and listed in Failed; the rest restore.
func (v *Vault) Restore(ctx context.Context, p *manifest.Point, opts RestoreOptions) (_ *RestoreResult, err error) {
	// The point may come from another process since this handle loaded
	// its index (a long-lived server's handle, a CLI backup): its index
	// objects exist, since they were written before its manifest.
	if _, err := v.refreshIndex(ctx); err != nil {
		return nil, err
	}
	sel, err := v.Lookup(ctx, p, opts.Path)
	if err != nil {
		return nil, err
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	r := &restorer{v: v, ctx: ctx, opts: opts, recordFd: -1, prog: opts.Progress, packs: map[blob.PackID][]rref{},
		inodes: map[[2]uint64]int{}, fds: map[int]int{}, failed: map[int]string{}}
	r.keepDirs, r.keepFiles = fdBudgets()
	r.owners = os.Geteuid() == 0
	if opts.Owners != nil {
		r.owners = *opts.Owners
	}
	tfd, created, empty, err := prepareTarget(opts.Target, opts.Resume)
	if err != nil {
		return nil, err
	}
	if err := r.startRecord(tfd, p, empty); err != nil {
		unix.Close(tfd)
		if created {
			unix.Rmdir(opts.Target)
		}
		return nil, err
	}
	defer func() {
		// Files left part-written by a failed or cancelled restore (the
		// data workers have all returned): closed, and removed, since at
		// their full size they would pass for restored with zeros in them.
		for _, fd := range r.fds {
			unix.Close(fd)
		}
		if err != nil {
			for _, f := range r.files {
				if f.node.Type == tree.File && f.linkOf < 0 && f.remaining.Load() > 0 {
					r.inDir(f.dir, func(dfd int) error { return unix.Unlinkat(dfd, f.name, 0) })
				}
			}
			// Directories left empty go too, deepest first, and the
			// target if this restore made it: when nothing was restored,
			// nothing is left, and running it again into the same place
			// works (a skeleton of empty directories made it "not empty").
			// (Only those it made: a resumed restore takes over existing
			// ones, which may be the user's.)
			for di := len(r.dirs) - 1; di > 0; di-- {
				d := r.dirs[di]
				if d.made {
					r.inDir(d.parent, func(dfd int) error { return unix.Unlinkat(dfd, d.node.Name, unix.AT_REMOVEDIR) })
				}
			}
			// The record stays with what is left, for --resume; alone, it goes.
			if r.record {
				if names, rerr := dirNames(tfd, 2); rerr == nil && len(names) == 1 && names[0] == RestoreRecord {
					unix.Unlinkat(tfd, RestoreRecord, 0)
				}
			}
		} else if r.record && !opts.KeepRecord {
			unix.Unlinkat(tfd, RestoreRecord, 0)
		}
		if r.recordFd >= 0 {
			unix.Close(r.recordFd) // the lock goes with it
		}
		for _, d := range r.dirs {
			if d.fd >= 0 {
				unix.Close(d.fd)
			}
		}
		if err != nil && created {
			unix.Rmdir(opts.Target)
		}
	}()
	if sel.Type == tree.Dir {
		if opts.Resume {
			// An earlier run may have set a mode that keeps this one out
			// (0555); the point's mode is set again at the end.
			unix.Fchmod(tfd, 0o700)
		}
		r.dirs = append(r.dirs, &rdir{fd: tfd, node: sel, path: opts.Target, parent: -1})
		r.res.Dirs++
		if err := r.plan(0); err != nil {
			return nil, err
		}
	} else {
		r.dirs = append(r.dirs, &rdir{fd: tfd, node: nil, path: opts.Target, parent: -1})
		if err := r.planChild(0, sel); err != nil {
			return nil, err
		}
	}
	if err := r.data(); err != nil {
		return nil, err
	}
	r.finishLinks()
	r.finishDirs()
	for i, msg := range r.failed {
		r.res.Failed = append(r.res.Failed, r.files[i].path+": "+msg)
	}
	sort.Strings(r.res.Failed)
	sort.Strings(r.res.Warnings)
	if n := r.nwarn.Load(); n > maxRestoreWarnings {
		r.res.Warnings = append(r.res.Warnings, fmt.Sprintf("... and %d more", n-maxRestoreWarnings))
	}
	return &r.res, nil
}

// prepareTarget makes or checks the target directory and opens it; created
// says this call made it, empty that it holds nothing. A resumed restore's
// target may hold something (startRecord checks what), and is never
// reached through a symlink.
func prepareTarget(dir string, resume bool) (fd int, created, empty bool, err error) {
	if dir == "" {
		return -1, false, false, refused(lifeboat.EInvalid, "no restore target given")
	}
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if resume {
		flags |= unix.O_NOFOLLOW
	}
	err = os.Mkdir(dir, 0o700)
	created = err == nil
	if err != nil && !errors.Is(err, os.ErrExist) {
		return -1, false, false, refusedTarget(fmt.Sprintf("restore target %s", dir), errors.Unwrap(err))
	}
	fd, err = openat(unix.AT_FDCWD, dir, flags, 0)
	if err != nil {
		if created {
			os.Remove(dir)
		}
		if resume && (err == unix.ELOOP || err == unix.ENOTDIR) {
			return -1, false, false, refused(lifeboat.EInvalid, "restore target %s is a symlink or not a directory: --resume takes the directory itself", dir)
		}
		return -1, false, false, refused(lifeboat.EInvalid, "restore target %s: %v", dir, err)
	}
	names, rerr := dirNames(fd, 1)
	if rerr != nil {
		unix.Close(fd)
		return -1, false, false, refused(lifeboat.EInvalid, "restore target %s: %v", dir, rerr)
	}
	if len(names) > 0 && !resume {
		unix.Close(fd)
		return -1, false, false, refused(lifeboat.EExists, "restore target %s is not empty; restore into a new or empty directory, or add --resume to finish an interrupted restore of the same point there", dir)
	}
	return fd, created, len(names) == 0, nil
}

// dirNames lists up to n names in the directory open as dfd, through a
// descriptor of its own (reading a directory moves its descriptor's offset).
func dirNames(dfd, n int) ([]string, error) {
	fd, err := openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	names, err := f.Readdirnames(n)
	if err == io.EOF {
		err = nil
	}
	return names, err
}

// startRecord writes the restore's record into an empty target, or checks,
// for a resumed restore into one that is not, that the record there names
// the same point and path.
func (r *restorer) startRecord(tfd int, p *manifest.Point, empty bool) error {
	want := restoreRecord(p, r.opts.Path, r.opts.RecordBy)
	if !empty {
		// Read-write: NFS takes an exclusive lock on a writable file only.
		fd, err := openat(tfd, RestoreRecord, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		var got []byte
		if err == nil {
			got, err = readRecord(fd)
			if err != nil {
				unix.Close(fd)
			}
		}
		switch {
		case err == unix.ENOENT:
			return refused(lifeboat.EExists, "restore target %s is not empty and holds no unfinished restore to finish (no %s): restore into a new or empty directory", r.opts.Target, RestoreRecord)
		case err != nil:
			return refused(lifeboat.EInvalid, "restore target %s: %s: %v", r.opts.Target, RestoreRecord, err)
		case !bytes.Equal(got, want):
			unix.Close(fd)
			return refused(lifeboat.EExists, "restore target %s holds an unfinished restore of something else (%s: %s), not of point %s path %q: resume that one, or restore into a new or empty directory",
				r.opts.Target, RestoreRecord, strings.ReplaceAll(strings.TrimSpace(string(got)), "\n", ", "), p.ID[:8], strings.Trim(r.opts.Path, "/"))
		}
		if err := r.lockRecord(fd); err != nil {
			return err
		}
		r.record = true
		return nil
	}
	fd, err := openat(tfd, RestoreRecord, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return refusedTarget(fmt.Sprintf("restore target %s: %s", r.opts.Target, RestoreRecord), err)
	}
	_, err = unix.Write(fd, want)
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(tfd, RestoreRecord, 0)
		return refusedTarget(fmt.Sprintf("restore target %s: %s", r.opts.Target, RestoreRecord), err)
	}
	if err := r.lockRecord(fd); err != nil {
		return err // a resumed restore took it between the create and the lock: its target
	}
	r.record = true
	return nil
}

// readRecord reads an open record (at most 4 KiB).
func readRecord(fd int) ([]byte, error) {
	var b [4096]byte
	n, err := unix.Pread(fd, b[:], 0)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// lockRecord takes the lock on the open record, or closes it and refuses:
// another restore is writing into the target. A file system that takes no
// locks (some NFS mounts) restores without.
func (r *restorer) lockRecord(fd int) error {
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
		unix.Close(fd)
		return refused(lifeboat.EUnavailable, "restore target %s: another restore is writing into it (%s is locked): wait for it to end", r.opts.Target, RestoreRecord)
	}
	r.recordFd = fd
	return nil
}

// RemoveRestoreRecord removes the record a restore with KeepRecord left in
// target (through target itself, never a symlink in its place).
func RemoveRestoreRecord(target string) error {
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: target, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Unlinkat(fd, RestoreRecord, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: filepath.Join(target, RestoreRecord), Err: err}
	}
	return nil
}

// refusedTarget is targetError before anything was written.
func refusedTarget(what string, err error) error {
	e := targetError(what, err)
	e.Err = fmt.Errorf("%w: %w", ErrNothingRestored, err)
	return e
}

// targetError is a failure to write what into the restore target: a full
// or read-only file system is the target being unavailable (exit 6), as a
// failed write is; anything else (a name the file system refuses, a
// permission) is bad input.
func targetError(what string, err error) *lifeboat.Error {
	code := lifeboat.EInvalid
	if errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, unix.EROFS) || errors.Is(err, unix.EIO) {
		code = lifeboat.EUnavailable
	}
	return lifeboat.Errorf(code, "%s: %v", what, err)
}

// plan creates the directory tree under dirs[di] and the (empty) files, and
// records which blob goes where. Names come from validated trees and are used
// only as single components relative to a directory descriptor.
func (r *restorer) plan(di int) error {
	d := r.dirs[di]
	t, err := r.v.LoadTree(r.ctx, *d.node.Subtree)
	if err != nil {
		r.fail(-1, d.path, err)
		var ce *CorruptError
		if errors.As(err, &ce) {
			return nil // the directory stays empty; reported
		}
		return storageError(r.v.be, err)
	}
	for _, c := range t.Nodes {
		if err := r.planChild(di, c); err != nil {
			return err
		}
	}
	return nil
}

func (r *restorer) planChild(di int, c *tree.Node) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	d := r.dirs[di]
	if di == 0 && c.Name == RestoreRecord && r.record {
		// The point's own file of that name wins: this restore keeps no
		// record (and cannot be resumed).
		unix.Unlinkat(d.fd, RestoreRecord, 0)
		r.record = false
	}
	path := d.path + "/" + c.Name
	switch c.Type {
	case tree.Dir:
		err := ignoringEINTR(func() error { return unix.Mkdirat(d.fd, c.Name, 0o700) })
		made := err == nil
		if err == unix.EEXIST && r.opts.Resume {
			err = nil // a directory, or the open below refuses it (never through a symlink)
		}
		if err != nil {
			return targetError("restore "+path+": mkdir", err)
		}
		fd, err := openat(d.fd, c.Name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if r.opts.Resume && (err == unix.ENOTDIR || err == unix.ELOOP) {
				return lifeboat.Errorf(lifeboat.EExists, "restore %s: in the way of a directory of the point, something else is there; --resume replaces files, not that", path)
			}
			return targetError("restore "+path+": open", err)
		}
		if !made {
			// An earlier run may have set a mode that keeps this one out
			// (0555); the point's mode is set again at the end.
			unix.Fchmod(fd, 0o700)
		}
		r.dirs = append(r.dirs, &rdir{fd: fd, node: c, path: path, parent: di, made: made})
		r.res.Dirs++
		nd := len(r.dirs) - 1
		if err := r.plan(nd); err != nil {
			return err
		}
		if nd > r.keepDirs {
			// Over the budget of open directories: dirFD opens it
			// again when needed (a tree of more directories than
			// descriptors failed with "too many open files").
			unix.Close(fd)
			r.dirs[nd].fd = -1
		}
		return nil
	case tree.Symlink:
		r.files = append(r.files, &rfile{dir: di, name: c.Name, path: path, node: c, linkOf: -1})
		r.syms = append(r.syms, len(r.files)-1)
		return nil
	case tree.File:
		fi := len(r.files)
		f := &rfile{dir: di, name: c.Name, path: path, node: c, linkOf: -1}
		r.files = append(r.files, f)
		if c.Links > 1 {
			key := [2]uint64{c.Dev, c.Inode}
			if first, ok := r.inodes[key]; ok {
				f.linkOf = first
				r.links = append(r.links, fi)
				return nil
			}
			r.inodes[key] = fi
		}
		if r.opts.Resume {
			kept, err := r.keepOrClear(d.fd, c, path)
			if err != nil {
				return err
			}
			if kept {
				r.restored()
				r.prog.Bytes.Add(c.Size)
				r.mu.Lock()
				r.res.Kept++
				r.res.KeptBytes += c.Size
				r.mu.Unlock()
				return nil
			}
		}
		fd, err := openat(d.fd, c.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return targetError("restore "+path+": create", err)
		}
		if c.Size > 0 {
			if err := ignoringEINTR(func() error { return unix.Ftruncate(fd, c.Size) }); err != nil {
				unix.Close(fd)
				return lifeboat.Errorf(lifeboat.EUnavailable, "restore %s: truncate: %v", path, err)
			}
		}
		n := int32(0)
		_, missing, err := r.blobsOf(c, func(off int64, loc index.Location) error {
			r.packs[loc.Pack] = append(r.packs[loc.Pack], rref{loc: loc, file: fi, off: off})
			n++
			return nil
		})
		if err != nil {
			unix.Close(fd)
			unix.Unlinkat(d.fd, c.Name, 0) // created at full size: never left looking restored
			return err
		}
		if missing != nil {
			f.failed.Store(true)
			r.fail(fi, path, &CorruptError{Object: "index", Blob: missing.String(), Err: errors.New("blob not in any index")})
		}
		if f.failed.Load() || n == 0 {
			// Nothing to write: finish now (a failed file is removed).
			r.finishFile(fi, fd)
			return nil
		}
		f.remaining.Store(n)
		unix.Close(fd)
		return nil
	}
	return lifeboat.Errorf(lifeboat.ECorrupt, "restore %s: unknown node type %q", path, c.Type)
}

// keepOrClear is a resumed restore's look at the name of file node c in
// directory dfd: a regular file with c's size, mode and modification time
// (a restore sets the time last) whose content hashes to c's blobs is whole
// and kept; anything else but a directory is removed, to be restored anew.
func (r *restorer) keepOrClear(dfd int, c *tree.Node, path string) (kept bool, err error) {
	var st unix.Stat_t
	err = ignoringEINTR(func() error { return unix.Fstatat(dfd, c.Name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	switch {
	case err == unix.ENOENT:
		return false, nil
	case err != nil:
		return false, targetError("restore "+path+": stat", err)
	case st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == c.Size && st.Mode&0o7777 == c.Mode&0o7777 && st.Mtim.Nano() == c.MTime &&
		(!r.owners || st.Uid == c.UID && st.Gid == c.GID):
		// Looks whole. After a power loss a file can come back with its
		// size and time but not its data: the content must hash to the
		// point's blobs.
		ok, err := r.wholeFile(dfd, c, &st)
		if err != nil || ok {
			return ok, err
		}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return false, lifeboat.Errorf(lifeboat.EExists, "restore %s: a directory is in the way of a file of the point; --resume replaces files, not directories", path)
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(dfd, c.Name, 0) }); err != nil && err != unix.ENOENT {
		return false, targetError("restore "+path+": remove what an earlier restore left", err)
	}
	return false, nil
}

// wholeFile reports whether the file at c's name in dfd (the one described
// by st) holds exactly c's content: each extent hashes to its blob id.
func (r *restorer) wholeFile(dfd int, c *tree.Node, st *unix.Stat_t) (bool, error) {
	fd, err := openat(dfd, c.Name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, nil // gone or changed since: restored anew
	}
	file := os.NewFile(uintptr(fd), c.Name)
	defer file.Close()
	var now unix.Stat_t
	if unix.Fstat(fd, &now) != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		return false, nil
	}
	errDiffers := errors.New("differs from the point")
	var buf []byte
	end, missing, err := r.blobsOf(c, func(off int64, loc index.Location) error {
		buf = slices.Grow(buf[:0], int(loc.RawLength))[:loc.RawLength]
		if _, err := file.ReadAt(buf, off); err != nil || r.v.Hash(buf) != loc.ID {
			return errDiffers
		}
		return nil
	})
	switch {
	case errors.Is(err, errDiffers) || missing != nil:
		return false, nil
	case err != nil:
		return false, err
	}
	return end == c.Size, nil
}

// blobsOf calls fn for each blob of file node c, in order, with its offset
// in the file and its location, and returns where the content ends. A blob
// this handle does not know may have been written by another process since
// it loaded the index (a long-lived server's handle, a CLI backup):
// lookupFresh looks again. It stops at fn's error, or at a blob no index
// knows, which it returns as missing.
func (r *restorer) blobsOf(c *tree.Node, fn func(off int64, loc index.Location) error) (end int64, missing *blob.ID, err error) {
	for _, e := range c.Content {
		if e.ID == nil {
			end += e.Hole
			continue
		}
		loc, ok, err := r.v.lookupFresh(r.ctx, *e.ID)
		if err != nil {
			return end, nil, err
		}
		if !ok {
			return end, e.ID, nil
		}
		if err := fn(end, loc); err != nil {
			return end, nil, err
		}
		end += int64(loc.RawLength)
	}
	return end, nil, nil
}

func (r *restorer) fail(fi int, path string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if fi < 0 {
		r.res.Failed = append(r.res.Failed, path+": "+err.Error())
	} else if _, ok := r.failed[fi]; !ok {
		r.failed[fi] = err.Error()
	}
	if r.opts.Warn != nil {
		r.opts.Warn(path, err)
	}
}

// data reads each pack once (in merged ranges) and writes its blobs into
// every file that needs them.
func (r *restorer) data() error {
	ids := make([]blob.PackID, 0, len(r.packs))
	for p := range r.packs {
		ids = append(ids, p)
	}
	sort.Slice(ids, func(i, j int) bool { return string(ids[i][:]) < string(ids[j][:]) })
	g, gctx := errgroup.WithContext(r.ctx)
	g.SetLimit(r.v.opts.Workers + 2)
	for _, p := range ids {
		refs := r.packs[p]
		g.Go(func() error { return r.restorePack(gctx, p, refs) })
	}
	return g.Wait()
}

// Blobs of one pack are read in ranges: neighbours closer than mergeGap are
// read together, up to maxRange bytes per read (bounding memory per worker).
const (
	mergeGap = 1 << 20
	maxRange = 4 << 20
)

func (r *restorer) restorePack(ctx context.Context, p blob.PackID, refs []rref) error {
	var framedBuf, plainBuf []byte
	sort.Slice(refs, func(i, j int) bool { return refs[i].loc.Offset < refs[j].loc.Offset })
	for start := 0; start < len(refs); {
		end := start + 1
		lo := int64(refs[start].loc.Offset)
		hi := lo + int64(refs[start].loc.Length)
		for end < len(refs) && int64(refs[end].loc.Offset) <= hi+mergeGap && int64(refs[end].loc.Offset)+int64(refs[end].loc.Length)-lo <= maxRange {
			hi = max(hi, int64(refs[end].loc.Offset)+int64(refs[end].loc.Length))
			end++
		}
		buf, err := r.readRange(ctx, p, lo, hi-lo)
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				return storageError(r.v.be, err)
			}
		}
		var last blob.ID
		var plain []byte
		var perr error
		for _, ref := range refs[start:end] {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				r.blobFailed(ref, err)
				continue
			}
			if plain == nil || ref.loc.ID != last {
				o := int64(ref.loc.Offset) - lo
				if o+int64(ref.loc.Length) > int64(len(buf)) {
					plain, perr = nil, &CorruptError{Object: p.ObjectName(), Blob: ref.loc.ID.String(), Err: errors.New("pack truncated")}
				} else {
					if cap(framedBuf) < int(ref.loc.Length) {
						framedBuf = make([]byte, 0, ref.loc.Length)
					}
					if cap(plainBuf) < int(ref.loc.RawLength) {
						plainBuf = make([]byte, 0, ref.loc.RawLength)
					}
					plain, perr = r.v.openBlobInto(ctx, framedBuf, plainBuf, ref.loc, buf[o:o+int64(ref.loc.Length)])
				}
				last = ref.loc.ID
			}
			if perr != nil {
				var ce *CorruptError
				if !errors.As(perr, &ce) {
					// Not damage (a data key that could not be fetched,
					// say): the file is fine, the restore stops.
					return storageError(r.v.be, perr)
				}
				r.blobFailed(ref, perr)
				continue
			}
			if err := r.write(ref, plain); err != nil {
				return err
			}
		}
		start = end
	}
	return nil
}

func (r *restorer) readRange(ctx context.Context, p blob.PackID, off, n int64) ([]byte, error) {
	rc, err := r.v.be.Get(ctx, p.ObjectName(), off, n)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, &CorruptError{Object: p.ObjectName(), Err: errors.New("pack missing")}
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, n)
	m, err := io.ReadFull(rc, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return buf[:m], nil // short: the blobs past the end fail one by one
	}
	return buf, err
}

func (r *restorer) blobFailed(ref rref, err error) {
	f := r.files[ref.file]
	f.failed.Store(true)
	r.fail(ref.file, f.path, err)
	r.release(ref.file)
}

func (r *restorer) write(ref rref, plain []byte) error {
	f := r.files[ref.file]
	if !f.failed.Load() {
		fd, owned, err := r.fd(ref.file)
		if err != nil {
			return err
		}
		err = pwriteFull(fd, plain, ref.off)
		if owned {
			unix.Close(fd)
		}
		if err != nil {
			return lifeboat.Errorf(lifeboat.EUnavailable, "restore %s: write: %v", f.path, err)
		}
		r.prog.Bytes.Add(int64(len(plain)))
		r.mu.Lock()
		r.res.Bytes += int64(len(plain))
		r.mu.Unlock()
	}
	r.release(ref.file)
	return nil
}

// fd returns a descriptor of file fi for writing, and whether the caller
// must close it: up to keepFiles stay open until their file is finished
// (a file whose blobs lie in several packs is written piece by piece),
// others are opened for one write.
func (r *restorer) fd(fi int) (int, bool, error) {
	r.fdmu.Lock()
	defer r.fdmu.Unlock()
	if fd, ok := r.fds[fi]; ok {
		return fd, false, nil
	}
	fd, err := r.openFile(fi)
	if err != nil {
		return -1, false, lifeboat.Errorf(lifeboat.EUnavailable, "restore %s: open: %v", r.files[fi].path, err)
	}
	if len(r.fds) >= r.keepFiles {
		return fd, true, nil
	}
	r.fds[fi] = fd
	return fd, false, nil
}

// openFile opens the (created) file fi for writing.
func (r *restorer) openFile(fi int) (int, error) {
	f := r.files[fi]
	fd := -1
	err := r.inDir(f.dir, func(dfd int) (err error) {
		fd, err = openat(dfd, f.name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// dirFD returns a descriptor of directory di, and whether the caller must
// close it. The first keepDirs directories stay open for the whole restore;
// the others are opened again from their nearest open ancestor, a component
// at a time, never following a symlink.
func (r *restorer) dirFD(di int) (fd int, owned bool, err error) {
	d := r.dirs[di]
	if d.fd >= 0 {
		return d.fd, false, nil
	}
	pfd, powned, err := r.dirFD(d.parent)
	if err != nil {
		return -1, false, err
	}
	fd, err = openat(pfd, d.node.Name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if powned {
		unix.Close(pfd)
	}
	if err != nil {
		return -1, false, fmt.Errorf("open %s: %w", d.path, err)
	}
	return fd, true, nil
}

// inDir runs fn with a descriptor of directory di.
func (r *restorer) inDir(di int, fn func(dfd int) error) error {
	fd, owned, err := r.dirFD(di)
	if err != nil {
		return err
	}
	if owned {
		defer unix.Close(fd)
	}
	return fn(fd)
}

// release counts one blob of a file as done; the last one finishes the file.
func (r *restorer) release(fi int) {
	if r.files[fi].remaining.Add(-1) != 0 {
		return
	}
	r.fdmu.Lock()
	fd, ok := r.fds[fi]
	delete(r.fds, fi)
	r.fdmu.Unlock()
	if !ok {
		f := r.files[fi]
		var err error
		fd, err = r.openFile(fi)
		if err != nil {
			if f.failed.Load() {
				r.unlink(f) // damaged: the failure is reported already
				return
			}
			// Every byte is written: a local failure to open it again
			// (out of descriptors) is no damage; its metadata is not set.
			r.warn(f.path, fmt.Errorf("written, but owner, mode and times not set: %w", err))
			r.restored()
			return
		}
	}
	r.finishFile(fi, fd)
}

// finishFile sets owner, mode and times through the descriptor, then closes
// it. A failed file is removed instead.
func (r *restorer) finishFile(fi, fd int) {
	f := r.files[fi]
	defer unix.Close(fd)
	if f.failed.Load() {
		r.unlink(f)
		return
	}
	n := f.node
	if r.owners {
		if err := ignoringEINTR(func() error { return fchown(fd, int(n.UID), int(n.GID)) }); err != nil {
			r.warn(f.path, fmt.Errorf("chown: %w", err))
		}
	}
	if err := ignoringEINTR(func() error { return unix.Fchmod(fd, n.Mode) }); err != nil {
		r.warn(f.path, fmt.Errorf("chmod: %w", err))
	}
	if err := ignoringEINTR(func() error { return futimens(fd, n.MTime) }); err != nil {
		r.warn(f.path, fmt.Errorf("set times: %w", err))
	}
	r.restored()
}

// restored counts one file restored.
func (r *restorer) restored() {
	r.prog.Files.Add(1)
	r.mu.Lock()
	r.res.Files++
	r.mu.Unlock()
	testStop("restore-file-restored")
}

// unlink removes a failed file, which is listed in Failed as removed; when
// it cannot be, a warning says that its content is not to be trusted.
func (r *restorer) unlink(f *rfile) {
	err := r.inDir(f.dir, func(dfd int) error {
		return ignoringEINTR(func() error { return unix.Unlinkat(dfd, f.name, 0) })
	})
	if err != nil && err != unix.ENOENT {
		r.warn(f.path, fmt.Errorf("damaged, and could not be removed: %w", err))
	}
}

func (r *restorer) warn(path string, err error) {
	r.prog.Warnings.Add(1)
	if n := r.nwarn.Add(1); n <= maxRestoreWarnings {
		r.mu.Lock()
		r.res.Warnings = append(r.res.Warnings, path+": "+err.Error())
		r.mu.Unlock()
	}
	if r.opts.Warn != nil {
		r.opts.Warn(path, err)
	}
}

func (r *restorer) finishLinks() {
	for _, fi := range r.links {
		f := r.files[fi]
		src := r.files[f.linkOf]
		if src.failed.Load() {
			if r.opts.Resume {
				r.unlink(f) // what an earlier run or anyone left there is not the point's
			}
			r.fail(fi, f.path, fmt.Errorf("hard link to %s, which failed", src.path))
			continue
		}
		err := r.inDir(src.dir, func(sfd int) error {
			return r.inDir(f.dir, func(dfd int) error {
				err := ignoringEINTR(func() error { return unix.Linkat(sfd, src.name, dfd, f.name, 0) })
				if err == unix.EEXIST && r.opts.Resume {
					// Linked already, or something else to replace.
					var a, b unix.Stat_t
					if unix.Fstatat(sfd, src.name, &a, unix.AT_SYMLINK_NOFOLLOW) == nil && unix.Fstatat(dfd, f.name, &b, unix.AT_SYMLINK_NOFOLLOW) == nil &&
						a.Dev == b.Dev && a.Ino == b.Ino {
						return nil
					}
					if err := ignoringEINTR(func() error { return unix.Unlinkat(dfd, f.name, 0) }); err != nil {
						return err
					}
					err = ignoringEINTR(func() error { return unix.Linkat(sfd, src.name, dfd, f.name, 0) })
				}
				return err
			})
		})
		if err != nil {
			r.fail(fi, f.path, fmt.Errorf("link: %w", err))
			continue
		}
		r.res.HardLinks++
	}
	// Symlinks last, after every sibling exists: nothing is ever opened through them.
	for _, fi := range r.syms {
		f := r.files[fi]
		err := r.inDir(f.dir, func(dfd int) error {
			err := ignoringEINTR(func() error { return unix.Symlinkat(f.node.Target, dfd, f.name) })
			if err == unix.EEXIST && r.opts.Resume {
				// Made already, or something else to replace (a
				// directory is refused by unlinkat).
				buf := make([]byte, len(f.node.Target)+1)
				if n, rerr := unix.Readlinkat(dfd, f.name, buf); rerr == nil && string(buf[:n]) == f.node.Target {
					err = nil
				} else if err = ignoringEINTR(func() error { return unix.Unlinkat(dfd, f.name, 0) }); err == nil {
					err = ignoringEINTR(func() error { return unix.Symlinkat(f.node.Target, dfd, f.name) })
				}
			}
			if err != nil {
				return fmt.Errorf("symlink: %w", err)
			}
			if r.owners {
				if err := ignoringEINTR(func() error {
					return unix.Fchownat(dfd, f.name, int(f.node.UID), int(f.node.GID), unix.AT_SYMLINK_NOFOLLOW)
				}); err != nil {
					r.warn(f.path, fmt.Errorf("chown: %w", err))
				}
			}
			ts := []unix.Timespec{unix.NsecToTimespec(f.node.MTime), unix.NsecToTimespec(f.node.MTime)}
			if err := ignoringEINTR(func() error { return unix.UtimesNanoAt(dfd, f.name, ts, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
				r.warn(f.path, fmt.Errorf("set times: %w", err))
			}
			return nil
		})
		if err != nil {
			r.fail(fi, f.path, err)
			continue
		}
		r.res.Symlinks++
	}
}

// finishDirs sets directory metadata children first, through descriptors.
func (r *restorer) finishDirs() {
	for i := len(r.dirs) - 1; i >= 0; i-- {
		d := r.dirs[i]
		if d.node == nil {
			continue
		}
		err := r.inDir(i, func(fd int) error {
			if r.owners {
				if err := ignoringEINTR(func() error { return fchown(fd, int(d.node.UID), int(d.node.GID)) }); err != nil {
					r.warn(d.path, fmt.Errorf("chown: %w", err))
				}
			}
			if err := ignoringEINTR(func() error { return unix.Fchmod(fd, d.node.Mode) }); err != nil {
				r.warn(d.path, fmt.Errorf("chmod: %w", err))
			}
			if err := ignoringEINTR(func() error { return futimens(fd, d.node.MTime) }); err != nil {
				r.warn(d.path, fmt.Errorf("set times: %w", err))
			}
			return nil
		})
		if err != nil {
			r.warn(d.path, err)
		}
	}
}

// fdBudgets divides the process's descriptor limit: a quarter for the
// directories a restore keeps open, a quarter for its files, at most 4096
// and 1024; the rest is for everything else (storage, other jobs).
func fdBudgets() (dirs, files int) {
	var lim unix.Rlimit
	n := 1024
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur < 1<<30 {
		n = int(lim.Cur)
	}
	return max(min(n/4, 4096), 8), max(min(n/4, 1024), 8)
}

// futimens sets atime and mtime of an open descriptor (utimensat(fd, NULL)).
func futimens(fd int, mtime int64) error {
	ts := [2]unix.Timespec{unix.NsecToTimespec(mtime), unix.NsecToTimespec(mtime)}
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
