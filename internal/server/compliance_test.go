package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3"
	"github.com/lifeboat-vault/lifeboat/internal/storage/s3/s3test"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// TestComplianceLock: a compliance lock needs a bucket with object lock
// (checked when it is set); once its cooling-off period is over, every
// point inside its minimum retention gets a retain-until date in the
// storage on everything it needs, new points at once (reused packs
// extended), audit segments too; nobody can then weaken or remove the lock,
// nor destroy a retained object with the bucket's own keys.
func TestComplianceLock(t *testing.T) {
	srv := s3test.Require(t)
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Now().UTC().Add(-25 * time.Hour).UnixNano()) // 25 h later it is now: storage dates are checked against the real clock
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ts := newTestServer(t, testOpts{now: now})
	f := newFixture(t)
	creds := filepath.Join(t.TempDir(), "s3.creds")
	if err := os.WriteFile(creds, []byte("access_key_id="+srv.Access+"\nsecret_access_key="+srv.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bucket := srv.LockedBucket(t)
	doc := f.doc()
	doc.Vaults = []VaultSpec{
		{Vault: lifeboat.Vault{Name: "plain", Region: "local", Location: "s3://" + srv.Bucket + "/compliance-" + randomHex(6)}, Endpoint: "http://" + srv.Endpoint, CredentialsFile: creds},
		{Vault: lifeboat.Vault{Name: "locked", Region: "local", Location: "s3://" + bucket + "/v"}, Endpoint: "http://" + srv.Endpoint, CredentialsFile: creds},
	}
	doc.Apps[0].Vault = "locked"
	doc.Policies = nil
	ts.must(t, "POST", "/api/v1/apply", ApplyRequest{Document: doc}, nil)

	minRet := 3 * 24 * time.Hour
	req := LockRequest{Mode: LockCompliance, MinRetention: lifeboat.Duration(minRet), CoolingOff: lifeboat.Duration(24 * time.Hour)}
	if err := ts.do(t, "PUT", "/api/v1/vaults/plain/lock", req, nil); codeOf(err) != lifeboat.EInvalid || !strings.Contains(err.Error(), "no object lock") {
		t.Fatalf("compliance lock on a bucket without object lock: %v", err)
	}
	if err := ts.do(t, "GET", "/api/v1/vaults/plain/lock", nil, nil); codeOf(err) != lifeboat.ENotFound {
		t.Errorf("a refused lock was set: %v", err)
	}

	p1 := result[BackupResult](t, ts.backup(t, "shop")).Point
	var l VaultLock
	ts.must(t, "PUT", "/api/v1/vaults/locked/lock", req, &l)
	if !l.EffectiveAt.Equal(now().Add(24 * time.Hour)) {
		t.Errorf("lock in force at %v, want after the cooling-off period", l.EffectiveAt)
	}

	be, err := s3.Open(ctx, s3.Config{Endpoint: srv.Endpoint, AccessKey: srv.Access, SecretKey: srv.Secret, Bucket: bucket, Prefix: "v"})
	if err != nil {
		t.Fatal(err)
	}
	list := func(prefix string) []string {
		var out []string
		if err := be.List(ctx, prefix, func(oi storage.ObjectInfo) error { out = append(out, oi.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		return out
	}
	retention := func(name string) time.Time {
		u, err := be.Retention(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	// Cooling off: the lock can still go, so nothing is retained yet.
	if err := ts.retainLocked(ctx); err != nil {
		t.Fatal(err)
	}
	packs1 := list("data/")
	if u := retention(packs1[0]); !u.IsZero() {
		t.Fatalf("retained during the cooling-off period (until %v)", u)
	}

	clock.Add(int64(25 * time.Hour))
	if err := ts.retainLocked(ctx); err != nil {
		t.Fatal(err)
	}
	var pt lifeboat.Point
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+p1, nil, &pt)
	want1 := pt.Time.Add(minRet)
	if pt.Time.IsZero() || !want1.After(time.Now()) {
		t.Fatalf("point 1 taken at %v", pt.Time)
	}
	for _, n := range append(packs1, "points/"+p1, vault.ConfigName) {
		if u := retention(n); u.Before(want1) {
			t.Errorf("%s retained until %v, want %v", n, u, want1)
		}
	}
	for _, n := range list("keys/") {
		if u := retention(n); !u.IsZero() && !strings.HasPrefix(n, "keys/feature-") {
			t.Errorf("key slot %s retained", n)
		}
	}
	if got := auditText(t, ts); !strings.Contains(got, "vault.retain") {
		t.Error("the retention pass is not in the audit trail")
	}

	// A new point is retained as soon as it is taken; the packs it reuses
	// are extended to its date.
	clock.Add(int64(time.Hour))
	p2 := result[BackupResult](t, ts.backup(t, "shop")).Point
	ts.must(t, "GET", "/api/v1/apps/shop/points/"+p2, nil, &pt)
	want2 := pt.Time.Add(minRet)
	for _, n := range append(packs1, "points/"+p2) {
		if u := retention(n); u.Before(want2) {
			t.Errorf("after point 2: %s retained until %v, want %v", n, u, want2)
		}
	}

	// Audit segments copied to the vault are retained too.
	if err := ts.copyAuditToVaults(ctx); err != nil {
		t.Fatal(err)
	}
	segs := list("audit/")
	if len(segs) == 0 {
		t.Fatal("no audit segment in the vault")
	}
	if u := retention(segs[len(segs)-1]); u.Before(now().Add(minRet - time.Minute)) {
		t.Errorf("audit segment %s retained until %v", segs[len(segs)-1], u)
	}

	// Nobody weakens or removes the lock now.
	if err := ts.do(t, "DELETE", "/api/v1/vaults/locked/lock", nil, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("removing a compliance lock in force: %v", err)
	}
	weaker := req
	weaker.MinRetention = lifeboat.Duration(time.Hour)
	if err := ts.do(t, "PUT", "/api/v1/vaults/locked/lock", weaker, nil); codeOf(err) != lifeboat.EForbidden {
		t.Errorf("shortening a compliance lock in force: %v", err)
	}
	// Nor does someone with the bucket's keys, going around Lifeboat.
	raw := srv.Client(t)
	for oi := range raw.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "v/data/", Recursive: true, WithVersions: true}) {
		if err := raw.RemoveObject(ctx, bucket, oi.Key, minio.RemoveObjectOptions{VersionID: oi.VersionID, GovernanceBypass: true}); err == nil {
			t.Errorf("pack version %s %s destroyed", oi.Key, oi.VersionID)
		}
	}
}
