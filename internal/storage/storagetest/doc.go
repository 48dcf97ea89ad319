// Package storagetest is the conformance suite of storage.Backend: the
// memory, local (real and crash-simulating file systems) and s3 (a real
// S3-compatible server) backends run the same tests, so the vault can rely
// on one contract whatever holds it.
//
// Run checks: round trips from 0 bytes to several MiB; that a second Put of
// a name fails with ErrExists and leaves the first content; that of
// concurrent Puts of one name exactly one wins with complete content;
// ranged Gets; ErrNotFound for missing objects; List by prefix, including
// prefix boundaries and read-after-write; Delete then Put again; Stat's size
// and storage timestamp; invalid names refused with an error naming them;
// cancelled contexts; and storage.Streamer where a backend has it.
//
// storagetest imports storage and the standard library only.
package storagetest
