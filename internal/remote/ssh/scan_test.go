package ssh_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
)

// makeTree builds a tree with awkward names, symlinks, a hard link, a
// sparse file and nanosecond mtimes, readable by the SSH user.
func makeTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub dir/ünïcödé 漢字"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "with space.txt"), []byte("hello"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "new\nline"), []byte("x"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "sub dir/ünïcödé 漢字/é.txt"), []byte("unicode"), 0o600))
	must(os.WriteFile(filepath.Join(dir, "tab\tand\\back'quote\""), nil, 0o644))
	must(os.Symlink("with space.txt", filepath.Join(dir, "link")))
	must(os.Symlink("/nonexistent/ta rget\nx", filepath.Join(dir, "dangling")))
	must(os.Link(filepath.Join(dir, "with space.txt"), filepath.Join(dir, "hard")))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("end"), 1<<30)
	must(err)
	must(f.Close())
	must(os.Chmod(filepath.Join(dir, "sparse"), 0o644))
	must(os.Chtimes(filepath.Join(dir, "with space.txt"), time.Unix(0, 0), time.Unix(1234567890, 123456789)))
	must(os.Chtimes(filepath.Join(dir, "sparse"), time.Unix(0, 0), time.Unix(1700000000, 999999999)))
	must(os.Chmod(dir, 0o755))
}

// localEntries is what an exact scan of dir must report, from os.Lstat.
func localEntries(t *testing.T, dir string, precise bool) []ssh.Entry {
	t.Helper()
	var out []ssh.Entry
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		rel, _ := filepath.Rel(dir, p)
		e := ssh.Entry{
			Path: filepath.ToSlash(rel), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Size: st.Size,
			MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Inode: st.Ino, Nlink: uint64(st.Nlink), Precise: true,
		}
		switch fi.Mode().Type() {
		case 0:
			e.Type = 'f'
		case fs.ModeDir:
			e.Type = 'd'
		case fs.ModeSymlink:
			e.Type = 'l'
			e.Target, _ = os.Readlink(p)
		}
		if !precise {
			e.MTime = st.Mtim.Sec * 1e9
			e.CTime, e.Inode, e.Nlink, e.Precise = 0, 0, 0, false
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortEntries(es []ssh.Entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].Path < es[j].Path })
}

func TestScan(t *testing.T) {
	e := mustEnv(t)
	for _, tc := range []struct {
		name     string
		sftpScan bool
	}{{"find", false}, {"sftp", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sharedDir(t, e)
			makeTree(t, dir)
			c := e.config()
			c.SFTPScan = tc.sftpScan
			cl := mustDial(t, c)
			got, err := cl.Scan(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			want := localEntries(t, dir, !tc.sftpScan)
			sortEntries(got)
			sortEntries(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Scan (-want +got):\n%s", diff)
			}
			if len(got) != 11 {
				t.Errorf("%d entries, want 11", len(got))
			}
			_, err = cl.Scan(context.Background(), filepath.Join(dir, "nope"))
			wantCode(t, err, "not_found")
			_, err = cl.Scan(context.Background(), "relative")
			wantCode(t, err, "invalid")
		})
	}
}
