package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh/sshtest"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// TestSSHRemoveAllSparesMounts: removing a kept tree on an SSH host never
// goes into a file system mounted inside it; the tree stays, and the
// removal fails. Other trees go, and only trees named by Lifeboat.
func TestSSHRemoveAllSparesMounts(t *testing.T) {
	c := sshtest.Config(t)
	rt := sshTarget{sshtest.Dial(t, c)}
	dir := sshtest.SharedDir(t, c.User)
	ctx := context.Background()
	kept := filepath.Join(dir, ".lifeboat-old-job1-data")
	mnt := filepath.Join(kept, "mounted")
	if err := os.MkdirAll(mnt, 0o777); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(kept, "a"), []byte("a"), 0o666)
	sshOwned(t, map[string]string{"LIFEBOAT_TEST_SSH_USER": c.User}, kept)
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0777"); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs here: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	os.WriteFile(filepath.Join(mnt, "precious"), []byte("on another file system"), 0o666)
	if err := rt.RemoveAll(ctx, kept); err == nil {
		t.Error("removing a tree with a mount inside succeeded")
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "precious")); err != nil || string(b) != "on another file system" {
		t.Errorf("the mounted file system's file: %q %v", b, err)
	}
	unix.Unmount(mnt, unix.MNT_DETACH)
	if err := rt.RemoveAll(ctx, kept); err != nil {
		t.Errorf("removing the tree once unmounted: %v", err)
	}
	if _, err := os.Lstat(kept); err == nil {
		t.Error("the tree is still there")
	}
	if err := rt.RemoveAll(ctx, dir); err == nil || !strings.Contains(err.Error(), "not a Lifeboat") {
		t.Errorf("removing a tree Lifeboat did not name: %v", err)
	}
}

// TestSSHRemoveAllSparesBindMounts: a directory of the same file system
// bind-mounted inside a kept tree (same device: rm's own check does not
// see it) is never emptied, whatever the tree's name.
func TestSSHRemoveAllSparesBindMounts(t *testing.T) {
	c := sshtest.Config(t)
	rt := sshTarget{sshtest.Dial(t, c)}
	dir := sshtest.SharedDir(t, c.User)
	kept := filepath.Join(dir, `.lifeboat-old-job1-my data\x`)
	mnt := filepath.Join(kept, "shared")
	src := filepath.Join(dir, "shared-elsewhere")
	for _, d := range []string{mnt, src} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(src, "precious"), []byte("not in the kept tree"), 0o666)
	sshOwned(t, map[string]string{"LIFEBOAT_TEST_SSH_USER": c.User}, dir)
	if err := unix.Mount(src, mnt, "", unix.MS_BIND, ""); err != nil {
		testenv.Skip(t, "cannot bind-mount here: "+err.Error())
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	err := rt.RemoveAll(context.Background(), kept)
	if b, rerr := os.ReadFile(filepath.Join(src, "precious")); rerr != nil || string(b) != "not in the kept tree" {
		t.Errorf("RemoveAll (%v) deleted what a bind mount shows inside the tree: %q %v", err, b, rerr)
	}
	if err == nil || !strings.Contains(err.Error(), "mounted at") {
		t.Errorf("RemoveAll of a tree with a bind mount inside: %v", err)
	}
}
