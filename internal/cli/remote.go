package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

const serverExitHelp = `
Exit codes: 0 success, 1 the job failed (or an internal error), 2 bad usage
or input, 3 partial (the point misses some items), 4 not found, 5 not signed
in (no or bad token), 6 server or storage unreachable, 7 corruption found,
8 already exists, 9 forbidden, 10 rate limited (too many failed sign-ins),
11 waiting for a second person's approval (the request is kept; see
lifeboat approval), 130 interrupted or job cancelled.`

func table(w io.Writer, header string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// ---- status, key export, vault sync ----

func newStatusCmd(env Env) *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the server's status: vaults, key export, warnings, jobs",
		Long:  "Show the server's status: vaults, whether their keys were exported, warnings and job counts." + serverExitHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var st server.Status
			if err := c.Do(cmd.Context(), "GET", "/api/v1/status", nil, &st); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, st)
			}
			fmt.Fprintf(env.Stdout, "Server %s: ready=%v, catalog %s, jobs queued %d, running %d\n", c.BaseURL, st.Ready, st.Catalog, st.Jobs["queued"], st.Jobs["running"])
			var rows [][]string
			for _, v := range st.Vaults {
				exp := "NOT EXPORTED"
				if v.KeyExported {
					exp = "exported " + ts(*v.KeyExportedAt)
				}
				rows = append(rows, []string{v.Name, v.Location, exp})
			}
			table(env.Stdout, "VAULT\tLOCATION\tKEY", rows)
			for _, w := range st.Warnings {
				fmt.Fprintln(env.Stdout, "warning:", w)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newKeyCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "key", Short: "Vault key operations"}
	var f serverFlags
	var vaultName, kit string
	export := &cobra.Command{
		Use:   "export --vault NAME",
		Short: "Add a key slot wrapped by a passphrase you type twice, for offline restores",
		Long: `Add a key slot to the vault wrapped by a passphrase you type twice (on a
terminal; otherwise two lines of stdin), print the vault's location, and
record the export. With that passphrase and the storage alone, the offline
` + "`lifeboat vault restore`" + ` works even if this server and its data directory are
lost. Keep the passphrase away from this machine.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if vaultName == "" {
				return usagef("--vault NAME is required")
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			p1, err := readPassphrase(env, "New passphrase for vault "+vaultName+": ")
			if err != nil {
				return err
			}
			p2, err := readPassphrase(env, "Again: ")
			if err != nil {
				return err
			}
			if p1 != p2 {
				return lifeboat.Errorf(lifeboat.EInvalid, "the two passphrases differ; nothing was changed")
			}
			var kf *os.File
			if kit != "" { // before the export: a kit path that cannot be written changes nothing
				if kf, err = os.OpenFile(kit, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
					return lifeboat.Errorf(lifeboat.EInvalid, "--kit %s: %v", kit, unwrapPathErr(err))
				}
			}
			var res server.KeyExportResult
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/vaults/%s/key-export", vaultName), server.KeyExportRequest{Passphrase: p1}, &res); err != nil {
				if kf != nil {
					kf.Close()
					os.Remove(kit)
				}
				return err
			}
			if kf != nil {
				if err := writeKit(kf, kit, &res, time.Now()); err != nil {
					return fmt.Errorf("--kit %s: %w", kit, err)
				}
			}
			if f.out.json() {
				return writeJSON(env.Stdout, res)
			}
			fmt.Fprintf(env.Stdout, "Vault %s: key slot %s added.\nLocation: %s\nRestore without the server:\n  %s\n",
				res.Vault, short(res.Slot), res.Location, kitRestoreCommand(&res, ""))
			if kit != "" {
				fmt.Fprintf(env.Stdout, "Disaster kit written to %s: print it, store it away from this machine, and delete the file.\n", kit)
			}
			return nil
		},
	}
	export.Flags().StringVar(&vaultName, "vault", "", "vault name")
	var rf, lf serverFlags
	var dataKey, reencrypt, wait bool
	rotate := &cobra.Command{
		Use:   "rotate --vault NAME [--data-key [--reencrypt [--wait]]]",
		Short: "Rotate the server's key of a vault (and optionally its data key); no data rewritten unless --reencrypt",
		Long: `Rotate the server's key-encryption key of a vault: a new passphrase wraps
the vault's keys in a new key slot, checked, recorded (sealed in the catalog
and in vault-keys/), and only then is the server's previous slot deleted.
Slots exported with key export stay. No data is rewritten.

--data-key also starts a new data key: new data is sealed under it, old
data stays readable. --reencrypt then starts a job that rewrites old data
under the new key (old packs go at the next garbage collection after its
grace period); --wait follows it. See docs/access.md on what rotation does
and does not protect against.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if vaultName == "" {
				return usagef("--vault NAME is required")
			}
			if reencrypt && !dataKey {
				return usagef("--reencrypt rewrites data under a new data key: add --data-key")
			}
			c, err := rf.client(env)
			if err != nil {
				return err
			}
			var res server.KeyRotateResult
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/vaults/%s/keys/rotate", vaultName), server.KeyRotateRequest{DataKey: dataKey, Reencrypt: reencrypt}, &res); err != nil {
				return err
			}
			if !rf.out.json() {
				fmt.Fprintf(env.Stdout, "Vault %s: new key slot %s", res.Vault, short(res.NewSlot))
				if res.RetiredSlot != "" {
					fmt.Fprintf(env.Stdout, ", slot %s retired", short(res.RetiredSlot))
				}
				fmt.Fprintf(env.Stdout, "; data key version %d.\n", res.DataKey)
			}
			if res.Reencrypt != nil && wait {
				return finishJob(cmd.Context(), env, c, res.Reencrypt, true, false, rf.out.json())
			}
			if rf.out.json() {
				return writeJSON(env.Stdout, res)
			}
			if res.Reencrypt != nil {
				fmt.Fprintf(env.Stdout, "Re-encryption job %s started: lifeboat jobs show %s\n", res.Reencrypt.ID, res.Reencrypt.ID)
			}
			return nil
		},
	}
	rotate.Flags().StringVar(&vaultName, "vault", "", "vault name")
	rotate.Flags().BoolVar(&dataKey, "data-key", false, "also start a new data key version for new data")
	rotate.Flags().BoolVar(&reencrypt, "reencrypt", false, "also rewrite old data under the new data key (a job)")
	rotate.Flags().BoolVar(&wait, "wait", false, "with --reencrypt: follow the job to its end")
	rf.register(rotate)
	list := &cobra.Command{
		Use: "list --vault NAME", Short: "A vault's key slots and data key versions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if vaultName == "" {
				return usagef("--vault NAME is required")
			}
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			var res struct {
				Vault      string `json:"vault"`
				ServerSlot string `json:"serverSlot"`
				Slots      []struct {
					ID      string    `json:"ID"`
					Created time.Time `json:"Created"`
				} `json:"slots"`
				DataKeys []struct {
					Version uint32    `json:"Version"`
					Created time.Time `json:"Created"`
					Current bool      `json:"Current"`
				} `json:"dataKeys"`
			}
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/vaults/%s/keys", vaultName), nil, &res); err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, res)
			}
			var rows [][]string
			for _, s := range res.Slots {
				who := "exported or added"
				if s.ID == res.ServerSlot {
					who = "the server's"
				}
				rows = append(rows, []string{"slot", s.ID, s.Created.Format(time.RFC3339), who})
			}
			for _, d := range res.DataKeys {
				cur := ""
				if d.Current {
					cur = "current"
				}
				rows = append(rows, []string{"data key", fmt.Sprint(d.Version), d.Created.Format(time.RFC3339), cur})
			}
			table(env.Stdout, "KIND\tID\tCREATED\tNOTE", rows)
			return nil
		},
	}
	list.Flags().StringVar(&vaultName, "vault", "", "vault name")
	lf.register(list)
	export.Flags().StringVar(&kit, "kit", "", "also write a printable disaster kit to this new file (0600): location, key slot, and the commands that restore without a server")
	f.register(export)
	cmd.AddCommand(export, rotate, list, newKeyDestroyCmd(env))
	return cmd
}

// readPassphrase reads one passphrase: without echo on a terminal, else a
// line of stdin.
func readPassphrase(env Env, prompt string) (string, error) {
	if env.ReadPassword != nil {
		fmt.Fprint(env.Stderr, prompt)
		b, err := env.ReadPassword()
		fmt.Fprintln(env.Stderr)
		return string(b), err
	}
	line, err := env.stdinReader.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && line != "") {
		return "", lifeboat.Errorf(lifeboat.EInvalid, "no passphrase on stdin")
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newVaultSyncCmd(env Env) *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "sync NAME",
		Short: "Rebuild the server's list of points of vault NAME from the vault's manifests",
		Long:  "Rebuild the server's list of points of vault NAME from the vault's manifests (the vault is the truth; the catalog a cache)." + serverExitHelp,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var res server.SyncResult
			if err := c.Do(cmd.Context(), "POST", api.Path("/api/v1/vaults/%s/sync", args[0]), nil, &res); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, res)
			}
			fmt.Fprintf(env.Stdout, "Vault %s: %d points, %d stale entries forgotten\n", res.Vault, res.Points, res.Forgotten)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

// ---- hosts ----

func newHostCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "host", Short: "Register hosts and the roots Lifeboat may capture from and restore into"}
	var f serverFlags
	var roots, restoreRoots []string
	var kind, address, user, passwordFile, sslMode, keyFile, fingerprint string
	add := &cobra.Command{
		Use:   "add NAME (--root DIR... [--restore-root DIR...] | --kind ssh --address HOST:PORT --user USER --key-file FILE --fingerprint SHA256:... --root DIR... | --kind postgres|mysql --address HOST:PORT --user USER [--password-file FILE])",
		Short: "Register (or change) a host and its roots, or a database server",
		Long: `Register (or change) a host and its roots: components may capture only
paths under a --root, and restore to other places only under a
--restore-root. The server's own data directory is refused as either.

With --kind ssh, a host reached over SSH (nothing is installed on it): the
server shows the host key's fingerprint it sees; confirm it with
--fingerprint, and it is recorded: a changed key is refused from then on.
The private key is read from --key-file (0600, on the server's machine)
once and sealed. Files components on it are listed with one find and read
over SFTP; restores of them go to a local directory for now.

With --kind postgres or mysql, register a database server instead: the
server connects to it first (a wrong password or an unreachable server is
refused now), reads the password from --password-file (mode 0600, on the
server's machine) once and seals it; it is never stored in clear or shown.
--sslmode: postgres disable|allow|prefer|require|verify-ca|verify-full
(default prefer), mysql disable|require|verify.` + serverExitHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client(env)
			if err != nil {
				return err
			}
			if kind == "ssh" {
				kf := keyFile
				if kf != "" {
					kf = absAll([]string{kf})[0]
				}
				h := lifeboat.Host{Name: args[0], Kind: "ssh", Address: address, User: user, KeyFile: kf, Fingerprint: fingerprint,
					Roots: roots, RestoreRoots: restoreRoots}
				var out lifeboat.Host
				err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/hosts/%s", h.Name), h, &out)
				if fp := offeredFingerprint(err); fp != "" && h.Fingerprint == "" && env.ReadPassword != nil {
					// On a terminal: show the key and ask, as ssh does.
					fmt.Fprintf(env.Stderr, "Host %s at %s offers the host key %s.\nTrust it and record it? [y/N] ", h.Name, h.Address, fp)
					line, _ := env.stdinReader.ReadString('\n')
					if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
						return lifeboat.Errorf(lifeboat.EInvalid, "host %s not registered: its host key was not confirmed", h.Name)
					}
					h.Fingerprint = fp
					err = c.Do(cmd.Context(), "PUT", api.Path("/api/v1/hosts/%s", h.Name), h, &out)
				}
				if err != nil {
					return err
				}
				if f.out.json() {
					return writeJSON(env.Stdout, out)
				}
				fmt.Fprintf(env.Stdout, "Host %s: ssh %s@%s, host key %s recorded; roots %s\n", out.Name, out.User, out.Address, out.Fingerprint, strings.Join(out.Roots, ", "))
				return nil
			}
			if kind != "" && kind != "local" {
				host, portS, ok := strings.Cut(address, ":")
				port := 0
				if ok {
					if _, err := fmt.Sscan(portS, &port); err != nil {
						return usagef("--address %q: want HOST:PORT", address)
					}
				}
				if host == "" {
					return usagef("--address HOST[:PORT] is required for a database server")
				}
				pf := passwordFile
				if pf != "" {
					pf = absAll([]string{pf})[0]
				}
				d := lifeboat.DBServer{Name: args[0], Engine: kind, Host: host, Port: port, User: user, PasswordFile: pf, SSLMode: sslMode}
				var out lifeboat.DBServer
				if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/db-servers/%s", d.Name), d, &out); err != nil {
					return err
				}
				if f.out.json() {
					return writeJSON(env.Stdout, out)
				}
				fmt.Fprintf(env.Stdout, "Database server %s: %s %s:%d as %s (version %s)\n", out.Name, out.Engine, out.Host, out.Port, out.User, out.Version)
				return nil
			}
			h := lifeboat.Host{Name: args[0], Kind: "local", Roots: absAll(roots), RestoreRoots: absAll(restoreRoots)}
			var out lifeboat.Host
			if err := c.Do(cmd.Context(), "PUT", api.Path("/api/v1/hosts/%s", h.Name), h, &out); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, out)
			}
			fmt.Fprintf(env.Stdout, "Host %s: roots %s; restore roots %s\n", out.Name, strings.Join(out.Roots, ", "), strings.Join(out.RestoreRoots, ", "))
			return nil
		},
	}
	add.Flags().StringVar(&kind, "kind", "local", "local, ssh, or a database server: postgres or mysql")
	add.Flags().StringVar(&address, "address", "", "database server HOST:PORT")
	add.Flags().StringVar(&user, "user", "", "database user")
	add.Flags().StringVar(&passwordFile, "password-file", "", "file (mode 0600, on the server's machine) holding the database password")
	add.Flags().StringVar(&sslMode, "sslmode", "", "database TLS mode")
	add.Flags().StringVar(&keyFile, "key-file", "", "ssh: the private key to log in with (a 0600 file on the server's machine; read once and sealed)")
	add.Flags().StringVar(&fingerprint, "fingerprint", "", "ssh: the host key fingerprint (SHA256:...) you confirm; without it the server shows the one it sees")
	add.Flags().StringArrayVar(&roots, "root", nil, "a directory components may capture from (repeatable)")
	add.Flags().StringArrayVar(&restoreRoots, "restore-root", nil, "a directory restores may write into (repeatable)")
	f.register(add)
	var lf serverFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List hosts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			var l server.List[lifeboat.Host]
			if err := c.Do(cmd.Context(), "GET", "/api/v1/hosts", nil, &l); err != nil {
				return err
			}
			var dl server.List[lifeboat.DBServer]
			if err := c.Do(cmd.Context(), "GET", "/api/v1/db-servers", nil, &dl); err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, map[string]any{"hosts": l.Items, "databaseServers": dl.Items})
			}
			var rows [][]string
			for _, h := range l.Items {
				rows = append(rows, []string{h.Name, h.Kind, strings.Join(h.Roots, ","), strings.Join(h.RestoreRoots, ",")})
			}
			for _, d := range dl.Items {
				rows = append(rows, []string{d.Name, d.Engine, fmt.Sprintf("%s@%s:%d", d.User, d.Host, d.Port), ""})
			}
			table(env.Stdout, "HOST\tKIND\tROOTS/ADDRESS\tRESTORE ROOTS", rows)
			return nil
		},
	}
	lf.register(list)
	cmd.AddCommand(add, list)
	return cmd
}

func absAll(ps []string) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if a, err := filepath.Abs(p); err == nil {
			p = a
		}
		out = append(out, p)
	}
	return out
}

// ---- apply ----

// readDocuments reads YAML files (a file, or every *.yaml/*.yml of a
// directory) strictly: an unknown field or a wrong type is an error naming
// the file, line and field.
func readDocuments(path string) (*server.Document, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: %v", path, errors.Unwrap(err))
	}
	files := []string{path}
	if st.IsDir() {
		files = nil
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: no .yaml or .yml files", path)
		}
	}
	all := &server.Document{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: %v", f, errors.Unwrap(err))
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		for {
			var d server.Document
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: %s", f, yamlError(err))
			}
			all.Hosts = append(all.Hosts, d.Hosts...)
			all.DatabaseServers = append(all.DatabaseServers, d.DatabaseServers...)
			all.Vaults = append(all.Vaults, d.Vaults...)
			all.Apps = append(all.Apps, d.Apps...)
			all.Policies = append(all.Policies, d.Policies...)
		}
	}
	return all, nil
}

func yamlError(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	s = strings.TrimPrefix(s, "unmarshal errors:\n")
	s = strings.ReplaceAll(s, "\n ", ";")
	return strings.TrimSpace(strings.ReplaceAll(s, " in type lifeboat.", " in "))
}

func newApplyCmd(env Env) *cobra.Command {
	var f serverFlags
	var file string
	var dry, prune bool
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR [--dry-run] [--prune]",
		Short: "Make hosts, vaults, apps and policies match YAML files (plan shown first)",
		Long: `Make the server's hosts, vaults, apps and policies match the YAML
documents in FILE (or every .yaml/.yml file of DIR). The plan (create,
update, rename, unchanged) is shown; --dry-run stops there. Nothing is
deleted unless --prune is given (then apps not named are retired, keeping
their points, and policies and hosts not named are deleted; vaults never
are). A rename is written as renamedFrom: OLD on the app. Applying the same
files twice changes nothing.` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("-f FILE|DIR is required")
			}
			doc, err := readDocuments(file)
			if err != nil {
				return err
			}
			c, err := f.client(env)
			if err != nil {
				return err
			}
			var res server.ApplyResult
			if err := c.Do(cmd.Context(), "POST", "/api/v1/apply", server.ApplyRequest{Document: *doc, DryRun: dry, Prune: prune}, &res); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, res)
			}
			n := 0
			for _, ch := range res.Changes {
				mark := map[string]string{"create": "+", "update": "~", "rename": ">", "retire": "-", "delete": "-", "unchanged": "="}[ch.Action]
				line := fmt.Sprintf("%s %s %s", mark, ch.Kind, ch.Name)
				if ch.From != "" {
					line += " (from " + ch.From + ")"
				}
				if ch.Detail != "" {
					line += ": " + ch.Detail
				}
				fmt.Fprintln(env.Stdout, line)
				if ch.Action != "unchanged" {
					n++
				}
			}
			switch {
			case n == 0:
				fmt.Fprintln(env.Stdout, "No changes.")
			case dry:
				fmt.Fprintf(env.Stdout, "Dry run: %d changes not applied.\n", n)
			default:
				fmt.Fprintf(env.Stdout, "Applied %d changes.\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "YAML file or directory")
	cmd.Flags().BoolVar(&dry, "dry-run", false, "show the plan only")
	cmd.Flags().BoolVar(&prune, "prune", false, "retire apps and delete policies and hosts the files do not name")
	f.register(cmd)
	return cmd
}

// ---- apps and policies ----

func newAppCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "List, show and retire apps"}
	var lf, sf, df serverFlags
	var retired bool
	list := &cobra.Command{
		Use: "list", Short: "List apps", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			apps, err := listAll[*lifeboat.App](cmd.Context(), c, "/api/v1/apps?retired="+fmt.Sprint(retired))
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, apps)
			}
			var rows [][]string
			for _, a := range apps {
				var comps []string
				for _, c := range a.Components {
					comps = append(comps, c.Name+"("+c.Kind+")")
				}
				state := "active"
				if a.RetiredAt != nil {
					state = "retired"
				}
				rows = append(rows, []string{a.Name, a.Environment, a.Vault, strings.Join(comps, ","), state})
			}
			table(env.Stdout, "APP\tENV\tVAULT\tCOMPONENTS\tSTATE", rows)
			return nil
		},
	}
	list.Flags().BoolVar(&retired, "retired", false, "include retired apps")
	lf.register(list)
	show := &cobra.Command{
		Use: "show NAME", Short: "Show an app", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(env)
			if err != nil {
				return err
			}
			var a lifeboat.App
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/apps/%s", args[0]), nil, &a); err != nil {
				return err
			}
			if sf.out.json() {
				return writeJSON(env.Stdout, a)
			}
			return yamlOut(env.Stdout, a)
		},
	}
	sf.register(show)
	del := &cobra.Command{
		Use: "delete NAME", Short: "Retire an app: no more backups; its points are kept and follow retention", Args: cobra.ExactArgs(1),
		Long: "Retire an app: no more scheduled backups. Its points and storage are never deleted here: they follow retention and soft delete, and its newest point stays until an explicit purge." + serverExitHelp,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.client(env)
			if err != nil {
				return err
			}
			var a lifeboat.App
			if err := c.Do(cmd.Context(), "DELETE", api.Path("/api/v1/apps/%s", args[0]), nil, &a); err != nil {
				return err
			}
			if df.out.json() {
				return writeJSON(env.Stdout, a)
			}
			fmt.Fprintf(env.Stdout, "App %s retired; its points are kept.\n", a.Name)
			return nil
		},
	}
	df.register(del)
	cmd.AddCommand(list, show, del, newAppPurgeCmd(env))
	return cmd
}

func yamlOut(w io.Writer, v any) error {
	// Through JSON, so the field names are the API's.
	var m any
	b, err := jsonMarshal(v)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		return err
	}
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	return enc.Encode(m)
}

func listAll[T any](ctx context.Context, c *api.Client, path string) ([]T, error) {
	var out []T
	after := ""
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	for {
		var l server.List[T]
		p := path + sep + "limit=1000"
		if after != "" {
			p += "&after=" + after
		}
		if err := c.Do(ctx, "GET", p, nil, &l); err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
		if l.Next == "" {
			return out, nil
		}
		after = l.Next
	}
}

func newPolicyCmd(env Env) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "List, show and simulate policies"}
	var lf, sf, mf serverFlags
	list := &cobra.Command{
		Use: "list", Short: "List policies", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := lf.client(env)
			if err != nil {
				return err
			}
			pols, err := listAll[*lifeboat.Policy](cmd.Context(), c, "/api/v1/policies")
			if err != nil {
				return err
			}
			if lf.out.json() {
				return writeJSON(env.Stdout, pols)
			}
			var rows [][]string
			for _, p := range pols {
				sched := p.Schedule.Cron
				if sched == "" {
					sched = "every " + p.Schedule.Every.String()
				}
				sel := strings.Join(p.Apps, ",")
				for k, v := range p.Selector {
					sel += " " + k + "=" + v
				}
				rows = append(rows, []string{p.Name, sched, p.Schedule.TimeZone, retentionString(p.Retention), strings.TrimSpace(sel)})
			}
			table(env.Stdout, "POLICY\tSCHEDULE\tTZ\tRETENTION\tAPPLIES TO", rows)
			return nil
		},
	}
	lf.register(list)
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a policy", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client(env)
			if err != nil {
				return err
			}
			var p lifeboat.Policy
			if err := c.Do(cmd.Context(), "GET", api.Path("/api/v1/policies/%s", args[0]), nil, &p); err != nil {
				return err
			}
			if sf.out.json() {
				return writeJSON(env.Stdout, p)
			}
			return yamlOut(env.Stdout, p)
		},
	}
	sf.register(show)
	var app, file string
	sim := &cobra.Command{
		Use:   "simulate --app NAME [-f POLICY.yaml]",
		Short: "Show what a policy (the app's own, or one from a file) would keep and drop of an app's points",
		Long:  "Show what a policy would keep and drop of an app's points, with the reason for each kept point. Without -f, the app's current policy; with -f, the first policy of the file (a change you are about to apply)." + serverExitHelp,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if app == "" {
				return usagef("--app NAME is required")
			}
			req := server.SimulateRequest{App: app}
			if file != "" {
				doc, err := readDocuments(file)
				if err != nil {
					return err
				}
				if len(doc.Policies) == 0 {
					return lifeboat.Errorf(lifeboat.EInvalid, "%s has no policies", file)
				}
				req.Policy = &doc.Policies[0]
			}
			c, err := mf.client(env)
			if err != nil {
				return err
			}
			var res server.SimulateResult
			if err := c.Do(cmd.Context(), "POST", "/api/v1/policies/simulate", req, &res); err != nil {
				return err
			}
			if mf.out.json() {
				return writeJSON(env.Stdout, res)
			}
			var rows [][]string
			for _, p := range res.Points {
				fate := "drop"
				if p.Keep {
					fate = "keep"
				}
				rows = append(rows, []string{short(p.ID), ts(p.Time), fate, strings.Join(p.Reasons, "; ")})
			}
			table(env.Stdout, "POINT\tTIME\tFATE\tWHY", rows)
			fmt.Fprintf(env.Stdout, "Policy %s on app %s: keep %d, drop %d.\n", res.Policy, res.App, res.Keep, res.Drop)
			if res.Refused != "" {
				fmt.Fprintln(env.Stdout, "A prune would stop:", res.Refused)
			}
			return nil
		},
	}
	sim.Flags().StringVar(&app, "app", "", "app name")
	sim.Flags().StringVarP(&file, "file", "f", "", "YAML file with the policy to try")
	mf.register(sim)
	cmd.AddCommand(list, show, sim)
	return cmd
}

func retentionString(r lifeboat.Retention) string {
	var parts []string
	for _, x := range []struct {
		n    int
		name string
	}{{r.Last, "last"}, {r.Hourly, "hourly"}, {r.Daily, "daily"}, {r.Weekly, "weekly"}, {r.Monthly, "monthly"}, {r.Yearly, "yearly"}} {
		if x.n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", x.name, x.n))
		}
	}
	if r.Within > 0 {
		parts = append(parts, "within "+r.Within.String())
	}
	if len(parts) == 0 {
		return "keep all"
	}
	return strings.Join(parts, ", ")
}

// offeredFingerprint extracts the fingerprint a server asks to confirm from
// its "register it with fingerprint SHA256:..." answer ("" otherwise).
func offeredFingerprint(err error) string {
	if err == nil || lifeboat.ErrorCode(err) != lifeboat.EInvalid {
		return ""
	}
	msg := err.Error()
	const mark = "register it with fingerprint "
	i := strings.Index(msg, mark)
	if i < 0 {
		return ""
	}
	fp, _, _ := strings.Cut(msg[i+len(mark):], " ")
	if !strings.HasPrefix(fp, "SHA256:") {
		return ""
	}
	return fp
}

// kitRestoreCommand is the one command that restores the vault's newest
// point with no server (with the kit's own copy of the key slot, in the
// kit's file, when kit is set).
func kitRestoreCommand(res *server.KeyExportResult, kit string) string {
	cmd := "lifeboat vault restore --vault " + res.Location
	if res.Endpoint != "" {
		cmd += " --s3-endpoint " + res.Endpoint
	}
	if kit != "" {
		cmd += " --key-slot-file KIT-FILE"
	}
	return cmd + " --passphrase-file PASSPHRASE-FILE latest --to DIR"
}

// writeKit writes the disaster kit: everything needed to restore without
// the server, except the passphrase (which the operator keeps apart) and,
// for S3, the access keys. It carries its own copy of the key slot, which
// the passphrase unwraps: key slots are never object-locked, so the
// storage's copy may be gone.
func writeKit(f *os.File, kit string, res *server.KeyExportResult, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "LIFEBOAT DISASTER KIT — vault %s\n", res.Vault)
	fmt.Fprintf(&b, "Made %s. Print it and keep it away from the server.\n\n", now.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Vault location:   %s\n", res.Location)
	if res.Endpoint != "" {
		fmt.Fprintf(&b, "S3 endpoint:      %s\n", res.Endpoint)
		b.WriteString("S3 access keys:   not in this kit; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY\n")
	}
	fmt.Fprintf(&b, "Key slot:         %s (in the vault's storage, under keys/, and at the end of this kit)\n", res.Slot)
	b.WriteString("Passphrase:       the one typed for this export; not in this kit.\n\n")
	b.WriteString("The key slot wraps the vault's keys with that passphrase (Argon2id, then\n")
	b.WriteString("AES-256-GCM): with the storage and the passphrase alone, any machine with\n")
	b.WriteString("the lifeboat binary restores. Put the passphrase in a file (chmod 600), and\n")
	b.WriteString("this kit (or the key slot at its end, typed back) in KIT-FILE, then:\n\n")
	fmt.Fprintf(&b, "  %s\n\n", kitRestoreCommand(res, kit))
	b.WriteString("To see the points first, or restore another one:\n\n")
	list := "lifeboat vault points --vault " + res.Location
	if res.Endpoint != "" {
		list += " --s3-endpoint " + res.Endpoint
	}
	fmt.Fprintf(&b, "  %s --key-slot-file KIT-FILE --passphrase-file PASSPHRASE-FILE\n", list)
	b.WriteString("  (then the point's id instead of latest; --path SUBPATH for part of it)\n")
	if res.Endpoint != "" {
		b.WriteString("\nIf points were deleted around Lifeboat from a bucket with object lock, their\n")
		b.WriteString("data is kept behind delete markers; first:\n\n")
		fmt.Fprintf(&b, "  lifeboat vault recover-deleted --vault %s --s3-endpoint %s --dry-run\n", res.Location, res.Endpoint)
	}
	if len(res.SlotData) > 0 {
		b.WriteString("\nThe key slot (base64; --key-slot-file reads it from this kit):\n\n")
		b.WriteString(kitSlotBegin + "\n")
		enc := base64.StdEncoding.EncodeToString(res.SlotData)
		for len(enc) > 64 {
			b.WriteString(enc[:64] + "\n")
			enc = enc[64:]
		}
		b.WriteString(enc + "\n" + kitSlotEnd + "\n")
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
