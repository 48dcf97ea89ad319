package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func newIdemKey() string {
	return fmt.Sprintf("cli-%d-%s", time.Now().UnixNano(), randomSuffix())
}

// waitJob follows a job until it ends, drawing a progress line on a
// terminal, and returns the final job. The job's outcome becomes the error:
// failed -> exit 1, cancelled -> 130, a partial backup -> 3.
func waitJob(ctx context.Context, env Env, c *api.Client, j *lifeboat.Job, quiet bool) (*lifeboat.Job, error) {
	var lastLog int64
	poll := 25 * time.Millisecond
	for {
		var cur lifeboat.Job
		if err := c.Do(ctx, "GET", api.Path("/api/v1/jobs/%s", j.ID), nil, &cur); err != nil {
			return nil, err
		}
		if !quiet {
			var logs struct{ Items []lifeboat.JobLog }
			if err := c.Do(ctx, "GET", api.Path("/api/v1/jobs/%s/logs", j.ID)+fmt.Sprintf("?after=%d", lastLog), nil, &logs); err == nil {
				for _, l := range logs.Items {
					if env.IsTerminal {
						fmt.Fprint(env.Stderr, "\r\033[K")
					}
					fmt.Fprintf(env.Stderr, "%s %s\n", l.Level, l.Msg)
					lastLog = l.Seq
				}
			}
			if env.IsTerminal && cur.Progress != nil && cur.State == lifeboat.JobRunning {
				p := cur.Progress
				line := fmt.Sprintf("%s: %d files, %s, %s/s", p.Component, p.Files, fmtBytes(p.Bytes), fmtBytes(int64(p.Rate)))
				if p.TotalBytes > 0 {
					line += fmt.Sprintf(" of %s", fmtBytes(p.TotalBytes))
				}
				if p.ETA != "" {
					line += ", ETA " + p.ETA
				}
				fmt.Fprint(env.Stderr, "\r\033[K"+line)
			}
		}
		if lifeboat.JobDone(cur.State) {
			if env.IsTerminal && !quiet {
				fmt.Fprint(env.Stderr, "\r\033[K")
			}
			return &cur, jobOutcome(&cur)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(poll):
		}
		poll = min(2*poll, 500*time.Millisecond) // short jobs end fast; long ones cost little
	}
}

func jobOutcome(j *lifeboat.Job) error {
	switch j.State {
	case lifeboat.JobFailed:
		return &lifeboat.Error{Code: lifeboat.EInternal, Message: fmt.Sprintf("job %s (%s of %s) failed: %s", short(j.ID), j.Kind, j.App, j.Error)}
	case lifeboat.JobCancelled:
		return &lifeboat.Error{Code: lifeboat.EInterrupted, Message: fmt.Sprintf("job %s (%s of %s) was cancelled", short(j.ID), j.Kind, j.App)}
	}
	if j.Kind == lifeboat.JobBackup {
		var r server.BackupResult
		if json.Unmarshal(j.Result, &r) == nil && r.Partial {
			return &lifeboat.Error{Code: lifeboat.EPartial, Message: fmt.Sprintf("point %s is partial: %d items could not be read (first: %s)", short(r.Point), len(r.Warnings), firstOr(r.Warnings))}
		}
	}
	return nil
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return s[0]
}

func newBackupCmd(env Env) *cobra.Command {
	var f serverFlags
	var app, reason string
	var labels []string
	var wait, quiet bool
	cmd := &cobra.Command{
		Use:   "backup --app NAME [--reason REASON] [--label k=v]... [--wait]",
		Short: "Back up an app now (through the server)",
		Long: `Start a backup of an app. --reason sets the point's reason label
(default manual; e.g. pre-deploy). With --wait, follow it to the end and exit
with its outcome, so a pipeline can gate a deploy on it. Retries are safe:
the request carries an idempotency key.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			lm, err := parseLabels(labels)
			if err != nil {
				return err
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/backups", app), server.BackupRequest{Reason: reason, Labels: lm}, &j, "Idempotency-Key", newIdemKey()); err != nil {
				return err
			}
			return finishJob(cmd.Context(), env, c, &j, wait, quiet, f.out.json())
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	cmd.Flags().StringVar(&reason, "reason", "manual", "reason label: manual, pre-deploy, ...")
	cmd.Flags().StringArrayVar(&labels, "label", nil, "label k=v for the point (repeatable)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the backup to finish")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress or log lines")
	f.register(cmd)
	return cmd
}

func finishJob(ctx context.Context, env Env, c *api.Client, j *lifeboat.Job, wait, quiet, asJSON bool) error {
	if !wait {
		if asJSON {
			return writeJSON(env.Stdout, j)
		}
		fmt.Fprintf(env.Stdout, "Job %s (%s of %s) %s. Follow it with: lifeboat jobs logs --follow %s\n", j.ID, j.Kind, j.App, j.State, j.ID)
		return nil
	}
	done, err := waitJob(ctx, env, c, j, quiet || asJSON)
	if done == nil {
		return err
	}
	if asJSON {
		if werr := writeJSON(env.Stdout, done); werr != nil {
			return werr
		}
		return err
	}
	if done.State == lifeboat.JobSucceeded || done.Kind == lifeboat.JobRestore && len(done.Result) > 0 {
		printResult(env.Stdout, done)
	}
	return err
}

func printResult(w io.Writer, j *lifeboat.Job) {
	switch j.Kind {
	case lifeboat.JobBackup:
		var r server.BackupResult
		if json.Unmarshal(j.Result, &r) == nil {
			fmt.Fprintf(w, "Point %s of %s: %d files, %s read, %s new, in %.1f s\n", r.Point, j.App, r.Stats.Files, fmtBytes(r.Stats.BytesRead), fmtBytes(r.Stats.BytesNew), r.Seconds)
		}
	case lifeboat.JobRestore:
		var r server.RestoreResult
		if json.Unmarshal(j.Result, &r) == nil {
			if j.State != lifeboat.JobSucceeded {
				// What a failed restore did: where what it replaced is.
				if len(r.Components) == 0 && len(r.Safety) == 0 {
					return
				}
				fmt.Fprintf(w, "The restore of point %s of %s %s; what it did", short(r.Point), j.App, j.State)
			} else {
				fmt.Fprintf(w, "Restored point %s of %s in %.1f s", short(r.Point), j.App, r.Seconds)
			}
			if r.SafetyPoint != "" {
				fmt.Fprintf(w, " (safety point %s holds what was replaced)", short(r.SafetyPoint))
			}
			fmt.Fprintln(w)
			for _, c := range r.Components {
				fmt.Fprintf(w, "  %s -> %s: %d files, %s\n", c.Name, strings.Join(c.Target, ", "), c.Files, fmtBytes(c.Bytes))
				if sp := r.Safety[c.Name]; r.SafetyPoint == "" && sp != "" {
					fmt.Fprintf(w, "    safety point %s holds what was replaced\n", short(sp))
				}
				for _, k := range c.Kept {
					fmt.Fprintf(w, "    replaced data kept at %s\n", k)
				}
			}
			if r.Health != "" {
				fmt.Fprintf(w, "  health check: %s\n", r.Health)
			}
		}
	case lifeboat.JobPrune:
		var r server.PruneResult
		if json.Unmarshal(j.Result, &r) == nil {
			fmt.Fprintf(w, "Prune of %s: kept %d points, soft-deleted %d", j.App, r.Kept, len(r.SoftDeleted))
			if r.Collect != nil {
				fmt.Fprintf(w, "; garbage collection purged %d points, deleted %d packs (%s)", len(r.Collect.PointsPurged), r.Collect.PacksDeleted, fmtBytes(r.Collect.BytesFreed))
			}
			fmt.Fprintln(w)
		}
	case lifeboat.JobReencrypt:
		var r vault.ReencryptResult
		if json.Unmarshal(j.Result, &r) == nil {
			fmt.Fprintf(w, "Re-encrypted vault %s under data key %d: %d old packs read, %d blobs rewritten into %d packs, %d old packs condemned (deleted at the next collection after its grace period)\n",
				j.Vault, r.Version, r.PacksRead, r.BlobsRewritten, r.PacksWritten, r.PacksCondemned)
		}
	default:
		fmt.Fprintf(w, "Job %s %s\n", j.ID, j.State)
	}
}

func newRestoreCmd(env Env) *cobra.Command {
	var f serverFlags
	var app, point, at, to string
	var comps []string
	var dry, wait, quiet, yes bool
	cmd := &cobra.Command{
		Use:   "restore --app NAME (--point ID | --at TIME | latest) [--component NAME]... --to DIR|original [--dry-run]",
		Short: "Restore an app's point (through the server)",
		Long: `Restore a point of an app: --point ID (or a unique prefix), --at TIME
(RFC 3339: the newest complete point at or before it) or the argument
"latest". --to original puts each component back where it was captured:
free space is checked, a safety point of what will be replaced is taken,
the point is restored into a staging place next to the target and swapped
in (an atomic exchange), and the replaced data is kept until the app's
health check passes; a database component's objects are dropped and
recreated from the point (confirm with --yes after --dry-run). --to DIR
restores under a registered restore root (a database as its dump file);
--to db:SERVER/DATABASE restores one database component into a new database
on a registered server, then checks its row counts against the point.
--dry-run prints what would be created, overwritten and deleted.` + serverExitHelp,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" || to == "" {
				return usagef("--app NAME and --to DIR|original are required")
			}
			if len(args) == 1 {
				if args[0] != "latest" || point != "" {
					return usagef("the only argument is \"latest\"; use --point ID or --at TIME")
				}
				point = "latest"
			}
			if to != "original" && !strings.HasPrefix(to, "db:") {
				to = absAll([]string{to})[0]
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			req := server.RestoreRequest{Point: point, At: at, Components: comps, To: to, DryRun: dry, Confirm: yes}
			if dry {
				var plan server.RestorePlan
				if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/restores", app), req, &plan); err != nil {
					return err
				}
				if f.out.json() {
					return writeJSON(env.Stdout, plan)
				}
				fmt.Fprintf(env.Stdout, "Restore of point %s to %s would:\n", short(plan.Point), plan.To)
				for _, p := range plan.Components {
					fmt.Fprintf(env.Stdout, "  %s -> %s: create %d, overwrite %d, delete %d, unchanged %d; needs %s, %s free\n",
						p.Component, p.Target, p.Create, p.Overwrite, p.Delete, p.Unchanged, fmtBytes(p.NeedBytes), fmtBytes(p.FreeBytes))
					for _, e := range p.Examples {
						fmt.Fprintf(env.Stdout, "    %s\n", e)
					}
				}
				return nil
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/restores", app), req, &j, "Idempotency-Key", newIdemKey()); err != nil {
				return err
			}
			return finishJob(cmd.Context(), env, c, &j, wait, quiet, f.out.json())
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	cmd.Flags().StringVar(&point, "point", "", "point id or unique prefix")
	cmd.Flags().StringVar(&at, "at", "", "the newest complete point at or before this time (RFC 3339)")
	cmd.Flags().StringArrayVar(&comps, "component", nil, "restore only this component (repeatable)")
	cmd.Flags().StringVar(&to, "to", "", `"original", a directory under a registered restore root, or db:SERVER/DATABASE (a new database)`)
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm replacing a live database (restore --to original of a database component)")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "print what would be created, overwritten and deleted")
	cmd.Flags().BoolVar(&wait, "wait", true, "wait for the restore to finish")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress or log lines")
	f.register(cmd)
	return cmd
}

func newPointsCmd(env Env) *cobra.Command {
	var f serverFlags
	var app string
	var deleted bool
	cmd := &cobra.Command{
		Use:   "points --app NAME",
		Short: "List an app's recovery points, newest first",
		Long:  "List an app's recovery points, newest first." + serverExitHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			pts, err := listAll[*lifeboat.Point](cmd.Context(), c, api.Path("/api/v1/apps/%s/points", app)+fmt.Sprintf("?deleted=%v", deleted))
			if err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, pts)
			}
			var rows [][]string
			for _, p := range pts {
				state := "complete"
				if p.Partial {
					state = "partial"
				}
				if p.DeletedAt != nil {
					state = "deleted " + ts(*p.DeletedAt)
				}
				rows = append(rows, []string{short(p.ID), ts(p.Time), p.Labels["reason"], state, fmt.Sprint(p.Files), fmtBytes(p.Bytes), fmtBytes(p.BytesNew)})
			}
			table(env.Stdout, "POINT\tTIME\tREASON\tSTATE\tFILES\tSIZE\tNEW", rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	cmd.Flags().BoolVar(&deleted, "deleted", false, "include soft-deleted points")
	f.register(cmd)
	cmd.AddCommand(newUndeleteCmd(env), newDeletePointCmd(env))
	return cmd
}

func newUndeleteCmd(env Env) *cobra.Command {
	var f serverFlags
	var app string
	cmd := &cobra.Command{
		Use:   "undelete --app NAME POINT",
		Short: "Bring back a soft-deleted point (before garbage collection purges it)",
		Long:  "Bring back a point that retention soft-deleted, while it is still kept (14 days by default). The undeletion is a marker in the vault." + serverExitHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var p lifeboat.Point
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/points/%s/undelete", app, args[0]), nil, &p); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, p)
			}
			fmt.Fprintf(env.Stdout, "Point %s of %s is back.\n", short(p.ID), app)
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	f.register(cmd)
	return cmd
}

func newPruneCmd(env Env) *cobra.Command {
	var f serverFlags
	var app string
	var force, wait, quiet bool
	cmd := &cobra.Command{
		Use:   "prune --app NAME [--force] [--wait]",
		Short: "Apply the app's retention now: soft-delete what its policy drops, then collect garbage",
		Long: `Apply the app's policy to its points now (the server also does it after
every backup): points the rules drop are soft-deleted (restorable with
` + "`lifeboat points undelete`" + ` until garbage collection purges them, 14 days
later by default), then unreferenced data is collected. A prune that would
drop more than half of the app's points stops, unless --force; check first
with ` + "`lifeboat policy simulate`" + `.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/apps/%s/prunes", app), server.PruneRequest{Force: force}, &j, "Idempotency-Key", newIdemKey()); err != nil {
				return err
			}
			return finishJob(cmd.Context(), env, c, &j, wait, quiet, f.out.json())
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	cmd.Flags().BoolVar(&force, "force", false, "prune even if more than half of the points would go")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the prune to finish")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress or log lines")
	f.register(cmd)
	return cmd
}

func newDiffCmd(env Env) *cobra.Command {
	var f serverFlags
	var app string
	cmd := &cobra.Command{
		Use:   "diff --app NAME POINT1 POINT2",
		Short: "Show settings and files that differ between two points of an app",
		Long:  "Show the settings added, removed and changed, and the files changed, between two points. Secret values are never shown: only that they changed." + serverExitHelp,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var d server.DiffResult
			q := "?from=" + url.QueryEscape(args[0]) + "&to=" + url.QueryEscape(args[1])
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/apps/%s/diff", app)+q, nil, &d); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, d)
			}
			fmt.Fprintf(env.Stdout, "From %s to %s:\n", short(d.From), short(d.To))
			if len(d.Settings) == 0 && len(d.Files) == 0 {
				fmt.Fprintln(env.Stdout, "  no differences")
			}
			for _, s := range d.Settings {
				mark := map[string]string{"added": "+", "removed": "-", "changed": "~"}[s.Op]
				line := fmt.Sprintf("  %s setting %s", mark, s.Key)
				switch {
				case s.Secret:
					line += " (secret, " + s.Op + ")"
				case s.Op == "changed":
					line += fmt.Sprintf(": %q -> %q", deref(s.Old), deref(s.New))
				case s.Op == "added":
					line += fmt.Sprintf(" = %q", deref(s.New))
				}
				fmt.Fprintln(env.Stdout, line)
			}
			for _, fc := range d.Files {
				mark := map[string]string{"added": "+", "removed": "-", "changed": "~"}[fc.Op]
				fmt.Fprintf(env.Stdout, "  %s file %s\n", mark, fc.Path)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "app name")
	f.register(cmd)
	return cmd
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func newJobsCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Short: "List, show, cancel and follow jobs"}
	var lf, sf, cf, gf serverFlags
	var app, kind, state string
	list := &cobra.Command{
		Use: "list [--app NAME] [--kind KIND] [--state STATE]", Short: "List jobs, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"app": app, "kind": kind, "state": state} {
				if v != "" {
					q.Set(k, v)
				}
			}
			q.Set("limit", "50")
			var l server.List[*lifeboat.Job]
			if err := c.Do(cmd.Context(), "GET", "/api/v1/jobs?"+q.Encode(), nil, &l); err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, l.Items)
			}
			var rows [][]string
			for _, j := range l.Items {
				rows = append(rows, []string{j.ID, j.Kind, j.App + j.Vault, j.State, ts(j.CreatedAt), oneLine(j.Error)})
			}
			table(env.Stdout, "JOB\tKIND\tAPP\tSTATE\tCREATED\tERROR", rows)
			return nil
		},
	}
	list.Flags().StringVar(&app, "app", "", "only this app")
	list.Flags().StringVar(&kind, "kind", "", "only this kind (backup, restore, verify, prune)")
	list.Flags().StringVar(&state, "state", "", "only this state (queued, running, succeeded, failed, cancelled)")
	lf.register(list)
	show := &cobra.Command{
		Use: "show JOB", Short: "Show a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(env)
			if err != nil {
				return err
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/jobs/%s", args[0]), nil, &j); err != nil {
				return err
			}
			if sf.out.json() {
				return writeJSON(env.Stdout, j)
			}
			return yamlOut(env.Stdout, j)
		},
	}
	sf.register(show)
	cancel := &cobra.Command{
		Use: "cancel JOB", Short: "Cancel a job", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cf.client(env)
			if err != nil {
				return err
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/jobs/%s/cancel", args[0]), nil, &j); err != nil {
				return err
			}
			if cf.out.json() {
				return writeJSON(env.Stdout, j)
			}
			fmt.Fprintf(env.Stdout, "Job %s: %s (cancel requested)\n", j.ID, j.State)
			return nil
		},
	}
	cf.register(cancel)
	var follow bool
	logs := &cobra.Command{
		Use: "logs JOB [--follow]", Short: "Print a job's log (--follow: until it ends, with its outcome as exit code)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := gf.client(env)
			if err != nil {
				return err
			}
			var j lifeboat.Job
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/jobs/%s", args[0]), nil, &j); err != nil {
				return err
			}
			var after int64
			for {
				var l struct{ Items []lifeboat.JobLog }
				if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/jobs/%s/logs", j.ID)+fmt.Sprintf("?after=%d", after), nil, &l); err != nil {
					return err
				}
				for _, line := range l.Items {
					if gf.out.json() {
						writeJSON(env.Stdout, line)
					} else {
						fmt.Fprintf(env.Stdout, "%s %-5s %s\n", ts(line.Time), line.Level, line.Msg)
					}
					after = line.Seq
				}
				if !follow {
					return nil
				}
				if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/jobs/%s", j.ID), nil, &j); err != nil {
					return err
				}
				if lifeboat.JobDone(j.State) && len(l.Items) == 0 {
					return jobOutcome(&j)
				}
				select {
				case <-cmd.Context().Done():
					return cmd.Context().Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	logs.Flags().BoolVar(&follow, "follow", false, "follow until the job ends")
	gf.register(logs)
	cmd.AddCommand(list, show, cancel, logs)
	return cmd
}
