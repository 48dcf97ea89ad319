// Package storage defines Backend, the small contract every place that holds a
// vault implements (local directory, S3-compatible bucket, memory for unit
// tests), and the sentinel errors backends translate their native errors into.
//
// Objects are immutable: Put never overwrites. This is what makes the vault's
// commit order (data, then index, then manifest) crash safe: a crash leaves at
// worst an unreferenced object, never a half-written referenced one.
//
// storage must not import vault or anything above it.
package storage
