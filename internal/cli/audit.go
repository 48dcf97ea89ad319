package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

// auditFilters are the filters of audit list and export.
type auditFilters struct {
	app, principal, action, since, until string
}

func (f *auditFilters) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.app, "app", "", "only events about this app")
	cmd.Flags().StringVar(&f.principal, "principal", "", "only events by this principal")
	cmd.Flags().StringVar(&f.action, "action", "", `only this action, or a family ("app.", "token.*")`)
	cmd.Flags().StringVar(&f.since, "since", "", `from this time on (RFC 3339, or a duration ago: "24h", "7d")`)
	cmd.Flags().StringVar(&f.until, "until", "", "before this time (RFC 3339, or a duration ago)")
}

// query turns the filters into the API's query string.
func (f *auditFilters) query(now time.Time) (url.Values, error) {
	q := url.Values{}
	for k, v := range map[string]string{"app": f.app, "principal": f.principal, "action": f.action} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for k, v := range map[string]string{"since": f.since, "until": f.until} {
		if v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, v); err == nil {
			q.Set(k, v)
			continue
		}
		d, err := lifeboat.ParseDuration(v)
		if err != nil {
			return nil, usagef("--%s %q: want an RFC 3339 time or a duration ago (24h, 7d)", k, v)
		}
		q.Set(k, now.Add(-d.D()).UTC().Format(time.RFC3339))
	}
	return q, nil
}

// eachAuditEvent pages through the filtered trail in chain order.
func eachAuditEvent(ctx context.Context, c *api.Client, q url.Values, fn func(lifeboat.AuditEvent) error) error {
	q.Set("limit", "1000")
	for {
		var l server.List[lifeboat.AuditEvent]
		if err := c.Do(ctx, "GET", "/api/v1/audit?"+q.Encode(), nil, &l); err != nil {
			return err
		}
		for _, e := range l.Items {
			if err := fn(e); err != nil {
				return err
			}
		}
		if l.Next == "" {
			return nil
		}
		q.Set("after", l.Next)
	}
}

var auditColumns = []string{"seq", "time", "principal", "action", "target", "outcome", "source", "request_id", "detail", "hash"}

func auditRow(e lifeboat.AuditEvent) []string {
	return []string{strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339Nano), e.Actor, e.Action, e.Target, e.Outcome, e.Source, e.RequestID, string(e.Detail), e.Hash}
}

func newAuditCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "The audit trail: list, export, verify the hash chain"}
	var lf, ef, vf serverFlags
	var lfl, efl auditFilters
	list := &cobra.Command{
		Use: "list [--app A] [--principal P] [--action X] [--since T] [--until T]", Short: "List audit events, oldest first", Args: cobra.NoArgs,
		Long: "List audit events in chain order (needs audit.read)." + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			q, err := lfl.query(time.Now())
			if err != nil {
				return err
			}
			var evs []lifeboat.AuditEvent
			if err := eachAuditEvent(cmd.Context(), c, q, func(e lifeboat.AuditEvent) error { evs = append(evs, e); return nil }); err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, evs)
			}
			var rows [][]string
			for _, e := range evs {
				rows = append(rows, []string{strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339), e.Actor, e.Action, e.Target, e.Outcome, e.Source})
			}
			table(env.Stdout, "SEQ\tTIME\tPRINCIPAL\tACTION\tTARGET\tOUTCOME\tSOURCE", rows)
			return nil
		},
	}
	lfl.register(list)
	lf.register(list)
	var format, output string
	export := &cobra.Command{
		Use: "export [--format jsonl|csv] [--to FILE] [filters]", Short: "Export audit events (JSON lines or CSV), streamed", Args: cobra.NoArgs,
		Long: `Export the audit trail, or the events the filters select, in chain order:
JSON lines (one event per line, with seq, prevHash and hash, so that the
export can be checked on its own) or CSV (columns ` + fmt.Sprint(auditColumns) + `).
--to writes a new file (0600; an existing one is refused).` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" && format != "csv" {
				return usagef("--format %q: want jsonl or csv", format)
			}
			c, err := ef.client(env)
			if err != nil {
				return err
			}
			q, err := efl.query(time.Now())
			if err != nil {
				return err
			}
			var w io.Writer = env.Stdout
			var f *os.File
			if output != "" {
				if f, err = os.OpenFile(output, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return lifeboat.Errorf(lifeboat.EInvalid, "--to %s: %v", output, unwrapPathErr(err))
				}
				w = f
			}
			var write func(lifeboat.AuditEvent) error
			var cw *csv.Writer
			switch format {
			case "jsonl":
				enc := json.NewEncoder(w)
				write = func(e lifeboat.AuditEvent) error { return enc.Encode(e) }
			case "csv":
				cw = csv.NewWriter(w)
				cw.Write(auditColumns)
				write = func(e lifeboat.AuditEvent) error { return cw.Write(auditRow(e)) }
			}
			n := 0
			err = eachAuditEvent(cmd.Context(), c, q, func(e lifeboat.AuditEvent) error { n++; return write(e) })
			if cw != nil {
				cw.Flush()
				if err == nil {
					err = cw.Error()
				}
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					os.Remove(output)
				}
			}
			if err != nil {
				return err
			}
			if output != "" {
				fmt.Fprintf(env.Stderr, "%d events written to %s\n", n, output)
			}
			return nil
		},
	}
	export.Flags().StringVar(&format, "format", "jsonl", "jsonl or csv")
	export.Flags().StringVar(&output, "to", "", "write to this new file instead of stdout")
	efl.register(export)
	ef.register(export)
	var vaultName string
	verify := &cobra.Command{
		Use: "verify [--vault V]", Short: "Check the audit hash chain in the catalog and against its copies in vault storage", Args: cobra.NoArgs,
		Long: `Check the audit trail: every event's hash and link in the catalog, the
chain head against the newest event, and every vault's copy (immutable
segments in its storage) against the catalog, event by event. Names the
first broken event; exit code 7 when anything does not hold.` + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := vf.client(env)
			if err != nil {
				return err
			}
			var res server.AuditVerify
			if err := c.Do(cmd.Context(), "GET", "/api/v1/audit/verify?vault="+url.QueryEscape(vaultName), nil, &res); err != nil {
				return err
			}
			if vf.out.json() {
				if err := writeJSON(env.Stdout, res); err != nil {
					return err
				}
			} else {
				cc := res.Catalog
				if cc.Break == nil {
					fmt.Fprintf(env.Stdout, "catalog: %d events, chain intact, head at event %d\n", cc.Events, cc.Head.Seq)
				} else {
					fmt.Fprintf(env.Stdout, "catalog: BROKEN at event %d: %s\n", cc.Break.Seq, cc.Break.Reason)
				}
				for _, v := range res.Vaults {
					if v.Problem == "" {
						fmt.Fprintf(env.Stdout, "vault %s: %d events in %d segments match the catalog (newest %d)\n", v.Vault, v.Events, v.Segments, v.Newest)
					} else {
						fmt.Fprintf(env.Stdout, "vault %s: MISMATCH at event %d: %s\n", v.Vault, v.FirstBad, v.Problem)
					}
				}
			}
			if !res.OK {
				return lifeboat.Errorf(lifeboat.ECorrupt, "the audit trail does not verify")
			}
			return nil
		},
	}
	verify.Flags().StringVar(&vaultName, "vault", "", "check only this vault's copy")
	vf.register(verify)
	cmd.AddCommand(list, export, verify)
	return cmd
}

func unwrapPathErr(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
