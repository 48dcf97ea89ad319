package capture

import (
	"context"
	"fmt"
	"io"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// RemoteTarget writes a restored tree onto an SSH host. SFTP cannot refuse
// to follow symlinks, so the implementation checks every parent with lstat
// inside a fresh 0700 staging directory, creates symlinks last, and swaps
// the staging directory into place.
type RemoteTarget interface {
	MkdirStaging(target string) (string, error)
	Mkdir(staging, rel string, mode uint32) error
	WriteFile(staging, rel string, mode uint32, r io.Reader) error
	Symlink(staging, rel, linkTarget string) error
	// Swap puts staging at target (with mode) and returns where the
	// replaced tree is kept (none if there was none): a name of tag (the
	// job's), which, if an earlier attempt of the job made it already,
	// keeps what it holds (what was there before the job), and then a
	// name beside it for the replaced tree (that attempt's restore);
	// earlier says an earlier attempt of the job swapped there (or began
	// to: its kept copy is returned then, target being absent).
	Swap(staging, target string, mode uint32, tag string) (kept []string, earlier bool, err error)
	// SwapFile puts the file written at rel in staging in place of the
	// file target, returning where the replaced one is kept (as Swap).
	SwapFile(staging, rel, target, tag string) (kept []string, earlier bool, err error)
	// SetMeta gives an entry written in staging its mode, time (to the
	// second) and, where the session may, its owner; after symlinks too.
	SetMeta(staging, rel string, mode, uid, gid uint32, mtime time.Time) error
	// RemoveAll removes a tree the restore kept or left behind.
	RemoveAll(ctx context.Context, p string) error
	// List lists the tree at root on the host, never following symlinks.
	List(ctx context.Context, root string) ([]vault.RemoteEntry, error)
	// Run runs a command on the host (argv quoted for its shell).
	Run(ctx context.Context, argv []string, stdin io.Reader, stdout io.Writer) error
	// Open reads a file of the host.
	Open(p string) (io.ReadCloser, error)
}

// RemoteSource returns the host and path of a component captured on an SSH
// host ("ssh://HOST/PATH"), or ok false.
func RemoteSource(c manifest.Component) (host, p string, ok bool) {
	rest, found := strings.CutPrefix(c.Source, "ssh://")
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, '/')
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i:], true
}

// RestoreRemote restores a files component captured on an SSH host to its
// original place there. Modes and modification times are restored, times
// to the second (SFTP carries no finer ones, so the next backup reads
// files whose recorded time had a fraction again); owners too when the
// host's SSH user is root, otherwise files belong to that user.
//
// ac is the app's definition of the component: what its globs leave out
// (excluded, or not included) is not carried into the restored tree, as it
// is on the local host (see keepUncaptured).
func RestoreRemote(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, ac lifeboat.Component, rt RemoteTarget, tag string, prog *vault.Progress) (*Swap, *vault.RestoreResult, error) {
	_, target, ok := RemoteSource(c)
	if !ok || !path.IsAbs(target) {
		return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: no remote path recorded", p.ID[:8], c.Name)
	}
	root, err := v.Lookup(ctx, p, c.Name)
	if err != nil {
		return nil, nil, err
	}
	if root.Type != tree.Dir {
		return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s is not a directory", c.Name)
	}
	st, err := rt.MkdirStaging(target)
	if err != nil {
		return nil, nil, err
	}
	res := &vault.RestoreResult{}
	type link struct{ rel, target string }
	var links []link
	var dirs []*tree.Node // with their rel paths in dirRels, in walk order
	var dirRels []string
	fail := func(err error) (*Swap, *vault.RestoreResult, error) {
		rt.RemoveAll(context.WithoutCancel(ctx), st)
		return nil, res, err
	}
	err = v.Walk(ctx, root, "", func(rel string, n *tree.Node) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if rel == "" {
			return nil
		}
		switch n.Type {
		case tree.Dir:
			res.Dirs++
			dirs, dirRels = append(dirs, n), append(dirRels, rel)
			return rt.Mkdir(st, rel, n.Mode)
		case tree.File:
			r, err := v.OpenFile(ctx, n)
			if err != nil {
				return err
			}
			if err := rt.WriteFile(st, rel, n.Mode, r); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if err := rt.SetMeta(st, rel, n.Mode, n.UID, n.GID, time.Unix(0, n.MTime)); err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			res.Files++
			res.Bytes += n.Size
			if prog != nil {
				prog.Files.Add(1)
				prog.Bytes.Add(n.Size)
			}
		case tree.Symlink:
			links = append(links, link{rel, n.Target})
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	for _, l := range links { // last: nothing is ever written through them
		if err := rt.Symlink(st, l.rel, l.target); err != nil {
			return fail(fmt.Errorf("%s: %w", l.rel, err))
		}
		res.Symlinks++
	}
	// Directories last, deepest first: writing into one changes its time.
	for i := len(dirs) - 1; i >= 0; i-- {
		n := dirs[i]
		if err := rt.SetMeta(st, dirRels[i], n.Mode, n.UID, n.GID, time.Unix(0, n.MTime)); err != nil {
			return fail(fmt.Errorf("%s: %w", dirRels[i], err))
		}
	}
	kept, earlier, err := rt.Swap(st, target, root.Mode, tag)
	if err != nil {
		return fail(err)
	}
	sw := &Swap{Component: c.Name, Target: []string{"ssh://" + strings.TrimPrefix(c.Source, "ssh://")}, remove: func(p string) error { return rt.RemoveAll(context.Background(), p) }}
	sw.keepEarlier(kept, earlier)
	sw.keepUncaptured(ctx, rt, ac.Exclude, ac.Include)
	return sw, res, nil
}

// leftOut reports whether the entry at rel of a kept tree is in no point
// of the component: its globs leave it out, or it is what the restore of a
// component nested in it kept beside its target (.lifeboat-*).
func leftOut(excludes, includes []string, rel string, isDir bool) bool {
	name := path.Base(rel)
	return strings.HasPrefix(name, ".lifeboat-") || vault.Excluded(excludes, includes, rel, name, isDir)
}

// maxUncaptured bounds the entries a Swap names in Uncaptured.
const maxUncaptured = 20

// keepUncaptured moves from Old to Left every replaced tree that holds
// files the component does not capture (its excludes, or what its includes
// leave out): no point has them and the restored tree lacks them — moving
// them over SFTP cannot be made safe against the app user swapping a
// directory for a symlink meanwhile — so such a tree is never removed, and
// the entries are named (Uncaptured) for the user to move back. A tree that
// cannot be listed is kept too. Directories alone (an empty excluded cache
// directory) do not keep a tree; an excluded directory holding files is
// named once.
func (s *Swap) keepUncaptured(ctx context.Context, rt RemoteTarget, excludes, includes []string) {
	for _, o := range slices.Clone(s.Old) {
		switch found, n, err := uncaptured(ctx, rt, o, excludes, includes); {
		case err != nil:
			s.unlisted(o, err)
		case n > 0:
			s.holding(o, found, n, "are not carried into the restored tree on an SSH host")
		}
	}
}

// uncaptured lists the tree at root and returns the entries the globs
// leave out that hold files (host paths, at most maxUncaptured) and how
// many there are.
func uncaptured(ctx context.Context, rt RemoteTarget, root string, excludes, includes []string) ([]string, int, error) {
	es, err := rt.List(ctx, root)
	if err != nil {
		return nil, 0, err
	}
	// Excluded directories first (a listing need not be in walk order);
	// inside one, everything is uncaptured.
	var dirs []string
	for _, e := range es {
		if e.Path != "." && e.Type == 'd' && leftOut(excludes, includes, e.Path, true) {
			dirs = append(dirs, e.Path)
		}
	}
	under := func(p string) string {
		for _, d := range dirs {
			if strings.HasPrefix(p, d+"/") {
				return d
			}
		}
		return ""
	}
	named := map[string]bool{}
	var found []string
	for _, e := range es {
		if e.Path == "." || e.Type == 'd' {
			continue
		}
		what := under(e.Path)
		if what == "" {
			if !leftOut(excludes, includes, e.Path, false) {
				continue
			}
			what = e.Path
		}
		if !named[what] {
			named[what] = true
			found = append(found, what)
		}
	}
	n := len(found)
	sort.Strings(found)
	if len(found) > maxUncaptured {
		found = found[:maxUncaptured]
	}
	for i, f := range found {
		found[i] = root + "/" + f
	}
	return found, n, nil
}

// RestoreRemoteConfig puts the config files of a point back on the SSH host
// they were read from, each through a staging directory next to it (the
// replaced file kept until the health check).
func RestoreRemoteConfig(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, rt RemoteTarget, tag string, prog *vault.Progress) (*Swap, *vault.RestoreResult, error) {
	meta, err := readMeta(ctx, v, p, c.Name)
	if err != nil {
		return nil, nil, err
	}
	sw := &Swap{Component: c.Name, remove: func(p string) error { return rt.RemoveAll(context.Background(), p) }}
	res := &vault.RestoreResult{}
	for _, f := range meta.Files {
		n, err := v.Lookup(ctx, p, c.Name+"/"+f.Stored)
		if err != nil {
			return sw, res, err
		}
		if n.Type != tree.File {
			return sw, res, lifeboat.Errorf(lifeboat.ECorrupt, "point %s: config file %s is not a file", p.ID[:8], f.Stored)
		}
		st, err := rt.MkdirStaging(f.Path)
		if err != nil {
			return sw, res, err
		}
		r, err := v.OpenFile(ctx, n)
		if err == nil {
			err = rt.WriteFile(st, path.Base(f.Path), n.Mode, r)
		}
		if err == nil {
			err = rt.SetMeta(st, path.Base(f.Path), n.Mode, n.UID, n.GID, time.Unix(0, n.MTime))
		}
		var kept []string
		var earlier bool
		if err == nil {
			kept, earlier, err = rt.SwapFile(st, path.Base(f.Path), f.Path, tag)
		}
		if err != nil {
			rt.RemoveAll(context.WithoutCancel(ctx), st)
			return sw, res, fmt.Errorf("%s: %w", f.Path, err)
		}
		sw.Target = append(sw.Target, f.Path)
		sw.keepEarlier(kept, earlier)
		res.Files++
		res.Bytes += n.Size
		if prog != nil {
			prog.Files.Add(1)
			prog.Bytes.Add(n.Size)
		}
	}
	return sw, res, nil
}
