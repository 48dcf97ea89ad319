package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// VaultRecord is a vault with its sealed passphrase (sealed by the caller
// under the server master key; the catalog never sees it in clear).
type VaultRecord struct {
	lifeboat.Vault
	SealedPassphrase string
}

// PutVault creates a vault, or updates region, location and default flag.
func (t *Tx) PutVault(ctx context.Context, v *VaultRecord) error {
	_, err := t.exec(ctx, `INSERT INTO vaults (name, region, location, is_default, passphrase, created_at, approvers) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET region = excluded.region, location = excluded.location, is_default = excluded.is_default, retired_at = NULL`,
		v.Name, v.Region, v.Location, b2i(v.Default), v.SealedPassphrase, ns(t.now), nullStr(v.Approvers))
	return err
}

// SetVaultApprovers sets a vault's approvers group ("": the server's).
func (t *Tx) SetVaultApprovers(ctx context.Context, name, group string) error {
	return t.execOne(ctx, `UPDATE vaults SET approvers = ? WHERE name = ?`, nullStr(group), name)
}

// SetVaultKey records a rotation of a vault's key-encryption key: the new
// sealed passphrase and the time.
func (t *Tx) SetVaultKey(ctx context.Context, name, sealedPassphrase string) error {
	r, err := t.exec(ctx, `UPDATE vaults SET passphrase = ?, key_rotated_at = ? WHERE name = ?`, sealedPassphrase, ns(t.now), name)
	if err != nil {
		return err
	}
	return affected(r)
}

// SetKeyExported records that a vault's key was exported.
func (t *Tx) SetKeyExported(ctx context.Context, name string) error {
	r, err := t.exec(ctx, `UPDATE vaults SET key_exported_at = ? WHERE name = ?`, ns(t.now), name)
	if err != nil {
		return err
	}
	return affected(r)
}

// RetireVault marks a vault retired (its storage is never deleted).
func (t *Tx) RetireVault(ctx context.Context, name string) error {
	r, err := t.exec(ctx, `UPDATE vaults SET retired_at = ? WHERE name = ? AND retired_at IS NULL`, ns(t.now), name)
	if err != nil {
		return err
	}
	return affected(r)
}

const vaultCols = `name, region, location, is_default, passphrase, key_exported_at, created_at, retired_at, key_rotated_at, approvers`

func scanVault(s interface{ Scan(...any) error }) (*VaultRecord, error) {
	var v VaultRecord
	var def int
	var exp, ret, rot sql.NullInt64
	var created int64
	var approvers sql.NullString
	if err := s.Scan(&v.Name, &v.Region, &v.Location, &def, &v.SealedPassphrase, &exp, &created, &ret, &rot, &approvers); err != nil {
		return nil, rowErr(err)
	}
	v.Approvers = approvers.String
	v.KeyRotatedAt = fromNullNS(rot)
	v.Default = def == 1
	v.KeyExportedAt = fromNullNS(exp)
	v.CreatedAt = fromNS(created)
	v.RetiredAt = fromNullNS(ret)
	return &v, nil
}

// Vault returns one vault.
func (t *Tx) Vault(ctx context.Context, name string) (*VaultRecord, error) {
	return scanVault(t.queryRow(ctx, `SELECT `+vaultCols+` FROM vaults WHERE name = ?`, name))
}

// Vaults lists every vault by name.
func (t *Tx) Vaults(ctx context.Context) ([]*VaultRecord, error) {
	rows, err := t.query(ctx, `SELECT `+vaultCols+` FROM vaults ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*VaultRecord
	for rows.Next() {
		v, err := scanVault(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// DefaultVault returns the default vault of a region.
func (t *Tx) DefaultVault(ctx context.Context, region string) (*VaultRecord, error) {
	return scanVault(t.queryRow(ctx, `SELECT `+vaultCols+` FROM vaults WHERE region = ? AND is_default = 1 AND retired_at IS NULL ORDER BY name LIMIT 1`, region))
}

// docTable is a table of named JSON documents: hosts, apps, policies.
type docTable struct{ name string }

var (
	hostsT    = docTable{"hosts"}
	policiesT = docTable{"policies"}
)

// PutHost creates or replaces a host.
func (t *Tx) PutHost(ctx context.Context, h *lifeboat.Host) error {
	if h.CreatedAt.IsZero() {
		h.CreatedAt = t.now
	}
	doc, err := json.Marshal(h)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO hosts (name, kind, doc, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, doc = excluded.doc`, h.Name, h.Kind, string(doc), ns(h.CreatedAt))
	return err
}

// Host returns one host.
func (t *Tx) Host(ctx context.Context, name string) (*lifeboat.Host, error) {
	var h lifeboat.Host
	return &h, t.getDoc(ctx, hostsT, name, &h)
}

// Hosts lists hosts by name.
func (t *Tx) Hosts(ctx context.Context) ([]*lifeboat.Host, error) {
	return listDocs[lifeboat.Host](ctx, t, hostsT, Page{Limit: 1000}, "")
}

// DeleteHost removes a host.
func (t *Tx) DeleteHost(ctx context.Context, name string) error {
	r, err := t.exec(ctx, `DELETE FROM hosts WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return affected(r)
}

// PutPolicy creates or replaces a policy.
func (t *Tx) PutPolicy(ctx context.Context, p *lifeboat.Policy) error {
	if p.CreatedAt.IsZero() {
		p.CreatedAt = t.now
	}
	p.UpdatedAt = t.now
	doc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO policies (name, doc, created_at, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, p.Name, string(doc), ns(p.CreatedAt), ns(t.now))
	return err
}

// Policy returns one policy.
func (t *Tx) Policy(ctx context.Context, name string) (*lifeboat.Policy, error) {
	var p lifeboat.Policy
	return &p, t.getDoc(ctx, policiesT, name, &p)
}

// Policies lists policies by name.
func (t *Tx) Policies(ctx context.Context, pg Page) ([]*lifeboat.Policy, error) {
	return listDocs[lifeboat.Policy](ctx, t, policiesT, pg, "")
}

// DeletePolicy removes a policy.
func (t *Tx) DeletePolicy(ctx context.Context, name string) error {
	r, err := t.exec(ctx, `DELETE FROM policies WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return affected(r)
}

// PutApp creates or replaces an app (un-retiring it).
func (t *Tx) PutApp(ctx context.Context, a *lifeboat.App) error {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = t.now
	}
	a.UpdatedAt = t.now
	a.RetiredAt = nil
	a.RenamedFrom = ""
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO apps (name, vault, environment, doc, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET vault = excluded.vault, environment = excluded.environment, doc = excluded.doc, updated_at = excluded.updated_at, retired_at = NULL`,
		a.Name, a.Vault, a.Environment, string(doc), ns(a.CreatedAt), ns(t.now))
	return err
}

// RenameApp renames an app, its points and its schedule state.
func (t *Tx) RenameApp(ctx context.Context, from, to string) error {
	a, err := t.App(ctx, from)
	if err != nil {
		return err
	}
	if _, err := t.App(ctx, to); err == nil {
		return ErrExists
	}
	a.Name = to
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := t.exec(ctx, `UPDATE apps SET name = ?, doc = ?, updated_at = ? WHERE name = ?`, to, string(doc), ns(t.now), from); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `UPDATE points SET app = ? WHERE app = ?`, to, from); err != nil {
		return err
	}
	_, err = t.exec(ctx, `UPDATE schedule_state SET app = ? WHERE app = ?`, to, from)
	return err
}

// RetireApp marks an app retired: no more scheduled backups; its points stay.
func (t *Tx) RetireApp(ctx context.Context, name string) error {
	a, err := t.App(ctx, name)
	if err != nil {
		return err
	}
	if a.RetiredAt != nil {
		return nil
	}
	now := t.now
	a.RetiredAt = &now
	doc, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `UPDATE apps SET retired_at = ?, doc = ? WHERE name = ?`, ns(now), string(doc), name)
	return err
}

// App returns one app (retired ones too).
func (t *Tx) App(ctx context.Context, name string) (*lifeboat.App, error) {
	var a lifeboat.App
	return &a, t.getDoc(ctx, docTable{"apps"}, name, &a)
}

// Apps lists apps by name; retired ones only when asked.
func (t *Tx) Apps(ctx context.Context, pg Page, withRetired bool) ([]*lifeboat.App, error) {
	cond := "retired_at IS NULL"
	if withRetired {
		cond = ""
	}
	return listDocs[lifeboat.App](ctx, t, docTable{"apps"}, pg, cond)
}

func (t *Tx) getDoc(ctx context.Context, tab docTable, name string, v any) error {
	var doc string
	if err := t.queryRow(ctx, `SELECT doc FROM `+tab.name+` WHERE name = ?`, name).Scan(&doc); err != nil {
		return rowErr(err)
	}
	return json.Unmarshal([]byte(doc), v)
}

func listDocs[T any](ctx context.Context, t *Tx, tab docTable, pg Page, cond string) ([]*T, error) {
	q := `SELECT doc FROM ` + tab.name + ` WHERE name > ?`
	if cond != "" {
		q += " AND " + cond
	}
	q += fmt.Sprintf(" ORDER BY name LIMIT %d", pg.limit())
	rows, err := t.query(ctx, q, pg.After)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		var doc string
		if err := rows.Scan(&doc); err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal([]byte(doc), v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func affected(r sql.Result) error {
	n, err := r.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// Setting reads a server setting ("" and ErrNotFound when unset).
func (t *Tx) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := t.queryRow(ctx, `SELECT value FROM server_settings WHERE key = ?`, key).Scan(&v)
	return v, rowErr(err)
}

// PutSetting writes a server setting.
func (t *Tx) PutSetting(ctx context.Context, key, value string) error {
	_, err := t.exec(ctx, `INSERT INTO server_settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}

// PutSecret stores a sealed secret under name.
func (t *Tx) PutSecret(ctx context.Context, name, sealed string) error {
	_, err := t.exec(ctx, `INSERT INTO secrets (name, sealed) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed`, name, sealed)
	return err
}

// Secret returns a sealed secret.
func (t *Tx) Secret(ctx context.Context, name string) (string, error) {
	var v string
	err := t.queryRow(ctx, `SELECT sealed FROM secrets WHERE name = ?`, name).Scan(&v)
	return v, rowErr(err)
}

var dbServersT = docTable{"db_servers"}

// PutDBServer creates or replaces a database server (its password is a
// secret of its own: PutSecret).
func (t *Tx) PutDBServer(ctx context.Context, s *lifeboat.DBServer) error {
	if s.CreatedAt.IsZero() {
		s.CreatedAt = t.now
	}
	c := *s
	c.PasswordFile = ""
	doc, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	_, err = t.exec(ctx, `INSERT INTO db_servers (name, engine, doc, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET engine = excluded.engine, doc = excluded.doc`, s.Name, s.Engine, string(doc), ns(s.CreatedAt))
	return err
}

// DBServer returns one database server.
func (t *Tx) DBServer(ctx context.Context, name string) (*lifeboat.DBServer, error) {
	var s lifeboat.DBServer
	return &s, t.getDoc(ctx, dbServersT, name, &s)
}

// DBServers lists database servers by name.
func (t *Tx) DBServers(ctx context.Context) ([]*lifeboat.DBServer, error) {
	return listDocs[lifeboat.DBServer](ctx, t, dbServersT, Page{Limit: 1000}, "")
}

// DeleteDBServer removes a database server.
func (t *Tx) DeleteDBServer(ctx context.Context, name string) error {
	r, err := t.exec(ctx, `DELETE FROM db_servers WHERE name = ?`, name)
	if err != nil {
		return err
	}
	return affected(r)
}
