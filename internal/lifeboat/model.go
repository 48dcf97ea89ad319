package lifeboat

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// The nouns of the control plane (DESIGN.md). The same structs are the API's
// wire types, the documents `lifeboat apply` reads (YAML), and what the
// catalog stores, so a field has one name everywhere.

// Vault is a named store of recovery points in one region.
type Vault struct {
	Name     string `json:"name" yaml:"name"`
	Region   string `json:"region" yaml:"region"`
	Location string `json:"location" yaml:"location"` // local path or s3://bucket/prefix
	// Default marks the region's default vault (apps without a vault use it).
	Default bool `json:"default,omitempty" yaml:"default,omitempty"`
	// Approvers is the group whose members approve the vault's destructive
	// requests ("": the server's approvers group).
	Approvers     string     `json:"approvers,omitempty" yaml:"approvers,omitempty"`
	KeyExportedAt *time.Time `json:"keyExportedAt,omitempty" yaml:"-"`
	// KeyRotatedAt is when the server's key-encryption key of the vault was
	// last rotated (nil: never, since CreatedAt).
	KeyRotatedAt *time.Time `json:"keyRotatedAt,omitempty" yaml:"-"`
	CreatedAt    time.Time  `json:"createdAt" yaml:"-"`
	RetiredAt    *time.Time `json:"retiredAt,omitempty" yaml:"-"`
}

// Host is a machine components live on, with the roots Lifeboat may capture
// from and restore into (DESIGN.md invariant 6).
type Host struct {
	Name         string   `json:"name" yaml:"name"`
	Kind         string   `json:"kind" yaml:"kind"` // "local" (ssh comes later)
	Roots        []string `json:"roots" yaml:"roots"`
	RestoreRoots []string `json:"restoreRoots,omitempty" yaml:"restoreRoots,omitempty"`
	// Commands are what hooks may run on this host, registered with the
	// host (the host-registration permission): an app definition names a
	// command, it never brings one (DESIGN.md invariant 6).
	Commands map[string]HostCommand `json:"commands,omitempty" yaml:"commands,omitempty"`
	// ssh hosts: reached at Address as User with a private key (read once
	// from KeyFile, a 0600 file on the server, and sealed). HostKey is the
	// key recorded at registration; Fingerprint confirms it (SHA256:...).
	Address     string    `json:"address,omitempty" yaml:"address,omitempty"`
	User        string    `json:"user,omitempty" yaml:"user,omitempty"`
	KeyFile     string    `json:"keyFile,omitempty" yaml:"keyFile,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty" yaml:"fingerprint,omitempty"`
	HostKey     string    `json:"hostKey,omitempty" yaml:"-"`
	CreatedAt   time.Time `json:"createdAt" yaml:"-"`
}

// HostCommand is a command a hook may run: an argument vector (no shell),
// run with a minimal environment plus Env.
type HostCommand struct {
	Argv []string          `json:"argv" yaml:"argv"`
	Env  map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	Dir  string            `json:"dir,omitempty" yaml:"dir,omitempty"`
}

// Hook runs a registered command before or after a backup or restore.
type Hook struct {
	When    string `json:"when" yaml:"when"`                     // pre-backup, post-backup, pre-restore, post-restore
	Command string `json:"command" yaml:"command"`               // a command registered on the host
	Host    string `json:"host,omitempty" yaml:"host,omitempty"` // default "local"
	// Component makes it the hook of one component: it runs only for the
	// jobs that take or restore that component (a restore of the others
	// skips it). Empty: the app's hook, run for every job.
	Component string   `json:"component,omitempty" yaml:"component,omitempty"`
	Timeout   Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"` // default 5m
	// OnFailure: "abort" (default: the job fails, naming the hook) or
	// "warn" (logged, the job goes on).
	OnFailure string `json:"onFailure,omitempty" yaml:"onFailure,omitempty"`
}

// Hook moments.
const (
	PreBackup   = "pre-backup"
	PostBackup  = "post-backup"
	PreRestore  = "pre-restore"
	PostRestore = "post-restore"
)

// Component kinds.
const (
	KindFiles    = "files"
	KindConfig   = "config"
	KindSQLite   = "sqlite"
	KindPostgres = "postgres"
	KindMySQL    = "mysql"
)

// Component is one thing of an app to capture.
type Component struct {
	Name string `json:"name" yaml:"name"`
	Kind string `json:"kind" yaml:"kind"`
	Host string `json:"host,omitempty" yaml:"host,omitempty"` // default "local"
	// files
	Path    string   `json:"path,omitempty" yaml:"path,omitempty"`
	Include []string `json:"include,omitempty" yaml:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty" yaml:"exclude,omitempty"`
	// config: settings files captured byte for byte and parsed, and inline settings
	Files    []string       `json:"files,omitempty" yaml:"files,omitempty"`
	Settings map[string]any `json:"settings,omitempty" yaml:"settings,omitempty"`
	// sqlite: Path is the database file. RestoreMode is "stopped" (default:
	// the app is stopped; the file is replaced) or "live" (written through
	// SQLite's backup API into the running app's database).
	RestoreMode string `json:"restoreMode,omitempty" yaml:"restoreMode,omitempty"`
	// postgres, mysql: a registered database server and a database on it.
	Server   string `json:"server,omitempty" yaml:"server,omitempty"`
	Database string `json:"database,omitempty" yaml:"database,omitempty"`
	// Globals also captures the server's roles (postgres: pg_dumpall
	// --globals-only; mysql: accounts, roles and grants as CREATE ... IF
	// NOT EXISTS and GRANT statements), as globals.sql beside the dump.
	Globals bool `json:"globals,omitempty" yaml:"globals,omitempty"`
	// LockTables (mysql) locks non-transactional tables for the dump
	// instead of reporting them as outside the snapshot.
	LockTables bool `json:"lockTables,omitempty" yaml:"lockTables,omitempty"`
}

// App is a protected web app.
type App struct {
	Name        string            `json:"name" yaml:"name"`
	RenamedFrom string            `json:"renamedFrom,omitempty" yaml:"renamedFrom,omitempty"`
	Environment string            `json:"environment,omitempty" yaml:"environment,omitempty"`
	Region      string            `json:"region,omitempty" yaml:"region,omitempty"`
	Vault       string            `json:"vault,omitempty" yaml:"vault,omitempty"`
	Labels      map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	Owners      []string          `json:"owners,omitempty" yaml:"owners,omitempty"`
	HealthURL   string            `json:"healthURL,omitempty" yaml:"healthURL,omitempty"`
	// Public lists the settings keys (or globs) whose values may be shown;
	// every other value is secret.
	Public     []string    `json:"public,omitempty" yaml:"public,omitempty"`
	Components []Component `json:"components" yaml:"components"`
	Hooks      []Hook      `json:"hooks,omitempty" yaml:"hooks,omitempty"`
	CreatedAt  time.Time   `json:"createdAt" yaml:"-"`
	UpdatedAt  time.Time   `json:"updatedAt" yaml:"-"`
	RetiredAt  *time.Time  `json:"retiredAt,omitempty" yaml:"-"`
}

// Schedule says when a policy's backups run.
type Schedule struct {
	Cron     string   `json:"cron,omitempty" yaml:"cron,omitempty"`
	Every    Duration `json:"every,omitempty" yaml:"every,omitempty"`
	TimeZone string   `json:"timeZone,omitempty" yaml:"timeZone,omitempty"`
	Jitter   Duration `json:"jitter,omitempty" yaml:"jitter,omitempty"`
	Window   string   `json:"window,omitempty" yaml:"window,omitempty"` // "HH:MM-HH:MM"
}

// Retention says which points a policy keeps.
type Retention struct {
	Last    int      `json:"last,omitempty" yaml:"last,omitempty"`
	Hourly  int      `json:"hourly,omitempty" yaml:"hourly,omitempty"`
	Daily   int      `json:"daily,omitempty" yaml:"daily,omitempty"`
	Weekly  int      `json:"weekly,omitempty" yaml:"weekly,omitempty"`
	Monthly int      `json:"monthly,omitempty" yaml:"monthly,omitempty"`
	Yearly  int      `json:"yearly,omitempty" yaml:"yearly,omitempty"`
	Within  Duration `json:"within,omitempty" yaml:"within,omitempty"`
}

// Policy is a schedule and a retention, assigned to apps by name or by labels.
type Policy struct {
	Name      string    `json:"name" yaml:"name"`
	Schedule  Schedule  `json:"schedule" yaml:"schedule"`
	Retention Retention `json:"retention" yaml:"retention"`
	RPO       Duration  `json:"rpo,omitempty" yaml:"rpo,omitempty"`
	// KeyRotation is how old the key-encryption key of the vaults holding
	// these apps may get before status warns (0: no warning).
	KeyRotation Duration          `json:"keyRotation,omitempty" yaml:"keyRotation,omitempty"`
	Apps        []string          `json:"apps,omitempty" yaml:"apps,omitempty"`
	Selector    map[string]string `json:"selector,omitempty" yaml:"selector,omitempty"`
	CreatedAt   time.Time         `json:"createdAt" yaml:"-"`
	UpdatedAt   time.Time         `json:"updatedAt" yaml:"-"`
}

// Selects reports whether the policy applies to app.
func (p *Policy) Selects(app *App) bool {
	for _, n := range p.Apps {
		if n == app.Name {
			return true
		}
	}
	if len(p.Selector) == 0 {
		return false
	}
	for k, v := range p.Selector {
		if k == "env" || k == "environment" {
			if app.Environment == v || app.Labels[k] == v {
				continue
			}
			return false
		}
		if app.Labels[k] != v {
			return false
		}
	}
	return true
}

// Point is the catalog's record of a recovery point (a cache of the manifest).
type Point struct {
	ID         string            `json:"id"`
	Vault      string            `json:"vault"`
	App        string            `json:"app"`
	Time       time.Time         `json:"time"`
	Finished   time.Time         `json:"finished"`
	Partial    bool              `json:"partial,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
	Components []PointComponent  `json:"components"`
	BytesRead  int64             `json:"bytesRead"`
	BytesNew   int64             `json:"bytesNew"`
	Files      int64             `json:"files"`
	Bytes      int64             `json:"bytes"`
	DeletedAt  *time.Time        `json:"deletedAt,omitempty"`
}

// PointComponent is one component of a point.
type PointComponent struct {
	Name   string    `json:"name"`
	Kind   string    `json:"kind"`
	Host   string    `json:"host"`
	Source string    `json:"source"`
	Taken  time.Time `json:"taken"`
	// Meta is what the capture recorded (a database's engine, versions and
	// row counts; see DatabaseInfo).
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Job kinds and states.
const (
	JobBackup  = "backup"
	JobRestore = "restore"
	JobVerify  = "verify"
	JobPrune   = "prune"
	// JobReencrypt rewrites a vault's data sealed under older data keys.
	JobReencrypt = "reencrypt"

	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCancelled = "cancelled"
)

// JobDone reports whether state is final.
func JobDone(state string) bool {
	return state == JobSucceeded || state == JobFailed || state == JobCancelled
}

// Job is a unit of work run by a worker.
type Job struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	App         string          `json:"app,omitempty"`
	Vault       string          `json:"vault,omitempty"`
	State       string          `json:"state"`
	RequestedBy string          `json:"requestedBy,omitempty"`
	Spec        json.RawMessage `json:"spec,omitempty"`
	Progress    *JobProgress    `json:"progress,omitempty"`
	Result      json.RawMessage `json:"result,omitempty"`
	Error       string          `json:"error,omitempty"`
	Attempts    int             `json:"attempts"`
	Cancel      bool            `json:"cancelRequested,omitempty"`
	CreatedAt   time.Time       `json:"createdAt"`
	StartedAt   *time.Time      `json:"startedAt,omitempty"`
	FinishedAt  *time.Time      `json:"finishedAt,omitempty"`
	// Lease: set while a worker holds the job.
	LeaseOwner string     `json:"leaseOwner,omitempty"`
	LeaseUntil *time.Time `json:"leaseUntil,omitempty"`
	Fence      int64      `json:"fence"`
}

// JobProgress is a running job's live progress.
type JobProgress struct {
	Component  string  `json:"component,omitempty"`
	Files      int64   `json:"files"`
	Bytes      int64   `json:"bytes"`
	TotalFiles int64   `json:"totalFiles,omitempty"`
	TotalBytes int64   `json:"totalBytes,omitempty"`
	Rate       float64 `json:"bytesPerSecond"`
	ETA        string  `json:"eta,omitempty"`
}

// JobLog is one line of a job's log.
type JobLog struct {
	Seq   int64     `json:"seq"`
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Msg   string    `json:"msg"`
}

// AuditEvent records who did what to which thing, with what outcome.
type AuditEvent struct {
	ID      string          `json:"id"`
	Time    time.Time       `json:"time"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Detail  json.RawMessage `json:"detail,omitempty"`
	// Source is the caller's address, RequestID the request's id.
	Source    string `json:"source,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Seq, PrevHash and Hash place the event in the hash chain.
	Seq      int64  `json:"seq"`
	PrevHash string `json:"prevHash"`
	Hash     string `json:"hash"`
}

// Principal is who is asking: a user or a service identity (or, as the
// holder of assignments, a group).
type Principal struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"` // user, service or group
	Admin bool   `json:"admin,omitempty"`
	// Grants are its role assignments, its groups' included (resolved when
	// it authenticates; not stored with it).
	Grants []Grant `json:"grants,omitempty"`
	// Groups it is in, directly or through nested groups.
	Groups    []string  `json:"groups,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	// HasPassword: a user who can sign in with a password.
	HasPassword bool `json:"hasPassword,omitempty"`
}

// Principal kinds.
const (
	KindUser    = "user"
	KindService = "service"
	KindGroup   = "group"
)

// Grant is a role on a scope, as a principal holds it.
type Grant struct {
	Role  string `json:"role"`
	Scope string `json:"scope"`
	Via   string `json:"via,omitempty"` // "direct", "group NAME", ...
}

// Assignment is a principal × role × scope.
type Assignment struct {
	ID        string    `json:"id"`
	Principal string    `json:"principal"`
	Role      string    `json:"role"`
	Scope     string    `json:"scope"`
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy"`
}

// Duration is a time.Duration written as "6h", "30m", "14d" (days allowed)
// in YAML and JSON.
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	td := time.Duration(d)
	if td%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", td/(24*time.Hour))
	}
	return td.String()
}

// ParseDuration parses Go durations plus a "d" (24 h) unit: "14d", "1d12h".
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty duration")
	}
	var days int64
	if i := strings.IndexByte(s, 'd'); i > 0 {
		if _, err := fmt.Sscanf(s[:i], "%d", &days); err != nil || days < 0 || fmt.Sprint(days) != s[:i] {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		s = s[i+1:]
		if s == "" {
			return Duration(time.Duration(days) * 24 * time.Hour), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q (use e.g. 30m, 6h, 14d)", s)
	}
	return Duration(time.Duration(days)*24*time.Hour + d), nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// DatabaseInfo describes a captured database, recorded with its point so a
// restore can be verified: engine and versions, size, and the row count of
// every table taken in the dump's own snapshot where the engine allows.
type DatabaseInfo struct {
	Engine        string       `json:"engine"` // postgres, mysql, sqlite
	ServerVersion string       `json:"serverVersion,omitempty"`
	ToolVersion   string       `json:"toolVersion,omitempty"`
	Database      string       `json:"database"`
	SizeBytes     int64        `json:"sizeBytes"`
	Tables        []TableCount `json:"tables"`
	// Warnings name what the capture could not make consistent (e.g.
	// MyISAM tables under --single-transaction).
	Warnings []string `json:"warnings,omitempty"`
}

// TableCount is one table's row count.
type TableCount struct {
	Name string `json:"name"` // schema-qualified where the engine has schemas
	Rows int64  `json:"rows"`
}

// DBServer is a registered database server: components capture from and
// restore into registered servers only.
type DBServer struct {
	Name    string `json:"name" yaml:"name"`
	Engine  string `json:"engine" yaml:"engine"` // postgres or mysql
	Host    string `json:"host" yaml:"host"`
	Port    int    `json:"port,omitempty" yaml:"port,omitempty"`
	User    string `json:"user" yaml:"user"`
	SSLMode string `json:"sslMode,omitempty" yaml:"sslMode,omitempty"` // postgres: disable ... verify-full (default prefer); mysql: disable, prefer (TLS unverified), require = verify (default: verified TLS when the server offers TLS, plain when it offers none)
	// Via names a registered SSH host the server is reached through (a
	// tunnel; Host and Port are then as that host sees them).
	Via string `json:"via,omitempty" yaml:"via,omitempty"`
	// PasswordFile names a 0600 file on the server holding the password; it
	// is read once when the server is registered and sealed. Never stored.
	PasswordFile string    `json:"passwordFile,omitempty" yaml:"passwordFile,omitempty"`
	HasPassword  bool      `json:"hasPassword,omitempty" yaml:"-"`
	Version      string    `json:"version,omitempty" yaml:"-"` // seen when registered
	CreatedAt    time.Time `json:"createdAt" yaml:"-"`
}
