// Package lifeboat holds the nouns every other package shares and the
// user-facing error type with its codes. It imports the standard library only.
package lifeboat
