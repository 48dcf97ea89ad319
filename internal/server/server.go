// Package server is `lifeboat serve`: it opens (creating on first start)
// the data directory, the server master key, the catalog, the default vault
// and the first administrator; it serves the HTTP JSON API (routes.go lists
// every route with the permission it needs), /healthz and /readyz; and it
// runs the job workers and the scheduler. Services (service.go) hold the
// logic the API calls: every mutating one checks access.Decide and records
// an audit event in the transaction of its change.
//
// server imports everything below it (catalog, jobs, schedule, retention,
// capture, vault, access, keys); nothing imports server but cli.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/capture/config"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/federation"
	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// DefaultListen is where serve listens unless told otherwise.
const DefaultListen = "127.0.0.1:7480"

// Config configures a server.
type Config struct {
	DataDir string
	Catalog string // DSN; default: SQLite file in DataDir
	Workers int
	// Lease of a job; heartbeats every third of it.
	Lease time.Duration
	// Tick is the scheduler's period (default 30 s).
	Tick time.Duration
	Log  *slog.Logger
	Now  func() time.Time
	// Announce receives the first administrator's token once, when it is
	// created (the terminal, when interactive); nil prints nothing.
	Announce io.Writer
	// VaultKDF overrides Argon2id parameters of new vault key slots (tests).
	VaultKDF *crypto.KDFParams
	// Name of this server in job leases (default hostname/pid).
	Name string
	// SoftDelete is how long soft-deleted points stay restorable before
	// garbage collection purges them (default and floor for users:
	// MinSoftDelete; shorter only in tests).
	SoftDelete time.Duration
	// JobTries is how many times a job that meets unavailable storage or a
	// database server is tried (default 5, with backoff).
	JobTries int
	// JobBackoff is the delay before a job's retry n (default 5 s
	// doubling up to 5 min; shorter only in tests).
	JobBackoff func(n int) time.Duration
	// HealthWait is how long a restore to the original place waits for the
	// app's health check to pass (default 60 s).
	HealthWait time.Duration
	// RequireGroupAssignments refuses role assignments to individual users
	// (and reports existing ones): "production" (default: on scopes that
	// cover a production-environment app, or everything), "all", or "off".
	RequireGroupAssignments string
	// AuditWebhook, if set, receives every audit event, in chain order, as
	// JSON segments POSTed to it: an external copy the server cannot
	// rewrite.
	AuditWebhook string
	// AuditSyslog, if set (udp://HOST:PORT, tcp://HOST:PORT or
	// unix:///PATH), receives every audit event, in chain order, as one
	// syslog message each: another external copy.
	AuditSyslog string
	// BreakGlassHash, if set, is the hex SHA-256 of the break-glass secret:
	// a protected request carrying it in the Lifeboat-Break-Glass header
	// runs without approval — loudly. Empty: there is no break-glass path.
	BreakGlassHash string
	// OIDC, if set, lets people sign in through their browser at this
	// OIDC issuer (authorization-code flow with PKCE).
	OIDC *OIDCConfig
}

// Server is a running control plane.
type Server struct {
	cfg    Config
	db     *catalog.DB
	mk     *keys.MasterKey
	pool   *jobs.Pool
	log    *slog.Logger
	now    func() time.Time
	vaults *vaultSet
	ready  atomic.Bool
	// Warnings found at start (e.g. a vault on the data directory's file system).
	warnings []string
	schedMu  sync.Mutex
	hasherMu sync.Mutex
	hasher   *config.Hasher // settings hasher, loaded once
	signIns  *signInLimit
	fed      *federation.Federation // workload-identity federation
	// brokenGlass describes the break-glass uses since the server started
	// (a status warning each).
	glassMu     sync.Mutex
	brokenGlass []string
	// auditCopied is, per vault, the newest audit event copied there.
	auditMu     sync.Mutex
	auditCopied map[string]int64
	// retainMu serialises retention passes (compliance locks): two at
	// once would only repeat each other's storage calls.
	retainMu sync.Mutex
	// testHook runs at the start of every backup job (tests only).
	testHook func(ctx context.Context, j *lifeboat.Job) error
	// testRestoreHook runs after each component a restore job restored,
	// then with "" once all are and the post-restore hooks have run (tests
	// only): an error fails the attempt there.
	testRestoreHook func(j *lifeboat.Job, component string) error
}

// MinSoftDelete is the soft-delete retention floor: configurable upward only.
const MinSoftDelete = 14 * 24 * time.Hour

// Files in the data directory.
const (
	MasterKeyFile  = "master.key"
	CatalogFile    = "catalog.db"
	AdminTokenFile = "admin.token"
	StagingDir     = "staging"
	VaultKeysDir   = "vault-keys"
)

// Open opens the server's state, creating it on first start.
func Open(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "no data directory")
	}
	dd, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = dd
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SoftDelete <= 0 {
		cfg.SoftDelete = MinSoftDelete
	}
	if cfg.HealthWait <= 0 {
		cfg.HealthWait = 60 * time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 30 * time.Second
	}
	switch cfg.RequireGroupAssignments {
	case "":
		cfg.RequireGroupAssignments = "production"
	case "production", "all", "off":
	default:
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "require-group-assignments %q: want production, all or off", cfg.RequireGroupAssignments)
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	if err := os.MkdirAll(dd, 0o700); err != nil {
		return nil, lifeboat.Errorf(lifeboat.EUnavailable, "data directory %s: %v", dd, err)
	}
	if st, err := os.Stat(dd); err == nil && st.Mode().Perm()&0o077 != 0 {
		cfg.Log.Warn("data directory is readable by others; chmod 700 it", "dir", dd, "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
	mk, created, err := keys.LoadOrCreate(filepath.Join(dd, MasterKeyFile))
	if err != nil {
		return nil, err
	}
	if created {
		cfg.Log.Info("created the server master key", "file", filepath.Join(dd, MasterKeyFile))
	}
	dsn := cfg.Catalog
	if dsn == "" {
		dsn = filepath.Join(dd, CatalogFile)
		// Created private: SQLite gives its -wal and -shm files the same mode.
		if f, err := os.OpenFile(dsn, os.O_RDONLY|os.O_CREATE, 0o600); err == nil {
			f.Close()
		}
	}
	db, err := catalog.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	db.Now = cfg.Now
	registerDrivers()
	s := &Server{cfg: cfg, db: db, mk: mk, log: cfg.Log, now: cfg.Now, signIns: newSignInLimit(db), fed: federation.New(federation.Options{Now: cfg.Now}), auditCopied: map[string]int64{}}
	s.vaults = &vaultSet{s: s, open: map[string]*vault.Vault{}}
	if err := s.bootstrap(ctx); err != nil {
		db.Close()
		return nil, err
	}
	s.pool = jobs.New(db, jobs.Options{Workers: cfg.Workers, Lease: cfg.Lease, Owner: cfg.Name, Log: cfg.Log, MaxTries: cfg.JobTries, Backoff: cfg.JobBackoff})
	s.pool.Handle(lifeboat.JobBackup, s.runBackup)
	s.pool.Handle(lifeboat.JobRestore, s.runRestore)
	s.pool.Handle(lifeboat.JobVerify, s.runVerify)
	s.pool.Handle(lifeboat.JobPrune, s.runPrune)
	s.pool.Handle(lifeboat.JobReencrypt, s.runReencrypt)
	return s, nil
}

// DB is the catalog (tests).
func (s *Server) DB() *catalog.DB { return s.db }

// bootstrap creates the default vault and the first administrator on a
// fresh catalog.
func (s *Server) bootstrap(ctx context.Context) error {
	var vaultsN, principals int
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		vaultsN = len(vs)
		if err != nil {
			return err
		}
		principals, err = tx.CountPrincipals(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if vaultsN == 0 {
		loc := filepath.Join(s.cfg.DataDir, "vaults", "default")
		if _, err := s.createVault(ctx, "system:bootstrap", &lifeboat.Vault{Name: "default", Region: "local", Location: loc, Default: true}, vaultCreds{}); err != nil {
			return fmt.Errorf("create the default vault: %w", err)
		}
		s.log.Info("created the default vault", "vault", "default", "location", loc)
	}
	if principals == 0 {
		var token string
		err := s.db.Update(ctx, func(tx *catalog.Tx) error {
			if err := tx.PutPrincipal(ctx, &lifeboat.Principal{Name: "admin", Kind: "user", Admin: true}); err != nil {
				return err
			}
			var err error
			if token, _, err = tx.CreateToken(ctx, "admin", 0); err != nil {
				return err
			}
			return tx.Audit(ctx, "system:bootstrap", "principal.create", "admin", "ok", map[string]string{"kind": "user", "role": "admin"})
		})
		if err != nil {
			return err
		}
		path := filepath.Join(s.cfg.DataDir, AdminTokenFile)
		os.Remove(path) // a token file from an earlier catalog is stale
		if err := keys.WriteSecretFile(path, []byte(token+"\n")); err != nil {
			return err
		}
		s.log.Info("created the first administrator; its API token is in the token file", "principal", "admin", "file", path)
		if s.cfg.Announce != nil {
			fmt.Fprintf(s.cfg.Announce, "Administrator API token (shown once; also in %s):\n  %s\n", path, token)
		}
	}
	return s.checkVaultPlacement(ctx)
}

// checkVaultPlacement warns about local vaults on the data directory's file
// system: one disk failure would take the catalog and the vault together.
func (s *Server) checkVaultPlacement(ctx context.Context) error {
	var dataSt unix.Stat_t
	if err := unix.Stat(s.cfg.DataDir, &dataSt); err != nil {
		return nil
	}
	return s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.RetiredAt != nil || !filepath.IsAbs(v.Location) {
				continue
			}
			var st unix.Stat_t
			if unix.Stat(nearestExisting(v.Location), &st) == nil && st.Dev == dataSt.Dev {
				msg := fmt.Sprintf("vault %s (%s) is on the same file system as the data directory %s: one disk failure loses both; put vaults on other storage", v.Name, v.Location, s.cfg.DataDir)
				s.warnings = append(s.warnings, msg)
				s.log.Warn("vault shares a file system with the data directory", "vault", v.Name, "location", v.Location, "data_dir", s.cfg.DataDir)
			}
		}
		return nil
	})
}

func nearestExisting(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// Serve serves HTTP on ln and runs the workers and the scheduler until ctx
// ends; then it drains: the listener closes, running jobs are cancelled and
// re-queued, and the catalog is closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	s.pool.Start(ctx)
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); s.scheduler(ctx) }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	go s.syncAll(ctx)
	s.ready.Store(true)
	s.log.Info("serving", "addr", ln.Addr().String(), "data_dir", s.cfg.DataDir, "catalog", s.db.Where())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.ready.Store(false)
	s.log.Info("shutting down: draining jobs")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if perr := s.pool.Stop(sctx); perr != nil {
		s.log.Warn("jobs did not stop in time", "err", perr)
	}
	<-schedDone
	if err := s.copyAuditToVaults(sctx); err != nil {
		s.log.Warn("audit trail copy", "err", err)
	}
	s.vaults.closeAll()
	s.db.Close()
	s.log.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// syncAll rebuilds the catalog's points of every vault from its manifests
// (the catalog is a cache; another server or the offline CLI may have
// written to a vault). A vault that does not open is logged and skipped.
func (s *Server) syncAll(ctx context.Context) {
	s.matchLockRecords(ctx)
	var names []string
	s.db.View(ctx, func(tx *catalog.Tx) error {
		vs, err := tx.Vaults(ctx)
		for _, v := range vs {
			if v.RetiredAt == nil {
				names = append(names, v.Name)
			}
		}
		return err
	})
	for _, n := range names {
		res, err := s.syncVaultPoints(ctx, "system:startup", n)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("vault sync at startup failed", "vault", n, "err", err)
			}
			continue
		}
		s.log.Info("vault synced", "vault", n, "points", res.Points, "forgotten", res.Forgotten)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// guard returns the capture guard with the current hosts.
func (s *Server) guard(ctx context.Context) (*capture.Guard, error) {
	g := &capture.Guard{Hosts: map[string]*lifeboat.Host{}, DataDir: s.cfg.DataDir, DBServer: s.resolveDB(ctx), Remote: s.dialRemote, RemoteRead: s.remoteRead, RemoteTarget: s.remoteTarget}
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		hs, err := tx.Hosts(ctx)
		for _, h := range hs {
			g.Hosts[h.Name] = h
		}
		return err
	})
	return g, err
}
