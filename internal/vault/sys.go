package vault

import (
	"io"

	"golang.org/x/sys/unix"
)

// Backup and restore call the kernel directly: descriptor-relative calls
// that os does not offer, and descriptors kept out of the runtime's poller.
// The os package retries a call that a signal interrupted, and so must we:
// local disks never answer EINTR, but network and FUSE file systems do when
// the Go runtime's preemption signal lands during a call. Unretried, that
// would skip a file in a backup with "interrupted system call", or fail a
// restore.

// ignoringEINTR runs f again while a signal interrupts it.
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// openat is unix.Openat, retried when a signal interrupts it. With
// unix.AT_FDCWD it opens a path as open(2) does.
func openat(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// fstatat is unix.Fstatat, retried when a signal interrupts it.
func fstatat(dirfd int, name string, st *unix.Stat_t, flags int) error {
	for {
		if err := unix.Fstatat(dirfd, name, st, flags); err != unix.EINTR {
			return err
		}
	}
}

// fchown is unix.Fchown; tests replace it to get the refusals of NFS with
// root squashing.
var fchown = unix.Fchown

// fstat is unix.Fstat, retried when a signal interrupts it.
func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}

// pwrite is unix.Pwrite; tests replace it to get short and interrupted
// writes.
var pwrite = unix.Pwrite

// pwriteFull writes all of p at off. pwrite(2) may write less than it was
// given without an error (a disk filling up, a file size limit, a signal
// after part of the data); the next call writes the rest or fails with the
// reason. A restore that took the short count for the whole would leave
// zeros in the file and report success.
func pwriteFull(fd int, p []byte, off int64) error {
	for len(p) > 0 {
		n, err := pwrite(fd, p, off)
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case n <= 0:
			return io.ErrShortWrite
		}
		p = p[n:]
		off += int64(n)
	}
	return nil
}
