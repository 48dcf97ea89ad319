package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/capture/sqlite"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// Plan is what a restore to the original place would do.
type Plan struct {
	Component   string   `json:"component"`
	Target      string   `json:"target"`
	Create      int      `json:"create"`
	Overwrite   int      `json:"overwrite"`
	Delete      int      `json:"delete"`
	Unchanged   int      `json:"unchanged"`
	Examples    []string `json:"examples,omitempty"` // the first few changes, "+ path", "~ path", "- path"
	NeedBytes   int64    `json:"needBytes"`
	FreeBytes   int64    `json:"freeBytes"`
	TargetFound bool     `json:"targetFound"`
}

const maxExamples = 20

// PlanOriginal compares component c of point p with what is at its original
// place now.
func PlanOriginal(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component) (*Plan, error) {
	n, err := v.Lookup(ctx, p, c.Name)
	if err != nil {
		return nil, err
	}
	pl := &Plan{Component: c.Name}
	note := func(op, path string) {
		if len(pl.Examples) < maxExamples {
			pl.Examples = append(pl.Examples, op+" "+path)
		}
	}
	switch c.Kind {
	case lifeboat.KindSQLite:
		target := strings.TrimPrefix(c.Source, "sqlite:")
		pl.Target = target
		err := v.Walk(ctx, n, "", func(rel string, node *tree.Node) error {
			if node.Type == tree.File {
				pl.NeedBytes += node.Size
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(target); err == nil {
			pl.TargetFound = true
			pl.Overwrite = 1
			note("~", target)
		} else {
			pl.Create = 1
			note("+", target)
		}
		pl.FreeBytes = freeBytes(filepath.Dir(target))
		return pl, nil
	case lifeboat.KindConfig:
		meta, err := readMeta(ctx, v, p, c.Name)
		if err != nil {
			return nil, err
		}
		pl.Target = strings.Join(metaPaths(meta), ", ")
		for _, f := range meta.Files {
			fn, err := v.Lookup(ctx, p, c.Name+"/"+f.Stored)
			if err != nil {
				return nil, err
			}
			pl.NeedBytes += fn.Size
			planFile(pl, f.Path, fn, note)
		}
		pl.FreeBytes = freeBytes(filepath.Dir(firstOr(metaPaths(meta), "/")))
		return pl, nil
	default:
		pl.Target = c.Source
		seen := map[string]bool{}
		err := v.Walk(ctx, n, "", func(rel string, node *tree.Node) error {
			if node.Type == tree.File {
				pl.NeedBytes += node.Size
			}
			seen[rel] = true
			if rel == "" {
				return nil
			}
			planFile(pl, filepath.Join(c.Source, rel), node, note)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if _, err := os.Lstat(c.Source); err == nil {
			pl.TargetFound = true
			filepath.WalkDir(c.Source, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					return nil
				}
				rel, _ := filepath.Rel(c.Source, path)
				if rel == "." {
					return nil
				}
				if !seen[filepath.ToSlash(rel)] {
					pl.Delete++
					note("-", path)
					if d.IsDir() {
						return fs.SkipDir
					}
				}
				return nil
			})
		}
		pl.FreeBytes = freeBytes(filepath.Dir(c.Source))
		return pl, nil
	}
}

func firstOr(s []string, def string) string {
	if len(s) == 0 {
		return def
	}
	return s[0]
}

func planFile(pl *Plan, path string, n *tree.Node, note func(op, path string)) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		pl.Create++
		note("+", path)
		return
	}
	pl.TargetFound = true
	if n.Type == tree.Dir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		pl.Unchanged++
		return
	}
	if n.Type == tree.File && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == n.Size && st.Mtim.Nano() == n.MTime {
		pl.Unchanged++
		return
	}
	pl.Overwrite++
	note("~", path)
}

func freeBytes(dir string) int64 {
	var s unix.Statfs_t
	for {
		if err := unix.Statfs(dir, &s); err == nil {
			return int64(s.Bavail) * int64(s.Bsize)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return 0
		}
		dir = parent
	}
}

func readMeta(ctx context.Context, v *vault.Vault, p *manifest.Point, comp string) (*ConfigMeta, error) {
	n, err := v.Lookup(ctx, p, comp+"/"+MetaName)
	if err != nil {
		return nil, err
	}
	data, err := v.ReadFile(ctx, n)
	if err != nil {
		return nil, err
	}
	var m ConfigMeta
	if err := json.Unmarshal(data, &m); err != nil || m.Version != 1 {
		return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: unreadable %s", p.ID[:8], comp, MetaName)
	}
	for _, f := range m.Files {
		if !filepath.IsAbs(f.Path) || strings.Contains(f.Stored, "..") {
			return nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: bad file entry %q", p.ID[:8], comp, f.Path)
		}
	}
	return &m, nil
}

func metaPaths(m *ConfigMeta) []string {
	var out []string
	for _, f := range m.Files {
		out = append(out, f.Path)
	}
	return out
}

// Swap is a restore to the original place that has been put in place; the
// replaced data is kept in Old until Commit (health check passed) removes it.
type Swap struct {
	Component string   `json:"component"`
	Target    []string `json:"target"`
	Old       []string `json:"old,omitempty"` // where the replaced data is kept
	// Left: kept and reported, never removed (Notes say why): what an
	// earlier attempt of the job left under its staging name (it may hold
	// what was there before the job, or entries the component does not
	// capture); a replaced tree holding entries the component does not
	// capture that were not carried into the restored one (Uncaptured),
	// or that could not be listed to look for them.
	Left []string `json:"left,omitempty"`
	// Uncaptured names (at most 20 of UncapturedN) the entries of the
	// trees in Left that no point has: the component's globs leave them
	// out.
	Uncaptured  []string `json:"uncaptured,omitempty"`
	UncapturedN int      `json:"uncapturedCount,omitempty"`
	// Notes: one line for the job's log per thing kept in Left.
	Notes []string `json:"-"`
	// Earlier: an earlier attempt of the job had swapped here already (its
	// kept copy, named by the job, was there), or may have (it left its
	// staging): what the job replaced is in that attempt's safety point,
	// not this one's.
	Earlier bool `json:"-"`
	// Prior: the kept copies an earlier attempt of the job made (what was
	// there before the job), returned again by this one's swaps.
	Prior  []string           `json:"-"`
	remove func(string) error // on another host; nil: here
}

// leftover keeps for good what an earlier attempt left at its staging name.
func (s *Swap) leftover(p string) {
	s.Left = append(s.Left, p)
	// That attempt may have swapped (then stopped before setting the
	// replaced tree aside): the place may hold its restore.
	s.Earlier = true
	s.Notes = append(s.Notes, fmt.Sprintf("what an earlier attempt left at its staging is kept at %s (never removed: it may hold what was there before the restore)", p))
}

// holding keeps for good the replaced tree at p, which holds n entries the
// component does not capture (names: some of them), and says why they are
// there.
func (s *Swap) holding(p string, names []string, n int, why string) {
	s.Old = slices.DeleteFunc(s.Old, func(o string) bool { return o == p })
	s.Left = append(s.Left, p)
	s.Uncaptured = append(s.Uncaptured, names...)
	s.UncapturedN += n
	more := ""
	if n > len(names) {
		more = fmt.Sprintf(" and %d more", n-len(names))
	}
	s.Notes = append(s.Notes, fmt.Sprintf("%d entries the component does not capture (its globs leave them out) %s: the replaced tree holding them is kept at %s, never removed; move back what you need (%s%s)",
		n, why, p, strings.Join(names, ", "), more))
}

// unlisted keeps for good the replaced tree at p, which could not be
// listed to look for what the component does not capture.
func (s *Swap) unlisted(p string, err error) {
	s.KeepOnly([]string{p}, fmt.Sprintf("it could not be listed to look for entries the component does not capture: %v", err))
}

// KeepAll keeps for good what Commit would remove (Old), saying why.
func (s *Swap) KeepAll(why string) {
	s.KeepOnly(slices.Clone(s.Old), why)
}

// KeepOnly keeps for good the paths of Old among paths, saying why.
func (s *Swap) KeepOnly(paths []string, why string) {
	s.Old = slices.DeleteFunc(s.Old, func(o string) bool {
		if !slices.Contains(paths, o) {
			return false
		}
		s.Left = append(s.Left, o)
		s.Notes = append(s.Notes, fmt.Sprintf("what the restore replaced is kept at %s, never removed: %s", o, why))
		return true
	})
}

// keepEarlier adds to Old where a swap on another host kept what it
// replaced, earlier saying an earlier attempt of the job had swapped there.
func (s *Swap) keepEarlier(kept []string, earlier bool) {
	s.Old = append(s.Old, kept...)
	s.Earlier = s.Earlier || earlier
	if earlier && len(kept) > 0 {
		s.Prior = append(s.Prior, kept[0])
	}
}

// keep adds to Old where one swap kept what it replaced: a copy named by the
// job, then, if that copy was there already (an earlier attempt of the job
// swapped here first), a second one beside it.
func (s *Swap) keep(kept []string) {
	s.keepEarlier(kept, len(kept) > 1)
}

// Kept returns where the replaced data is: what Commit removes (Old),
// then what stays (Left).
func (s *Swap) Kept() []string {
	return append(append([]string{}, s.Old...), s.Left...)
}

// Commit removes the replaced data; what it could not remove stays in Old
// (and so in the job's result). It removes the last kept first: a kept
// database's log comes after it, and stopped half-way, Commit must not
// leave a log whose database is gone (a retry would keep another database
// beside it, under that name).
func (s *Swap) Commit() error {
	var first error
	var left []string
	for _, o := range slices.Backward(s.Old) {
		rm := removeTree
		if s.remove != nil {
			rm = s.remove
		}
		// A database whose log stays, stays too.
		if slices.ContainsFunc(sqliteLogs, func(suffix string) bool { return slices.Contains(left, o+suffix) }) {
			left = append(left, o)
			continue
		}
		if err := rm(o); err != nil {
			left = append(left, o)
			if first == nil {
				first = err
			}
		}
	}
	slices.Reverse(left)
	s.Old = left
	return first
}

// RestoreOriginal restores component c of point p to its original place:
// into a staging directory next to it, then swapped in (an atomic exchange
// where the target exists). The replaced data is kept (Swap.Old). tag names
// the staging and kept copies (a job id).
//
// ac is the app's definition of the component: a sqlite component's restore
// mode (stopped or live); a files component's globs — what the component
// did not capture (excluded, or not included) is carried over from the
// current tree into the restored one, never dropped by the swap.
func RestoreOriginal(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, ac lifeboat.Component, g *Guard, hostName, tag string, prog *vault.Progress) (*Swap, *vault.RestoreResult, error) {
	mode := ac.RestoreMode
	pl, err := PlanOriginal(ctx, v, p, c)
	if err != nil {
		return nil, nil, err
	}
	if pl.FreeBytes > 0 && pl.NeedBytes > pl.FreeBytes {
		return nil, nil, lifeboat.Errorf(lifeboat.EUnavailable, "restore of %s needs %d bytes, %s has %d free", c.Name, pl.NeedBytes, pl.Target, pl.FreeBytes)
	}
	switch c.Kind {
	case lifeboat.KindConfig:
		return restoreConfigOriginal(ctx, v, p, c, g, hostName, tag, prog)
	case lifeboat.KindSQLite:
		return restoreSQLiteOriginal(ctx, v, p, c, g, hostName, tag, mode, prog)
	case lifeboat.KindFiles:
	default:
		return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s: kind %q cannot be restored yet", c.Name, c.Kind)
	}
	target := c.Source
	if err := g.CheckSource(hostName, target); err != nil {
		return nil, nil, err
	}
	if err := RefuseMounts(c.Name, target); err != nil {
		return nil, nil, err
	}
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, nil, err
	}
	staging := filepath.Join(parent, ".lifeboat-restore-"+tag+"-"+filepath.Base(target))
	old := filepath.Join(parent, ".lifeboat-old-"+tag+"-"+filepath.Base(target))
	sw := &Swap{Component: c.Name, Target: []string{target}}
	if left, err := keepLeftover(staging, old); err != nil {
		return nil, nil, err
	} else if left != "" {
		sw.leftover(left)
	}
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: staging, Path: c.Name, Progress: prog})
	if err != nil {
		os.RemoveAll(staging)
		return nil, nil, err
	}
	if len(res.Failed) > 0 {
		os.RemoveAll(staging)
		return nil, res, lifeboat.Errorf(lifeboat.ECorrupt, "restore of %s: %d items failed (first: %s); nothing was replaced", c.Name, len(res.Failed), res.Failed[0])
	}
	moved, err := carryOver(target, staging, ac.Exclude, ac.Include)
	defer moved.close()
	// drop removes the staging after a failure, once what carryOver moved
	// into it from the live tree is back there; what cannot be put back
	// stays, in the staging, named in the error.
	drop := func(err error) error {
		if left := moved.undo(); len(left) > 0 {
			return fmt.Errorf("%w; %d entries %s does not capture could not be moved back from %s to %s (first: %s): they are kept there", err, len(left), c.Name, staging, target, left[0])
		}
		os.RemoveAll(staging)
		return err
	}
	if err != nil {
		return nil, res, drop(fmt.Errorf("restore of %s: keeping what the component does not capture: %w", c.Name, err))
	}
	if _, err := os.Lstat(target); err != nil {
		if err := os.Rename(staging, target); err != nil {
			os.RemoveAll(staging)
			return nil, nil, err
		}
		return sw, res, syncDir(parent)
	}
	if err := exchange(staging, target); err != nil {
		return nil, nil, drop(err)
	}
	// staging now holds the replaced tree.
	kept, err := setAside(staging, old)
	if err != nil {
		return nil, nil, err
	}
	sw.keep(kept)
	// What the component does not capture and is in a kept tree now (it
	// could not be carried, or was written during the restore, after the
	// carry-over; or an earlier attempt's kept tree holds some) is in no
	// point: that tree is kept for good.
	for _, k := range kept {
		switch names, n, err := uncapturedIn(k, ac.Exclude, ac.Include); {
		case err != nil:
			sw.unlisted(k, err)
		case n > 0:
			for i := range names {
				names[i] = filepath.Join(k, names[i])
			}
			why := "were written in the live tree during the restore, after it carried such entries over"
			if moved.leftN > 0 {
				why = "could not be carried into the restored tree (first: " + moved.why + ")"
			}
			sw.holding(k, names, n, why)
		}
	}
	return sw, res, syncDir(parent)
}

// keepLeftover moves aside what an earlier attempt of the job left at its
// staging name: one stopped between its swap and setting the replaced tree
// aside left what was there before in it; one stopped while carrying over,
// entries the component does not capture. It is kept beside old, never
// removed (Swap.Left), and its name returned ("" if there was none).
func keepLeftover(staging, old string) (string, error) {
	if _, err := os.Lstat(staging); err != nil {
		return "", nil
	}
	left := old + "-left-" + randomHex()
	if err := os.Rename(staging, left); err != nil {
		return "", fmt.Errorf("keeping what an earlier attempt left at %s: %w", staging, err)
	}
	return left, nil
}

// setAside moves what a swap took out of place (now at replaced) to old,
// where it is kept until the app's health check passes, and returns what is
// kept. If old exists, an earlier attempt of the same job (old names the
// job) swapped here first: old holds what was there before the job and
// stays; replaced holds that attempt's restore, with whatever was written
// there since (a kept copy of another component inside it, say), and is
// kept too, beside it. (Renamed over old, a file kept from before the job
// was lost, and a directory failed the retry.)
func setAside(replaced, old string) ([]string, error) {
	if _, err := os.Lstat(old); err == nil {
		again := old + "-" + randomHex()
		if err := os.Rename(replaced, again); err != nil {
			return nil, err
		}
		return []string{old, again}, nil
	}
	if err := os.Rename(replaced, old); err != nil {
		return nil, err
	}
	return []string{old}, nil
}

func randomHex() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// exchange swaps two paths atomically (renameat2 RENAME_EXCHANGE); where the
// file system cannot, it falls back to two renames.
func exchange(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	if err == nil {
		return nil
	}
	if err != unix.EINVAL && err != unix.ENOSYS {
		return fmt.Errorf("exchange %s and %s: %w", a, b, err)
	}
	tmp := a + ".swap"
	if err := os.Rename(b, tmp); err != nil {
		return err
	}
	if err := os.Rename(a, b); err != nil {
		os.Rename(tmp, b)
		return err
	}
	return os.Rename(tmp, a)
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func restoreConfigOriginal(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, g *Guard, hostName, tag string, prog *vault.Progress) (*Swap, *vault.RestoreResult, error) {
	meta, err := readMeta(ctx, v, p, c.Name)
	if err != nil {
		return nil, nil, err
	}
	sw := &Swap{Component: c.Name}
	total := &vault.RestoreResult{}
	for _, f := range meta.Files {
		if err := g.CheckSource(hostName, f.Path); err != nil {
			return nil, nil, err
		}
		n, err := v.Lookup(ctx, p, c.Name+"/"+f.Stored)
		if err != nil {
			return nil, nil, err
		}
		if n.Type != tree.File {
			return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s: config file %s is not a file", p.ID[:8], f.Stored)
		}
		dir := filepath.Dir(f.Path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
		staging := filepath.Join(dir, ".lifeboat-restore-"+tag+"-"+filepath.Base(f.Path))
		old := filepath.Join(dir, ".lifeboat-old-"+tag+"-"+filepath.Base(f.Path))
		if left, err := keepLeftover(staging, old); err != nil {
			return nil, nil, err
		} else if left != "" {
			sw.leftover(left)
		}
		res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: staging, Path: c.Name + "/" + f.Stored, Progress: prog})
		if err != nil {
			os.RemoveAll(staging)
			return nil, nil, err
		}
		total.Files += res.Files
		total.Bytes += res.Bytes
		staged := filepath.Join(staging, filepath.Base(f.Stored))
		sw.Target = append(sw.Target, f.Path)
		if _, err := os.Lstat(f.Path); err != nil {
			err = os.Rename(staged, f.Path)
			os.RemoveAll(staging)
			if err != nil {
				return nil, nil, err
			}
		} else {
			if err := exchange(staged, f.Path); err != nil {
				os.RemoveAll(staging)
				return nil, nil, err
			}
			kept, err := setAside(staged, old)
			if err != nil {
				return nil, nil, err
			}
			os.RemoveAll(staging)
			sw.keep(kept)
		}
		if err := syncDir(dir); err != nil {
			return nil, nil, err
		}
	}
	sort.Strings(sw.Target)
	return sw, total, nil
}

// RestoreToDir restores component c of point p into dir/<component>, which
// must not exist yet or be empty; with resume, it may also hold what an
// earlier restore of the same point and component left (the job's earlier
// attempt, failed on a storage error), which is finished, keeping the files
// found whole (vault.RestoreOptions.Resume). The restore's record stays in
// the component's directory (KeepRecord), so that a retry of the job
// resumes components it finished too: the caller removes it with
// vault.RemoveRestoreRecord once every component is restored. The record
// names the job (by): a retry resumes only what the job itself left. The
// guard checks dir is under a restore root of the host.
func RestoreToDir(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, g *Guard, hostName, dir, by string, resume bool, prog *vault.Progress) (*vault.RestoreResult, error) {
	target := filepath.Join(dir, c.Name)
	if err := g.CheckTarget(hostName, target); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "restore target %s: %v", dir, err)
	}
	return v.Restore(ctx, p, vault.RestoreOptions{Target: target, Path: c.Name, Progress: prog, Resume: resume, KeepRecord: true, RecordBy: by})
}

// restoreSQLiteOriginal restores a sqlite component to its database file:
// the copy is restored into a staging directory next to it, checked against
// the row counts the point recorded, then put in place by mode (stopped:
// the old file is kept beside it and replaced; live: written through the
// backup API into the running database).
func restoreSQLiteOriginal(ctx context.Context, v *vault.Vault, p *manifest.Point, c manifest.Component, g *Guard, hostName, tag, mode string, prog *vault.Progress) (*Swap, *vault.RestoreResult, error) {
	target := strings.TrimPrefix(c.Source, "sqlite:")
	if !filepath.IsAbs(target) {
		return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "point %s, component %s: no database path recorded", p.ID[:8], c.Name)
	}
	if err := g.CheckSource(hostName, target); err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	staging := filepath.Join(dir, ".lifeboat-restore-"+tag+"-"+c.Name)
	defer os.RemoveAll(staging)
	res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: staging, Path: c.Name, Progress: prog})
	if err != nil {
		return nil, nil, err
	}
	from := filepath.Join(staging, filepath.Base(target))
	if err := verifySQLite(ctx, from, c); err != nil {
		return nil, res, err
	}
	sw := &Swap{Component: c.Name, Target: []string{target}}
	var old string    // where this attempt keeps the database, "" if nowhere
	var logs []string // the suffixes of the logs linked beside old
	fail := func(err error) (*Swap, *vault.RestoreResult, error) {
		if old != "" {
			err = unkeepSQLite(target, old, logs, err)
		}
		if len(sw.Left) > 0 {
			err = fmt.Errorf("%w (what earlier attempts kept of the database is at %s)", err, strings.Join(sw.Left, ", "))
		}
		return nil, res, err
	}
	if _, err := os.Lstat(target); err == nil && mode != sqlite.Live {
		if old, logs, err = sw.keepDatabase(target, tag); err != nil {
			return fail(err)
		}
	}
	if err := sqlite.Restore(ctx, from, target, mode); err != nil {
		return fail(err)
	}
	if sw.Earlier && len(sw.Left) > 0 {
		sw.KeepAll("an earlier attempt may have separated it from its log (see the log kept beside it)")
	}
	return sw, res, nil
}

// keepDatabase keeps the database target, about to be replaced in
// stopped mode, with its logs beside it under the job's kept name (tag),
// adding them to s. It returns where it kept the database ("" if nowhere
// yet) and the suffixes of the logs it linked beside it, also after a
// failure, for unkeepSQLite.
func (s *Swap) keepDatabase(target, tag string) (old string, logs []string, err error) {
	// If an earlier attempt of the job got this far, name keeps what
	// was there before the job, and the database there now (that
	// attempt's restore) is kept beside it (see setAside).
	name := filepath.Join(filepath.Dir(target), ".lifeboat-old-"+tag+"-"+filepath.Base(target))
	if err := s.earlierKept(name); err != nil {
		return old, logs, err
	}
	var kept []string
	switch _, err := os.Lstat(name); {
	case err == nil && sameFile(name, target):
		// An earlier attempt linked the database and stopped before
		// replacing it: the same database, kept where it is.
	case err == nil:
		kept = append(kept, name)
		name += "-" + randomHex()
	case logBeside(name):
		// The log of a kept copy removed half-way: not this one's.
		name += "-" + randomHex()
	}
	if !sameFile(name, target) {
		if err := os.Link(target, name); err != nil {
			return old, logs, err
		}
	}
	old = name
	kept = append(kept, old)
	s.keep(kept)
	if len(kept) > 1 {
		// The earlier attempt's copy goes with the log it kept.
		for _, suffix := range sqliteLogs {
			if _, err := os.Lstat(kept[0] + suffix); err == nil {
				s.Old = append(s.Old, kept[0]+suffix)
				s.Prior = append(s.Prior, kept[0]+suffix)
			}
		}
	}
	// Its log goes with it, under the name SQLite looks for beside
	// the kept copy: the restore removes it from the target, and it
	// may hold the last transactions.
	for _, suffix := range sqliteLogs {
		if _, err := os.Lstat(old + suffix); err == nil && !sameFile(old+suffix, target+suffix) {
			// A log an earlier attempt linked beside the database is no
			// longer beside it: that attempt removed it (and stopped),
			// or the app has written a new one since. Which database
			// state it goes with is unknown: it is set aside under a
			// name SQLite pairs with nothing (see earlierKept).
			aside := old + suffix + "-" + randomHex()
			if err := os.Rename(old+suffix, aside); err != nil {
				return old, logs, err
			}
			s.setAsideLog(aside, suffix)
		}
		err := os.Link(target+suffix, old+suffix)
		if errors.Is(err, fs.ErrExist) && sameFile(target+suffix, old+suffix) {
			err = nil // linked by an earlier attempt that stopped
		}
		switch {
		case err == nil:
			s.Old = append(s.Old, old+suffix)
			logs = append(logs, suffix)
		case !errors.Is(err, fs.ErrNotExist):
			return old, logs, err
		}
	}
	return old, logs, nil
}

// earlierKept finds, beside name (the database's kept name), what
// earlier attempts of the job kept and no result may name: the logs they
// set aside (see setAsideLog), and copies they kept under a name of their own
// (name-<hex>, with their logs) before stopping. It keeps them again, never
// removed: an earlier attempt may have separated the database from its log,
// so every attempt keeps what it replaces for good, and names the first
// safety point, while one is there.
func (s *Swap) earlierKept(name string) error {
	ents, err := os.ReadDir(filepath.Dir(name))
	if err != nil {
		return err
	}
	base := filepath.Base(name) + "-"
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), base)
		if !ok {
			continue
		}
		p := filepath.Join(filepath.Dir(name), e.Name())
		for _, suffix := range sqliteLogs {
			if strings.HasPrefix(rest, suffix[1:]+"-") {
				s.setAsideLog(p, suffix)
			}
		}
		if len(rest) < 8 || len(rest) > 8 && rest[8] != '-' {
			continue
		}
		if _, err := hex.DecodeString(rest[:8]); err == nil { // randomHex
			s.Left = append(s.Left, p)
			s.Notes = append(s.Notes, fmt.Sprintf("what an earlier attempt kept of the database (it stopped before it was done) is kept at %s, never removed", p))
			s.Earlier = true
		}
	}
	return nil
}

// setAsideLog keeps, never removed, a log of the database set aside at p: an
// earlier attempt may have separated the database from it, so what is
// replaced now may lack what it held (Earlier: that attempt's safety point
// is named).
func (s *Swap) setAsideLog(p, suffix string) {
	s.Left = append(s.Left, p)
	s.Notes = append(s.Notes, fmt.Sprintf("a log an earlier attempt kept of the database is no longer the database's (that attempt removed it, or the app wrote a new one since): kept at %s, never removed; rename it to the kept copy's name plus %s only if the app did not run in between", p, suffix))
	s.Earlier = true
}

// unkeepSQLite undoes, after a stopped-mode restore failed with err, what
// it kept of the database target at old (a link to it, and links to its
// logs), once the logs the restore removed are back beside target. Only
// while target is the database it was (the links are then other names of
// the live files): otherwise, or if a log cannot go back, what is kept
// stays and err says where.
func unkeepSQLite(target, old string, logs []string, err error) error {
	if !sameFile(target, old) {
		return fmt.Errorf("%w (what the restore replaced is kept at %s, with its log)", err, old)
	}
	for _, suffix := range logs {
		if _, lerr := os.Lstat(target + suffix); errors.Is(lerr, fs.ErrNotExist) {
			if lerr := os.Link(old+suffix, target+suffix); lerr != nil {
				return fmt.Errorf("%w (the database's log could not go back: it is kept at %s%s)", err, old, suffix)
			}
		}
		if sameFile(target+suffix, old+suffix) {
			os.Remove(old + suffix)
		}
	}
	for _, suffix := range logs {
		if _, lerr := os.Lstat(old + suffix); lerr == nil {
			return err // a log stays beside it
		}
	}
	os.Remove(old)
	return err
}

// sameFile says whether a and b are names of one file (neither followed).
func sameFile(a, b string) bool {
	fa, err := os.Lstat(a)
	if err != nil {
		return false
	}
	fb, err := os.Lstat(b)
	return err == nil && os.SameFile(fa, fb)
}

// logBeside says whether a SQLite log is at db's name (the database's
// name plus -wal or -journal).
func logBeside(db string) bool {
	for _, suffix := range sqliteLogs {
		if _, err := os.Lstat(db + suffix); err == nil {
			return true
		}
	}
	return false
}

// verifySQLite compares a restored copy's row counts with those the point
// recorded.
func verifySQLite(ctx context.Context, path string, c manifest.Component) error {
	if len(c.Meta) == 0 {
		return nil
	}
	var want lifeboat.DatabaseInfo
	if err := json.Unmarshal(c.Meta, &want); err != nil {
		return lifeboat.Errorf(lifeboat.ECorrupt, "component %s: unreadable metadata", c.Name)
	}
	got, err := sqlite.Describe(ctx, path)
	if err != nil {
		return err
	}
	if diff := CompareCounts(&want, got); diff != "" {
		return lifeboat.Errorf(lifeboat.ECorrupt, "component %s: the restored database differs from the point: %s", c.Name, diff)
	}
	return nil
}

// CompareCounts returns the first differences between two databases' row
// counts ("" if none).
func CompareCounts(want, got *lifeboat.DatabaseInfo) string {
	g := map[string]int64{}
	for _, t := range got.Tables {
		g[t.Name] = t.Rows
	}
	var diffs []string
	for _, t := range want.Tables {
		n, ok := g[t.Name]
		switch {
		case !ok:
			diffs = append(diffs, "table "+t.Name+" missing")
		case n != t.Rows:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, want %d", t.Name, n, t.Rows))
		}
		delete(g, t.Name)
		if len(diffs) >= 5 {
			break
		}
	}
	for name := range g {
		if len(diffs) < 5 {
			diffs = append(diffs, "unexpected table "+name)
		}
	}
	sort.Strings(diffs)
	return strings.Join(diffs, "; ")
}
