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
	var user, ttl string
	var idToken, oidcLogin, noBrowser bool
	var callbackPort int
	cmd := &cobra.Command{
		Use:   "login --server URL [--user NAME | --oidc | --id-token]",
		Short: "Save the server URL and an API token (read from stdin or LIFEBOAT_TOKEN, or got by signing in)",
		Long: `Save the server URL and an API token for the other commands, in
~/.config/lifeboat/cli.json (mode 0600). The token is read from LIFEBOAT_TOKEN
or from the first line of stdin, never from a flag; with --user NAME, the
command signs in with that user's password instead (typed without echo on a
terminal, else the first line of stdin) and saves the session token it gets.

With --oidc, you sign in through your browser at the server's identity
provider (OIDC authorization code with PKCE): the command listens on
127.0.0.1 for the provider's redirect (--callback-port, if the provider
needs a fixed one), opens the browser ($BROWSER, else xdg-open; with
--no-browser it only prints the URL), and saves the session it gets (12h).
A trust rule must map your subject to your user (lifeboat trust add).` + serverExitHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.server == "" {
				return usagef("--server URL is required")
			}
			ways := 0
			for _, b := range []bool{user != "", idToken, oidcLogin} {
				if b {
					ways++
				}
			}
			if ways > 1 {
				return usagef("--user, --id-token and --oidc are different ways to sign in: pick one")
			}
			token := env.Getenv("LIFEBOAT_TOKEN")
			if oidcLogin {
				t, err := browserSignIn(cmd.Context(), env, f.server, callbackPort, !noBrowser)
				if err != nil {
					return err
				}
				token = t
			}
			if user != "" {
				pw, err := readPassphrase(env, "Password for "+user+": ")
				if err != nil {
					return err
				}
				var tc server.TokenCreated
				req := server.SignInRequest{Name: user, Password: pw}
				if ttl != "" {
					d, err := lifeboat.ParseDuration(ttl)
					if err != nil {
						return usagef("--ttl: %v", err)
					}
					req.TTL = d
				}
				if err := api.New(f.server, "").Do(cmd.Context(), "POST", "/api/v1/sessions", req, &tc); err != nil {
					return err
				}
				token = tc.Token
			}
			if idToken {
				// An OIDC ID token from the person's identity provider,
				// exchanged under a trust rule for a session of their user.
				raw := env.Getenv("LIFEBOAT_ID_TOKEN")
				if raw == "" {
					line, err := bufio.NewReader(env.Stdin).ReadString('\n')
					if err != nil && !errors.Is(err, io.EOF) {
						return err
					}
					raw = strings.TrimSpace(line)
				}
				if raw == "" {
					return usagef("--id-token: no ID token: pipe it on stdin or set LIFEBOAT_ID_TOKEN")
				}
				var ex server.ExchangeResult
				if err := api.New(f.server, "").Do(cmd.Context(), "POST", "/api/v1/token/exchange", server.ExchangeRequest{Token: raw}, &ex); err != nil {
					return err
				}
				token = ex.Token
			}
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
	cmd.Flags().StringVar(&user, "user", "", "sign in as this user with a password (typed without echo, or the first line of stdin) instead of a token")
	cmd.Flags().BoolVar(&idToken, "id-token", false, "sign in with an OIDC ID token from your identity provider (stdin or $LIFEBOAT_ID_TOKEN), exchanged under a trust rule")
	cmd.Flags().BoolVar(&oidcLogin, "oidc", false, "sign in through your browser at the server's OIDC identity provider")
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "with --oidc: print the sign-in URL instead of opening a browser")
	cmd.Flags().IntVar(&callbackPort, "callback-port", 0, "with --oidc: the loopback port for the provider's redirect (default: any free one)")
	cmd.Flags().StringVar(&ttl, "ttl", "", "with --user: how long the session token lasts (default 12h, at most 7d)")
	f.register(cmd)
	return cmd
}
