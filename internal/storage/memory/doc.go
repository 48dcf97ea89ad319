// Package memory is an in-memory storage.Backend for unit tests only: it is
// fast, forgets everything when the process ends, and has nothing to make
// durable. Production code must not use it. It keeps the contract of
// storage.Backend (names checked with storage.CheckName, no overwrites,
// ErrNotFound, context honoured), and its clock is injectable (Backend.Now)
// so that tests of storage-time ages control it.
//
// memory imports storage only.
package memory
