package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

const gcExitCodeHelp = `
Exit codes: 0 success, 1 internal error, 2 bad usage or input (also: the
server and storage clocks differ by more than an hour), 4 vault not found,
5 wrong passphrase, 6 storage unreachable, 7 a marker, manifest or tree
does not open (nothing was deleted), 130 interrupted.`

const markExitCodeHelp = `
Exit codes: 0 success, 1 internal error, 2 bad usage or input (also: the
point is held, for forget), 4 vault or point not found, 5 wrong passphrase,
6 storage unreachable, 7 corruption found (a marker does not open),
130 interrupted.`

func newVaultGC(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var grace, retention time.Duration
	cmd := &cobra.Command{
		Use:   "gc --vault LOCATION [--grace DUR] [--soft-delete-retention DUR] [-o json]",
		Short: "Collect garbage: purge expired points, condemn and delete unreferenced packs",
		Long: `Collect garbage, safely next to running backups:

1. points soft-deleted (lifeboat vault forget) longer than the soft-delete
   retention ago, and not held, are purged (manifest and markers deleted);
2. packs no remaining point references, older than the grace period, are
   condemned (a tombstone is written; nothing is deleted);
3. packs condemned longer than the grace period ago, and still unreferenced
   after listing every point again, are deleted (their tombstones stay).

Ages of packs and tombstones are measured by the storage's timestamps; the
soft-delete retention by this machine's clock. gc refuses to run when the two
clocks differ by more than an hour. A grace or retention of 0 means "no
delay" (the next run deletes what this one condemns). Backups that used a
pack condemned meanwhile fail with exit code 6 and can be run again.` + gcExitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if grace < 0 || retention < 0 {
				return usagef("--grace and --soft-delete-retention must not be negative")
			}
			ctx := cmd.Context()
			v, be, err := openVault(ctx, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			opts := vault.CollectOptions{Grace: orTiny(grace), SoftDeleteRetention: orTiny(retention)}
			rep, err := v.Collect(ctx, opts)
			if err != nil {
				return err
			}
			if out.json() {
				if err := writeJSON(env.Stdout, rep); err != nil || rep.Unreadable == 0 {
					return err
				}
				return lifeboat.Errorf(lifeboat.ECorrupt, "%d manifests or trees did not open, so nothing was deleted; run lifeboat vault check", rep.Unreadable)
			}
			fmt.Fprintf(env.Stdout, "%d points kept, %d purged; %d packs referenced, %d condemned, %d waiting for the grace period, %d deleted (%s freed)\n",
				rep.Points, len(rep.PointsPurged), rep.PacksReferenced, rep.PacksCondemned, rep.PacksWaiting, rep.PacksDeleted, fmtBytes(rep.BytesFreed))
			for _, id := range rep.PointsPurged {
				fmt.Fprintf(env.Stdout, "purged point %s\n", id[:8])
			}
			if rep.PacksRecent > 0 {
				fmt.Fprintf(env.Stdout, "%d unreferenced packs are younger than the grace period or may serve a backup in progress: a later run decides\n", rep.PacksRecent)
			}
			if rep.TempDeleted > 0 {
				fmt.Fprintf(env.Stdout, "removed %d unfinished objects of killed writers (%s)\n", rep.TempDeleted, fmtBytes(rep.TempBytesFreed))
			}
			if rep.AbandonedPurges > 0 {
				fmt.Fprintf(env.Stdout, "removed %d purge tombstones of points a hold or undelete saved after an interrupted collection\n", rep.AbandonedPurges)
			}
			if rep.Unreadable > 0 {
				return lifeboat.Errorf(lifeboat.ECorrupt, "%d manifests or trees did not open, so nothing was deleted; run lifeboat vault check", rep.Unreadable)
			}
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().DurationVar(&grace, "grace", vault.DefaultGrace, "collection grace period, by storage time")
	cmd.Flags().DurationVar(&retention, "soft-delete-retention", vault.DefaultSoftDeleteRetention, "how long forgotten points stay restorable")
	return cmd
}

// orTiny maps 0 ("no delay") to the smallest duration: the engine reads 0
// as "use the default".
func orTiny(d time.Duration) time.Duration {
	if d == 0 {
		return time.Nanosecond
	}
	return d
}

func newVaultMark(env Env, use, short, long string, kind vault.MarkKind) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var reason string
	cmd := &cobra.Command{
		Use:   use + " --vault LOCATION POINT [--reason TEXT]",
		Short: short,
		Long: long + "\nPOINT is a point id or a unique prefix of one (4+ hex digits); forget also takes\n" +
			"latest, the newest point not yet forgotten (so each forget latest takes the next)." + markExitCodeHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if args[0] == "latest" && kind != vault.MarkDelete {
				return usagef("%s needs a point id, not latest", use)
			}
			ctx := cmd.Context()
			v, be, err := openVault(ctx, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			p, err := v.LoadPoint(ctx, args[0])
			if err != nil {
				return err
			}
			by := env.Getenv("USER")
			if by == "" {
				by = "cli"
			}
			if err := v.Mark(ctx, p.ID, kind, reason, by); err != nil {
				return err
			}
			states, err := v.PointStates(ctx)
			if err != nil {
				return err
			}
			st := states[p.ID]
			if out.json() {
				return writeJSON(env.Stdout, map[string]any{"point": p.ID, "marker": kind, "state": st})
			}
			switch {
			case st.Deleted && st.Held:
				fmt.Fprintf(env.Stdout, "point %s: deleted, but held (never purged while held)\n", p.ID[:8])
			case st.Deleted:
				fmt.Fprintf(env.Stdout, "point %s: deleted; restorable until gc purges it after the soft-delete retention (lifeboat vault undelete %s)\n", p.ID[:8], p.ID[:8])
			case st.Held:
				fmt.Fprintf(env.Stdout, "point %s: held\n", p.ID[:8])
			default:
				fmt.Fprintf(env.Stdout, "point %s: live\n", p.ID[:8])
			}
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&reason, "reason", "", "why (recorded in the marker)")
	return cmd
}

func newVaultForget(env Env) *cobra.Command {
	return newVaultMark(env, "forget", "Soft-delete a point (restorable until gc purges it)",
		`Soft-delete POINT: a marker is written beside its manifest. The point stays
restorable by id, and its data is kept, until gc runs after the soft-delete
retention; "lifeboat vault undelete" cancels it. A held point cannot be
forgotten.`, vault.MarkDelete)
}

func newVaultUndelete(env Env) *cobra.Command {
	return newVaultMark(env, "undelete", "Cancel the soft deletion of a point",
		`Cancel the soft deletion of POINT, if gc has not purged it yet.`, vault.MarkUndelete)
}

func newVaultHold(env Env) *cobra.Command {
	return newVaultMark(env, "hold", "Hold a point: it cannot be forgotten or purged",
		`Hold POINT (e.g. a legal hold): it cannot be forgotten, and gc never purges it,
even if it was forgotten before, until "lifeboat vault release".`, vault.MarkHold)
}

func newVaultRelease(env Env) *cobra.Command {
	return newVaultMark(env, "release", "Release a hold on a point",
		`Release the hold on POINT.`, vault.MarkRelease)
}
