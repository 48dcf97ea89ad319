package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/keys"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

// clientConfig is what `lifeboat login` saves (mode 0600).
type clientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

func configPath(env Env) string {
	if p := env.Getenv("LIFEBOAT_CONFIG"); p != "" {
		return p
	}
	if d := env.Getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "lifeboat", "cli.json")
	}
	home := env.Getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return filepath.Join(home, ".config", "lifeboat", "cli.json")
}

// serverFlags are shared by every command that talks to a server.
type serverFlags struct {
	server string
	out    outputFlag
}

func (f *serverFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "server URL (default $LIFEBOAT_SERVER, the login, or http://"+server.DefaultListen+")")
	f.out.register(cmd)
}

// client resolves the server and token: flags, then LIFEBOAT_SERVER and
// LIFEBOAT_TOKEN, then the saved login, then (on the server's own machine)
// the administrator token file in the default data directory.
func (f *serverFlags) client(env Env) (*api.Client, error) {
	if err := f.out.check(); err != nil {
		return nil, err
	}
	var saved clientConfig
	if b, err := os.ReadFile(configPath(env)); err == nil {
		if err := json.Unmarshal(b, &saved); err != nil {
			return nil, lifeboat.Errorf(lifeboat.EInvalid, "%s: %v", configPath(env), err)
		}
	}
	url := firstNonEmpty(f.server, env.Getenv("LIFEBOAT_SERVER"), saved.Server, "http://"+server.DefaultListen)
	token := firstNonEmpty(env.Getenv("LIFEBOAT_TOKEN"), saved.Token)
	if token == "" {
		path := filepath.Join(defaultDataDir(env), server.AdminTokenFile)
		if keys.CheckPrivate(path) == nil {
			if b, err := os.ReadFile(path); err == nil {
				token = strings.TrimSpace(string(b))
			}
		}
	}
	if token == "" {
		return nil, lifeboat.Errorf(lifeboat.EAuth, "no API token: run `lifeboat login --server URL` or set LIFEBOAT_TOKEN")
	}
	return api.New(url, token), nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func newLoginCmd(env Env) *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "login --server URL",
		Short: "Save the server URL and an API token (read from stdin or LIFEBOAT_TOKEN)",
		Long: `Save the server URL and an API token for the other commands, in
~/.config/lifeboat/cli.json (mode 0600). The token is read from LIFEBOAT_TOKEN
or from the first line of stdin, never from a flag.` + exitCodeHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.server == "" {
				return usagef("--server URL is required")
			}
			token := env.Getenv("LIFEBOAT_TOKEN")
			if token == "" {
				line, err := bufio.NewReader(env.Stdin).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				token = strings.TrimSpace(line)
			}
			if token == "" {
				return usagef("no token: pipe it on stdin or set LIFEBOAT_TOKEN")
			}
			c := api.New(f.server, token)
			var who lifeboat.Principal
			if err := c.Do(cmd.Context(), "GET", "/api/v1/whoami", nil, &who); err != nil {
				return err
			}
			b, _ := json.MarshalIndent(clientConfig{Server: f.server, Token: token}, "", "  ")
			path := configPath(env)
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			tmp := path + ".tmp"
			os.Remove(tmp)
			if err := keys.WriteSecretFile(tmp, b); err != nil {
				return err
			}
			if err := os.Rename(tmp, path); err != nil {
				return err
			}
			if f.out.json() {
				return writeJSON(env.Stdout, map[string]string{"server": f.server, "principal": who.Name})
			}
			fmt.Fprintf(env.Stdout, "Logged in to %s as %s (saved in %s)\n", f.server, who.Name, path)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
