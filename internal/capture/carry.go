package capture

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// carried is what carryOver did: the entries it moved from the live tree
// into the restored one, and those it left where they were.
type carried struct {
	moves []carriedMove
	// left: what the component does not capture that stays in the live
	// tree (so in the replaced tree after the swap), with why the first
	// stayed: rel paths, sorted, at most maxUncaptured of leftN.
	left  []string
	leftN int
	why   string
	open  []*os.File // directories the moves need, closed by close
}

type carriedMove struct {
	from, to *os.File // the directories, opened without following symlinks
	name     string
	rel      string
}

// carryOver moves the entries of the live tree at target that a files
// component does not capture (matching an exclude glob, or no include glob)
// into the restored tree at staging, at the same place, so that the swap
// does not drop them: a restore puts back what was captured and leaves the
// rest alone. The globs are matched as in backups (vault.Excluded).
//
// It works on directory file descriptors, each opened from its parent's
// with O_NOFOLLOW, and renames by name between two of them
// (renameat2 RENAME_NOREPLACE): a symlink is never followed and no path is
// resolved twice, so an app user who swaps a directory of its tree for a
// symlink meanwhile can make an entry stay where it is, never make the
// restore move something from, or into, anywhere else. Directories it
// creates in the restored tree take the mode and owner of the live one.
//
// What it cannot carry stays in the live tree, named in left: under a path
// the restored tree has as a symlink or a file, the same entry restored
// (the point has it: the restored one wins), a mount point, a directory
// it cannot read. The caller keeps the replaced tree for good then. It
// fails only if it cannot open target or staging; call close after,
// undo first if the restore goes no further.
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
	dst, err := openDirAt(unix.AT_FDCWD, staging, staging)
	if err != nil {
		src.Close()
		return c, err
	}
	w := &carryWalk{c: c, excludes: excludes, includes: includes, dst: map[string]*os.File{"": dst}, live: map[string]*os.File{}, used: map[*os.File]bool{}}
	w.keepOpen(src)
	w.keepOpen(dst)
	w.walk(src, "")
	slices.Sort(c.left)
	if len(c.left) > maxUncaptured {
		c.left = c.left[:maxUncaptured]
	}
	return c, nil
}

type carryWalk struct {
	c                  *carried
	excludes, includes []string
	dst                map[string]*os.File // directories of the restored tree, by rel path ("" the root)
	live               map[string]*os.File // the live directories being walked, by rel path
	used               map[*os.File]bool   // kept open (in c.open)
}

// keepOpen keeps f open until close: a move needs it.
func (w *carryWalk) keepOpen(f *os.File) {
	if !w.used[f] {
		w.used[f] = true
		w.c.open = append(w.c.open, f)
	}
}

// stay records that rel stays in the live tree, and why.
func (w *carryWalk) stay(rel string, err error) {
	w.c.leftN++
	w.c.left = append(w.c.left, rel)
	if w.c.why == "" {
		w.c.why = fmt.Sprintf("%s: %v", rel, err)
	}
}

// walk goes through the live directory dir (at rel; "" the root).
func (w *carryWalk) walk(dir *os.File, rel string) {
	w.live[rel] = dir
	defer delete(w.live, rel)
	ents, err := dir.ReadDir(-1)
	if err != nil {
		w.stay(relOr(rel), err) // what it holds is unknown: it all stays
		return
	}
	for _, e := range ents {
		erel := path.Join(rel, e.Name())
		if !vault.Excluded(w.excludes, w.includes, erel, e.Name(), e.IsDir()) {
			if e.IsDir() {
				sub, err := openDirAt(int(dir.Fd()), e.Name(), path.Join(dir.Name(), e.Name()))
				if err != nil {
					w.stay(erel, err) // replaced meanwhile, or unreadable
					continue
				}
				w.walk(sub, erel)
				if !w.used[sub] {
					sub.Close()
				}
			}
			continue
		}
		to, err := w.dstDir(rel)
		if err == nil {
			err = renameNoReplace(dir, e.Name(), to, e.Name())
		}
		if err != nil {
			w.stay(erel, err)
			continue
		}
		w.c.moves = append(w.c.moves, carriedMove{from: dir, to: to, name: e.Name(), rel: erel})
		w.keepOpen(dir)
	}
}

// dstDir returns the restored tree's directory at rel, creating what is
// missing like the live directory there (being walked: its mode and
// owner), never through a symlink or a file the restored tree has there.
func (w *carryWalk) dstDir(rel string) (*os.File, error) {
	if d, ok := w.dst[rel]; ok {
		return d, nil
	}
	pr := path.Dir(rel)
	if pr == "." {
		pr = ""
	}
	parent, err := w.dstDir(pr)
	if err != nil {
		return nil, err
	}
	name := path.Base(rel)
	d, err := openDirAt(int(parent.Fd()), name, path.Join(parent.Name(), name))
	if errors.Is(err, unix.ENOENT) {
		var st unix.Stat_t
		mode, uid, gid := uint32(0o755), -1, -1
		if live := w.live[rel]; live != nil && unix.Fstat(int(live.Fd()), &st) == nil {
			mode, uid, gid = st.Mode&0o7777, int(st.Uid), int(st.Gid)
		}
		if err := unix.Mkdirat(int(parent.Fd()), name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, err
		}
		if d, err = openDirAt(int(parent.Fd()), name, path.Join(parent.Name(), name)); err != nil {
			return nil, err
		}
		if os.Geteuid() == 0 && uid >= 0 {
			unix.Fchown(int(d.Fd()), uid, gid)
		}
		unix.Fchmod(int(d.Fd()), mode) // past the umask, with setgid/sticky
	}
	if err != nil {
		return nil, err
	}
	w.dst[rel] = d
	w.keepOpen(d)
	return d, nil
}

// undo puts what carryOver moved back where it was, last first, by the
// same directory descriptors (a live directory replaced by a symlink
// meanwhile is never followed; one removed meanwhile cannot take its entry
// back). It returns the rel paths it could not move back: they stay in
// the restored tree.
func (c *carried) undo() []string {
	var left []string
	for i := len(c.moves) - 1; i >= 0; i-- {
		m := c.moves[i]
		if err := renameNoReplace(m.to, m.name, m.from, m.name); err != nil {
			left = append(left, m.rel)
		}
	}
	c.moves = nil
	return left
}

func (c *carried) close() {
	for _, f := range c.open {
		f.Close()
	}
	c.open = nil
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
