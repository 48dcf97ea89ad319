package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

const versionsExitCodeHelp = `
Exit codes: 0 success, 1 internal error, 2 bad usage or input (also: the
storage keeps no versions), 6 storage unreachable, 130 interrupted.`

// versioner opens --vault's storage, which must keep object versions. No
// passphrase is needed: versions are listed and delete markers removed
// without reading what the objects hold.
func versioner(cmd *cobra.Command, env Env, f *vaultFlags) (storage.Backend, storage.Versioner, error) {
	be, err := f.openBackend(cmd.Context(), env, false)
	if err != nil {
		return nil, nil, err
	}
	vr, ok := be.(storage.Versioner)
	if !ok {
		be.Close()
		return nil, nil, lifeboat.Errorf(lifeboat.EInvalid, "%s keeps no object versions (only a versioned S3 bucket does)", be.Location())
	}
	return be, vr, nil
}

func newVaultVersions(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var prefix string
	cmd := &cobra.Command{
		Use:   "versions --vault s3://BUCKET/PREFIX [--prefix P] [-o json]",
		Short: "List the stored versions and delete markers of a vault's objects (versioned S3 buckets)",
		Long: `List every stored version and delete marker of the vault's objects. In a
bucket with object lock (compliance-mode vault locks), a delete only adds a
delete marker: the data stays behind it at least until its retain-until
date, and "lifeboat vault recover-deleted" brings it back. No passphrase is
needed.` + versionsExitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			if err := storage.CheckPrefix(prefix); err != nil {
				return usagef("--prefix: %v", err)
			}
			be, vr, err := versioner(cmd, env, &f)
			if err != nil {
				return err
			}
			defer be.Close()
			vs := []storage.Version{}
			if err := vr.ListVersions(cmd.Context(), prefix, func(v storage.Version) error { vs = append(vs, v); return nil }); err != nil {
				return err
			}
			if out.json() {
				return writeJSON(env.Stdout, vs)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "OBJECT\tVERSION\tSIZE\tTIME\tSTATE")
			deleted := 0
			for _, v := range vs {
				state := "kept"
				switch {
				case v.DeleteMarker && v.Latest:
					state, deleted = "DELETE MARKER (object hidden)", deleted+1
				case v.DeleteMarker:
					state = "delete marker"
				case v.Latest:
					state = "current"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Name, v.VersionID, fmtBytes(v.Size), v.ModTime.UTC().Format(time.RFC3339), state)
			}
			tw.Flush()
			fmt.Fprintf(env.Stdout, "%d versions; %d objects hidden by a delete marker\n", len(vs), deleted)
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&prefix, "prefix", "", "only objects whose name starts with this (e.g. points/)")
	return cmd
}

func newVaultRecoverDeleted(env Env) *cobra.Command {
	var f vaultFlags
	var out outputFlag
	var since string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "recover-deleted --vault s3://BUCKET/PREFIX [--since TIME] [--dry-run] [-o json]",
		Short: "Make deleted objects of a vault readable again from their kept versions (versioned S3 buckets)",
		Long: `Remove the delete markers that hide kept versions of the vault's objects,
so that points deleted around Lifeboat (someone with the bucket's keys) list
and restore again. With --since, only objects the storage dates as deleted
at or after TIME (RFC 3339). Key slots stay deleted (a slot removed by key
rotation must never come back): if every slot is gone, open the vault with
the disaster kit's copy, --key-slot-file KIT. Objects the collector removed
come back too; its next run removes them again. No passphrase is needed.` + versionsExitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := out.check(); err != nil {
				return err
			}
			var t time.Time
			if since != "" {
				var err error
				if t, err = time.Parse(time.RFC3339, since); err != nil {
					return usagef("--since %q: want an RFC 3339 time such as 2026-11-25T02:00:00Z", since)
				}
			}
			be, err := f.openBackend(cmd.Context(), env, false)
			if err != nil {
				return err
			}
			defer be.Close()
			rep, err := vault.Undelete(cmd.Context(), be, t, dryRun)
			if err != nil {
				return err
			}
			if out.json() {
				return writeJSON(env.Stdout, rep)
			}
			verb := "recovered"
			if dryRun {
				verb = "would recover"
			}
			for _, n := range rep.Restored {
				fmt.Fprintf(env.Stdout, "%s %s\n", verb, n)
			}
			for _, n := range rep.Skipped {
				fmt.Fprintf(env.Stdout, "left deleted %s\n", n)
			}
			fmt.Fprintf(env.Stdout, "%d objects %s, %d left deleted\n", len(rep.Restored), verb, len(rep.Skipped))
			return nil
		},
	}
	f.register(cmd)
	out.register(cmd)
	cmd.Flags().StringVar(&since, "since", "", "only objects deleted at or after this time (RFC 3339)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "say what would be recovered; change nothing")
	return cmd
}
