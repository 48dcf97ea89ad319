package capture

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// mountinfo is the mount table read by mountsUnder (a variable for tests).
var mountinfo = "/proc/self/mountinfo"

// mountsUnder returns the mount points at or inside dir (symlinks in its
// path resolved), from the kernel's mount table. A swap of dir moves those
// inside aside with it, and removing the replaced tree would delete what
// another file system holds; dir itself, a mount point, cannot be swapped.
func mountsUnder(dir string) ([]string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var under []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "36 35 98:0 /mnt1 /mnt/parent rw,noatime master:1 - ext3 ...":
		// the fifth field is the mount point, octal-escaped.
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == real || strings.HasPrefix(mp, real+"/") {
			under = append(under, mp)
		}
	}
	return under, sc.Err()
}

// unescapeMount undoes the kernel's octal escapes (\040 for a space) in a
// mountinfo field.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RefuseMounts refuses a restore that would swap dir, with mount points
// inside it, to its place (invalid, naming one).
func RefuseMounts(component, dir string) error {
	ms, err := mountsUnder(dir)
	if err != nil || len(ms) == 0 {
		return nil // no table to read, or dir not there: nothing moved aside
	}
	if real, _ := filepath.EvalSymlinks(dir); slices.Contains(ms, real) {
		return lifeboat.Errorf(lifeboat.EInvalid, "component %s: %s is a mount point: a restore to the original place swaps the directory for a restored one beside it, which a mount point cannot be; restore it to a directory and copy it in", component, dir)
	}
	return lifeboat.Errorf(lifeboat.EInvalid, "component %s: %s is a mount point inside %s (%d in all): a restore to the original place swaps the whole directory and would move the mount aside with the replaced data; unmount it first, or restore to a directory", component, ms[0], dir, len(ms))
}

// removeTree removes a replaced tree, unless a file system is mounted
// inside it (os.RemoveAll would delete what that one holds): then nothing
// is removed.
func removeTree(p string) error {
	if ms, err := mountsUnder(p); err == nil && len(ms) > 0 {
		return fmt.Errorf("not removed: %s is a mount point inside it", ms[0])
	}
	return os.RemoveAll(p)
}
