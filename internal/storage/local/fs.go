package local

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// FS is every file system operation the backend performs, so that the
// power-loss tests run the same code on CrashFS, which forgets what was not
// fsynced. Errors follow the os package: they wrap fs.ErrNotExist,
// fs.ErrExist, syscall.ENOTDIR and so on, so errors.Is works on both.
type FS interface {
	// CreateExcl creates a new, empty file open for writing; an error
	// wrapping fs.ErrExist if name exists.
	CreateExcl(name string) (File, error)
	// Open opens a file (or a directory, whose reads then fail) for reading.
	Open(name string) (File, error)
	// RenameNoReplace renames oldname to newname atomically, failing with an
	// error wrapping fs.ErrExist if newname exists (renameat2 with
	// RENAME_NOREPLACE), or wrapping errors.ErrUnsupported if the file system
	// cannot rename without replacing; the caller then falls back to Link.
	RenameNoReplace(oldname, newname string) error
	// Link makes newname a hard link to oldname; an error wrapping
	// fs.ErrExist if newname exists.
	Link(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// Mkdir creates one directory; an error wrapping fs.ErrExist if it exists.
	Mkdir(name string) error
	// SyncDir makes a directory's current entries durable (fsync of the
	// directory).
	SyncDir(name string) error
	// ReadDir lists a directory.
	ReadDir(name string) ([]DirEntry, error)
	// Stat describes name, following symbolic links.
	Stat(name string) (Info, error)
}

// File is an open file.
type File interface {
	io.Writer
	io.ReaderAt
	// Sync makes the file's current content durable (fsync).
	Sync() error
	// Stat describes the open file.
	Stat() (Info, error)
	Close() error
}

// DirEntry is one name in a directory.
type DirEntry struct {
	Name  string
	IsDir bool
}

// Info describes a file or directory.
type Info struct {
	Size    int64
	ModTime time.Time
	IsDir   bool
	Special bool // neither a regular file nor a directory: a FIFO, a device, a socket
}

// OSFS is the real file system.
type OSFS struct{}

var _ FS = OSFS{}

type osFile struct{ *os.File }

func (f osFile) Stat() (Info, error) {
	fi, err := f.File.Stat()
	if err != nil {
		return Info{}, err
	}
	return info(fi), nil
}

func info(fi os.FileInfo) Info {
	return Info{Size: fi.Size(), ModTime: fi.ModTime(), IsDir: fi.IsDir(), Special: !fi.IsDir() && !fi.Mode().IsRegular()}
}

// CreateExcl implements FS.
func (OSFS) CreateExcl(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Open implements FS. The descriptor is left out of the runtime's poller
// (os.NewFile of a blocking descriptor), which refuses regular files
// anyway: os.Open would spend four fcntl calls and a failing epoll_ctl on
// every read of an object, and a backup or restore reads thousands. It is
// opened non-blocking, then made blocking: opening a FIFO put where an
// object was would otherwise wait forever for a writer (callers refuse
// what is not a regular file: Info.Special).
func (OSFS) Open(name string) (File, error) {
	for {
		fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, unix.O_RDONLY); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "open", Path: name, Err: err}
		}
		return osFile{os.NewFile(uintptr(fd), name)}, nil
	}
}

// RenameNoReplace implements FS with renameat2(RENAME_NOREPLACE). File
// systems without the flag (some network and FUSE file systems, old
// kernels) answer EINVAL or ENOSYS; that becomes errors.ErrUnsupported.
func (OSFS) RenameNoReplace(oldname, newname string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldname, unix.AT_FDCWD, newname, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP):
		err = fmt.Errorf("%w (%w)", errors.ErrUnsupported, err)
	}
	return &os.LinkError{Op: "renameat2", Old: oldname, New: newname, Err: err}
}

// Link implements FS.
func (OSFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

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
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
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
	return info(fi), nil
}
