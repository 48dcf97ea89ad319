package cli

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/access"
	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

// ---- users and groups ----

// newPrincipalCmd makes "user" or "group": add, list, delete (and passwd
// for users, member add/remove/list for groups).
func newPrincipalCmd(env Env, kind string) *cobra.Command {
	cmd := &cobra.Command{Use: kind, Short: map[string]string{"user": "Add, list and remove users; set their passwords", "group": "Add, list and remove groups and their members"}[kind]}
	var af, lf serverFlags
	add := &cobra.Command{
		Use: "add NAME", Short: "Create a " + kind, Args: cobra.ExactArgs(1),
		Long: "Create a " + kind + " (needs access.manage)." + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(env)
			if err != nil {
				return err
			}
			var p lifeboat.Principal
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/principals/%s", args[0]), server.PrincipalSpec{Kind: kind}, &p); err != nil {
				return err
			}
			if af.out.json() {
				return writeJSON(env.Stdout, p)
			}
			fmt.Fprintf(env.Stdout, "%s %s created.\n", strings.ToUpper(kind[:1])+kind[1:], p.Name)
			return nil
		},
	}
	af.register(add)
	list := &cobra.Command{
		Use: "list", Short: "List " + kind + "s", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			ps, err := listAll[lifeboat.Principal](cmd.Context(), c, "/api/v1/principals?kind="+kind)
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, ps)
			}
			var rows [][]string
			for _, p := range ps {
				pw := "-"
				if p.HasPassword {
					pw = "yes"
				}
				rows = append(rows, []string{p.Name, p.CreatedAt.Format(time.RFC3339), pw})
			}
			table(env.Stdout, "NAME\tCREATED\tPASSWORD", rows)
			return nil
		},
	}
	lf.register(list)
	del := deleteCmd(env, "delete NAME", "Remove a "+kind+" with its tokens, memberships and role assignments", "/api/v1/principals/%s", "%s removed.\n")
	cmd.AddCommand(add, list, del)
	if kind == lifeboat.KindUser {
		cmd.AddCommand(newPasswdCmd(env))
	} else {
		cmd.AddCommand(newMemberCmd(env))
	}
	return cmd
}

func newPasswdCmd(env Env) *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use: "passwd NAME", Short: "Set a user's password (typed twice on a terminal, else one line of stdin)", Args: cobra.ExactArgs(1),
		Long: `Set a user's password: one's own, or anyone's with access.manage. On a
terminal it is typed twice without echo; otherwise it is the first line of
stdin. Never a flag. One's own password needs the current one first (a
prompt on a terminal; otherwise the first line of stdin, the new one on the
second; an empty line if none is set yet).` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var who lifeboat.Principal
			if err := c.Do(cmd.Context(), "GET", "/api/v1/whoami", nil, &who); err != nil {
				return err
			}
			req := server.PasswordRequest{}
			if who.Name == args[0] && env.ReadPassword != nil {
				// One's own: the current one first (none yet: leave it empty).
				if req.CurrentPassword, err = readPassphrase(env, "Current password of "+args[0]+" (empty if none): "); err != nil {
					return err
				}
			}
			pw, err := readPassphrase(env, "New password for "+args[0]+": ")
			if err != nil {
				return err
			}
			if who.Name == args[0] && env.ReadPassword == nil {
				// Not a terminal: line 1 is the current password, line 2 the new one.
				req.CurrentPassword = pw
				if pw, err = readPassphrase(env, ""); err != nil {
					return err
				}
			}
			req.Password = pw
			if env.ReadPassword != nil {
				again, err := readPassphrase(env, "Again: ")
				if err != nil {
					return err
				}
				if again != pw {
					return usagef("the two passwords differ; nothing changed")
				}
			}
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/principals/%s/password", args[0]), req, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Password of %s set.\n", args[0])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newMemberCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "member", Short: "Add, remove and list a group's members (users, service identities, groups)"}
	var af, rf, lf serverFlags
	add := &cobra.Command{
		Use: "add GROUP MEMBER", Short: "Put a member in a group", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(env)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/groups/%s/members/%s", args[0], args[1]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s is in group %s.\n", args[1], args[0])
			return nil
		},
	}
	af.register(add)
	rm := &cobra.Command{
		Use: "remove GROUP MEMBER", Short: "Take a member out of a group", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client(env)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/groups/%s/members/%s", args[0], args[1]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "%s is no longer in group %s.\n", args[1], args[0])
			return nil
		},
	}
	rf.register(rm)
	list := &cobra.Command{
		Use: "list GROUP", Short: "A group's direct members", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			ms, err := listAll[catalog.Member](cmd.Context(), c, api.Path("/api/v1/groups/%s/members", args[0]))
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, ms)
			}
			var rows [][]string
			for _, m := range ms {
				rows = append(rows, []string{m.Name, m.Kind})
			}
			table(env.Stdout, "MEMBER\tKIND", rows)
			return nil
		},
	}
	lf.register(list)
	cmd.AddCommand(add, rm, list)
	return cmd
}

// ---- access ----

func newAccessCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Role assignments: grant, revoke, list, check, report; the built-in roles"}
	var gf, lf, cf, pf, rof serverFlags
	grant := &cobra.Command{
		Use: "grant PRINCIPAL ROLE SCOPE", Short: "Give a principal a role on a scope (*, vault:V, app:A, apps:KEY=VALUE)", Args: cobra.ExactArgs(3),
		Long: `Give a principal (a group, preferably: see require_group_assignments in
docs/access.md) a built-in role on a scope: * (everything), vault:NAME,
app:NAME or apps:KEY=VALUE (apps with that label).` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := gf.client(env)
			if err != nil {
				return err
			}
			var a lifeboat.Assignment
			if err := c.Do(cmd.Context(), "POST", "/api/v1/assignments", server.AssignmentRequest{Principal: args[0], Role: args[1], Scope: args[2]}, &a); err != nil {
				return err
			}
			if gf.out.json() {
				return writeJSON(env.Stdout, a)
			}
			fmt.Fprintf(env.Stdout, "%s holds %s on %s (assignment %s).\n", a.Principal, a.Role, a.Scope, a.ID)
			return nil
		},
	}
	gf.register(grant)
	revoke := deleteCmd(env, "revoke ASSIGNMENT-ID", "Remove a role assignment (ids: lifeboat access list)", "/api/v1/assignments/%s", "Assignment %s removed.\n")
	var who string
	list := &cobra.Command{
		Use: "list", Short: "List role assignments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			as, err := listAll[lifeboat.Assignment](cmd.Context(), c, "/api/v1/assignments?principal="+url.QueryEscape(who))
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, as)
			}
			var rows [][]string
			for _, a := range as {
				rows = append(rows, []string{a.ID, a.Principal, a.Role, a.Scope, a.CreatedBy, a.CreatedAt.Format(time.RFC3339)})
			}
			table(env.Stdout, "ID\tPRINCIPAL\tROLE\tSCOPE\tBY\tAT", rows)
			return nil
		},
	}
	list.Flags().StringVar(&who, "principal", "", "only this principal's assignments")
	lf.register(list)
	var as string
	check := &cobra.Command{
		Use: "check [--as PRINCIPAL] ACTION TARGET", Short: "Explain an access decision (TARGET: app:NAME, vault:NAME or server)", Args: cobra.ExactArgs(2),
		Long: `Explain whether a principal (yourself by default) may do ACTION (a
permission: ` + strings.Join(access.Permissions, ", ") + `) on TARGET
(app:NAME, vault:NAME or server), which grant decides it, and the
principal's groups and grants. Exit code 9 when the answer is no.` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(env)
			if err != nil {
				return err
			}
			q := url.Values{"principal": {as}, "action": {args[0]}, "target": {args[1]}}
			var res server.AccessCheck
			if err := c.Do(cmd.Context(), "GET", "/api/v1/access/check?"+q.Encode(), nil, &res); err != nil {
				return err
			}
			if cf.out.json() {
				if err := writeJSON(env.Stdout, res); err != nil {
					return err
				}
			} else {
				verdict := "DENIED"
				if res.Decision.Allow {
					verdict = "ALLOWED"
				}
				fmt.Fprintf(env.Stdout, "%s: %s\n", verdict, res.Decision.Reason)
				if res.Decision.Via != "" {
					fmt.Fprintf(env.Stdout, "by: %s\n", res.Decision.Via)
				}
				fmt.Fprintf(env.Stdout, "groups of %s: %s\n", res.Principal, orNone(strings.Join(res.Groups, ", ")))
				for _, g := range res.Grants {
					fmt.Fprintf(env.Stdout, "  %s on %s (%s)\n", g.Role, g.Scope, g.Via)
				}
			}
			if !res.Decision.Allow {
				return &lifeboat.Error{Code: lifeboat.EForbidden, Message: "denied: " + res.Decision.Reason}
			}
			return nil
		},
	}
	check.Flags().StringVar(&as, "as", "", "the principal to ask about (default: yourself)")
	cf.register(check)
	report := &cobra.Command{
		Use: "report", Short: "Assignments to individual users that require_group_assignments flags, and orphaned apps", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := pf.client(env)
			if err != nil {
				return err
			}
			var rep server.AccessReport
			if err := c.Do(cmd.Context(), "GET", "/api/v1/access/report", nil, &rep); err != nil {
				return err
			}
			if pf.out.json() {
				return writeJSON(env.Stdout, rep)
			}
			fmt.Fprintf(env.Stdout, "Assignments to individual users where groups are required: %d\n", len(rep.UserAssignments))
			for _, a := range rep.UserAssignments {
				fmt.Fprintf(env.Stdout, "  %s: %s holds %s on %s\n", a.ID, a.Principal, a.Role, a.Scope)
			}
			fmt.Fprintf(env.Stdout, "Orphaned apps: %d\n", len(rep.OrphanedApps))
			for _, o := range rep.OrphanedApps {
				fmt.Fprintf(env.Stdout, "  %s: %s\n", o.App, o.Reason)
			}
			return nil
		},
	}
	pf.register(report)
	roles := &cobra.Command{
		Use: "roles", Short: "The built-in roles and their permissions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rof.client(env)
			if err != nil {
				return err
			}
			rs, err := listAll[access.Role](cmd.Context(), c, "/api/v1/roles")
			if err != nil {
				return err
			}
			if rof.out.json() {
				return writeJSON(env.Stdout, rs)
			}
			var rows [][]string
			for _, r := range rs {
				rows = append(rows, []string{r.Name, strings.Join(r.Permissions, ","), r.Description})
			}
			table(env.Stdout, "ROLE\tPERMISSIONS\tFOR", rows)
			return nil
		},
	}
	rof.register(roles)
	cmd.AddCommand(grant, revoke, list, check, report, roles)
	return cmd
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// ---- tokens ----

func newTokenCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke API tokens"}
	var cf, lf, rf serverFlags
	var forP string
	var ttl string
	create := &cobra.Command{
		Use: "create [--for PRINCIPAL] [--ttl DURATION]", Short: "Create an API token (shown once)", Args: cobra.NoArgs,
		Long: `Create an API token for yourself, or with tokens.manage for another
principal — typically an app's own identity, app:NAME, for a deployment
pipeline's "back up before deploy". The token is printed once, on stdout;
only its hash is kept.` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(env)
			if err != nil {
				return err
			}
			req := server.TokenRequest{Principal: forP}
			if ttl != "" {
				d, err := lifeboat.ParseDuration(ttl)
				if err != nil {
					return usagef("--ttl: %v", err)
				}
				req.TTL = d
			}
			var tc server.TokenCreated
			if err := c.Do(cmd.Context(), "POST", "/api/v1/tokens", req, &tc); err != nil {
				return err
			}
			if cf.out.json() {
				return writeJSON(env.Stdout, tc)
			}
			exp := "never expires"
			if tc.Info.ExpiresAt != nil {
				exp = "expires " + tc.Info.ExpiresAt.Format(time.RFC3339)
			}
			fmt.Fprintf(env.Stderr, "Token %s for %s (%s); it is shown only this once:\n", tc.Info.ID, tc.Info.Principal, exp)
			fmt.Fprintln(env.Stdout, tc.Token)
			return nil
		},
	}
	create.Flags().StringVar(&forP, "for", "", "the principal the token acts as (default: yourself)")
	create.Flags().StringVar(&ttl, "ttl", "", `lifetime ("90d", "12h"; default: no expiry)`)
	cf.register(create)
	var all bool
	var listFor string
	list := &cobra.Command{
		Use: "list [--for PRINCIPAL | --all]", Short: "List tokens (never the tokens themselves)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			who := listFor
			if all {
				who = "*"
			}
			ts, err := listAll[catalog.TokenInfo](cmd.Context(), c, "/api/v1/tokens?principal="+url.QueryEscape(who))
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, ts)
			}
			at := func(t *time.Time) string {
				if t == nil {
					return "-"
				}
				return t.Format(time.RFC3339)
			}
			var rows [][]string
			for _, t := range ts {
				rows = append(rows, []string{t.ID, t.Principal, t.CreatedAt.Format(time.RFC3339), at(t.ExpiresAt), at(t.LastUsedAt), at(t.RevokedAt)})
			}
			table(env.Stdout, "ID\tPRINCIPAL\tCREATED\tEXPIRES\tLAST USED\tREVOKED", rows)
			return nil
		},
	}
	list.Flags().StringVar(&listFor, "for", "", "another principal's tokens (tokens.manage)")
	list.Flags().BoolVar(&all, "all", false, "everyone's tokens (tokens.manage)")
	lf.register(list)
	revoke := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a token (yours; others' with tokens.manage)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client(env)
			if err != nil {
				return err
			}
			var info catalog.TokenInfo
			if err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/tokens/%s", args[0]), nil, &info); err != nil {
				return err
			}
			if rf.out.json() {
				return writeJSON(env.Stdout, info)
			}
			fmt.Fprintf(env.Stdout, "Token %s of %s revoked.\n", info.ID, info.Principal)
			return nil
		},
	}
	rf.register(revoke)
	cmd.AddCommand(create, list, revoke)
	return cmd
}

// ---- workload-identity federation ----

func newTrustCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "trust", Short: "Trust rules: external OIDC tokens (CI jobs) exchanged for an app identity's short-lived token"}
	var af, lf serverFlags
	var rule server.TrustRule
	var claims []string
	var ttl string
	add := &cobra.Command{
		Use:   "add NAME --issuer URL --audience AUD --subject PATTERN --principal app:NAME",
		Short: "Create or change a trust rule",
		Long: `Create or change a trust rule: an OIDC ID token from ISSUER (https; its
keys are fetched from its discovery document and cached) whose audience
includes AUD, whose subject matches PATTERN ('*' matches any run of
characters, e.g. repo:acme/shop:ref:refs/heads/main) and whose claims match
every --claim KEY=PATTERN is exchanged, at POST /api/v1/token/exchange, for
a token of the service identity app:NAME lasting --ttl (default 15m, at most
1h, never past the external token's expiry). Needs access.manage.` + serverExitHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(env)
			if err != nil {
				return err
			}
			rule.Name = args[0]
			for _, kv := range claims {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--claim %q: want KEY=PATTERN", kv)
				}
				if rule.Claims == nil {
					rule.Claims = map[string]string{}
				}
				rule.Claims[k] = v
			}
			if ttl != "" {
				d, err := lifeboat.ParseDuration(ttl)
				if err != nil {
					return usagef("--ttl: %v", err)
				}
				rule.TTL = d
			}
			var out server.TrustRule
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/trust-rules/%s", rule.Name), rule, &out); err != nil {
				return err
			}
			if af.out.json() {
				return writeJSON(env.Stdout, out)
			}
			fmt.Fprintf(env.Stdout, "Trust rule %s: tokens of %s for %s with subject %s act as %s.\n", out.Name, out.Issuer, out.Audience, out.Subject, out.Principal)
			return nil
		},
	}
	add.Flags().StringVar(&rule.Issuer, "issuer", "", "the OIDC issuer URL (exactly as in the tokens' iss)")
	add.Flags().StringVar(&rule.Audience, "audience", "", "the audience the tokens must carry")
	add.Flags().StringVar(&rule.Subject, "subject", "", "pattern for the tokens' sub ('*' wildcards; '*' alone is refused)")
	add.Flags().StringVar(&rule.Principal, "principal", "", "the service identity granted (app:NAME)")
	add.Flags().StringArrayVar(&claims, "claim", nil, "KEY=PATTERN another claim must match (repeatable)")
	add.Flags().StringVar(&ttl, "ttl", "", "lifetime of the tokens issued (default 15m, at most 1h)")
	af.register(add)
	list := &cobra.Command{
		Use: "list", Short: "List trust rules", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			rs, err := listAll[server.TrustRule](cmd.Context(), c, "/api/v1/trust-rules")
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, rs)
			}
			var rows [][]string
			for _, r := range rs {
				rows = append(rows, []string{r.Name, r.Issuer, r.Audience, r.Subject, r.Principal})
			}
			table(env.Stdout, "RULE\tISSUER\tAUDIENCE\tSUBJECT\tPRINCIPAL", rows)
			return nil
		},
	}
	lf.register(list)
	del := deleteCmd(env, "delete NAME", "Remove a trust rule", "/api/v1/trust-rules/%s", "Trust rule %s removed.\n")
	cmd.AddCommand(add, list, del)
	return cmd
}

// ---- two-person approval ----

func newApprovalCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "approval", Short: "Two-person approval: list, show, approve and deny waiting requests"}
	var lf, sf, af, df serverFlags
	var state string
	list := &cobra.Command{
		Use: "list [--state pending]", Short: "List approval requests, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			as, err := listAll[server.Approval](cmd.Context(), c, "/api/v1/approvals?state="+url.QueryEscape(state))
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, as)
			}
			var rows [][]string
			for _, a := range as {
				rows = append(rows, []string{a.ID, a.State, a.Requester, a.Action, a.Reason, a.ExpiresAt.Format(time.RFC3339), a.DecidedBy})
			}
			table(env.Stdout, "ID\tSTATE\tREQUESTER\tACTION\tWHAT\tEXPIRES\tDECIDED BY", rows)
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, executed, failed, denied or expired")
	lf.register(list)
	show := &cobra.Command{
		Use: "show ID", Short: "Show an approval request: who asked what, why, and the exact request", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(env)
			if err != nil {
				return err
			}
			var a server.Approval
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/approvals/%s", args[0]), nil, &a); err != nil {
				return err
			}
			if sf.out.json() {
				return writeJSON(env.Stdout, a)
			}
			return yamlOut(env.Stdout, a)
		},
	}
	sf.register(show)
	decide := func(f *serverFlags, verb string) *cobra.Command {
		c := &cobra.Command{
			Use: verb + " ID", Short: strings.ToUpper(verb[:1]) + verb[1:] + " a waiting request (not your own; you must have been in the approvers group for 24 hours before it was made)", Args: cobra.ExactArgs(1),
			Long: strings.ToUpper(verb[:1]) + verb[1:] + ` a waiting request. Only a user other than the requester who has
been in the approvers group for 24 hours before the request may; an
approved request runs at once, as its requester, exactly as it was sent.` + serverExitHelp,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := f.client(env)
				if err != nil {
					return err
				}
				var a server.Approval
				if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/approvals/%s/"+verb, args[0]), nil, &a); err != nil {
					return err
				}
				if f.out.json() {
					return writeJSON(env.Stdout, a)
				}
				fmt.Fprintf(env.Stdout, "Request %s (%s by %s): %s", a.ID, a.Action, a.Requester, a.State)
				if a.Result != nil {
					fmt.Fprintf(env.Stdout, ", HTTP %d", a.Result.Status)
				}
				fmt.Fprintln(env.Stdout)
				if a.State == server.ApprovalFailed {
					return lifeboat.Errorf(lifeboat.EInternal, "the approved request failed when run: HTTP %d", a.Result.Status)
				}
				return nil
			},
		}
		f.register(c)
		return c
	}
	cmd.AddCommand(list, show, decide(&af, "approve"), decide(&df, "deny"))
	return cmd
}

// ---- legal hold ----

func newHoldCmd(env Env, hold bool) *cobra.Command {
	var f serverFlags
	var app, point, reason string
	verb := map[bool]string{true: "hold", false: "release"}[hold]
	cmd := &cobra.Command{
		Use:   verb + " --app APP [--point ID] --reason TEXT",
		Short: map[bool]string{true: "Put a legal hold on an app or a point: nothing under hold is deleted", false: "Release a legal hold on an app or a point"}[hold],
		Long: `Put (hold) or end (release) a legal hold, on a whole app (none of its
points is deleted by retention while held) or on one point (a marker in the
vault: never purged until released). A reason is required; holds.manage
too.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app is required")
			}
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			path := api.Path("/api/v1/apps/%s/"+verb, app)
			what := "app " + app
			if point != "" {
				path = api.Path("/api/v1/apps/%s/points/%s/"+verb, app, point)
				what = "point " + point + " of app " + app
			}
			var out map[string]any
			if err := c.Do(cmd.Context(), "POST", path, server.HoldRequest{Reason: reason}, &out); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, out)
			}
			if hold {
				fmt.Fprintf(env.Stdout, "Legal hold on %s: %s\n", what, reason)
			} else {
				fmt.Fprintf(env.Stdout, "Legal hold on %s released: %s\n", what, reason)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app")
	cmd.Flags().StringVar(&point, "point", "", "one point of the app (id or prefix) instead of the whole app")
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit trail)")
	f.register(cmd)
	return cmd
}

// ---- vault locks ----

func newLockCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "lock", Short: "Vault locks: a minimum retention no policy or prune goes below"}
	var sf, gf, rf serverFlags
	var vaultName, mode, minRet, cooling string
	set := &cobra.Command{
		Use: "set --vault V --min-retention 30d [--mode governance]", Short: "Lock a vault, or change its lock (weakening waits for approval)", Args: cobra.NoArgs,
		Long: `Lock a vault: no point of it younger than --min-retention is deleted,
whatever the policies say. Governance mode (the only one on local storage,
enforced by Lifeboat): a stronger lock applies at once; a weaker one, or
removing it, waits for two-person approval (exit code 11).

Compliance mode (S3 vaults in a bucket with object lock, checked now) is in
force after --cooling-off (at least 24h), shown before it starts; until then
it can be removed. Once in force nobody, an owner included, can shorten it,
remove it or delete a point early, and the storage itself enforces it: every
object a point inside the minimum retention needs (manifest, packs including
those reused from older points, indexes, data keys) gets an S3 retain-until
date of the point's time + the minimum retention, and audit segments are
retained too. Key slots never are: keep the disaster kit (key export --kit).` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			if vaultName == "" {
				return usagef("--vault is required")
			}
			d, err := lifeboat.ParseDuration(minRet)
			if err != nil {
				return usagef("--min-retention: %v", err)
			}
			req := server.LockRequest{Mode: mode, MinRetention: d}
			if cooling != "" {
				if req.CoolingOff, err = lifeboat.ParseDuration(cooling); err != nil {
					return usagef("--cooling-off: %v", err)
				}
			}
			c, err := sf.client(env)
			if err != nil {
				return err
			}
			var l server.VaultLock
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/vaults/%s/lock", vaultName), req, &l); err != nil {
				return err
			}
			if sf.out.json() {
				return writeJSON(env.Stdout, l)
			}
			fmt.Fprintf(env.Stdout, "Vault %s locked (%s): no point younger than %v is deleted.\n", l.Vault, l.Mode, l.MinRetention)
			if l.Mode == server.LockCompliance {
				fmt.Fprintf(env.Stdout, "In force from %s: until then it can still be removed (with two-person approval); after that nobody can, and the storage keeps every point for %v.\n",
					l.EffectiveAt.Local().Format(time.RFC1123), l.MinRetention)
			}
			return nil
		},
	}
	set.Flags().StringVar(&vaultName, "vault", "", "the vault")
	set.Flags().StringVar(&mode, "mode", "governance", "governance, or compliance (S3 bucket with object lock; irreversible once in force)")
	set.Flags().StringVar(&minRet, "min-retention", "", "no point younger than this is deleted (e.g. 30d)")
	set.Flags().StringVar(&cooling, "cooling-off", "", "compliance mode: how long before the lock is in force")
	sf.register(set)
	show := &cobra.Command{
		Use: "show --vault V", Short: "Show a vault's lock", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := gf.client(env)
			if err != nil {
				return err
			}
			var l server.VaultLock
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/vaults/%s/lock", vaultName), nil, &l); err != nil {
				return err
			}
			if gf.out.json() {
				return writeJSON(env.Stdout, l)
			}
			return yamlOut(env.Stdout, l)
		},
	}
	show.Flags().StringVar(&vaultName, "vault", "", "the vault")
	gf.register(show)
	remove := &cobra.Command{
		Use: "remove --vault V", Short: "Remove a vault's lock (waits for two-person approval)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := rf.client(env)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/vaults/%s/lock", vaultName), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "Lock of vault %s removed.\n", vaultName)
			return nil
		},
	}
	remove.Flags().StringVar(&vaultName, "vault", "", "the vault")
	rf.register(remove)
	cmd.AddCommand(set, show, remove)
	return cmd
}

// deleteCmd is a command that DELETEs the resource at path (a format with
// one %s, the command's one argument) and prints done (the same).
func deleteCmd(env Env, use, short, path, done string) *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			if err := c.Do(cmd.Context(), "DELETE", api.Path(path, args[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, done, args[0])
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
