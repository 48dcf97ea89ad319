package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// getMetrics: GET /metrics in the Prometheus text format: the state that
// status reports, as numbers an alerting system can watch.
func (s *Server) getMetrics(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	ctx := r.Context()
	st, err := s.status(ctx)
	if err != nil {
		return err
	}
	var head catalog.AuditHead
	var pending int
	err = s.db.View(ctx, func(tx *catalog.Tx) error {
		var err error
		if head, err = tx.AuditHead(ctx); err != nil {
			return err
		}
		docs, err := tx.Approvals(ctx, ApprovalPending)
		pending = len(docs)
		return err
	})
	if err != nil {
		return err
	}
	var b strings.Builder
	gauge := func(name, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
	}
	gauge("lifeboat_ready", "1 when the server is serving and its catalog reachable.")
	fmt.Fprintf(&b, "lifeboat_ready %d\n", b2i(st.Ready))
	gauge("lifeboat_vault_key_age_seconds", "Age of each vault's key-encryption key (made or last rotated).")
	for _, v := range st.Vaults {
		fmt.Fprintf(&b, "lifeboat_vault_key_age_seconds{vault=%q} %d\n", v.Name, int64(v.KeyAge.D().Seconds()))
	}
	gauge("lifeboat_vault_key_exported", "1 when the vault's key was exported for offline restores.")
	for _, v := range st.Vaults {
		fmt.Fprintf(&b, "lifeboat_vault_key_exported{vault=%q} %d\n", v.Name, b2i(v.KeyExported))
	}
	gauge("lifeboat_warnings", "Warnings status shows (keys past rotation, apps past RPO, unexported keys, break-glass uses...).")
	fmt.Fprintf(&b, "lifeboat_warnings %d\n", len(st.Warnings))
	gauge("lifeboat_jobs", "Jobs by state.")
	states := make([]string, 0, len(st.Jobs))
	for k := range st.Jobs {
		states = append(states, k)
	}
	sort.Strings(states)
	for _, k := range states {
		fmt.Fprintf(&b, "lifeboat_jobs{state=%q} %d\n", k, st.Jobs[k])
	}
	gauge("lifeboat_audit_events", "Sequence number of the newest audit event (the chain's head).")
	fmt.Fprintf(&b, "lifeboat_audit_events %d\n", head.Seq)
	gauge("lifeboat_approvals_pending", "Requests waiting for a second person's approval.")
	fmt.Fprintf(&b, "lifeboat_approvals_pending %d\n", pending)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, err = w.Write([]byte(b.String()))
	return err
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
