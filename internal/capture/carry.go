package capture

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// carried is what carryOver did: the entries it moved from the live tree
// into the restored one, and why the first of those it could not move
// stayed.
type carried struct {
	src, dst *os.File // the two roots, for undo
	moves    []string // rel paths moved, in order
	leftN    int
	why      string
}

// carryOver moves the entries of the live tree at target that a files
// component does not capture (matching an exclude glob, or no include glob)
// into the restored tree at staging, at the same place, so that the swap
// does not drop them: a restore puts back what was captured and leaves the
// rest alone. The globs are matched as in backups (vault.Excluded).
//
// It works on directory file descriptors, each opened from its parent's
// with O_NOFOLLOW, and renames by name between two of them
// (renameat2 RENAME_NOREPLACE): a symlink is never followed, so an app
// user who swaps a directory of its tree for a symlink meanwhile can make
// an entry stay where it is, never make the restore move something from,
// or into, anywhere else. Directories it creates in the restored tree take
// the mode and owner of the live one. It holds two descriptors per level
// of depth, not per directory.
//
// What it cannot carry stays in the live tree (leftN, why): under a path
// the restored tree has as a symlink or a file, the same entry restored
// (the point has it: the restored one wins), a mount point, a directory
// it cannot read. It fails only if it cannot open target or staging; call
// close after, undo first if the restore goes no further.
func carryOver(target, staging string, excludes, includes []string) (*carried, error) {
	c := &carried{}
	if len(excludes) == 0 && len(includes) == 0 {
		return c, nil
	}
	src, err := openDirAt(unix.AT_FDCWD, target, target)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return c, nil // no live tree (or not a directory): nothing to keep
	}
	if err != nil {
		return c, err
	}
	c.src = src
	if c.dst, err = openDirAt(unix.AT_FDCWD, staging, staging); err != nil {
		return c, err
	}
	w := &treeWalk{excludes: excludes, includes: includes, stack: []*os.File{src}}
	w.found = func(dir *os.File, rel, name string, _ bool) {
		to, err := c.dstDir(path.Dir(rel), w.stack)
		if err == nil {
			err = renameNoReplace(dir, name, to, name)
			to.Close()
		}
		if err != nil {
			c.stay(rel, err)
			return
		}
		c.moves = append(c.moves, rel)
	}
	w.failed = c.stay
	w.walk(src, "")
	return c, nil
}

func (c *carried) stay(rel string, err error) {
	c.leftN++
	if c.why == "" {
		c.why = fmt.Sprintf("%s: %v", rel, err)
	}
}

// dstDir opens the restored tree's directory at rel ("." the root), from
// its root, creating what is missing like the live directories there
// (live[i]: the live directory at depth i), never through a symlink or a
// file the restored tree has there. The caller closes it.
func (c *carried) dstDir(rel string, live []*os.File) (*os.File, error) {
	d, err := dupDir(c.dst)
	if err != nil || rel == "." {
		return d, err
	}
	for i, name := range strings.Split(rel, "/") {
		next, err := openSub(d, name)
		if errors.Is(err, unix.ENOENT) {
			next, err = mkdirLike(d, name, live[i+1])
		}
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
	}
	return d, nil
}

// mkdirLike creates directory name in parent with the mode and owner of
// live (0700 and never wider until then), and opens it. A directory that
// appeared there meanwhile is opened as it is, never changed.
func mkdirLike(parent *os.File, name string, live *os.File) (*os.File, error) {
	if err := unix.Mkdirat(int(parent.Fd()), name, 0o700); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return openSub(parent, name)
		}
		return nil, err
	}
	d, err := openSub(parent, name)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if unix.Fstat(int(live.Fd()), &st) == nil {
		if os.Geteuid() == 0 {
			unix.Fchown(int(d.Fd()), int(st.Uid), int(st.Gid))
		}
		unix.Fchmod(int(d.Fd()), st.Mode&0o7777) // past the umask, with setgid/sticky
	}
	return d, nil
}

// undo puts what carryOver moved back where it was, last first, each
// directory opened again from the two roots without following symlinks (a
// live directory replaced by a symlink, or renamed or removed, meanwhile
// takes nothing back). It returns the rel paths it could not move back:
// they stay in the restored tree.
func (c *carried) undo() []string {
	var left []string
	for i := len(c.moves) - 1; i >= 0; i-- {
		rel := c.moves[i]
		dir, name := path.Dir(rel), path.Base(rel)
		from, err := openPath(c.dst, dir)
		if err == nil {
			var to *os.File
			if to, err = openPath(c.src, dir); err == nil {
				err = renameNoReplace(from, name, to, name)
				to.Close()
			}
			from.Close()
		}
		if err != nil {
			left = append(left, rel)
		}
	}
	c.moves = nil
	return left
}

func (c *carried) close() {
	for _, f := range []*os.File{c.src, c.dst} {
		if f != nil {
			f.Close()
		}
	}
	c.src, c.dst = nil, nil
}

// uncapturedIn lists, without following symlinks, what the globs leave out
// in the tree at root (and what a nested component's restore kept there,
// named .lifeboat-*): files (and links), or an excluded directory holding
// any, named once; rel paths, sorted, at most maxUncaptured, and how many.
// A directory it cannot read counts as holding some. Empty directories,
// sockets, FIFOs and devices are no data: not counted.
func uncapturedIn(root string, excludes, includes []string) ([]string, int, error) {
	d, err := openDirAt(unix.AT_FDCWD, root, root)
	if err != nil {
		return nil, 0, err
	}
	defer d.Close()
	var found []string
	w := &treeWalk{excludes: excludes, includes: includes, own: true, stack: []*os.File{d}}
	w.found = func(dir *os.File, rel, name string, isDir bool) {
		if isDir {
			sub, err := openSub(dir, name)
			if err == nil {
				data := holdsData(sub)
				sub.Close()
				if !data {
					return
				}
			}
		} else if !isData(dir, name) {
			return
		}
		found = append(found, rel)
	}
	w.failed = func(rel string, err error) { found = append(found, rel) }
	w.walk(d, "")
	slices.Sort(found)
	n := len(found)
	return found[:min(n, maxUncaptured)], n, nil
}

// holdsData reports whether the directory dir holds data (a file or a
// link, at any depth), or cannot be read through.
func holdsData(dir *os.File) bool {
	ents, err := dir.ReadDir(-1)
	if err != nil {
		return true
	}
	for _, e := range ents {
		if !e.IsDir() {
			if isData(dir, e.Name()) {
				return true
			}
			continue
		}
		sub, err := openSub(dir, e.Name())
		if err != nil {
			return true
		}
		data := holdsData(sub)
		sub.Close()
		if data {
			return true
		}
	}
	return false
}

// isData reports whether entry name of dir is a file or a symlink (what a
// backup captures), not a socket, FIFO or device.
func isData(dir *os.File, name string) bool {
	var st unix.Stat_t
	if unix.Fstatat(int(dir.Fd()), name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false // gone meanwhile
	}
	t := st.Mode & unix.S_IFMT
	return t == unix.S_IFREG || t == unix.S_IFLNK
}

// treeWalk walks a tree by directory descriptors (stack: the directories
// open from the root down), calling found for each entry the globs leave
// out (not descending into such a directory) and failed for a directory
// it cannot open or read.
type treeWalk struct {
	excludes, includes []string
	// own: entries named .lifeboat-* (what a restore of a component
	// nested in this one kept beside its target) count as left out too.
	own    bool
	stack  []*os.File
	found  func(dir *os.File, rel, name string, isDir bool)
	failed func(rel string, err error)
}

func (w *treeWalk) walk(dir *os.File, rel string) {
	ents, err := dir.ReadDir(-1)
	if err != nil {
		w.failed(relOr(rel), err) // what it holds is unknown
		return
	}
	for _, e := range ents {
		erel := path.Join(rel, e.Name())
		if vault.Excluded(w.excludes, w.includes, erel, e.Name(), e.IsDir()) || w.own && strings.HasPrefix(e.Name(), ".lifeboat-") {
			w.found(dir, erel, e.Name(), e.IsDir())
			continue
		}
		if !e.IsDir() {
			continue
		}
		sub, err := openSub(dir, e.Name())
		if err != nil {
			w.failed(erel, err) // replaced meanwhile, or unreadable
			continue
		}
		w.stack = append(w.stack, sub)
		w.walk(sub, erel)
		w.stack = w.stack[:len(w.stack)-1]
		sub.Close()
	}
}

// openPath opens the directory at rel ("." itself) under root, one name at
// a time, following no symlink.
func openPath(root *os.File, rel string) (*os.File, error) {
	d, err := dupDir(root)
	if err != nil || rel == "." {
		return d, err
	}
	for _, name := range strings.Split(rel, "/") {
		next, err := openSub(d, name)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
	}
	return d, nil
}

// openSub opens the directory name in d, refusing a symlink.
func openSub(d *os.File, name string) (*os.File, error) {
	return openDirAt(int(d.Fd()), name, path.Join(d.Name(), name))
}

// dupDir opens the directory d again (a descriptor of its own).
func dupDir(d *os.File) (*os.File, error) {
	return openDirAt(int(d.Fd()), ".", d.Name())
}

// openDirAt opens the directory name under dirfd, refusing a symlink. full
// is its path, for messages and for the type of entries a file system
// does not give when listing (looked up by path, which only decides how an
// entry is matched: every open and rename stays by descriptor).
func openDirAt(dirfd int, name, full string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), full), nil
}

// renameNoReplace renames name from one directory to another, never over
// an existing entry (where the file system cannot refuse to replace, it
// looks first).
func renameNoReplace(from *os.File, name string, to *os.File, toName string) error {
	err := unix.Renameat2(int(from.Fd()), name, int(to.Fd()), toName, unix.RENAME_NOREPLACE)
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	var st unix.Stat_t
	if unix.Fstatat(int(to.Fd()), toName, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		return unix.EEXIST
	}
	return unix.Renameat(int(from.Fd()), name, int(to.Fd()), toName)
}

func relOr(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
