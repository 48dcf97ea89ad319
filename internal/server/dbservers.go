package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/capture"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func dbPassName(server string) string { return "dbserver/" + server + "/password" }

// validateDBServer checks a database server's shape and reads its password
// file (the value to seal; "" when none).
func (s *Server) validateDBServer(d *lifeboat.DBServer) (string, error) {
	if err := validName("database server", d.Name); err != nil {
		return "", err
	}
	switch d.Engine {
	case lifeboat.KindPostgres:
		if d.Port == 0 {
			d.Port = 5432
		}
		switch d.SSLMode {
		case "", "disable", "allow", "prefer", "require", "verify-ca", "verify-full":
		default:
			return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: sslMode %q: want disable, allow, prefer, require, verify-ca or verify-full", d.Name, d.SSLMode)
		}
	case lifeboat.KindMySQL:
		if d.Port == 0 {
			d.Port = 3306
		}
		switch d.SSLMode {
		case "", "disable", "prefer", "require", "verify":
		default:
			return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: sslMode %q: want disable, prefer, require or verify", d.Name, d.SSLMode)
		}
	default:
		return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: engine %q: want postgres or mysql", d.Name, d.Engine)
	}
	if d.Host == "" || d.User == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: host and user are required", d.Name)
	}
	if d.Port < 1 || d.Port > 65535 {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: port %d", d.Name, d.Port)
	}
	if d.PasswordFile == "" {
		return "", nil
	}
	if err := keys.CheckPrivate(d.PasswordFile); err != nil {
		return "", err
	}
	b, err := os.ReadFile(d.PasswordFile)
	if err != nil {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: password file %s: %v", d.Name, d.PasswordFile, err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "database server %s: password file %s is empty", d.Name, d.PasswordFile)
	}
	return pw, nil
}

// putDBServer records a database server and seals its password, in tx.
func (s *Server) putDBServer(ctx context.Context, tx *catalog.Tx, actor string, d *lifeboat.DBServer, password string) error {
	if old, err := tx.DBServer(ctx, d.Name); err == nil {
		d.CreatedAt = old.CreatedAt
		if password == "" && d.PasswordFile == "" {
			d.HasPassword = old.HasPassword // unchanged
		}
	}
	if password != "" {
		if err := tx.PutSecret(ctx, dbPassName(d.Name), s.mk.Seal(dbPassName(d.Name), []byte(password))); err != nil {
			return err
		}
		d.HasPassword = true
	}
	if err := tx.PutDBServer(ctx, d); err != nil {
		return err
	}
	return tx.Audit(ctx, actor, "dbserver.put", d.Name, "ok", map[string]any{"engine": d.Engine, "host": d.Host, "port": d.Port, "user": d.User})
}

// dbPassword unseals a database server's password ("" when it has none).
func (s *Server) dbPassword(ctx context.Context, name string) (string, error) {
	var sealed string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		sealed, err = tx.Secret(ctx, dbPassName(name))
		return err
	})
	if errors.Is(err, catalog.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	pw, err := s.mk.Open(dbPassName(name), sealed)
	return string(pw), err
}

func (s *Server) listDBServers(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var out []*lifeboat.DBServer
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.DBServers(r.Context())
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(d *lifeboat.DBServer) string { return d.Name }))
}

func (s *Server) putDBServerH(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var d lifeboat.DBServer
	if err := decode(r, &d); err != nil {
		return err
	}
	if d.Name == "" {
		d.Name = r.PathValue("server")
	}
	if d.Name != r.PathValue("server") {
		return lifeboat.Errorf(lifeboat.EInvalid, "database server name %q in the body differs from %q in the path", d.Name, r.PathValue("server"))
	}
	pw, err := s.validateDBServer(&d)
	if err != nil {
		return err
	}
	if err := s.pingDBServer(r.Context(), nil, &d, pw); err != nil {
		return err
	}
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error { return s.putDBServer(r.Context(), tx, p.Name, &d, pw) })
	if err != nil {
		return err
	}
	d.PasswordFile = ""
	return writeJSON(w, http.StatusOK, d)
}

func (s *Server) deleteDBServer(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("server")
	return s.deleteUnused(w, r, p, "database server", name, func(c lifeboat.Component) bool { return c.Server == name },
		func(tx *catalog.Tx) error { return tx.DeleteDBServer(r.Context(), name) })
}

// pingDBServer connects to a database server being registered: a wrong
// password or an unreachable server is refused now, not at 2 a.m.
func (s *Server) pingDBServer(ctx context.Context, tx *catalog.Tx, d *lifeboat.DBServer, password string) error {
	drv := capture.DBDrivers[d.Engine]
	if drv == nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "no driver for %s databases in this build", d.Engine)
	}
	t := dbTarget(d, password)
	if d.Via != "" {
		var err error
		if t, err = s.tunnel(ctx, tx, d.Via, t); err != nil {
			return fmt.Errorf("database server %s: %w", d.Name, err)
		}
		defer t.Close()
	}
	v, err := drv.Ping(ctx, t)
	if err != nil {
		return fmt.Errorf("database server %s: %w", d.Name, err)
	}
	d.Version = v
	return nil
}

func dbTarget(d *lifeboat.DBServer, password string) capture.DBTarget {
	t := capture.DBTarget{Server: d.Name, Host: d.Host, Port: d.Port, User: d.User, Password: password, SSLMode: d.SSLMode}
	if d.Via != "" {
		t.Registered = net.JoinHostPort(d.Host, strconv.Itoa(d.Port)) + " via " + d.Via
	}
	return t
}

// resolveDB is the guard's database server resolver.
func (s *Server) resolveDB(ctx context.Context) func(name string) (capture.DBTarget, string, error) {
	return func(name string) (capture.DBTarget, string, error) {
		var d *lifeboat.DBServer
		err := s.db.View(ctx, func(tx *catalog.Tx) error {
			var err error
			d, err = tx.DBServer(ctx, name)
			return err
		})
		if errors.Is(err, catalog.ErrNotFound) {
			return capture.DBTarget{}, "", lifeboat.Errorf(lifeboat.EInvalid, "database server %q is not registered (lifeboat host add %s --kind postgres|mysql ...)", name, name)
		}
		if err != nil {
			return capture.DBTarget{}, "", err
		}
		pw, err := s.dbPassword(ctx, name)
		if err != nil {
			return capture.DBTarget{}, "", err
		}
		t := dbTarget(d, pw)
		if d.Via != "" {
			if t, err = s.tunnel(ctx, nil, d.Via, t); err != nil {
				return capture.DBTarget{}, "", fmt.Errorf("database server %s: %w", name, err)
			}
		}
		return t, d.Engine, nil
	}
}
