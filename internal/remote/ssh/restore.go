package ssh

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// staging is a directory made by MkdirStaging and not yet swapped.
type staging struct {
	symlinks bool // a symlink was made: no more files or directories
}

// Staging directories are named after their target, so that one left by a
// crash is recognisable: .lifeboat-staging-BASE-RAND, .lifeboat-old-BASE-RAND.
const (
	stagingPrefix = ".lifeboat-staging-"
	oldPrefix     = ".lifeboat-old-"
)

func randomSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// checkTarget validates an absolute, clean target path that is not "/".
func (c *Client) checkTarget(target string) (string, error) {
	if !path.IsAbs(target) || path.Clean(target) != target || target == "/" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: target must be a clean absolute path below /", c.addr, target)
	}
	return target, nil
}

// checkDirs lstats dir and every one of its parents, refusing any that is
// not a real directory (a symlink above a target could redirect the restore).
func (c *Client) checkDirs(sc *sftp.Client, dir string) error {
	for p := dir; ; p = path.Dir(p) {
		fi, err := sc.Lstat(p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return lifeboat.Errorf(lifeboat.ENotFound, "restore %s:%s: no such directory", c.addr, p)
			}
			return fmt.Errorf("restore %s: lstat %s: %w", c.addr, p, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return lifeboat.Errorf(lifeboat.EForbidden, "restore %s:%s: is a symlink; register the directory it resolves to instead", c.addr, p)
		}
		if !fi.IsDir() {
			return lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: not a directory", c.addr, p)
		}
		if p == "/" {
			return nil
		}
	}
}

// MkdirStaging creates a fresh, empty 0700 directory next to target (in
// its parent, so that Swap is a rename within one file system) after
// lstat-checking that no parent of target is a symlink. Only directories
// made by this Client's MkdirStaging are accepted by WriteFile, Symlink
// and Swap.
func (c *Client) MkdirStaging(target string) (string, error) {
	target, err := c.checkTarget(target)
	if err != nil {
		return "", err
	}
	sc, err := c.sftp()
	if err != nil {
		return "", err
	}
	parent := path.Dir(target)
	if err := c.checkDirs(sc, parent); err != nil {
		return "", err
	}
	st := path.Join(parent, stagingPrefix+path.Base(target)+"-"+randomSuffix())
	// SFTP mkdir fails if the name exists (even as a symlink): the directory
	// is fresh. It is created 0777&^umask, then narrowed before use.
	if err := sc.Mkdir(st); err != nil {
		return "", fmt.Errorf("restore %s: mkdir %s: %w", c.addr, st, err)
	}
	if err := sc.Chmod(st, 0o700); err != nil {
		return "", fmt.Errorf("restore %s: chmod %s: %w", c.addr, st, err)
	}
	fi, err := sc.Lstat(st)
	if err != nil {
		return "", fmt.Errorf("restore %s: lstat %s: %w", c.addr, st, err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		return "", lifeboat.Errorf(lifeboat.EInternal, "restore %s:%s: staging directory is %v after mkdir", c.addr, st, fi.Mode())
	}
	c.mu.Lock()
	c.stagings[st] = &staging{}
	c.mu.Unlock()
	return st, nil
}

// checkRel validates a path relative to a staging directory.
func (c *Client) checkRel(st, rel string) error {
	if rel == "" || path.IsAbs(rel) || path.Clean(rel) != rel || rel == "." || rel == ".." ||
		strings.HasPrefix(rel, "../") || strings.IndexByte(rel, 0) >= 0 {
		return lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: %q is not a clean relative path", c.addr, st, rel)
	}
	return nil
}

// What prepare is asked for.
const (
	opWrite   = iota // a file or directory: refused once a symlink exists
	opSymlink        // a symlink: from then on, no more writes
	opMeta           // times and owner of an existing entry (after symlinks too)
)

// prepare checks that st is a live staging directory, that rel is clean,
// and that every parent of rel inside st is a real directory, creating
// missing ones 0700. It returns the full path of rel.
func (c *Client) prepare(sc *sftp.Client, st, rel string, op int) (string, error) {
	symlink := op == opSymlink
	c.mu.Lock()
	s := c.stagings[st]
	if s != nil && op == opWrite && s.symlinks {
		c.mu.Unlock()
		return "", lifeboat.Errorf(lifeboat.EInternal, "restore %s:%s: %s written after a symlink (symlinks go last)", c.addr, st, rel)
	}
	if s != nil && symlink {
		s.symlinks = true
	}
	c.mu.Unlock()
	if s == nil {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: not a staging directory of this connection", c.addr, st)
	}
	if err := c.checkRel(st, rel); err != nil {
		return "", err
	}
	dir := st
	parts := strings.Split(rel, "/")
	for _, name := range parts[:len(parts)-1] {
		dir += "/" + name
		fi, err := sc.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := sc.Mkdir(dir); err != nil {
				return "", fmt.Errorf("restore %s: mkdir %s: %w", c.addr, dir, err)
			}
			if err := sc.Chmod(dir, 0o700); err != nil {
				return "", fmt.Errorf("restore %s: chmod %s: %w", c.addr, dir, err)
			}
		case err != nil:
			return "", fmt.Errorf("restore %s: lstat %s: %w", c.addr, dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return "", lifeboat.Errorf(lifeboat.EForbidden, "restore %s:%s: parent %s is a symlink; refusing to write through it", c.addr, path.Join(st, rel), dir)
		case !fi.IsDir():
			return "", lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: parent %s is not a directory", c.addr, path.Join(st, rel), dir)
		}
	}
	return st + "/" + rel, nil
}

// Mkdir creates the directory rel (and missing parents) in staging st with
// mode|0700: the owner keeps write access while the tree is filled, so
// narrower directory modes go on after the last write (Chmod).
func (c *Client) Mkdir(st, rel string, mode uint32) error {
	sc, err := c.sftp()
	if err != nil {
		return err
	}
	p, err := c.prepare(sc, st, rel, opWrite)
	if err != nil {
		return err
	}
	if err := sc.Mkdir(p); err != nil {
		return fmt.Errorf("restore %s: mkdir %s: %w", c.addr, p, err)
	}
	if err := sc.Chmod(p, toFileMode(mode|0o700)); err != nil {
		return fmt.Errorf("restore %s: chmod %s: %w", c.addr, p, err)
	}
	return nil
}

// WriteFile creates the file rel in staging st with O_EXCL (an existing
// name, a symlink included, is an error: nothing is followed or
// overwritten), after lstat-checking every parent, copies r into it, and
// sets mode on the open handle (fsetstat: no path lookup).
func (c *Client) WriteFile(st, rel string, mode uint32, r io.Reader) error {
	sc, err := c.sftp()
	if err != nil {
		return err
	}
	p, err := c.prepare(sc, st, rel, opWrite)
	if err != nil {
		return err
	}
	f, err := sc.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("restore %s: create %s: %w", c.addr, p, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: write %s: %w", c.addr, p, err)
	}
	if err := f.Chmod(toFileMode(mode)); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: chmod %s: %w", c.addr, p, err)
	}
	if _, ok := sc.HasExtension("fsync@openssh.com"); ok {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("restore %s: fsync %s: %w", c.addr, p, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restore %s: close %s: %w", c.addr, p, err)
	}
	return nil
}

// toFileMode turns POSIX permission bits into an fs.FileMode.
func toFileMode(mode uint32) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	if mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// SetMeta gives the file or directory rel in staging st its mode, its
// modification time — to the second: SFTP carries no finer times — and,
// when the session is root's, its owner (then the mode again: a chown clears
// setuid and setgid). Directories take theirs last, after everything in
// them, symlinks included; every parent and rel itself are lstat-checked,
// and a symlink is refused: nothing is followed.
func (c *Client) SetMeta(st, rel string, mode, uid, gid uint32, mtime time.Time) error {
	sc, err := c.sftp()
	if err != nil {
		return err
	}
	p, err := c.prepare(sc, st, rel, opMeta)
	if err != nil {
		return err
	}
	fi, err := sc.Lstat(p)
	if err != nil {
		return fmt.Errorf("restore %s: lstat %s: %w", c.addr, p, err)
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		return lifeboat.Errorf(lifeboat.EForbidden, "restore %s:%s: not a file or directory; refusing to follow it", c.addr, p)
	}
	if c.user == "root" {
		if err := sc.Chown(p, int(uid), int(gid)); err != nil {
			return fmt.Errorf("restore %s: chown %s: %w", c.addr, p, err)
		}
	}
	if err := sc.Chmod(p, toFileMode(mode)); err != nil {
		return fmt.Errorf("restore %s: chmod %s: %w", c.addr, p, err)
	}
	if err := sc.Chtimes(p, mtime, mtime); err != nil {
		return fmt.Errorf("restore %s: set times of %s: %w", c.addr, p, err)
	}
	return nil
}

// Symlink creates the symlink rel -> linkTarget in staging st, after
// lstat-checking every parent. Once a symlink is made, WriteFile and Mkdir
// refuse that staging directory: symlinks go last, so no later write can
// pass through one.
func (c *Client) Symlink(st, rel, linkTarget string) error {
	sc, err := c.sftp()
	if err != nil {
		return err
	}
	p, err := c.prepare(sc, st, rel, opSymlink)
	if err != nil {
		return err
	}
	if err := sc.Symlink(linkTarget, p); err != nil {
		return fmt.Errorf("restore %s: symlink %s: %w", c.addr, p, err)
	}
	return nil
}

// Swap puts staging st in place of target: it sets st's mode, renames
// target (if present) aside to old, then renames st to target, and
// returns where it is kept (none when there was no target) for the caller
// to remove once it is sure. old is named by tag (the job): if it exists
// already, an earlier attempt of the job swapped here first, so old holds
// what was there before the job and stays, and what target holds now (that
// attempt's restore, with whatever was written there since) is kept beside
// it: both are returned, with earlier set. So is earlier when target is
// absent and old is there: an earlier attempt stopped between the two
// renames below; old, what was there before the job, is returned.
//
// Atomicity: each rename is one rename(2) on the host (posix-rename@openssh.com),
// so target is at every moment either the complete old tree or the complete
// new one — never a mix — but SFTP offers no RENAME_EXCHANGE, so between
// the two renames target is briefly absent. If the second rename fails the
// first is undone; after a crash between them, old and st are both still
// there under their .lifeboat-* names.
func (c *Client) Swap(st, target string, mode uint32, tag string) (kept []string, earlier bool, err error) {
	sc, target, rename, err := c.swapPrepare(st, target)
	if err != nil {
		return nil, false, err
	}
	if err := sc.Chmod(st, toFileMode(mode)); err != nil {
		return nil, false, fmt.Errorf("restore %s: chmod %s: %w", c.addr, st, err)
	}
	var aside string
	switch _, err := sc.Lstat(target); {
	case err == nil:
		if kept, aside, earlier, err = c.setAside(sc, rename, target, tag); err != nil {
			return nil, false, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("restore %s: lstat %s: %w", c.addr, target, err)
	default:
		if kept, earlier, err = c.oldThere(sc, target, tag); err != nil {
			return nil, false, err
		}
	}
	if err := rename(st, target); err != nil {
		return nil, false, c.undoAside(rename, aside, target, fmt.Errorf("restore %s: rename %s to %s: %w", c.addr, st, target, err))
	}
	c.mu.Lock()
	delete(c.stagings, st)
	c.mu.Unlock()
	return kept, earlier, nil
}

// oldName is where a restore of job tag keeps what target held.
func oldName(target, tag string) string {
	return path.Join(path.Dir(target), oldPrefix+path.Base(target)+"-"+tag)
}

// oldThere returns, for an absent target, the job's kept copy of it if an
// earlier attempt made it (and stopped before putting its restore there).
func (c *Client) oldThere(sc *sftp.Client, target, tag string) ([]string, bool, error) {
	old := oldName(target, tag)
	switch _, err := sc.Lstat(old); {
	case err == nil:
		return []string{old}, true, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	default:
		return nil, false, fmt.Errorf("restore %s: lstat %s: %w", c.addr, old, err)
	}
}

// setAside renames target out of the way before a swap: to old, named by
// tag, or, when old exists already (an earlier attempt of the job kept what
// was there before it), to a name of its own beside it. It returns what is
// kept (old, and that name) and where target went.
func (c *Client) setAside(sc *sftp.Client, rename func(a, b string) error, target, tag string) (kept []string, aside string, earlier bool, err error) {
	old := oldName(target, tag)
	aside = old
	if _, err := sc.Lstat(old); err == nil {
		aside = old + "-" + randomSuffix()
		kept, earlier = append(kept, old), true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", false, fmt.Errorf("restore %s: lstat %s: %w", c.addr, old, err)
	} else if c.logBeside(sc, old) {
		// The SQLite log of a kept copy removed half-way: not this one's.
		aside = old + "-" + randomSuffix()
	}
	if err := rename(target, aside); err != nil {
		return nil, "", false, fmt.Errorf("restore %s: move %s aside: %w", c.addr, target, err)
	}
	if testHookAside != nil {
		testHookAside(target)
	}
	return append(kept, aside), aside, earlier, nil
}

// testHookAside runs between a swap's two renames, target moved aside.
var testHookAside func(target string)

// logBeside says whether a SQLite log is at name's name plus -wal or
// -journal (or cannot be looked for).
func (c *Client) logBeside(sc *sftp.Client, name string) bool {
	for _, suffix := range []string{"-wal", "-journal"} {
		if _, err := sc.Lstat(name + suffix); !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// undoAside moves what setAside renamed to aside (if anything) back to
// target after the swap's second rename failed with err, and returns err,
// naming aside if the move back failed too (say, the app made a directory
// anew at target between the renames; a file it made there is replaced,
// as the restore itself would have replaced it): what target held then
// stays at aside, which nothing removes, and the error says so.
func (c *Client) undoAside(rename func(a, b string) error, aside, target string, err error) error {
	if aside == "" {
		return err
	}
	if uerr := rename(aside, target); uerr != nil {
		return fmt.Errorf("%w (and moving it back failed: %v; what %s held is at %s)", err, uerr, target, aside)
	}
	return err
}

// SwapFile puts the regular file written at rel in staging st in place of
// the file target (same directory as st), moving the current target aside
// first (returned as old; "" if there was none), then removes the emptied
// staging directory. The same atomicity as Swap: target is the old file or
// the new one, briefly absent between the two renames.
func (c *Client) SwapFile(st, rel, target, tag string) (kept []string, earlier bool, err error) {
	if err := c.checkRel(st, rel); err != nil {
		return nil, false, err
	}
	sc, target, rename, err := c.swapPrepare(st, target)
	if err != nil {
		return nil, false, err
	}
	src := path.Join(st, rel)
	if fi, err := sc.Lstat(src); err != nil || !fi.Mode().IsRegular() {
		return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: %s is not a regular file", c.addr, target, src)
	}
	var aside string
	switch fi, err := sc.Lstat(target); {
	case err == nil:
		if !fi.Mode().IsRegular() {
			return nil, false, lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: the target is not a regular file", c.addr, target)
		}
		if kept, aside, earlier, err = c.setAside(sc, rename, target, tag); err != nil {
			return nil, false, err
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("restore %s: lstat %s: %w", c.addr, target, err)
	default:
		if kept, earlier, err = c.oldThere(sc, target, tag); err != nil {
			return nil, false, err
		}
	}
	if err := rename(src, target); err != nil {
		return nil, false, c.undoAside(rename, aside, target, fmt.Errorf("restore %s: rename %s to %s: %w", c.addr, src, target, err))
	}
	sc.RemoveDirectory(st)
	c.mu.Lock()
	delete(c.stagings, st)
	c.mu.Unlock()
	return kept, earlier, nil
}

// swapPrepare checks a swap of staging st into target (this client's
// staging directory, in target's directory, whose parents are no symlinks)
// and returns the SFTP client, the clean target and the rename to use (an
// atomic replace where the server offers it).
func (c *Client) swapPrepare(st, target string) (*sftp.Client, string, func(string, string) error, error) {
	target, err := c.checkTarget(target)
	if err != nil {
		return nil, "", nil, err
	}
	c.mu.Lock()
	s := c.stagings[st]
	c.mu.Unlock()
	if s == nil || path.Dir(st) != path.Dir(target) {
		return nil, "", nil, lifeboat.Errorf(lifeboat.EInvalid, "restore %s:%s: %s is not a staging directory for it", c.addr, target, st)
	}
	sc, err := c.sftp()
	if err != nil {
		return nil, "", nil, err
	}
	if err := c.checkDirs(sc, path.Dir(target)); err != nil {
		return nil, "", nil, err
	}
	rename := sc.Rename
	if _, ok := sc.HasExtension("posix-rename@openssh.com"); ok {
		rename = sc.PosixRename
	}
	return sc, target, rename, nil
}
