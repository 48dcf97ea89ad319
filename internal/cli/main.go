package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault/crypto"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	// IsTerminal reports whether stderr is a terminal (progress bars).
	IsTerminal bool
	// ReadPassword reads a line from the terminal without echo; nil when
	// stdin is not a terminal (passphrases are then lines of stdin).
	ReadPassword func() ([]byte, error)

	stdinReader *bufio.Reader // shared by every read of stdin lines
}

var exitCodes = map[lifeboat.Code]int{
	lifeboat.EInternal:    1,
	lifeboat.EInvalid:     2,
	lifeboat.EPartial:     3,
	lifeboat.ENotFound:    4,
	lifeboat.EAuth:        5,
	lifeboat.EUnavailable: 6,
	lifeboat.ECorrupt:     7,
	lifeboat.EExists:      8,
	lifeboat.EForbidden:   9,
	lifeboat.ERateLimited: 10,
	lifeboat.EApproval:    11,
	lifeboat.EInterrupted: 130,
}

// ExitCode maps an error to the documented exit code.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) {
		return 130
	}
	return exitCodes[lifeboat.ErrorCode(err)]
}

// Main runs the command line and returns the exit code.
func Main(ctx context.Context, args []string, env Env) int {
	env.stdinReader = bufio.NewReader(env.Stdin)
	// A command is short-lived; serve says otherwise when it starts.
	crypto.KeepKDFHugePages(true)
	root := newRoot(env)
	root.SetArgs(args)
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(env.Stderr, "lifeboat: %v\n", err)
		return 2
	}
	if errors.Is(err, context.Canceled) && lifeboat.ErrorCode(err) == lifeboat.EInternal {
		fmt.Fprintln(env.Stderr, "lifeboat: interrupted")
		return 130
	}
	fmt.Fprintf(env.Stderr, "lifeboat: %s\n", oneLine(err.Error()))
	return ExitCode(err)
}

func oneLine(s string) string { return strings.ReplaceAll(strings.TrimSpace(s), "\n", "; ") }

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}

const exitCodeHelp = `
Exit codes: 0 success, 1 internal error, 2 bad usage or input, 3 partial
(some items skipped or not restored), 4 vault/point/path not found, 5 wrong
passphrase, 6 storage unreachable, 7 corruption found, 8 already exists,
9 forbidden, 130 interrupted.`

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "lifeboat",
		Short:         "Lifeboat: a recovery vault for web apps",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	vc := newVaultCmd(env)
	// These talk to the server, unlike their siblings.
	vc.AddCommand(newVaultSyncCmd(env), newVaultDeleteCmd(env), newVaultApproversCmd(env))
	root.AddCommand(vc)
	root.AddCommand(newServeCmd(env), newLoginCmd(env), newStatusCmd(env), newKeyCmd(env), newHostCmd(env), newApplyCmd(env),
		newAppCmd(env), newPolicyCmd(env), newBackupCmd(env), newRestoreCmd(env), newPointsCmd(env), newDiffCmd(env), newJobsCmd(env), newPruneCmd(env),
		newPrincipalCmd(env, lifeboat.KindUser), newPrincipalCmd(env, lifeboat.KindGroup), newAccessCmd(env), newTokenCmd(env), newTrustCmd(env), newAuditCmd(env), newApprovalCmd(env), newHoldCmd(env, true), newHoldCmd(env, false), newLockCmd(env))
	root.AddCommand(newVersionCmd(env))
	return root
}

func newVersionCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintln(env.Stdout, "lifeboat", Version)
			return nil
		},
	}
}

// Version is set at build time.
var Version = "dev"

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}
