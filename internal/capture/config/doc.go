// Package config owns the typed view of an app's configuration: it parses env
// files, JSON and YAML settings files and inline settings into Settings (typed,
// flat key/values), and decides how they may be shown — masked by default,
// compared through a keyed hash, diffed between two recovery points.
//
// The capture driver stores a config file byte for byte; this package only
// reads it. The parsed Settings drive masking, changed/unchanged and
// `lifeboat diff`.
//
// Secrets by default: every value is secret unless its key matches the app's
// public list (Public). Show and Diff are the only ways a value leaves this
// package for an API answer, log, audit event or CLI output, and they carry a
// secret value only as its keyed hash (Hasher) or as the word "changed".
// Setting prints and logs itself without its value, and Secret is the
// project's self-redacting string type.
//
// Errors never quote file content (a malformed line may be a secret): a
// *SyntaxError names the file, line, column when known, and what is wrong.
//
// Flattening (JSON, YAML, inline): nested maps become dotted keys ("db.host"),
// list elements indexed keys ("hosts[0]", "a.b[2].c"); empty maps and lists
// yield no setting. Two paths that flatten to the same key are an error.
//
// config imports the standard library, go.yaml.in/yaml/v3 and
// github.com/zeebo/blake3, never another Lifeboat package: it is pure logic
// and is tested with table tests and fuzz tests of every parser.
package config
