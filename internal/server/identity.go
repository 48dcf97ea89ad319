package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// SignInRequest signs a user in with a password.
type SignInRequest struct {
	Name     string            `json:"name"`
	Password string            `json:"password"`
	TTL      lifeboat.Duration `json:"ttl,omitempty"` // default 12h, at most 7d
}

// TokenCreated is a new token: the only time it is shown.
type TokenCreated struct {
	Token string             `json:"token"`
	Info  *catalog.TokenInfo `json:"info"`
}

// TokenRequest asks for a token for the caller or, with tokens.manage,
// for another principal (an app's service identity, "app:NAME").
type TokenRequest struct {
	Principal string            `json:"principal,omitempty"`
	TTL       lifeboat.Duration `json:"ttl,omitempty"` // 0: no expiry
}

// PrincipalSpec creates a user, group or service identity.
type PrincipalSpec struct {
	Kind string `json:"kind"` // user, group, service
}

// PasswordRequest sets a user's password.
type PasswordRequest struct {
	Password string `json:"password"`
	// CurrentPassword is required to change one's own password once one
	// is set: a stolen session token alone does not take the account.
	CurrentPassword string `json:"currentPassword,omitempty"`
}

// AssignmentRequest gives a principal a role on a scope.
type AssignmentRequest struct {
	Principal string `json:"principal"`
	Role      string `json:"role"`
	Scope     string `json:"scope"`
}

// AccessCheck explains a decision.
type AccessCheck struct {
	Principal string           `json:"principal"`
	Action    string           `json:"action"`
	Target    string           `json:"target"`
	Decision  access.Decision  `json:"decision"`
	Groups    []string         `json:"groups"`
	Grants    []lifeboat.Grant `json:"grants"`
}

// AccessReport lists what the access rules flag.
type AccessReport struct {
	// UserAssignments are role assignments to individual users where
	// require_group_assignments asks for groups.
	UserAssignments []lifeboat.Assignment `json:"userAssignments"`
	// OrphanedApps have no owner group that exists and has members.
	OrphanedApps []OrphanedApp `json:"orphanedApps"`
}

// OrphanedApp is an app whose ownership is broken.
type OrphanedApp struct {
	App    string `json:"app"`
	Reason string `json:"reason"`
}

const (
	defaultSessionTTL = 12 * time.Hour
	maxSessionTTL     = 7 * 24 * time.Hour
)

// signIn: POST /api/v1/sessions. Public, rate limited per name and per
// source address; every attempt is audited, the password never.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var req SignInRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.Name == "" || req.Password == "" {
		return lifeboat.Errorf(lifeboat.EInvalid, "sign-in: name and password are required")
	}
	ttl := req.TTL.D()
	if ttl == 0 {
		ttl = defaultSessionTTL
	}
	if ttl < 0 || ttl > maxSessionTTL {
		return lifeboat.Errorf(lifeboat.EInvalid, "sign-in: ttl %v: want at most %v", req.TTL, lifeboat.Duration(maxSessionTTL))
	}
	ctx := r.Context()
	src := sourceAddr(r)
	keys := []string{"name:" + req.Name, "addr:" + src}
	audit := func(outcome, why string) {
		s.db.Update(context.WithoutCancel(ctx), func(tx *catalog.Tx) error {
			return tx.Audit(ctx, req.Name, "session.create", req.Name, outcome, map[string]string{"source": src, "reason": why})
		})
	}
	if ok, wait, err := s.signIns.allow(r.Context(), s.now(), keys...); err != nil {
		return err
	} else if !ok {
		audit("denied", "rate limited")
		return lifeboat.Errorf(lifeboat.ERateLimited, "sign-in: too many failed attempts for this name or address; try again in %v", wait.Round(time.Second))
	}
	var kind, hash string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		kind, hash, err = tx.PasswordHash(ctx, req.Name)
		return err
	})
	if err != nil && err != catalog.ErrNotFound {
		return err
	}
	if err != nil || kind != lifeboat.KindUser || hash == "" {
		checkPassword(req.Password, dummyHash()) // the same time as a wrong password
		s.signIns.fail(r.Context(), s.now(), keys...)
		audit("denied", "unknown user or no password")
		return lifeboat.Errorf(lifeboat.EAuth, "sign-in: wrong name or password")
	}
	if !checkPassword(req.Password, hash) {
		s.signIns.fail(r.Context(), s.now(), keys...)
		audit("denied", "wrong password")
		return lifeboat.Errorf(lifeboat.EAuth, "sign-in: wrong name or password")
	}
	var out TokenCreated
	err = s.db.Update(ctx, func(tx *catalog.Tx) error {
		tok, info, err := tx.CreateToken(ctx, req.Name, ttl)
		if err != nil {
			return err
		}
		out = TokenCreated{Token: tok, Info: info}
		return tx.Audit(ctx, req.Name, "session.create", req.Name, "ok", map[string]string{"source": src, "token": info.ID})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

// ---- principals and groups ----

func (s *Server) listPrincipals(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	kind := r.URL.Query().Get("kind")
	var out []lifeboat.Principal
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.ListPrincipals(r.Context(), kind)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(p lifeboat.Principal) string { return p.Name }))
}

func (s *Server) getPrincipal(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	name := r.PathValue("principal")
	var p *lifeboat.Principal
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		p, err = tx.GetPrincipal(r.Context(), name)
		return notFound(err, "principal", name)
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

// validPrincipalName: users and groups are plain names; service identities
// of apps are "app:NAME" (made with the app).
func validPrincipalName(kind, name string) error {
	if kind == lifeboat.KindService {
		app, ok := strings.CutPrefix(name, access.ServicePrefix)
		if !ok {
			return lifeboat.Errorf(lifeboat.EInvalid, "service identity %q: names are app:APP (each app has its own, made with it)", name)
		}
		return validName("app", app)
	}
	return validName(kind, name)
}

func (s *Server) putPrincipal(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("principal")
	var spec PrincipalSpec
	if err := decode(r, &spec); err != nil {
		return err
	}
	switch spec.Kind {
	case lifeboat.KindUser, lifeboat.KindGroup:
	case lifeboat.KindService:
		return lifeboat.Errorf(lifeboat.EInvalid, "principal %s: service identities are made with their app", name)
	default:
		return lifeboat.Errorf(lifeboat.EInvalid, "principal %s: kind %q: want user or group", name, spec.Kind)
	}
	if err := validPrincipalName(spec.Kind, name); err != nil {
		return err
	}
	var out *lifeboat.Principal
	created := false
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		old, err := tx.GetPrincipal(r.Context(), name)
		switch {
		case err == nil && old.Kind != spec.Kind:
			return lifeboat.Errorf(lifeboat.EExists, "principal %s exists as a %s", name, old.Kind)
		case err == nil:
			out = old
			return nil
		case err != catalog.ErrNotFound:
			return err
		}
		created = true
		if err := tx.PutPrincipal(r.Context(), &lifeboat.Principal{Name: name, Kind: spec.Kind}); err != nil {
			return err
		}
		if out, err = tx.GetPrincipal(r.Context(), name); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "principal.create", name, "ok", map[string]string{"kind": spec.Kind})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, createdStatus(created), out)
}

func (s *Server) deletePrincipal(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("principal")
	if name == p.Name {
		return lifeboat.Errorf(lifeboat.EInvalid, "principal %s: you cannot remove yourself", name)
	}
	var who *lifeboat.Principal
	if err := s.db.View(r.Context(), func(tx *catalog.Tx) error { who, _ = tx.GetPrincipal(r.Context(), name); return nil }); err != nil {
		return err
	}
	approves, approver, err := s.isApprovers(r.Context(), name)
	if err != nil {
		return err
	}
	switch {
	case who != nil && approves != "":
		if err := s.needApproval(r, p, approver, "principal.delete-protected", name, "removes group "+name+", the approvers group of "+approves); err != nil {
			return err
		}
	case who != nil && isOwner(who):
		if err := s.needApproval(r, p, DefaultApprovers, "principal.delete-protected", name, "removes "+who.Kind+" "+name+", an owner"); err != nil {
			return err
		}
	}
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		old, err := tx.GetPrincipal(r.Context(), name)
		if err != nil {
			return notFound(err, "principal", name)
		}
		if old.Kind == lifeboat.KindService {
			return lifeboat.Errorf(lifeboat.EInvalid, "principal %s: an app's identity goes with its app", name)
		}
		if err := tx.DeletePrincipal(r.Context(), name); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "principal.delete", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// setPassword: a user sets its own password; access.manage sets anyone's.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.PathValue("principal")
	if name != p.Name {
		if err := access.Check(p, access.ManageAccess, access.Target{}); err != nil {
			return err
		}
	}
	var req PasswordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if len([]rune(req.Password)) < MinPasswordLength {
		return lifeboat.Errorf(lifeboat.EInvalid, "password of %s: at least %d characters", name, MinPasswordLength)
	}
	hash, err := hashPassword(req.Password)
	if err != nil {
		return err
	}
	wrongCurrent := false
	// A wrong current password is a failed sign-in: someone holding a
	// stolen session must not be able to guess the password through here.
	limitKeys := []string{"name:" + name, "addr:" + sourceAddr(r)}
	if name == p.Name {
		if ok, wait, err := s.signIns.allow(r.Context(), s.now(), limitKeys...); err != nil {
			return err
		} else if !ok {
			return lifeboat.Errorf(lifeboat.ERateLimited, "password of %s: too many wrong passwords for this name or address; try again in %v", name, wait.Round(time.Second))
		}
		var old string
		if err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
			_, old, err = tx.PasswordHash(r.Context(), name)
			return notFound(err, "principal", name)
		}); err != nil {
			return err
		}
		if old != "" && !checkPassword(req.CurrentPassword, old) {
			wrongCurrent = true
		}
	}
	if wrongCurrent {
		s.signIns.fail(r.Context(), s.now(), limitKeys...)
		err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
			return tx.Audit(r.Context(), p.Name, "principal.password", name, "denied", map[string]string{"reason": "wrong current password"})
		})
		if err != nil {
			return err
		}
		return lifeboat.Errorf(lifeboat.EForbidden, "password of %s: the current password is wrong or missing (currentPassword); nothing changed", name)
	}
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		kind, _, err := tx.PasswordHash(r.Context(), name)
		if err != nil {
			return notFound(err, "principal", name)
		}
		if kind != lifeboat.KindUser {
			return lifeboat.Errorf(lifeboat.EInvalid, "principal %s is a %s: only users have passwords", name, kind)
		}
		if err := tx.SetPasswordHash(r.Context(), name, hash); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "principal.password", name, "ok", nil)
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	group := r.PathValue("group")
	var out []catalog.Member
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		g, err := tx.GetPrincipal(r.Context(), group)
		if err != nil || g.Kind != lifeboat.KindGroup {
			return lifeboat.Errorf(lifeboat.ENotFound, "group %s not found", group)
		}
		out, err = tx.Members(r.Context(), group)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(m catalog.Member) string { return m.Name }))
}

func (s *Server) putMember(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	group, member := r.PathValue("group"), r.PathValue("member")
	if approves, approver, err := s.isApprovers(r.Context(), group); err != nil {
		return err
	} else if approves != "" {
		if err := s.needApproval(r, p, approver, "approvers.change", group, "puts "+member+" in group "+group+", the approvers group of "+approves); err != nil {
			return err
		}
	} else if owns, err := s.ownerGrants(r.Context(), group); err != nil {
		return err
	} else if owns != "" {
		if err := s.needApproval(r, p, DefaultApprovers, "owner.grant", group, "makes "+member+" an owner: group "+group+" passes on "+owns); err != nil {
			return err
		}
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		g, err := tx.GetPrincipal(r.Context(), group)
		if err != nil || g.Kind != lifeboat.KindGroup {
			return lifeboat.Errorf(lifeboat.ENotFound, "group %s not found", group)
		}
		m, err := tx.GetPrincipal(r.Context(), member)
		if err != nil {
			return notFound(err, "principal", member)
		}
		if member == group {
			return lifeboat.Errorf(lifeboat.EInvalid, "group %s cannot contain itself", group)
		}
		if slices.Contains(m.Groups, group) {
			return lifeboat.Errorf(lifeboat.EExists, "%s is already in group %s", member, group)
		}
		if m.Kind == lifeboat.KindGroup {
			if sub, _ := tx.GroupsOf(r.Context(), group); slices.Contains(sub, member) {
				return lifeboat.Errorf(lifeboat.EInvalid, "group %s is inside group %s: putting it in would make a cycle", group, member)
			}
		}
		if err := tx.AddMember(r.Context(), group, member); err != nil {
			if err == catalog.ErrExists {
				return lifeboat.Errorf(lifeboat.EExists, "%s is already in group %s", member, group)
			}
			return err
		}
		return tx.Audit(r.Context(), p.Name, "group.member.add", group, "ok", map[string]string{"member": member})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteMember(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	group, member := r.PathValue("group"), r.PathValue("member")
	if approves, approver, err := s.isApprovers(r.Context(), group); err != nil {
		return err
	} else if approves != "" {
		if err := s.needApproval(r, p, approver, "approvers.change", group, "takes "+member+" out of group "+group+", the approvers group of "+approves); err != nil {
			return err
		}
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		if err := tx.RemoveMember(r.Context(), group, member); err != nil {
			if err == catalog.ErrNotFound {
				return lifeboat.Errorf(lifeboat.ENotFound, "%s is not in group %s", member, group)
			}
			return err
		}
		return tx.Audit(r.Context(), p.Name, "group.member.remove", group, "ok", map[string]string{"member": member})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- assignments ----

func (s *Server) listAssignments(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var out []lifeboat.Assignment
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.ListAssignments(r.Context(), r.URL.Query().Get("principal"))
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(a lifeboat.Assignment) string { return a.ID }))
}

// groupRequired says why an assignment to a user is refused under
// require_group_assignments ("" if it is not).
func (s *Server) groupRequired(ctx context.Context, tx *catalog.Tx, scope string) (string, error) {
	switch s.cfg.RequireGroupAssignments {
	case "off":
		return "", nil
	case "all":
		return "require_group_assignments is all: assign roles to groups", nil
	}
	apps, err := tx.Apps(ctx, catalog.Page{Limit: 1 << 30}, false)
	if err != nil {
		return "", err
	}
	for _, a := range apps {
		if a.Environment == "production" && access.Covers(scope, access.Target{App: a.Name, Vault: a.Vault, Labels: a.Labels}) {
			return fmt.Sprintf("scope %s covers production app %s, and require_group_assignments asks for groups there: assign the role to a group the user is in", scope, a.Name), nil
		}
	}
	if scope == access.ScopeAll {
		return "scope * covers every production app to come, and require_group_assignments asks for groups there: assign the role to a group", nil
	}
	return "", nil
}

func (s *Server) postAssignment(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req AssignmentRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if !access.Assignable(req.Role) {
		names := []string{}
		for _, ro := range access.Roles {
			if access.Assignable(ro.Name) {
				names = append(names, ro.Name)
			}
		}
		return lifeboat.Errorf(lifeboat.EInvalid, "assignment: role %q: want one of %s", req.Role, strings.Join(names, ", "))
	}
	if err := access.ParseScope(req.Scope); err != nil {
		return fmt.Errorf("assignment: %w", err)
	}
	a := lifeboat.Assignment{Principal: req.Principal, Role: req.Role, Scope: req.Scope, CreatedBy: p.Name}
	if approves, approver, err := s.isApprovers(r.Context(), req.Principal); err != nil {
		return err
	} else if approves != "" {
		if err := s.needApproval(r, p, approver, "approvers.change", req.Principal, fmt.Sprintf("gives group %s, the approvers group of %s, %s on %s", req.Principal, approves, req.Role, req.Scope)); err != nil {
			return err
		}
	} else if req.Role == access.Owner {
		if err := s.needApproval(r, p, DefaultApprovers, "owner.grant", req.Principal, fmt.Sprintf("makes %s an owner on %s", req.Principal, req.Scope)); err != nil {
			return err
		}
	}
	err := s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		who, err := tx.GetPrincipal(r.Context(), req.Principal)
		if err != nil {
			return notFound(err, "principal", req.Principal)
		}
		if who.Kind == lifeboat.KindUser {
			why, err := s.groupRequired(r.Context(), tx, req.Scope)
			if err != nil {
				return err
			}
			if why != "" {
				return lifeboat.Errorf(lifeboat.EInvalid, "assignment of %s to user %s refused: %s", req.Role, req.Principal, why)
			}
		}
		if err := tx.PutAssignment(r.Context(), &a); err != nil {
			if err == catalog.ErrExists {
				return lifeboat.Errorf(lifeboat.EExists, "%s already holds %s on %s", req.Principal, req.Role, req.Scope)
			}
			return err
		}
		return tx.Audit(r.Context(), p.Name, "assignment.create", req.Principal, "ok", map[string]string{"role": req.Role, "scope": req.Scope, "id": a.ID})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, a)
}

func (s *Server) deleteAssignment(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	id := r.PathValue("assignment")
	var cur *lifeboat.Assignment
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		if cur, err = tx.Assignment(r.Context(), id); err == catalog.ErrNotFound {
			cur, err = nil, nil // the delete says so
		}
		return err
	})
	if err != nil {
		return err
	}
	if cur != nil {
		approves, approver, err := s.isApprovers(r.Context(), cur.Principal)
		if err != nil {
			return err
		}
		switch {
		case approves != "":
			if err := s.needApproval(r, p, approver, "assignment.delete-protected", cur.Principal, fmt.Sprintf("removes %s's %s role on %s (the approvers group of %s)", cur.Principal, cur.Role, cur.Scope, approves)); err != nil {
				return err
			}
		case cur.Role == access.Owner && cur.Scope == access.ScopeAll:
			if err := s.needApproval(r, p, DefaultApprovers, "assignment.delete-protected", cur.Principal, fmt.Sprintf("removes %s's %s role on %s (an owner)", cur.Principal, cur.Role, cur.Scope)); err != nil {
				return err
			}
		}
	}
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		a, err := tx.DeleteAssignment(r.Context(), id)
		if err != nil {
			return notFound(err, "assignment", id)
		}
		return tx.Audit(r.Context(), p.Name, "assignment.delete", a.Principal, "ok", map[string]string{"role": a.Role, "scope": a.Scope, "id": a.ID})
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listRoles(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	return writeJSON(w, http.StatusOK, listOf(access.Roles, catalog.Page{Limit: 1 << 30}, func(ro access.Role) string { return ro.Name }))
}

// parseTarget reads "app:NAME", "vault:NAME" or "server" into a target.
func (s *Server) parseTarget(ctx context.Context, t string) (access.Target, error) {
	switch {
	case t == "server" || t == "":
		return access.Target{}, nil
	case strings.HasPrefix(t, "app:"):
		return s.appTarget(ctx, t[len("app:"):])
	case strings.HasPrefix(t, "vault:"):
		return access.Target{Vault: t[len("vault:"):]}, nil
	}
	return access.Target{}, lifeboat.Errorf(lifeboat.EInvalid, "target %q: want app:NAME, vault:NAME or server", t)
}

// checkAccess: GET /api/v1/access/check?principal=P&action=A&target=T
// explains a decision. About oneself: any signed-in principal; about
// another: read on the server.
func (s *Server) checkAccess(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	q := r.URL.Query()
	name, action := q.Get("principal"), q.Get("action")
	if name == "" {
		name = p.Name
	}
	if name != p.Name {
		if err := access.Check(p, access.Read, access.Target{}); err != nil {
			return err
		}
	}
	if !slices.Contains(access.Permissions, action) {
		return lifeboat.Errorf(lifeboat.EInvalid, "action %q: want one of %s", action, strings.Join(access.Permissions, ", "))
	}
	t, err := s.parseTarget(r.Context(), q.Get("target"))
	if err != nil {
		return err
	}
	var who *lifeboat.Principal
	err = s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		who, err = tx.GetPrincipal(r.Context(), name)
		return notFound(err, "principal", name)
	})
	if err != nil {
		return err
	}
	out := AccessCheck{Principal: name, Action: action, Target: t.String(), Decision: access.Decide(who, action, t), Groups: who.Groups, Grants: who.Grants}
	if out.Groups == nil {
		out.Groups = []string{}
	}
	if out.Grants == nil {
		out.Grants = []lifeboat.Grant{}
	}
	return writeJSON(w, http.StatusOK, out)
}

// accessReport: user assignments that require_group_assignments flags, and
// orphaned apps.
func (s *Server) accessReport(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	var out AccessReport
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		as, err := tx.ListAssignments(r.Context(), "")
		if err != nil {
			return err
		}
		out.UserAssignments = []lifeboat.Assignment{}
		for _, a := range as {
			who, err := tx.GetPrincipal(r.Context(), a.Principal)
			if err != nil || who.Kind != lifeboat.KindUser {
				continue
			}
			if why, err := s.groupRequired(r.Context(), tx, a.Scope); err != nil {
				return err
			} else if why != "" {
				out.UserAssignments = append(out.UserAssignments, a)
			}
		}
		out.OrphanedApps, err = s.orphans(r.Context(), tx)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

// orphans lists the apps with no owner group that exists and has members.
func (s *Server) orphans(ctx context.Context, tx *catalog.Tx) ([]OrphanedApp, error) {
	apps, err := tx.Apps(ctx, catalog.Page{Limit: 1 << 30}, false)
	if err != nil {
		return nil, err
	}
	out := []OrphanedApp{}
	for _, a := range apps {
		if len(a.Owners) == 0 {
			out = append(out, OrphanedApp{App: a.Name, Reason: "no owner group"})
			continue
		}
		var why []string
		owned := false
		for _, g := range a.Owners {
			p, err := tx.GetPrincipal(ctx, g)
			switch {
			case err == catalog.ErrNotFound || (err == nil && p.Kind != lifeboat.KindGroup):
				why = append(why, "group "+g+" does not exist")
			case err != nil:
				return nil, err
			default:
				ms, err := tx.Members(ctx, g)
				if err != nil {
					return nil, err
				}
				if len(ms) == 0 {
					why = append(why, "group "+g+" is empty")
				} else {
					owned = true
				}
			}
		}
		if !owned {
			out = append(out, OrphanedApp{App: a.Name, Reason: strings.Join(why, "; ")})
		}
	}
	return out, nil
}

// ---- tokens ----

// tokenOwner is whose tokens a request is about: the caller, or another
// principal with tokens.manage (on that app, for an app's identity).
func (s *Server) tokenOwner(ctx context.Context, p *lifeboat.Principal, name string) (string, error) {
	if name == "" || name == p.Name {
		return p.Name, nil
	}
	t := access.Target{}
	if app, ok := strings.CutPrefix(name, access.ServicePrefix); ok {
		var err error
		if t, err = s.appTarget(ctx, app); err != nil {
			return "", err
		}
	}
	if err := access.Check(p, access.ManageTokens, t); err != nil {
		return "", err
	}
	return name, nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	name := r.URL.Query().Get("principal")
	all := name == "*"
	if all {
		if err := access.Check(p, access.ManageTokens, access.Target{}); err != nil {
			return err
		}
		name = ""
	} else {
		var err error
		if name, err = s.tokenOwner(r.Context(), p, name); err != nil {
			return err
		}
	}
	var out []catalog.TokenInfo
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		var err error
		out, err = tx.ListTokens(r.Context(), name)
		return err
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, listOf(out, catalog.Page{Limit: 1 << 30}, func(t catalog.TokenInfo) string { return t.ID }))
}

func (s *Server) postToken(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	var req TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.TTL < 0 {
		return lifeboat.Errorf(lifeboat.EInvalid, "token: ttl %v is negative", req.TTL)
	}
	name, err := s.tokenOwner(r.Context(), p, req.Principal)
	if err != nil {
		return err
	}
	var out TokenCreated
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		who, err := tx.GetPrincipal(r.Context(), name)
		if err != nil {
			return notFound(err, "principal", name)
		}
		if who.Kind == lifeboat.KindGroup {
			return lifeboat.Errorf(lifeboat.EInvalid, "principal %s is a group: tokens belong to users and service identities", name)
		}
		tok, info, err := tx.CreateToken(r.Context(), name, req.TTL.D())
		if err != nil {
			return err
		}
		out = TokenCreated{Token: tok, Info: info}
		return tx.Audit(r.Context(), p.Name, "token.create", name, "ok", map[string]string{"token": info.ID})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, out)
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error {
	id := r.PathValue("token")
	owner := ""
	err := s.db.View(r.Context(), func(tx *catalog.Tx) error {
		ti, err := tx.Token(r.Context(), id)
		if err == catalog.ErrNotFound {
			return lifeboat.Errorf(lifeboat.ENotFound, "token %s not found", id)
		}
		if err == nil {
			owner = ti.Principal
		}
		return err
	})
	if err != nil {
		return err
	}
	if _, err := s.tokenOwner(r.Context(), p, owner); err != nil {
		return err
	}
	var info *catalog.TokenInfo
	err = s.db.Update(r.Context(), func(tx *catalog.Tx) error {
		var err error
		if info, err = tx.RevokeToken(r.Context(), id); err != nil {
			return err
		}
		return tx.Audit(r.Context(), p.Name, "token.revoke", owner, "ok", map[string]string{"token": id})
	})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, info)
}

// ensureAppIdentity makes the service identity of app name if it has none.
func ensureAppIdentity(ctx context.Context, tx *catalog.Tx, name string) error {
	id := access.ServicePrefix + name
	if _, err := tx.GetPrincipal(ctx, id); err == nil {
		return nil
	} else if err != catalog.ErrNotFound {
		return err
	}
	return tx.PutPrincipal(ctx, &lifeboat.Principal{Name: id, Kind: lifeboat.KindService})
}

// isOwner: an owner of everything (the first administrator, or an owner
// role on "*", held directly).
// ownerGrants describes the owner roles that membership of group passes
// on (its own and its ancestors'), "" if none: putting someone in such a
// group makes an owner, which an owner alone may not do.
func (s *Server) ownerGrants(ctx context.Context, group string) (string, error) {
	var out []string
	err := s.db.View(ctx, func(tx *catalog.Tx) error {
		gs, err := tx.GroupsOf(ctx, group)
		if err != nil {
			return err
		}
		for _, g := range append([]string{group}, gs...) {
			as, err := tx.ListAssignments(ctx, g)
			if err != nil {
				return err
			}
			for _, a := range as {
				if a.Role == access.Owner {
					out = append(out, fmt.Sprintf("%s's owner role on %s", g, a.Scope))
				}
			}
		}
		return nil
	})
	return strings.Join(out, ", "), err
}

func isOwner(p *lifeboat.Principal) bool {
	if p.Admin {
		return true
	}
	for _, g := range p.Grants {
		if g.Role == access.Owner && g.Scope == access.ScopeAll && g.Via == "direct" {
			return true
		}
	}
	return false
}
