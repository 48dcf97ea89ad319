package local

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// FS is every file system operation the backend performs, so that tests can
// run it on CrashFS, which forgets what was not fsynced.
type FS interface {
	// CreateExcl creates a new file for writing; it fails if name exists.
	CreateExcl(name string) (File, error)
	// Open opens a file for reading.
	Open(name string) (File, error)
	// RenameNoReplace renames old to new, failing with an error wrapping
	// fs.ErrExist if new exists.
	RenameNoReplace(oldname, newname string) error
	Remove(name string) error
	// Mkdir creates one directory; an error wrapping fs.ErrExist if it exists.
	Mkdir(name string) error
	// SyncDir makes a directory's entries durable.
	SyncDir(name string) error
	ReadDir(name string) ([]DirEntry, error)
	Stat(name string) (Info, error)
}

// File is an open file.
type File interface {
	io.Writer
	io.ReaderAt
	Sync() error
	Close() error
}

// DirEntry is one name in a directory.
type DirEntry struct {
	Name  string
	IsDir bool
}

// Info describes a file.
type Info struct {
	Size    int64
	ModTime time.Time
	IsDir   bool
}

// OSFS is the real file system.
type OSFS struct{}

var _ FS = OSFS{}

// CreateExcl implements FS.
func (OSFS) CreateExcl(name string) (File, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// Open implements FS.
func (OSFS) Open(name string) (File, error) { return os.Open(name) }

// RenameNoReplace implements FS with renameat2(RENAME_NOREPLACE), falling
// back to link+unlink on file systems without it.
func (OSFS) RenameNoReplace(oldname, newname string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.ENOTSUP) {
		if err = unix.Link(oldname, newname); err == nil {
			err = unix.Unlink(oldname)
		}
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

// Remove implements FS.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Mkdir implements FS.
func (OSFS) Mkdir(name string) error { return os.Mkdir(name, 0o700) }

// SyncDir implements FS.
func (OSFS) SyncDir(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ReadDir implements FS.
func (OSFS) ReadDir(name string) ([]DirEntry, error) {
	ents, err := os.ReadDir(name)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(ents))
	for i, e := range ents {
		out[i] = DirEntry{Name: e.Name(), IsDir: e.IsDir()}
	}
	return out, nil
}

// Stat implements FS.
func (OSFS) Stat(name string) (Info, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return Info{}, err
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime(), IsDir: fi.IsDir()}, nil
}

var _ = fs.ErrExist
