package cli

import (
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/federation"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// defaultDataDir is $LIFEBOAT_DATA_DIR, else $XDG_DATA_HOME/lifeboat, else
// ~/.local/share/lifeboat.
func defaultDataDir(env Env) string {
	if d := env.Getenv("LIFEBOAT_DATA_DIR"); d != "" {
		return d
	}
	if d := env.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "lifeboat")
	}
	home := env.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".local", "share", "lifeboat")
}

func newServeCmd(env Env) *cobra.Command {
	var dataDir, listen, catalogDSN, logFormat string
	var workers int
	var groupRule string
	var softDelete string
	var auditWebhook, auditSyslog string
	var breakGlassFile string
	var oidcIssuer, oidcClient, oidcSecretFile string
	var oidcRedirects []string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Lifeboat server (API, scheduler, workers)",
		Long: `Run the Lifeboat server. With no flags it works on a fresh machine: it
creates the data directory (` + "`~/.local/share/lifeboat`" + ` or $LIFEBOAT_DATA_DIR), a
SQLite catalog, the server master key, a default local vault with a
generated passphrase (in vault-keys/, mode 0600), and the first
administrator, whose API token it writes once to admin.token (mode 0600) and
shows on the terminal. It listens on ` + server.DefaultListen + ` (loopback only).

--catalog postgres://USER@HOST:PORT/DB runs on PostgreSQL; the password
comes from PGPASSWORD or a 0600 PGPASSFILE, never the command line.

SIGTERM or SIGINT drains: the listener closes, running jobs are cancelled and
queued again, so nothing acknowledged is lost.` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			crypto.KeepKDFHugePages(false) // long-lived: see crypto.prepareKDFMemory
			ctx := cmd.Context()
			if dataDir == "" {
				dataDir = defaultDataDir(env)
			}
			if catalogDSN == "" {
				catalogDSN = env.Getenv("LIFEBOAT_CATALOG")
			}
			log, err := newLogger(env, logFormat)
			if err != nil {
				return err
			}
			sd, err := lifeboat.ParseDuration(softDelete)
			if err != nil || sd.D() < server.MinSoftDelete {
				return usagef("--soft-delete %q: at least %v (soft-deleted points stay restorable that long; it can be raised, never lowered)", softDelete, lifeboat.Duration(server.MinSoftDelete))
			}
			var glass string
			if breakGlassFile != "" {
				b, err := readSecretFile(breakGlassFile)
				if err != nil {
					return err
				}
				glass = strings.TrimSpace(string(b))
				if h, err := hex.DecodeString(glass); err != nil || len(h) != 32 {
					return usagef("--break-glass-hash-file %s: want the hex SHA-256 of the break-glass secret (sha256sum)", breakGlassFile)
				}
			}
			if auditSyslog != "" {
				if _, _, err := server.ParseSyslogTarget(auditSyslog); err != nil {
					return usagef("--audit-syslog: %v", err)
				}
			}
			cfg := server.Config{DataDir: dataDir, Catalog: catalogDSN, Workers: workers, Log: log, RequireGroupAssignments: groupRule, SoftDelete: sd.D(), AuditWebhook: auditWebhook, AuditSyslog: auditSyslog, BreakGlassHash: glass}
			if oidcIssuer != "" || oidcClient != "" || oidcSecretFile != "" || len(oidcRedirects) > 0 {
				o := &server.OIDCConfig{Issuer: oidcIssuer, ClientID: oidcClient, RedirectURLs: oidcRedirects}
				if oidcSecretFile != "" {
					b, err := readSecretFile(oidcSecretFile)
					if err != nil {
						return err
					}
					o.ClientSecret = strings.TrimSpace(string(b))
				}
				if err := (federation.Client{Issuer: o.Issuer, ClientID: o.ClientID}).Check(); err != nil {
					return usagef("--oidc-issuer/--oidc-client-id: %v", err)
				}
				for _, u := range oidcRedirects {
					if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
						return usagef("--oidc-redirect-url %q: want an absolute http(s) URL", u)
					}
				}
				cfg.OIDC = o
			}
			if env.IsTerminal {
				cfg.Announce = env.Stderr
			}
			srv, err := server.Open(ctx, cfg)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return lifeboat.Errorf(lifeboat.EUnavailable, "listen on %s: %v", listen, err)
			}
			return srv.Serve(ctx, ln)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "data directory (default $LIFEBOAT_DATA_DIR or ~/.local/share/lifeboat)")
	cmd.Flags().StringVar(&listen, "listen", server.DefaultListen, "address to listen on")
	cmd.Flags().StringVar(&catalogDSN, "catalog", "", "catalog: a SQLite file or postgres://user@host:port/db (default: catalog.db in the data directory, or $LIFEBOAT_CATALOG)")
	cmd.Flags().StringVar(&breakGlassFile, "break-glass-hash-file", "", "enable the break-glass path: a file (0600) with the hex SHA-256 of a secret kept in a safe; a protected request carrying the secret runs without approval, loudly")
	cmd.Flags().StringVar(&auditSyslog, "audit-syslog", "", "send every audit event, in chain order, to this syslog target: udp://HOST:PORT, tcp://HOST:PORT or unix:///dev/log")
	cmd.Flags().StringVar(&oidcIssuer, "oidc-issuer", "", "let people sign in through their browser at this OIDC issuer (https URL; lifeboat login --oidc)")
	cmd.Flags().StringVar(&oidcClient, "oidc-client-id", "", "the client id Lifeboat is registered under at the OIDC issuer")
	cmd.Flags().StringVar(&oidcSecretFile, "oidc-client-secret-file", "", "a file (0600) with the client's secret (none: a public client, PKCE only)")
	cmd.Flags().StringSliceVar(&oidcRedirects, "oidc-redirect-url", nil, "a redirect URI allowed besides loopback ones (http://127.0.0.1:PORT/oidc/callback), e.g. a dashboard's; repeatable")
	cmd.Flags().StringVar(&auditWebhook, "audit-webhook", "", "POST every audit event, in chain order, to this URL (an external copy the server cannot rewrite)")
	cmd.Flags().StringVar(&softDelete, "soft-delete", "14d", "how long soft-deleted points stay restorable before garbage collection purges them (at least 14d)")
	cmd.Flags().StringVar(&groupRule, "require-group-assignments", "production", "refuse role assignments to individual users: production (on scopes covering production apps), all, or off")
	cmd.Flags().IntVar(&workers, "workers", max(2, runtime.GOMAXPROCS(0)), "jobs run at the same time")
	cmd.Flags().StringVar(&logFormat, "log-format", "auto", "log format: json, text, or auto (text on a terminal, else JSON)")
	return cmd
}

func newLogger(env Env, format string) (*slog.Logger, error) {
	var w io.Writer = env.Stderr
	switch format {
	case "json":
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "auto":
		if env.IsTerminal {
			return slog.New(slog.NewTextHandler(w, nil)), nil
		}
	default:
		return nil, usagef("--log-format %q: want json, text or auto", format)
	}
	return slog.New(slog.NewJSONHandler(w, nil)), nil
}
