package access

import (
	"slices"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

func TestDecideScopes(t *testing.T) {
	shop := Target{App: "shop", Vault: "eu", Labels: map[string]string{"team": "web"}}
	other := Target{App: "blog", Vault: "us", Labels: map[string]string{"team": "docs"}}
	cases := []struct {
		grant  lifeboat.Grant
		action string
		target Target
		allow  bool
	}{
		{lifeboat.Grant{Role: Reader, Scope: "*"}, Read, shop, true},
		{lifeboat.Grant{Role: Reader, Scope: "*"}, Read, Target{}, true},
		{lifeboat.Grant{Role: Reader, Scope: "*"}, RunBackup, shop, false},
		{lifeboat.Grant{Role: Reader, Scope: "app:shop"}, Read, shop, true},
		{lifeboat.Grant{Role: Reader, Scope: "app:shop"}, Read, other, false},
		{lifeboat.Grant{Role: Reader, Scope: "app:shop"}, Read, Target{}, false},                // the server is not the app
		{lifeboat.Grant{Role: Reader, Scope: "app:shop"}, Read, Target{Vault: "eu"}, false},     // nor its vault
		{lifeboat.Grant{Role: BackupOperator, Scope: "vault:eu"}, RunBackup, shop, true},        // a vault covers its apps
		{lifeboat.Grant{Role: BackupOperator, Scope: "vault:eu"}, RunBackup, other, false},      // not others'
		{lifeboat.Grant{Role: RestoreOperator, Scope: "apps:team=web"}, RunRestore, shop, true}, // labels
		{lifeboat.Grant{Role: RestoreOperator, Scope: "apps:team=web"}, RunRestore, other, false},
		{lifeboat.Grant{Role: RestoreOperator, Scope: "apps:team=web"}, RunRestore, Target{Vault: "eu"}, false},
		{lifeboat.Grant{Role: RestoreOperator, Scope: "app:shop"}, ReadSecrets, shop, false}, // secrets are a separate role
		{lifeboat.Grant{Role: SecretReader, Scope: "app:shop"}, ReadSecrets, shop, true},
		{lifeboat.Grant{Role: Auditor, Scope: "*"}, ReadAudit, Target{}, true},
		{lifeboat.Grant{Role: HostAdmin, Scope: "*"}, ManageHosts, Target{}, true},
		{lifeboat.Grant{Role: Contributor, Scope: "*"}, ManageHosts, Target{}, false},
		{lifeboat.Grant{Role: KeyAdmin, Scope: "vault:eu"}, ManageKeys, Target{Vault: "eu"}, true},
		{lifeboat.Grant{Role: Owner, Scope: "app:shop"}, ManageAccess, Target{}, false},
		{lifeboat.Grant{Role: "no-such-role", Scope: "*"}, Read, shop, false},
	}
	for _, c := range cases {
		p := &lifeboat.Principal{Name: "ann", Kind: lifeboat.KindUser, Grants: []lifeboat.Grant{c.grant}}
		d := Decide(p, c.action, c.target)
		if d.Allow != c.allow {
			t.Errorf("%s on %s may %s on %s: got %v (%s), want %v", c.grant.Role, c.grant.Scope, c.action, c.target, d.Allow, d.Reason, c.allow)
		}
		if d.Reason == "" || (d.Allow && !strings.Contains(d.Via, c.grant.Role)) {
			t.Errorf("decision without an explanation: %+v", d)
		}
	}
}

func TestDenyByDefault(t *testing.T) {
	if Decide(nil, Read, Target{}).Allow {
		t.Error("nobody may read")
	}
	p := &lifeboat.Principal{Name: "bob", Kind: lifeboat.KindUser}
	for _, perm := range Permissions {
		if d := Decide(p, perm, Target{}); d.Allow || !strings.Contains(d.Reason, "no role") {
			t.Errorf("a principal without grants: %s: %+v", perm, d)
		}
		if DecideAny(p, perm).Allow {
			t.Errorf("a principal without grants, any scope: %s", perm)
		}
	}
}

func TestImplicitGrants(t *testing.T) {
	admin := &lifeboat.Principal{Name: "admin", Kind: lifeboat.KindUser, Admin: true}
	for _, perm := range Permissions {
		if !Decide(admin, perm, Target{App: "x", Vault: "y"}).Allow {
			t.Errorf("the administrator may not %s", perm)
		}
	}
	svc := &lifeboat.Principal{Name: "app:shop", Kind: lifeboat.KindService}
	shop := Target{App: "shop", Vault: "eu"}
	for _, perm := range Permissions {
		want := perm == Read || perm == RunBackup
		if got := Decide(svc, perm, shop).Allow; got != want {
			t.Errorf("shop's identity may %s on shop: %v, want %v", perm, got, want)
		}
		if Decide(svc, perm, Target{App: "blog", Vault: "eu"}).Allow {
			t.Errorf("shop's identity may %s on blog", perm)
		}
	}
	// A user named like a service identity is not one.
	fake := &lifeboat.Principal{Name: "app:shop", Kind: lifeboat.KindUser}
	if Decide(fake, RunBackup, shop).Allow {
		t.Error("a user named app:shop acts as the app's identity")
	}
}

func TestRoles(t *testing.T) {
	for _, r := range Roles {
		if r.Description == "" || len(r.Permissions) == 0 {
			t.Errorf("role %s: undocumented", r.Name)
		}
		for _, p := range r.Permissions {
			if !slices.Contains(Permissions, p) {
				t.Errorf("role %s: unknown permission %s", r.Name, p)
			}
		}
	}
	if Assignable(AppIdentity) || !Assignable(Reader) || Assignable("root") {
		t.Error("assignable roles")
	}
	for _, s := range []string{"*", "vault:eu", "app:shop", "apps:team=web"} {
		if err := ParseScope(s); err != nil {
			t.Errorf("scope %s: %v", s, err)
		}
	}
	for _, s := range []string{"", "app:", "vault:", "apps:team", "apps:=x", "apps:team=", "everything", "**"} {
		if err := ParseScope(s); lifeboat.ErrorCode(err) != lifeboat.EInvalid {
			t.Errorf("scope %q accepted", s)
		}
	}
}
