package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/manifest"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

func newVaultCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "vault",
		Short: "Work on a vault directly, with no server (the disaster kit)",
		Long: `Work on a vault directly: only the storage and the passphrase are needed.

LOCATION is a directory, file:///path, or s3://bucket/prefix (endpoint from
--s3-endpoint or AWS_ENDPOINT_URL; credentials from AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY or --s3-credentials-file). The passphrase comes from
LIFEBOAT_PASSPHRASE, --passphrase-file (mode 0600), or what a command prints
(--passphrase-command or LIFEBOAT_PASSPHRASE_COMMAND: a secret manager's
CLI, run with /bin/sh), never from a flag value.` + exitCodeHelp,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for \"lifeboat vault\"", args[0])
			}
			return cmd.Help()
		},
	}
	c.AddCommand(newVaultInit(env), newVaultBackup(env), newVaultPoints(env), newVaultLs(env), newVaultRestore(env), newVaultCheck(env))
	c.AddCommand(newVaultGC(env))
	c.AddCommand(newVaultForget(env))
	c.AddCommand(newVaultUndelete(env))
	c.AddCommand(newVaultHold(env))
	c.AddCommand(newVaultRelease(env))
	c.AddCommand(newVaultVersions(env), newVaultRecoverDeleted(env))
	return c
}

type outputFlag struct{ format string }

func (o *outputFlag) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "text", "output format: text or json")
}

func (o *outputFlag) check() error {
	if o.format != "text" && o.format != "json" {
		return usagef("--output %q: want text or json", o.format)
	}
	return nil
}

func (o *outputFlag) json() bool { return o.format == "json" }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// openVault opens the backend and the vault with the passphrase.
func openVault(ctx context.Context, env Env, f *vaultFlags) (*vault.Vault, storage.Backend, error) {
	pass, err := f.passphrase(env)
	if err != nil {
		return nil, nil, err
	}
	be, err := f.openBackend(ctx, env, false)
	if err != nil {
		return nil, nil, err
	}
	slot, err := f.keySlot()
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	v, err := f.open(ctx, be, pass, vault.Options{KeySlot: slot})
	if err != nil {
		be.Close()
		return nil, nil, err
	}
	return v, be, nil
}

func newVaultInit(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "init --vault LOCATION",
		Short: "Create a new vault",
		Long:  "Create a new, empty vault at LOCATION, protected by the passphrase." + exitCodeHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			pass, err := f.passphrase(env)
			if err != nil {
				return err
			}
			if err := newPassphraseCheck(pass); err != nil {
				return err
			}
			be, err := f.openBackend(ctx, env, true)
			if err != nil {
				return err
			}
			defer be.Close()
			t0 := time.Now()
			v, err := vault.Init(ctx, be, pass, vault.Options{})
			if err != nil {
				return err
			}
			cfg := v.Config()
			if out.json() {
				return writeJSON(env.Stdout, map[string]any{"location": be.Location(), "id": cfg.ID, "version": cfg.Version, "seconds": time.Since(t0).Seconds()})
			}
			fmt.Fprintf(env.Stdout, "created vault %s at %s\n", cfg.ID[:8], be.Location())
			fmt.Fprintln(env.Stdout, "keep the passphrase safe: without it nothing in the vault can be read")
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	return cmd
}

func parseLabels(in []string) (map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, usagef("--label %q: want key=value", l)
		}
		m[k] = v
	}
	return m, nil
}

// MinNewPassphrase is the shortest passphrase a new vault takes, in
// characters: anyone who can read the storage can try passphrases against
// its key slot offline, so it is held to what a kit export asks.
const MinNewPassphrase = 12

// newPassphraseCheck says why pass may not protect a new vault, or nil.
// Existing vaults open with whatever passphrase made them.
func newPassphraseCheck(pass []byte) error {
	if n := utf8.RuneCount(pass); n < MinNewPassphrase {
		return lifeboat.Errorf(lifeboat.EInvalid, "the passphrase of a new vault must be at least %d characters (it has %d): whoever reads the storage can try passphrases against it offline", MinNewPassphrase, n)
	}
	return nil
}

func newVaultBackup(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var labels, excludes, includes []string
	var parent, host string
	var noParent, quiet, initMissing bool
	cmd := &cobra.Command{
		Use:   "backup --vault LOCATION [--label k=v]... [--exclude GLOB]... PATH...",
		Short: "Back up directories and files into a new point",
		Long: `Back up PATHs into one new recovery point, one component per PATH.

Unchanged files (same size, mtime, inode and ctime as in the parent point,
by default the newest point of this host with the same path) are not read.
A glob without "/" matches a file or directory name at any depth; with "/"
it matches the path relative to the PATH given; a trailing "/" matches
directories only; "*" stays within a name, "**" spans directories, {a,b} is
either (--exclude cache/ --exclude '**/node_modules' --exclude 'logs/*.gz').
--include keeps only the files it matches or that lie under a directory it
matches (--include config takes all of config/). Files that change or vanish while being read
are reported and the point is marked partial (exit code 3). A PATH that is a
symlink is captured as the link (a note says so when it points to a
directory): name the directory itself to back it up.` + exitCodeHelp,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			lm, err := parseLabels(labels)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			pass, err := f.passphrase(env)
			if err != nil {
				return err
			}
			// Input is checked before anything is opened, let alone a vault
			// created (--init).
			var srcs []vault.Source
			for _, a := range args {
				if _, err := os.Lstat(a); err != nil {
					return lifeboat.Errorf(lifeboat.ENotFound, "cannot back up %s: %v", a, errors.Unwrap(err))
				}
				srcs = append(srcs, vault.Source{Path: a})
				noteSymlinkSource(env, a)
			}
			for _, g := range append(append([]string{}, excludes...), includes...) {
				if err := vault.CheckGlob(g); err != nil {
					return err
				}
			}
			if parent != "" {
				if err := vault.CheckPointRef(parent); err != nil {
					return fmt.Errorf("--parent: %w", err)
				}
			}
			slot, err := f.keySlot()
			if err != nil {
				return err
			}
			// A passphrase too short for a new vault still opens an existing
			// one: only then is nothing created first.
			weak := newPassphraseCheck(pass)
			be, err := f.openBackend(ctx, env, initMissing && weak == nil)
			if initMissing && weak != nil && lifeboat.ErrorCode(err) == lifeboat.ENotFound {
				return fmt.Errorf("backup --init: %w", weak)
			}
			if err != nil {
				return err
			}
			defer be.Close()
			v, err := f.open(ctx, be, pass, vault.Options{KeySlot: slot})
			if initMissing && lifeboat.ErrorCode(err) == lifeboat.ENotFound {
				if weak != nil {
					return fmt.Errorf("backup --init: %w", weak)
				}
				v, err = vault.Init(ctx, be, pass, vault.Options{})
				if err == nil && !out.json() {
					fmt.Fprintf(env.Stderr, "created vault %s at %s\n", v.Config().ID[:8], be.Location())
				}
			}
			if err != nil {
				return err
			}
			// Never capture the vault into itself.
			var skip []string
			if strings.HasPrefix(be.Location(), "/") {
				skip = append(skip, be.Location())
			}
			prog := &vault.Progress{}
			bar := startProgress(env, "backup", prog, quiet)
			warnings := 0
			p, err := v.Backup(ctx, vault.BackupOptions{
				Sources: srcs, Excludes: excludes, Includes: includes, SkipPaths: skip, Labels: lm, Host: host,
				Parent: parent, NoParent: noParent, Progress: prog, Scan: bar.on,
				Warn: func(path string, werr error) {
					warnings++
					if warnings <= 20 {
						if bar.on {
							fmt.Fprint(env.Stderr, "\r\x1b[K")
						}
						fmt.Fprintf(env.Stderr, "warning: %s: %v\n", path, werr)
					}
				},
			})
			bar.done()
			if err != nil {
				return err
			}
			if warnings > 20 {
				fmt.Fprintf(env.Stderr, "warning: %d more warnings not shown\n", warnings-20)
			}
			el := p.Finished.Sub(p.Time)
			if out.json() {
				if err := writeJSON(env.Stdout, pointJSON(p)); err != nil {
					return err
				}
			} else {
				s := p.Stats
				fmt.Fprintf(env.Stdout, "point %s saved: %d files (%d unchanged), %d dirs, %s read, %s new in the vault, %s\n",
					p.ID[:8], s.Files, s.UnchangedFiles, s.Dirs, fmtBytes(s.BytesRead), fmtBytes(s.BytesNew), el.Round(time.Millisecond))
			}
			if p.Partial {
				return lifeboat.Errorf(lifeboat.EPartial, "point %s is partial: %d items could not be read (see warnings)", p.ID[:8], p.Stats.Warnings)
			}
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	fl := cmd.Flags()
	fl.StringArrayVar(&labels, "label", nil, "label the point with key=value (repeatable)")
	fl.StringArrayVar(&excludes, "exclude", nil, "skip files and directories matching GLOB (repeatable)")
	fl.StringArrayVar(&includes, "include", nil, "capture only files matching GLOB, or under a directory matching it (repeatable)")
	fl.StringVar(&parent, "parent", "", "point whose unchanged files are reused (default: newest of this host and path)")
	fl.BoolVar(&noParent, "no-parent", false, "read every file, ignoring earlier points")
	fl.StringVar(&host, "host", "", "host name recorded in the point (default: this machine's)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	fl.BoolVar(&initMissing, "init", false, "create the vault first if there is none at LOCATION")
	return cmd
}

type pointOut struct {
	ID         string               `json:"id"`
	Time       time.Time            `json:"time"`
	Finished   time.Time            `json:"finished"`
	Host       string               `json:"host"`
	User       string               `json:"user,omitempty"`
	Labels     map[string]string    `json:"labels,omitempty"`
	Parent     string               `json:"parent,omitempty"`
	Partial    bool                 `json:"partial"`
	Warnings   []string             `json:"warnings,omitempty"`
	Components []manifest.Component `json:"components"`
	Stats      manifest.Stats       `json:"stats"`
	Deleted    bool                 `json:"deleted,omitempty"` // soft-deleted (forget): restorable until collected; "latest" skips it
	Held       bool                 `json:"held,omitempty"`
}

func pointJSON(p *manifest.Point) pointOut {
	return pointOut{ID: p.ID, Time: p.Time, Finished: p.Finished, Host: p.Host, User: p.User, Labels: p.Labels,
		Parent: p.Parent, Partial: p.Partial, Warnings: p.Warnings, Components: p.Components, Stats: p.Stats}
}

func newVaultPoints(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	cmd := &cobra.Command{
		Use:   "points --vault LOCATION [-o json]",
		Short: "List the recovery points, oldest first",
		Long: `List the recovery points in the vault, oldest first. A point marked
"(forgotten)" is soft-deleted: restorable by id until a collection purges it,
and "latest" skips it. Manifests that do not open are listed on stderr after
the others, and the exit code is 7.` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) (err error) {
			if err := out.check(); err != nil {
				return err
			}
			v, be, err := openVault(cmd.Context(), env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			pts, damaged, err := v.ReadablePoints(cmd.Context())
			if err != nil {
				return err
			}
			states, serr := v.PointStates(cmd.Context())
			if serr != nil {
				fmt.Fprintf(env.Stderr, "warning: soft-delete and hold states unknown: %v\n", serr)
			}
			// Damage is listed after the points it did not hide, and sets
			// the exit code.
			defer func() {
				if err == nil && len(damaged) > 0 {
					for _, pr := range damaged {
						fmt.Fprintf(env.Stderr, "error: point %s: %s: %s\n", pr.Points[0][:8], pr.Object, pr.What)
					}
					err = lifeboat.Errorf(lifeboat.ECorrupt, "%d manifests do not open (run lifeboat vault check)", len(damaged))
				}
			}()
			if out.json() {
				list := make([]pointOut, 0, len(pts))
				for _, p := range pts {
					po := pointJSON(p)
					po.Deleted, po.Held = states[p.ID].Deleted, states[p.ID].Held
					list = append(list, po)
				}
				return writeJSON(env.Stdout, list)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tTIME\tHOST\tCOMPONENTS\tFILES\tSIZE\tLABELS")
			for _, p := range pts {
				var comps []string
				for _, c := range p.Components {
					comps = append(comps, c.Name)
				}
				id := p.ID[:8]
				if p.Partial {
					id += " (partial)"
				}
				if states[p.ID].Deleted {
					id += " (forgotten)"
				}
				if states[p.ID].Held {
					id += " (held)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, p.Time.Local().Format("2006-01-02 15:04:05"), p.Host,
					strings.Join(comps, ","), p.Stats.Files, fmtBytes(p.Stats.Bytes), fmtLabels(p.Labels))
			}
			tw.Flush()
			fmt.Fprintf(env.Stdout, "%d points\n", len(pts))
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	return cmd
}

func fmtLabels(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// noteSymlinkSource tells the user when a PATH given to backup is a
// symlink to a directory (a deploy's "current" link, say): the link itself
// is captured, as tar and restic do, which a point of "0 files" would
// otherwise leave unexplained.
func noteSymlinkSource(env Env, path string) {
	target, ok := vault.LinkedDir(path)
	if !ok {
		return
	}
	fmt.Fprintf(env.Stderr, "note: %s is a symlink to the directory %s: the link itself is captured, not what it points to; to back up the directory, name it\n", quoteName(path), quoteName(target))
}

type lsEntry struct {
	Path   string    `json:"path"`
	Type   string    `json:"type"`
	Mode   string    `json:"mode"`
	Size   int64     `json:"size"`
	MTime  time.Time `json:"mtime"`
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	User   string    `json:"user,omitempty"`
	Group  string    `json:"group,omitempty"`
	Target string    `json:"target,omitempty"`
	// PathRaw, TargetRaw, UserRaw and GroupRaw carry the exact bytes
	// (base64) of a path, link target or owner name that is not UTF-8:
	// JSON strings cannot, and the string fields then show U+FFFD in place
	// of the bad bytes.
	PathRaw   []byte `json:"path_raw,omitempty"`
	TargetRaw []byte `json:"target_raw,omitempty"`
	UserRaw   []byte `json:"user_raw,omitempty"`
	GroupRaw  []byte `json:"group_raw,omitempty"`
}

func newLsEntry(pth string, n *tree.Node) lsEntry {
	e := lsEntry{Path: pth, Type: n.Type, Mode: modeString(n), Size: n.Size, MTime: time.Unix(0, n.MTime).UTC(),
		UID: n.UID, GID: n.GID, User: n.User, Group: n.Group, Target: n.Target}
	raw := func(s string) []byte {
		if utf8.ValidString(s) {
			return nil
		}
		return []byte(s)
	}
	e.PathRaw, e.TargetRaw, e.UserRaw, e.GroupRaw = raw(pth), raw(n.Target), raw(n.User), raw(n.Group)
	return e
}

func newVaultLs(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var recursive bool
	cmd := &cobra.Command{
		Use:   "ls --vault LOCATION POINT [PATH]",
		Short: "List the files of a point",
		Long: `List what a point holds at PATH (default: its root, one entry per component).
POINT is "latest", a point id or a unique prefix of one. With -o json, a
path, link target or owner name that is not UTF-8 shows U+FFFD in "path",
"target", "user" or "group" and comes exactly, base64-encoded, in
"path_raw", "target_raw", "user_raw" or "group_raw".` + exitCodeHelp,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			ctx := cmd.Context()
			v, be, err := openVault(ctx, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			p, err := v.LoadPoint(ctx, args[0])
			if err != nil {
				return err
			}
			path := ""
			if len(args) > 1 {
				path = strings.Trim(args[1], "/")
			}
			n, err := v.Lookup(ctx, p, path)
			if err != nil {
				return err
			}
			var list []lsEntry
			add := func(pth string, n *tree.Node) { list = append(list, newLsEntry(pth, n)) }
			if n.Type != tree.Dir {
				add(path, n)
			} else if recursive {
				err = v.Walk(ctx, n, path, func(pth string, c *tree.Node) error {
					if c != n {
						add(pth, c)
					}
					return nil
				})
			} else {
				var t *tree.Tree
				t, err = v.LoadTree(ctx, *n.Subtree)
				if err == nil {
					for _, c := range t.Nodes {
						add(strings.TrimPrefix(path+"/"+c.Name, "/"), c)
					}
				}
			}
			if err != nil {
				return lifeboat.Errorf(lifeboat.ECorrupt, "ls %s: %v", path, err)
			}
			if out.json() {
				if list == nil {
					list = []lsEntry{}
				}
				return writeJSON(env.Stdout, list)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 1, ' ', tabwriter.AlignRight)
			for _, e := range list {
				name := e.Path
				if e.Target != "" {
					name += " -> " + e.Target
				}
				owner := e.User
				if owner == "" {
					owner = "-"
				}
				fmt.Fprintf(tw, "%s\t %s\t %d\t %s\t %s\n", e.Mode, owner, e.Size, e.MTime.Local().Format("2006-01-02 15:04"), quoteName(name))
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "list everything below PATH")
	return cmd
}

func quoteName(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}

func modeString(n *tree.Node) string {
	m := os.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	switch n.Type {
	case tree.Dir:
		m |= os.ModeDir
	case tree.Symlink:
		m |= os.ModeSymlink
	}
	return m.String()
}

func newVaultRestore(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var to, path string
	var quiet, toOriginal, resume bool
	cmd := &cobra.Command{
		Use:   "restore --vault LOCATION POINT|latest --to DIR [--path SUBPATH] | --to-original [--resume]",
		Short: "Restore a point, or a path in it, into a new directory",
		Long: `Restore POINT (or SUBPATH in it) into DIR, which must not exist or be empty.
The whole point restores as DIR/<component>/...; with --path, the directory at
SUBPATH becomes DIR (a file restores as DIR/<name>). Modes, times, symlinks,
sparse holes and hard links are restored; owners too when run as root. Files
whose data is damaged are removed, listed, and the exit code is 7; an owner,
mode or time that could not be set is a warning, and the exit code is 3.
--to-original puts each component back where the point's manifest says it was
captured, on the same host, into a path that is missing or empty.
A restore keeps a .lifeboat-restore record in its target until it finishes.
--resume finishes one that stopped (interrupted, failed or killed), for the
same point and path: files found whole (the point's size, mode, time and
content) are kept, the rest is restored, replacing files in the way.` + exitCodeHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			switch {
			case to == "" && !toOriginal:
				return usagef("--to DIR or --to-original is required")
			case to != "" && toOriginal:
				return usagef("--to and --to-original exclude each other")
			case toOriginal && path != "":
				return usagef("--path works with --to only")
			}
			ctx := cmd.Context()
			v, be, err := openVault(ctx, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			p, err := v.LoadPoint(ctx, args[0])
			if err != nil {
				return err
			}
			prog := &vault.Progress{}
			if n, err := v.Lookup(ctx, p, path); err == nil {
				_ = n
				var total int64
				for _, c := range p.Components {
					total += c.Stats.Bytes
				}
				if strings.Trim(path, "/") == "" {
					prog.TotalBytes.Store(total)
					prog.TotalFiles.Store(p.Stats.Files)
					prog.ScanDone.Store(true)
				}
			}
			bar := startProgress(env, "restore", prog, quiet)
			t0 := time.Now()
			var res *vault.RestoreResult
			targets := []string{to}
			if toOriginal {
				res, targets, err = restoreToOriginal(ctx, v, p, prog, resume)
				to = "original paths"
			} else {
				res, err = v.Restore(ctx, p, vault.RestoreOptions{Target: to, Path: path, Progress: prog, Resume: resume})
			}
			bar.done()
			if err != nil {
				if !toOriginal && errors.Is(err, vault.ErrNothingRestored) {
					return err // the target was refused before anything was written
				}
				return incompleteRestore(err, targets, p.ID)
			}
			el := time.Since(t0)
			if out.json() {
				if err := writeJSON(env.Stdout, map[string]any{"point": p.ID, "target": to, "files": res.Files, "dirs": res.Dirs,
					"symlinks": res.Symlinks, "hardlinks": res.HardLinks, "bytes": res.Bytes, "seconds": el.Seconds(), "failed": nonNil(res.Failed),
					"warnings": nonNil(res.Warnings), "kept_files": res.Kept, "kept_bytes": res.KeptBytes}); err != nil {
					return err
				}
			} else {
				kept := ""
				if resume {
					kept = fmt.Sprintf(" (%d files, %s, found whole and kept)", res.Kept, fmtBytes(res.KeptBytes))
				}
				fmt.Fprintf(env.Stdout, "restored point %s to %s: %d files, %d dirs, %d symlinks, %s in %s%s\n", p.ID[:8], to, res.Files, res.Dirs, res.Symlinks, fmtBytes(res.Bytes), el.Round(time.Millisecond), kept)
			}
			if len(res.Failed) > 0 {
				printCapped(env.Stderr, "error", res.Failed)
				return lifeboat.Errorf(lifeboat.ECorrupt, "%d items could not be restored from point %s (damaged vault data; run lifeboat vault check --read-data)", len(res.Failed), p.ID[:8])
			}
			if len(res.Warnings) > 0 {
				printCapped(env.Stderr, "warning", res.Warnings)
				return lifeboat.Errorf(lifeboat.EPartial, "point %s restored, but owners, modes or times of some items could not be set (see warnings)", p.ID[:8])
			}
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&to, "to", "", "target directory (must not exist or be empty)")
	cmd.Flags().BoolVar(&toOriginal, "to-original", false, "restore each component to the path it was captured from (which must not exist or be empty; same host only)")
	cmd.Flags().StringVar(&path, "path", "", "restore only this path of the point")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress line")
	cmd.Flags().BoolVar(&resume, "resume", false, "finish an interrupted or failed restore of the same point into a target that holds what it left")
	return cmd
}

// printCapped prints the first 20 lines of a list, each after "kind: ",
// and how many more there are.
func printCapped(w io.Writer, kind string, lines []string) {
	for i, l := range lines {
		if i == 20 {
			fmt.Fprintf(w, "%s: %d more not shown\n", kind, len(lines)-20)
			return
		}
		fmt.Fprintf(w, "%s: %s\n", kind, l)
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func newVaultCheck(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var readData string
	cmd := &cobra.Command{
		Use:   "check --vault LOCATION [--read-data[=PERCENT]]",
		Short: "Verify the vault's structure, and optionally its data",
		Long: `Verify that every point's trees and blobs are indexed and their packs present.
With --read-data, also read packs (all, or PERCENT of them at random) and
authenticate every blob. Problems name the object, the points and the files
they break; the exit code is then 7.` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			opts := vault.CheckOptions{}
			if cmd.Flags().Changed("read-data") {
				opts.ReadData = true
				if readData != "" && readData != "all" {
					pct, err := strconv.ParseFloat(strings.TrimSuffix(readData, "%"), 64)
					if err != nil || pct <= 0 || pct > 100 {
						return usagef("--read-data=%q: want a percentage in (0, 100]", readData)
					}
					opts.ReadPercent = pct
				}
			}
			ctx := cmd.Context()
			v, be, err := openVault(ctx, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			rep, err := v.Check(ctx, opts)
			if err != nil {
				return err
			}
			if rep.Problems == nil {
				rep.Problems = []vault.Problem{}
			}
			if out.json() {
				if err := writeJSON(env.Stdout, rep); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(env.Stdout, "%d points, %d packs, %d blobs", rep.Points, rep.Packs, rep.Blobs)
				if opts.ReadData {
					fmt.Fprintf(env.Stdout, "; read %d packs, %d blobs", rep.PacksRead, rep.BlobsRead)
				}
				fmt.Fprintln(env.Stdout)
				if rep.Unreferenced > 0 {
					fmt.Fprintf(env.Stdout, "%d packs are not indexed (left by interrupted backups; harmless)\n", rep.Unreferenced)
				}
				printProblems(env.Stdout, rep.Problems)
				if rep.OK() {
					fmt.Fprintln(env.Stdout, "no problems found")
				}
			}
			if !rep.OK() {
				objs := map[string]bool{}
				for _, pr := range rep.Problems {
					objs[pr.Object] = true
				}
				return lifeboat.Errorf(lifeboat.ECorrupt, "check found %d problems in %d objects of the vault at %s", len(rep.Problems), len(objs), be.Location())
			}
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&readData, "read-data", "", "also read and verify data: all, or a PERCENT of packs")
	cmd.Flags().Lookup("read-data").NoOptDefVal = "all"
	return cmd
}

// resolved is path with the symlinks of its longest existing prefix
// resolved: where a restore there would write.
func resolved(path string) string {
	rest := ""
	for dir := filepath.Clean(path); ; dir = filepath.Dir(dir) {
		if r, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(r, rest)
		}
		if dir == filepath.Dir(dir) {
			return filepath.Clean(path)
		}
		rest = filepath.Join(filepath.Base(dir), rest)
	}
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// printProblems lists check's problems, those of one object with the same
// cause as one (a missing pack is one line, not one per blob), with the
// points and paths they break.
func printProblems(w io.Writer, probs []vault.Problem) {
	type group struct {
		pr            vault.Problem
		blobs         int
		points, paths []string
		more          map[string]bool // paths past the first 20
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for _, pr := range probs {
		k := [2]string{pr.Object, pr.What}
		g := byKey[k]
		if g == nil || pr.Blob == "" {
			g = &group{pr: pr}
			groups = append(groups, g)
			if pr.Blob != "" {
				byKey[k] = g
			}
		}
		if pr.Blob != "" {
			g.blobs++
		}
		for _, pt := range pr.Points {
			if !slices.Contains(g.points, pt) {
				g.points = append(g.points, pt)
			}
		}
		for _, pth := range pr.Paths {
			switch {
			case slices.Contains(g.paths, pth):
			case len(g.paths) < 20:
				g.paths = append(g.paths, pth)
			default:
				if g.more == nil {
					g.more = map[string]bool{}
				}
				g.more[pth] = true
			}
		}
	}
	for _, g := range groups {
		fmt.Fprintf(w, "PROBLEM %s", g.pr.Object)
		switch {
		case g.blobs == 1:
			fmt.Fprintf(w, " blob %s", g.pr.Blob[:16])
		case g.blobs > 1:
			fmt.Fprintf(w, " (%d blobs)", g.blobs)
		}
		fmt.Fprintf(w, ": %s\n", g.pr.What)
		for _, pt := range g.points {
			fmt.Fprintf(w, "  breaks point %s\n", pt[:8])
		}
		for _, pth := range g.paths {
			fmt.Fprintf(w, "  breaks %s\n", pth)
		}
		if len(g.more) > 0 {
			fmt.Fprintf(w, "  and %d more paths (-o json lists each blob's)\n", len(g.more))
		}
	}
}

// incompleteRestore adds to a restore's error what it left behind: the
// targets that hold part of the point (unfinished files were removed, and
// directories left empty). Interrupted, it stays an interruption (exit 130).
func incompleteRestore(err error, targets []string, point string) error {
	var partial []string
	for _, t := range targets {
		if ents, rerr := os.ReadDir(t); rerr == nil && len(ents) > 0 {
			partial = append(partial, t)
		}
	}
	if len(partial) == 0 {
		return err
	}
	holds := "holds"
	if len(partial) > 1 {
		holds = "hold"
	}
	next := fmt.Sprintf("run the same restore of point %s again with --resume to finish it", point[:8])
	if lifeboat.ErrorCode(err) == lifeboat.EExists {
		// Again as it is, it would meet the same thing.
		next = fmt.Sprintf("remove what is in the way, then run the same restore of point %s again with --resume", point[:8])
	}
	note := fmt.Sprintf("the restore is incomplete: %s %s part of the point (files not finished were removed); %s", strings.Join(partial, ", "), holds, next)
	if errors.Is(err, context.Canceled) {
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: "interrupted; " + note, Err: err}
	}
	return &lifeboat.Error{Code: lifeboat.ErrorCode(err), Message: oneLine(err.Error()) + "; " + note, Err: err}
}

// restoreToOriginal restores every component of p to the source path its
// manifest records: the vault alone says where things go. It returns the
// targets it began to write.
func restoreToOriginal(ctx context.Context, v *vault.Vault, p *manifest.Point, prog *vault.Progress, resume bool) (*vault.RestoreResult, []string, error) {
	host, _ := os.Hostname()
	total := &vault.RestoreResult{}
	// Every component is checked, its target included, before anything is
	// written: a refusal half-way left the first components restored.
	for _, c := range p.Components {
		if c.Host != host {
			return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s of point %s was captured on host %q, this is %q: restore it with --to", c.Name, p.ID[:8], c.Host, host)
		}
		if !filepath.IsAbs(c.Source) {
			return nil, nil, lifeboat.Errorf(lifeboat.ECorrupt, "component %s of point %s records no absolute source path", c.Name, p.ID[:8])
		}
		n, err := v.Lookup(ctx, p, c.Name)
		if err != nil {
			return nil, nil, err
		}
		if n.Type != tree.Dir {
			return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "component %s of point %s is a single %s; restore it with --to", c.Name, p.ID[:8], n.Type)
		}
		if st, err := os.Stat(c.Source); err == nil && !st.IsDir() {
			return nil, nil, lifeboat.Errorf(lifeboat.EExists, "restore target %s (component %s) is not a directory; nothing was restored", c.Source, c.Name)
		}
		if ents, err := os.ReadDir(c.Source); err == nil && len(ents) > 0 && !resume {
			return nil, nil, lifeboat.Errorf(lifeboat.EExists, "restore target %s (component %s) is not empty; nothing was restored: restore into a new or empty directory, or add --resume to finish an interrupted restore of this point there", c.Source, c.Name)
		}
	}
	// Components captured from nested paths: the outer one's restore fills
	// the inner one's target, whose restore then fails half-way.
	for i, c := range p.Components {
		for _, d := range p.Components[i+1:] {
			cs, ds := resolved(c.Source), resolved(d.Source)
			if within(cs, ds) || within(ds, cs) {
				return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "components %s (%s) and %s (%s) of point %s were captured from nested paths; nothing was restored: restore each with --to DIR --path COMPONENT", c.Name, c.Source, d.Name, d.Source, p.ID[:8])
			}
		}
	}
	var started []string
	for _, c := range p.Components {
		started = append(started, c.Source)
		res, err := v.Restore(ctx, p, vault.RestoreOptions{Target: c.Source, Path: c.Name, Progress: prog, Resume: resume})
		if err != nil {
			if errors.Is(err, vault.ErrNothingRestored) {
				started = started[:len(started)-1] // refused before writing (filled since the check)
			}
			return nil, started, err
		}
		total.Files += res.Files
		total.Dirs += res.Dirs
		total.Symlinks += res.Symlinks
		total.HardLinks += res.HardLinks
		total.Bytes += res.Bytes
		total.Kept += res.Kept
		total.KeptBytes += res.KeptBytes
		total.Failed = append(total.Failed, res.Failed...)
		total.Warnings = append(total.Warnings, res.Warnings...)
	}
	return total, started, nil
}
