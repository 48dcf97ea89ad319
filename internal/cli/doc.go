// Package cli is the lifeboat command line: one file per command group.
// Commands take their stdin, stdout and stderr from Env and never touch
// os.Stdout and friends, so tests run them in-process.
//
// Exit codes (one table, exitCodes, used by every command):
//
//	0   success
//	1   internal error (a bug, or an unexpected failure)
//	2   bad usage or bad input
//	3   partial: the backup finished but some items were skipped, or some
//	    files could not be restored
//	4   not found: no vault at the location, no such point or path
//	5   wrong passphrase or key
//	6   storage unreachable or failing
//	7   corruption found (check, restore, open)
//	8   already exists (vault init, non-empty restore target)
//	130 interrupted
package cli
