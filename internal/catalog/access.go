package catalog

import (
	"context"
	"database/sql"
	"slices"
	"sort"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// maxGroupDepth bounds nested group resolution (and so cycles).
const maxGroupDepth = 8

// GetPrincipal returns a principal with its groups and grants.
func (t *Tx) GetPrincipal(ctx context.Context, name string) (*lifeboat.Principal, error) {
	var p lifeboat.Principal
	var admin int
	var created int64
	var hash string
	err := t.queryRow(ctx, `SELECT name, kind, admin, created_at, password_hash FROM principals WHERE name = ?`, name).Scan(&p.Name, &p.Kind, &admin, &created, &hash)
	if err != nil {
		return nil, rowErr(err)
	}
	p.Admin, p.CreatedAt, p.HasPassword = admin == 1, fromNS(created), hash != ""
	if err := t.resolve(ctx, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// resolve fills p's groups (transitively) and grants.
func (t *Tx) resolve(ctx context.Context, p *lifeboat.Principal) error {
	groups, err := t.GroupsOf(ctx, p.Name)
	if err != nil {
		return err
	}
	p.Groups = groups
	p.Grants = nil
	for i, who := range append([]string{p.Name}, groups...) {
		as, err := t.ListAssignments(ctx, who)
		if err != nil {
			return err
		}
		via := "direct"
		if i > 0 {
			via = "group " + who
		}
		for _, a := range as {
			p.Grants = append(p.Grants, lifeboat.Grant{Role: a.Role, Scope: a.Scope, Via: via})
		}
	}
	return nil
}

// ListPrincipals lists principals of a kind ("" for all), by name.
func (t *Tx) ListPrincipals(ctx context.Context, kind string) ([]lifeboat.Principal, error) {
	rows, err := t.query(ctx, `SELECT name, kind, admin, created_at, password_hash FROM principals WHERE ? = '' OR kind = ? ORDER BY name`, kind, kind)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lifeboat.Principal
	for rows.Next() {
		var p lifeboat.Principal
		var admin int
		var created int64
		var hash string
		if err := rows.Scan(&p.Name, &p.Kind, &admin, &created, &hash); err != nil {
			return nil, err
		}
		p.Admin, p.CreatedAt, p.HasPassword = admin == 1, fromNS(created), hash != ""
		out = append(out, p)
	}
	return out, rows.Err()
}

// DeletePrincipal removes a principal with its tokens, memberships and
// assignments.
func (t *Tx) DeletePrincipal(ctx context.Context, name string) error {
	if _, err := t.exec(ctx, `DELETE FROM tokens WHERE principal = ?`, name); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM group_members WHERE member = ? OR grp = ?`, name, name); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM assignments WHERE principal = ?`, name); err != nil {
		return err
	}
	return t.execOne(ctx, `DELETE FROM principals WHERE name = ?`, name)
}

// SetPasswordHash stores a user's password hash ("" removes sign-in by
// password).
func (t *Tx) SetPasswordHash(ctx context.Context, name, hash string) error {
	return t.execOne(ctx, `UPDATE principals SET password_hash = ? WHERE name = ?`, hash, name)
}

// PasswordHash returns a principal's kind and password hash.
func (t *Tx) PasswordHash(ctx context.Context, name string) (kind, hash string, err error) {
	err = t.queryRow(ctx, `SELECT kind, password_hash FROM principals WHERE name = ?`, name).Scan(&kind, &hash)
	return kind, hash, rowErr(err)
}

// AddMember puts member (a user, service identity or group) in group.
func (t *Tx) AddMember(ctx context.Context, group, member string) error {
	_, err := t.exec(ctx, `INSERT INTO group_members (grp, member, added_at) VALUES (?, ?, ?)`, group, member, ns(t.now))
	return err
}

// RemoveMember takes member out of group.
func (t *Tx) RemoveMember(ctx context.Context, group, member string) error {
	return t.execOne(ctx, `DELETE FROM group_members WHERE grp = ? AND member = ?`, group, member)
}

// Member is a group's member and since when.
type Member struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	AddedAt int64  `json:"-"`
}

// Members lists a group's direct members, by name.
func (t *Tx) Members(ctx context.Context, group string) ([]Member, error) {
	rows, err := t.query(ctx, `SELECT m.member, p.kind, m.added_at FROM group_members m JOIN principals p ON p.name = m.member WHERE m.grp = ? ORDER BY m.member`, group)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		if err := rows.Scan(&m.Name, &m.Kind, &m.AddedAt); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// GroupsOf returns the groups name is in, directly or through nested
// groups (at most maxGroupDepth levels; cycles end), sorted.
func (t *Tx) GroupsOf(ctx context.Context, name string) ([]string, error) {
	return t.ancestors(ctx, name, t.now)
}

// ancestors walks group_members up from name through links made at or
// before cutoff (at most maxGroupDepth levels; cycles end) and returns the
// groups reached, sorted.
func (t *Tx) ancestors(ctx context.Context, name string, cutoff time.Time) ([]string, error) {
	seen := map[string]bool{name: true}
	var out []string
	frontier := []string{name}
	for depth := 0; depth < maxGroupDepth && len(frontier) > 0; depth++ {
		var next []string
		for _, m := range frontier {
			rows, err := t.query(ctx, `SELECT grp FROM group_members WHERE member = ? AND added_at <= ?`, m, ns(cutoff))
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var g string
				if err := rows.Scan(&g); err != nil {
					rows.Close()
					return nil, err
				}
				if !seen[g] {
					seen[g] = true
					next = append(next, g)
					out = append(out, g)
				}
			}
			rows.Close()
		}
		frontier = next
	}
	sort.Strings(out)
	return out, nil
}

// PutAssignment records an assignment (ErrExists if the same principal
// already holds that role on that scope).
func (t *Tx) PutAssignment(ctx context.Context, a *lifeboat.Assignment) error {
	a.ID, a.CreatedAt = NewID(t.now), t.now
	_, err := t.exec(ctx, `INSERT INTO assignments (id, principal, role, scope, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
		a.ID, a.Principal, a.Role, a.Scope, ns(t.now), a.CreatedBy)
	return err
}

// DeleteAssignment removes an assignment by id and returns it.
func (t *Tx) DeleteAssignment(ctx context.Context, id string) (*lifeboat.Assignment, error) {
	a, err := t.Assignment(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, `DELETE FROM assignments WHERE id = ?`, id); err != nil {
		return nil, err
	}
	return a, nil
}

// Assignment returns an assignment by id.
func (t *Tx) Assignment(ctx context.Context, id string) (*lifeboat.Assignment, error) {
	var a lifeboat.Assignment
	var created int64
	err := t.queryRow(ctx, `SELECT id, principal, role, scope, created_at, created_by FROM assignments WHERE id = ?`, id).Scan(&a.ID, &a.Principal, &a.Role, &a.Scope, &created, &a.CreatedBy)
	if err != nil {
		return nil, rowErr(err)
	}
	a.CreatedAt = fromNS(created)
	return &a, nil
}

// ListAssignments lists the assignments of principal ("" for all), oldest
// first.
func (t *Tx) ListAssignments(ctx context.Context, principal string) ([]lifeboat.Assignment, error) {
	rows, err := t.query(ctx, `SELECT id, principal, role, scope, created_at, created_by FROM assignments WHERE ? = '' OR principal = ? ORDER BY id`, principal, principal)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lifeboat.Assignment
	for rows.Next() {
		var a lifeboat.Assignment
		var created int64
		if err := rows.Scan(&a.ID, &a.Principal, &a.Role, &a.Scope, &created, &a.CreatedBy); err != nil {
			return nil, err
		}
		a.CreatedAt = fromNS(created)
		out = append(out, a)
	}
	return out, rows.Err()
}

const tokenCols = `id, principal, created_at, expires_at, last_used_at, revoked_at`

func scanToken(s interface{ Scan(...any) error }) (*TokenInfo, error) {
	var ti TokenInfo
	var created int64
	var exp, used, rev sql.NullInt64
	if err := s.Scan(&ti.ID, &ti.Principal, &created, &exp, &used, &rev); err != nil {
		return nil, rowErr(err)
	}
	ti.CreatedAt, ti.ExpiresAt, ti.LastUsedAt, ti.RevokedAt = fromNS(created), fromNullNS(exp), fromNullNS(used), fromNullNS(rev)
	return &ti, nil
}

// ListTokens lists the tokens of principal ("" for all), newest first.
func (t *Tx) ListTokens(ctx context.Context, principal string) ([]TokenInfo, error) {
	rows, err := t.query(ctx, `SELECT `+tokenCols+` FROM tokens WHERE ? = '' OR principal = ? ORDER BY id DESC`, principal, principal)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		ti, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *ti)
	}
	return out, rows.Err()
}

// Token returns a token's description by id.
func (t *Tx) Token(ctx context.Context, id string) (*TokenInfo, error) {
	return scanToken(t.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens WHERE id = ?`, id))
}

// RevokeToken revokes a token by id and returns it (revoking twice keeps
// the first time).
func (t *Tx) RevokeToken(ctx context.Context, id string) (*TokenInfo, error) {
	if _, err := t.Token(ctx, id); err != nil {
		return nil, err
	}
	if _, err := t.exec(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ns(t.now), id); err != nil {
		return nil, err
	}
	return t.Token(ctx, id)
}

// PutTrustRule creates or replaces a trust rule (doc: its JSON).
func (t *Tx) PutTrustRule(ctx context.Context, name string, doc []byte) error {
	_, err := t.exec(ctx, `INSERT INTO trust_rules (name, doc, created_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET doc = excluded.doc`, name, string(doc), ns(t.now))
	return err
}

// TrustRules returns every trust rule's JSON, by name.
func (t *Tx) TrustRules(ctx context.Context) ([][]byte, error) {
	return t.docs(ctx, `SELECT doc FROM trust_rules ORDER BY name`)
}

// DeleteTrustRule removes a trust rule.
func (t *Tx) DeleteTrustRule(ctx context.Context, name string) error {
	return t.execOne(ctx, `DELETE FROM trust_rules WHERE name = ?`, name)
}

// PutApproval stores an approval request (created or changed).
func (t *Tx) PutApproval(ctx context.Context, id, state string, created time.Time, doc []byte) error {
	_, err := t.exec(ctx, `INSERT INTO approvals (id, state, created_at, doc) VALUES (?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, doc = excluded.doc`, id, state, ns(created), string(doc))
	return err
}

// Approval returns an approval request's JSON.
func (t *Tx) Approval(ctx context.Context, id string) ([]byte, error) {
	var d string
	err := t.queryRow(ctx, `SELECT doc FROM approvals WHERE id = ?`, id).Scan(&d)
	return []byte(d), rowErr(err)
}

// Approvals lists approval requests' JSON, newest first, by state ("" all).
func (t *Tx) Approvals(ctx context.Context, state string) ([][]byte, error) {
	return t.docs(ctx, `SELECT doc FROM approvals WHERE ? = '' OR state = ? ORDER BY created_at DESC, id DESC`, state, state)
}

// StandingMember reports whether member has been in group, directly or
// through nested groups, since cutoff or earlier: every link of some path
// from member up to group was made at or before cutoff.
func (t *Tx) StandingMember(ctx context.Context, group, member string, cutoff time.Time) (bool, error) {
	gs, err := t.ancestors(ctx, member, cutoff)
	return slices.Contains(gs, group), err
}

// StandingUsers lists the users who have been in group (directly or
// nested) since cutoff or earlier.
func (t *Tx) StandingUsers(ctx context.Context, group string, cutoff time.Time) ([]string, error) {
	seen := map[string]bool{group: true}
	frontier := []string{group}
	var users []string
	for depth := 0; depth < maxGroupDepth && len(frontier) > 0; depth++ {
		var next []string
		for _, g := range frontier {
			rows, err := t.query(ctx, `SELECT m.member, p.kind FROM group_members m JOIN principals p ON p.name = m.member WHERE m.grp = ? AND m.added_at <= ?`, g, ns(cutoff))
			if err != nil {
				return nil, err
			}
			for rows.Next() {
				var m, kind string
				if err := rows.Scan(&m, &kind); err != nil {
					rows.Close()
					return nil, err
				}
				if seen[m] {
					continue
				}
				seen[m] = true
				switch kind {
				case lifeboat.KindUser:
					users = append(users, m)
				case lifeboat.KindGroup:
					next = append(next, m)
				}
			}
			rows.Close()
		}
		frontier = next
	}
	sort.Strings(users)
	return users, nil
}

// LegalHold is a hold on a whole app.
type LegalHold struct {
	App    string    `json:"app"`
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	Since  time.Time `json:"since"`
}

// PutLegalHold holds an app (ErrExists if it is held already).
func (t *Tx) PutLegalHold(ctx context.Context, h *LegalHold) error {
	h.Since = t.now
	_, err := t.exec(ctx, `INSERT INTO legal_holds (app, reason, held_by, created_at) VALUES (?, ?, ?, ?)`, h.App, h.Reason, h.By, ns(t.now))
	return err
}

// LegalHoldOf returns an app's hold (ErrNotFound if none).
func (t *Tx) LegalHoldOf(ctx context.Context, app string) (*LegalHold, error) {
	h := &LegalHold{App: app}
	var since int64
	err := t.queryRow(ctx, `SELECT reason, held_by, created_at FROM legal_holds WHERE app = ?`, app).Scan(&h.Reason, &h.By, &since)
	if err != nil {
		return nil, rowErr(err)
	}
	h.Since = fromNS(since)
	return h, nil
}

// LegalHolds lists every app hold, by app.
func (t *Tx) LegalHolds(ctx context.Context) ([]*LegalHold, error) {
	rows, err := t.query(ctx, `SELECT app, reason, held_by, created_at FROM legal_holds ORDER BY app`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*LegalHold
	for rows.Next() {
		h := &LegalHold{}
		var since int64
		if err := rows.Scan(&h.App, &h.Reason, &h.By, &since); err != nil {
			return nil, err
		}
		h.Since = fromNS(since)
		out = append(out, h)
	}
	return out, rows.Err()
}

// DeleteLegalHold releases an app.
func (t *Tx) DeleteLegalHold(ctx context.Context, app string) error {
	return t.execOne(ctx, `DELETE FROM legal_holds WHERE app = ?`, app)
}

// PutVaultLock stores a vault's lock (doc: its JSON).
func (t *Tx) PutVaultLock(ctx context.Context, vault string, doc []byte) error {
	_, err := t.exec(ctx, `INSERT INTO vault_locks (vault, doc, created_at) VALUES (?, ?, ?)
		ON CONFLICT (vault) DO UPDATE SET doc = excluded.doc`, vault, string(doc), ns(t.now))
	return err
}

// VaultLock returns a vault's lock JSON (ErrNotFound if it has none).
func (t *Tx) VaultLock(ctx context.Context, vault string) ([]byte, error) {
	var d string
	err := t.queryRow(ctx, `SELECT doc FROM vault_locks WHERE vault = ?`, vault).Scan(&d)
	return []byte(d), rowErr(err)
}

// DeleteVaultLock removes a vault's lock.
func (t *Tx) DeleteVaultLock(ctx context.Context, vault string) error {
	return t.execOne(ctx, `DELETE FROM vault_locks WHERE vault = ?`, vault)
}

// VaultLocks returns every vault lock's JSON by vault.
func (t *Tx) VaultLocks(ctx context.Context) (map[string][]byte, error) {
	rows, err := t.query(ctx, `SELECT vault, doc FROM vault_locks ORDER BY vault`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var v, d string
		if err := rows.Scan(&v, &d); err != nil {
			return nil, err
		}
		out[v] = []byte(d)
	}
	return out, rows.Err()
}

// PointRetentions returns the retain-until dates set in the storage for
// the points of vault.
func (t *Tx) PointRetentions(ctx context.Context, vault string) (map[string]time.Time, error) {
	rows, err := t.query(ctx, `SELECT point, until_ns FROM point_retention WHERE vault = ?`, vault)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var p string
		var u int64
		if err := rows.Scan(&p, &u); err != nil {
			return nil, err
		}
		out[p] = fromNS(u)
	}
	return out, rows.Err()
}

// PutPointRetention records the retain-until date set on what a point needs.
func (t *Tx) PutPointRetention(ctx context.Context, vault, point string, until time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO point_retention (vault, point, until_ns) VALUES (?, ?, ?)
		ON CONFLICT (vault, point) DO UPDATE SET until_ns = excluded.until_ns`, vault, point, ns(until))
	return err
}

// ForgetPointRetentions forgets what was retained in vault (its objects
// changed: a re-encryption wrote new packs), so that it is done again.
func (t *Tx) ForgetPointRetentions(ctx context.Context, vault string) error {
	_, err := t.exec(ctx, `DELETE FROM point_retention WHERE vault = ?`, vault)
	return err
}

// execOne runs a statement that must change a row: ErrNotFound if none did.
func (t *Tx) execOne(ctx context.Context, q string, args ...any) error {
	r, err := t.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// docs runs a query of one text column (JSON documents) and returns them.
func (t *Tx) docs(ctx context.Context, q string, args ...any) ([][]byte, error) {
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, err
		}
		out = append(out, []byte(d))
	}
	return out, rows.Err()
}
