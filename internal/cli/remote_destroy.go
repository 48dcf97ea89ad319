package cli

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

// The destructive commands outside retention. Each waits for two-person
// approval (exit code 11, naming the request and who may approve it).

const approvalHelp = `
It waits for a second person's approval: a user other than you who has been
in the vault's approvers group for 24 hours before the request (exit code
11 names the request; see lifeboat approval). It runs when approved.`

// destroyCmd builds a command that sends one destructive request, with
// --reason required, and prints what it did.
func destroyCmd(env Env, use, short, long string, args cobra.PositionalArgs, send func(cmd *cobra.Command, c *api.Client, args []string, reason string) (string, any, error)) *cobra.Command {
	var f serverFlags
	var reason string
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long + approvalHelp + serverExitHelp, Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			if strings.TrimSpace(reason) == "" {
				return usagef("--reason is required (it is recorded in the audit trail and shown to the approver)")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			msg, out, err := send(cmd, c, args, reason)
			if err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, out)
			}
			fmt.Fprintln(env.Stdout, msg)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why (required; recorded in the audit trail, shown to the approver)")
	f.register(cmd)
	return cmd
}

func newDeletePointCmd(env Env) *cobra.Command {
	var app string
	cmd := destroyCmd(env, "delete --app NAME POINT --reason TEXT",
		"Delete a point before its retention ends (soft delete; waits for approval)",
		`Delete one point of an app before its retention ends. It is soft-deleted:
restorable with lifeboat points undelete until garbage collection purges it after
the soft-delete retention (14 days by default). Refused under a legal hold,
and within a vault lock's minimum retention.`,
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string, reason string) (string, any, error) {
			if app == "" {
				return "", nil, usagef("--app NAME is required")
			}
			var res server.PointDeleteResult
			err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/apps/%s/points/%s", app, args[0])+"?reason="+url.QueryEscape(reason), nil, &res)
			return fmt.Sprintf("Point %s of %s soft-deleted; restorable (lifeboat points undelete) until %s.", short(res.Point), app, res.RestorableUntil.Format(time.RFC3339)), res, err
		})
	cmd.Flags().StringVar(&app, "app", "", "app name")
	return cmd
}

func newAppPurgeCmd(env Env) *cobra.Command {
	cmd := destroyCmd(env, "purge NAME --reason TEXT",
		"Soft-delete every point of a retired app (waits for approval)",
		`Soft-delete every point of a retired app (retention keeps its newest
point for ever otherwise), but those under a legal hold or within a vault
lock's minimum retention, which are listed. Restorable until garbage
collection purges them after the soft-delete retention.`,
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string, reason string) (string, any, error) {
			var res server.PurgeResult
			err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/purge", args[0]), server.PurgeRequest{Reason: reason}, &res)
			var b strings.Builder
			fmt.Fprintf(&b, "App %s: %d points soft-deleted (restorable until %s), %d kept.", args[0], len(res.SoftDeleted), res.RestorableUntil.Format(time.RFC3339), len(res.Kept))
			for _, k := range res.Kept {
				fmt.Fprintf(&b, "\n  kept %s: %s", short(k.Point), k.Why)
			}
			return b.String(), res, err
		})
	return cmd
}

func newVaultDeleteCmd(env Env) *cobra.Command {
	cmd := destroyCmd(env, "delete NAME --reason TEXT",
		"Delete a vault from the server (its storage is left; waits for approval)",
		`Delete a vault from the server: nothing is backed up to, restored from or
copied to it any more. Lifeboat never erases its storage: the bucket or
directory stays as it was, and an exported key still opens it, until you
remove it yourself. Refused while an app uses the vault, while it is locked,
or while anything in it is under a legal hold.`,
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string, reason string) (string, any, error) {
			var v lifeboat.Vault
			err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/vaults/%s", args[0])+"?reason="+url.QueryEscape(reason), nil, &v)
			return fmt.Sprintf("Vault %s deleted; its storage at %s is left as it was.", v.Name, v.Location), v, err
		})
	return cmd
}

func newKeyDestroyCmd(env Env) *cobra.Command {
	var vaultName string
	cmd := destroyCmd(env, "destroy --vault NAME SLOT --reason TEXT",
		"Destroy a key slot, e.g. a lost disaster kit's (waits for approval)",
		`Delete a key slot from the vault (lifeboat key list shows them), so that its
passphrase no longer opens the vault: for a disaster kit that was lost or
leaked. A copy of the slot made before (a kit carries one) still opens the
vault with that passphrase: rotate the data key and re-encrypt too if the
kit may be in the wrong hands (see docs/access.md). The server's own slot
is rotated (lifeboat key rotate), never destroyed.`,
		cobra.ExactArgs(1),
		func(cmd *cobra.Command, c *api.Client, args []string, reason string) (string, any, error) {
			if vaultName == "" {
				return "", nil, usagef("--vault NAME is required")
			}
			var out map[string]string
			err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/vaults/%s/keys/%s", vaultName, args[0])+"?reason="+url.QueryEscape(reason), nil, &out)
			return fmt.Sprintf("Key slot %s of vault %s destroyed.", cmp.Or(out["destroyed"], args[0]), vaultName), out, err
		})
	cmd.Flags().StringVar(&vaultName, "vault", "", "vault name")
	return cmd
}

func newVaultApproversCmd(env Env) *cobra.Command {
	var f serverFlags
	var set string
	var reset bool
	cmd := &cobra.Command{
		Use:   "approvers NAME [--set GROUP | --reset]",
		Short: "Show or set the group that approves a vault's destructive requests",
		Long: `Show, or set, the group whose members approve the destructive requests on
vault NAME (deleting points early, purging apps, destroying keys, weakening
its lock, deleting it). Without one, the server's approvers group does.
Changing it waits for approval by the current group; --reset goes back to
the server's.` + serverExitHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			out := map[string]string{}
			if set == "" && !reset {
				var v lifeboat.Vault
				if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/vaults/%s", args[0]), nil, &v); err != nil {
					return err
				}
				out = map[string]string{"vault": v.Name, "approvers": v.Approvers}
				if v.Approvers == "" {
					out["approvers"] = server.DefaultApprovers
				}
			} else if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/vaults/%s/approvers", args[0]), server.ApproversRequest{Group: set}, &out); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, out)
			}
			fmt.Fprintf(env.Stdout, "Vault %s: requests approved by group %s\n", out["vault"], out["approvers"])
			return nil
		},
	}
	cmd.Flags().StringVar(&set, "set", "", "the group that approves from now on")
	cmd.Flags().BoolVar(&reset, "reset", false, "go back to the server's approvers group")
	cmd.MarkFlagsMutuallyExclusive("set", "reset")
	f.register(cmd)
	return cmd
}
