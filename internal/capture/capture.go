// Package capture turns an app's components into what the vault engine
// stores, and back: `files` components are captured in place; `config`
// components are copied byte for byte into a staging directory beside a
// description of where each file came from and the inline settings, and
// parsed into typed settings (whose keyed hashes the catalog keeps, never
// the values).
//
// Sources and targets are not free-form (DESIGN.md invariant 6): a source
// must lie under a capture root of its host, a restore target under a
// restore root (or be the component's own original place), and the server's
// data directory is never either. Paths are compared after resolving
// symlinks, so a link inside a root cannot lead out of it.
//
// capture imports vault, capture/config and lifeboat; never the catalog or
// the server.
package capture

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/capture/sqlite"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// Guard says where capture and restore may go.
type Guard struct {
	Hosts   map[string]*lifeboat.Host
	DataDir string // never a source or a target
	// DBServer resolves a registered database server, password included
	// (nil: none registered).
	DBServer func(name string) (DBTarget, string, error)
	// Remote opens a tree on an SSH host (nil: no remote hosts).
	Remote func(ctx context.Context, host *lifeboat.Host, root string) (vault.RemoteFS, error)
	// RemoteRead reads one small file of an SSH host (at most max bytes),
	// with its mode.
	RemoteRead func(ctx context.Context, host *lifeboat.Host, path string, max int64) ([]byte, os.FileMode, error)
	// RemoteTarget opens an SSH host for a restore (the caller closes it).
	RemoteTarget func(ctx context.Context, host *lifeboat.Host) (RemoteTarget, io.Closer, error)
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// remote reports whether a host is reached over SSH.
func remote(h *lifeboat.Host) bool { return h != nil && h.Kind == "ssh" }

// DB returns the target of a registered database server of engine kind.
func (g *Guard) DB(name, kind string) (DBTarget, error) {
	if g.DBServer == nil {
		return DBTarget{}, lifeboat.Errorf(lifeboat.EInvalid, "database server %q is not registered", name)
	}
	t, engine, err := g.DBServer(name)
	if err != nil {
		return DBTarget{}, err
	}
	if engine != kind {
		return DBTarget{}, lifeboat.Errorf(lifeboat.EInvalid, "database server %s is a %s server, not %s", name, engine, kind)
	}
	return t, nil
}

// under reports whether path is root or inside it (both clean, absolute).
func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/")
}

// resolve makes path absolute and resolves symlinks in its existing part.
func resolve(path string) string {
	p := filepath.Clean(path)
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

func (g *Guard) host(name string) (*lifeboat.Host, error) {
	if name == "" {
		name = "local"
	}
	h := g.Hosts[name]
	if h == nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "host %q is not registered (lifeboat host add)", name)
	}
	return h, nil
}

func (g *Guard) checkData(what, p string) error {
	if g.DataDir == "" {
		return nil
	}
	d := resolve(g.DataDir)
	if under(p, d) || under(d, p) {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s %s overlaps Lifeboat's data directory %s", what, p, d)
	}
	return nil
}

// CheckSource checks that path may be captured on host.
func (g *Guard) CheckSource(hostName, path string) error {
	if !filepath.IsAbs(path) {
		return lifeboat.Errorf(lifeboat.EInvalid, "source %q is not an absolute path", path)
	}
	h, err := g.host(hostName)
	if err != nil {
		return err
	}
	if remote(h) {
		// Another machine: lexical only (its symlinks are not followed by
		// the scan, and this machine's data directory is not there).
		p := filepath.Clean(path)
		for _, r := range h.Roots {
			if under(p, filepath.Clean(r)) {
				return nil
			}
		}
		return lifeboat.Errorf(lifeboat.EInvalid, "source %s is not under a capture root of host %s (roots: %s)", path, h.Name, strings.Join(h.Roots, ", "))
	}
	p := resolve(path)
	if err := g.checkData("source", p); err != nil {
		return err
	}
	for _, r := range h.Roots {
		if under(p, resolve(r)) {
			return nil
		}
	}
	return lifeboat.Errorf(lifeboat.EInvalid, "source %s is not under a capture root of host %s (roots: %s)", path, h.Name, strings.Join(h.Roots, ", "))
}

// CheckTarget checks that path may be restored into on host.
func (g *Guard) CheckTarget(hostName, path string) error {
	if !filepath.IsAbs(path) {
		return lifeboat.Errorf(lifeboat.EInvalid, "restore target %q is not an absolute path", path)
	}
	h, err := g.host(hostName)
	if err != nil {
		return err
	}
	p := resolve(path)
	if err := g.checkData("restore target", p); err != nil {
		return err
	}
	for _, r := range h.RestoreRoots {
		if under(p, resolve(r)) {
			return nil
		}
	}
	return lifeboat.Errorf(lifeboat.EInvalid, "restore target %s is not under a restore root of host %s (restore roots: %s)", path, h.Name, strings.Join(h.RestoreRoots, ", "))
}

// CheckHostRoots refuses roots that are not absolute or overlap the data
// directory.
func (g *Guard) CheckHostRoots(h *lifeboat.Host) error {
	for _, r := range append(append([]string{}, h.Roots...), h.RestoreRoots...) {
		if !filepath.IsAbs(r) {
			return lifeboat.Errorf(lifeboat.EInvalid, "host %s: root %q is not an absolute path", h.Name, r)
		}
		if remote(h) {
			continue // on another machine
		}
		if err := g.checkData("host "+h.Name+" root", resolve(r)); err != nil {
			return err
		}
	}
	return nil
}

// Prepared is an app's components made ready for vault.Backup.
type Prepared struct {
	Sources []vault.Source
	// Settings are the parsed settings of the config components, keyed
	// "<component>/<file base name>:<key>" for files and
	// "<component>/<key>" for inline settings.
	Settings config.Settings
	staging  string
	closers  []io.Closer // remote connections
}

// Close removes the staging copies and closes remote connections.
func (p *Prepared) Close() error {
	for i := len(p.closers) - 1; i >= 0; i-- { // last opened, first closed
		p.closers[i].Close()
	}
	p.closers = nil
	if p.staging == "" {
		return nil
	}
	return os.RemoveAll(p.staging)
}

// ConfigMeta describes a captured config component; it is stored in the
// component's tree as MetaName.
type ConfigMeta struct {
	Version  int              `json:"version"`
	Files    []ConfigFile     `json:"files"`
	Settings []config.Setting `json:"settings,omitempty"` // inline
}

// ConfigFile is one captured config file.
type ConfigFile struct {
	Path   string `json:"path"`   // where it came from
	Stored string `json:"stored"` // its path inside the component
}

// MetaName is the description file inside a config component.
const MetaName = "lifeboat-config.json"

// Prepare checks every component against the guard and stages the config
// ones under stagingDir (which it creates; Close removes it).
func Prepare(ctx context.Context, app *lifeboat.App, g *Guard, stagingDir string) (*Prepared, error) {
	p := &Prepared{}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	for _, c := range app.Components {
		switch c.Kind {
		case lifeboat.KindFiles:
			if err := g.CheckSource(c.Host, c.Path); err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			if h, _ := g.host(c.Host); remote(h) {
				if g.Remote == nil {
					return nil, lifeboat.Errorf(lifeboat.EInvalid, "app %s, component %s: no SSH support", app.Name, c.Name)
				}
				fs, err := g.Remote(ctx, h, c.Path)
				if err != nil {
					return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
				}
				if cl, ok := fs.(io.Closer); ok {
					p.closers = append(p.closers, cl)
				}
				p.Sources = append(p.Sources, vault.Source{Name: c.Name, Kind: lifeboat.KindFiles, Describe: "ssh://" + h.Name + c.Path, Remote: fs, Excludes: c.Exclude, Includes: c.Include})
				continue
			}
			p.Sources = append(p.Sources, vault.Source{Name: c.Name, Path: c.Path, Kind: lifeboat.KindFiles, Excludes: c.Exclude, Includes: c.Include})
		case lifeboat.KindConfig:
			if h, _ := g.host(c.Host); remote(h) && g.RemoteRead == nil {
				return nil, lifeboat.Errorf(lifeboat.EInvalid, "app %s, component %s: no SSH support", app.Name, c.Name)
			}
			if p.staging == "" {
				if err := os.MkdirAll(stagingDir, 0o700); err != nil {
					return nil, err
				}
				p.staging = stagingDir
			}
			src, settings, err := stageConfig(ctx, app, &c, g, filepath.Join(stagingDir, c.Name))
			if err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			p.Sources = append(p.Sources, src)
			p.Settings = append(p.Settings, settings...)
		case lifeboat.KindSQLite:
			if err := g.CheckSource(c.Host, c.Path); err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			if h, _ := g.host(c.Host); remote(h) {
				if g.RemoteTarget == nil {
					return nil, lifeboat.Errorf(lifeboat.EInvalid, "app %s, component %s: no SSH support", app.Name, c.Name)
				}
				rt, conn, err := g.RemoteTarget(ctx, h)
				if err != nil {
					return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
				}
				p.closers = append(p.closers, conn)
				src, cleanup, err := stageRemoteSQLite(ctx, h, &c, rt)
				if err != nil {
					return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
				}
				// Closers run in reverse: the staging directory goes before the connection.
				p.closers = append(p.closers, closerFunc(cleanup))
				p.Sources = append(p.Sources, src)
				continue
			}
			if p.staging == "" {
				if err := os.MkdirAll(stagingDir, 0o700); err != nil {
					return nil, err
				}
				p.staging = stagingDir
			}
			src, err := stageSQLite(ctx, &c, filepath.Join(stagingDir, c.Name))
			if err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			p.Sources = append(p.Sources, src)
		case lifeboat.KindPostgres, lifeboat.KindMySQL:
			t, err := g.DB(c.Server, c.Kind)
			if err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			p.closers = append(p.closers, closerFunc(t.Close))
			src, err := stageDB(&c, t)
			if err != nil {
				return nil, fmt.Errorf("app %s, component %s: %w", app.Name, c.Name, err)
			}
			p.Sources = append(p.Sources, src)
		default:
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "app %s, component %s: kind %q is not supported yet", app.Name, c.Name, c.Kind)
		}
	}
	sort.Slice(p.Settings, func(i, j int) bool { return p.Settings[i].Key < p.Settings[j].Key })
	ok = true
	return p, nil
}

func stageConfig(ctx context.Context, app *lifeboat.App, c *lifeboat.Component, g *Guard, dir string) (vault.Source, config.Settings, error) {
	var all config.Settings
	meta := ConfigMeta{Version: 1}
	if err := os.MkdirAll(filepath.Join(dir, "files"), 0o700); err != nil {
		return vault.Source{}, nil, err
	}
	read := readRegular
	if h, _ := g.host(c.Host); remote(h) {
		read = func(p string) ([]byte, os.FileMode, error) { return g.RemoteRead(ctx, h, p, maxConfigFile) }
	}
	for i, f := range c.Files {
		if err := g.CheckSource(c.Host, f); err != nil {
			return vault.Source{}, nil, err
		}
		data, mode, err := read(f)
		if err != nil {
			return vault.Source{}, nil, err
		}
		settings, err := config.ParseFile(f, data)
		if err != nil {
			return vault.Source{}, nil, lifeboat.Errorf(lifeboat.EInvalid, "%v", err)
		}
		stored := filepath.Join("files", strconv.Itoa(i), filepath.Base(f))
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(stored)), 0o700); err != nil {
			return vault.Source{}, nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, stored), data, mode); err != nil {
			return vault.Source{}, nil, err
		}
		if err := os.Chmod(filepath.Join(dir, stored), mode); err != nil {
			return vault.Source{}, nil, err
		}
		meta.Files = append(meta.Files, ConfigFile{Path: f, Stored: stored})
		for _, s := range settings {
			s.Key = c.Name + "/" + filepath.Base(f) + ":" + s.Key
			all = append(all, s)
		}
	}
	if len(c.Settings) > 0 {
		inline, err := config.FromInline(c.Settings)
		if err != nil {
			return vault.Source{}, nil, lifeboat.Errorf(lifeboat.EInvalid, "inline settings: %v", err)
		}
		meta.Settings = inline
		for _, s := range inline {
			s.Key = c.Name + "/" + s.Key
			all = append(all, s)
		}
	}
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return vault.Source{}, nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, MetaName), mb, 0o600); err != nil {
		return vault.Source{}, nil, err
	}
	desc := "config"
	if len(c.Files) > 0 {
		desc += ":" + strings.Join(c.Files, ",")
	}
	if h, _ := g.host(c.Host); remote(h) {
		desc = "ssh://" + h.Name + "/" + desc // never restored to this machine's paths
	}
	return vault.Source{Name: c.Name, Path: dir, Kind: lifeboat.KindConfig, Describe: desc}, all, nil
}

// sqliteChunkPages is how many database pages make one fixed chunk: chosen
// by measurement (docs/benchmarks.md, "SQLite chunking").
const sqliteChunkPages = 4

// stageSQLite snapshots a live SQLite database into dir (the online backup
// API: the app keeps writing) and makes it a stream component, cut in
// page-aligned fixed chunks, with the database's description as metadata.
func stageSQLite(ctx context.Context, c *lifeboat.Component, dir string) (vault.Source, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return vault.Source{}, err
	}
	copyPath := filepath.Join(dir, filepath.Base(c.Path))
	info, err := sqlite.Snapshot(ctx, c.Path, copyPath)
	if err != nil {
		return vault.Source{}, err
	}
	meta, err := json.Marshal(info)
	if err != nil {
		return vault.Source{}, err
	}
	return vault.Source{
		Name: c.Name, Kind: lifeboat.KindSQLite, Describe: "sqlite:" + c.Path,
		Meta: func() []byte { return meta },
		Streams: []vault.Stream{{
			Name:  filepath.Base(c.Path),
			Mode:  0o644,
			Fixed: sqlite.PageSize(copyPath) * sqliteChunkPages,
			Open:  func(context.Context) (io.ReadCloser, error) { return os.Open(copyPath) },
		}},
	}, nil
}

// maxConfigFile bounds a config file: settings, not data.
const maxConfigFile = 8 << 20

func readRegular(path string) ([]byte, os.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, lifeboat.Errorf(lifeboat.ENotFound, "config file %s: %v", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, lifeboat.Errorf(lifeboat.EInvalid, "config file %s is not a regular file", path)
	}
	if st.Size() > maxConfigFile {
		return nil, 0, lifeboat.Errorf(lifeboat.EInvalid, "config file %s is %d bytes; config files are at most %d", path, st.Size(), maxConfigFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	return data, st.Mode().Perm(), err
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
