package cli

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
	"github.com/lifeboat-vault/lifeboat/internal/vault/tree"
)

// check's problems are printed one line per object and cause: a missing
// pack of 30 blobs is one PROBLEM, with the union of the points and paths
// its blobs break (20 paths, then a count).
func TestPrintProblemsGroupsByObject(t *testing.T) {
	pt1, pt2 := strings.Repeat("1", 32), strings.Repeat("2", 32)
	var probs []vault.Problem
	for i := range 30 {
		paths := []string{"11111111:app/big", fmt.Sprintf("11111111:app/f%02d", i)}
		if i > 20 {
			paths = append(paths, fmt.Sprintf("11111111:app/f%02d", i-1)) // past the 20 shown, counted once
		}
		probs = append(probs, vault.Problem{Object: "data/aa/pack1", Blob: fmt.Sprintf("%064x", i), What: "pack missing", Points: []string{pt1}, Paths: paths})
	}
	probs = append(probs,
		vault.Problem{Object: "data/aa/pack1", Blob: fmt.Sprintf("%064x", 99), What: "pack truncated", Points: []string{pt2}, Paths: []string{"22222222:app/x"}},
		vault.Problem{Object: "data/bb/pack2", Blob: fmt.Sprintf("%064x", 7), What: "authentication failed", Points: []string{pt1, pt2}, Paths: []string{"11111111:app/y", "22222222:app/y"}},
		vault.Problem{Object: "points/p1", What: "does not open", Points: []string{pt1}},
		vault.Problem{Object: "points/p1", What: "does not open", Points: []string{pt2}},
	)
	var b strings.Builder
	printProblems(&b, probs)
	want := "PROBLEM data/aa/pack1 (30 blobs): pack missing\n" +
		"  breaks point 11111111\n" +
		"  breaks 11111111:app/big\n"
	for i := range 19 {
		want += fmt.Sprintf("  breaks 11111111:app/f%02d\n", i)
	}
	want += "  and 11 more paths (-o json lists each blob's)\n" +
		"PROBLEM data/aa/pack1 blob 0000000000000000: pack truncated\n" +
		"  breaks point 22222222\n" +
		"  breaks 22222222:app/x\n" +
		"PROBLEM data/bb/pack2 blob 0000000000000000: authentication failed\n" +
		"  breaks point 11111111\n" +
		"  breaks point 22222222\n" +
		"  breaks 11111111:app/y\n" +
		"  breaks 22222222:app/y\n" +
		"PROBLEM points/p1: does not open\n" +
		"  breaks point 11111111\n" +
		"PROBLEM points/p1: does not open\n" +
		"  breaks point 22222222\n"
	if got := b.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// ls -o json keeps every name exactly: a path, link target, user or group
// name that is not UTF-8 comes base64-encoded in its _raw field (JSON
// strings cannot hold the bytes), and owners come as numbers too.
func TestLsEntryRawNames(t *testing.T) {
	n := &tree.Node{Type: tree.Symlink, Target: "t\xff", User: "us\xfer", Group: "staff", UID: 1001, GID: 50}
	b, err := json.Marshal(newLsEntry("dir/\xfe", n))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	want := map[string]any{
		"path_raw": base64.StdEncoding.EncodeToString([]byte("dir/\xfe")), "target_raw": base64.StdEncoding.EncodeToString([]byte("t\xff")),
		"user_raw": base64.StdEncoding.EncodeToString([]byte("us\xfer")), "uid": float64(1001), "gid": float64(50), "group": "staff",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v (%s)", k, got[k], v, b)
		}
	}
	if _, ok := got["group_raw"]; ok {
		t.Errorf("a UTF-8 group name has a raw field: %s", b)
	}
}

// A failed restore job's result says what it did: where what it replaced
// is kept and which safety point holds it; one that did nothing prints
// nothing.
func TestPrintFailedRestore(t *testing.T) {
	res := `{"point":"0123456789abcdef","safetyPoint":"fedcba9876543210","components":[{"name":"data","target":["/srv/shop/data"],"files":2,"bytes":10,"kept":["/srv/shop/.lifeboat-old-1234abcd-data"]}]}`
	var b strings.Builder
	printResult(&b, &lifeboat.Job{Kind: lifeboat.JobRestore, App: "shop", State: lifeboat.JobFailed, Result: []byte(res)})
	for _, want := range []string{"The restore of point 01234567 of shop failed; what it did (safety point fedcba98 holds what was replaced)", "replaced data kept at /srv/shop/.lifeboat-old-1234abcd-data"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	printResult(&b, &lifeboat.Job{Kind: lifeboat.JobRestore, App: "shop", State: lifeboat.JobFailed, Result: []byte(`{"point":"0123456789abcdef","components":null}`)})
	if b.Len() != 0 {
		t.Errorf("a restore that did nothing printed %q", b.String())
	}
}
