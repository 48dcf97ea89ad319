package cli

import (
	"context"
	"fmt"
	"html"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/api"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/server"
)

// browserSignIn signs a person in through their browser (RFC 8252: a
// native app with a loopback redirect). It listens on 127.0.0.1, asks the
// server to start an OIDC sign-in redirecting there, opens the browser
// (or prints the URL), and when the issuer sends the browser back with a
// code, has the server finish the sign-in; it returns the session token.
func browserSignIn(ctx context.Context, env Env, srv string, port int, openBrowser bool) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return "", lifeboat.Errorf(lifeboat.EUnavailable, "browser sign-in: listen on 127.0.0.1:%d for the redirect: %v", port, err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://127.0.0.1:%d/oidc/callback", ln.Addr().(*net.TCPAddr).Port)
	c := api.New(srv, "")
	var st server.OIDCStart
	if err := c.Do(ctx, "POST", "/api/v1/sign-in/oidc/start", server.OIDCStartRequest{RedirectURI: redirect}, &st); err != nil {
		return "", err
	}
	type outcome struct {
		token string
		err   error
	}
	done := make(chan outcome, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /oidc/callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res outcome
		switch {
		case q.Get("state") != st.State:
			// Not our sign-in (a stale tab, or a forged request): ignored.
			http.Error(w, "This sign-in is not the one in progress.", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			res.err = lifeboat.Errorf(lifeboat.EAuth, "sign-in refused by the identity provider: %s %s", q.Get("error"), oneLineText(q.Get("error_description"), 200))
		default:
			var tc server.TokenCreated
			res.err = c.Do(r.Context(), "POST", "/api/v1/sign-in/oidc/finish", server.OIDCFinishRequest{State: q.Get("state"), Code: q.Get("code")}, &tc)
			res.token = tc.Token
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if res.err != nil {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, "<!doctype html><title>Lifeboat</title><p>Sign-in failed: %s</p>", html.EscapeString(res.err.Error()))
		} else {
			fmt.Fprint(w, "<!doctype html><title>Lifeboat</title><p>Signed in to Lifeboat. You can close this tab and go back to the terminal.</p>")
		}
		select {
		case done <- res:
		default:
		}
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer func() {
		// Let the browser get its page before the listener goes.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()

	fmt.Fprintf(env.Stderr, "Sign in through your browser at:\n\n  %s\n\nWaiting for the identity provider (until %s)...\n", st.AuthURL, st.ExpiresAt.Local().Format(time.Kitchen))
	if openBrowser {
		if err := launchBrowser(env, st.AuthURL); err != nil {
			fmt.Fprintf(env.Stderr, "(could not open a browser: %v; open the URL yourself)\n", err)
		}
	}
	wait := time.Until(st.ExpiresAt)
	if wait <= 0 || wait > 15*time.Minute {
		wait = 10 * time.Minute
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case res := <-done:
		return res.token, res.err
	case <-timer.C:
		return "", lifeboat.Errorf(lifeboat.EAuth, "browser sign-in: nothing came back from the identity provider in time; run lifeboat login --oidc again")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// launchBrowser opens url with $BROWSER (a command; the URL is its last
// argument), else the desktop's opener.
func launchBrowser(env Env, url string) error {
	var argv []string
	if b := strings.Fields(env.Getenv("BROWSER")); len(b) > 0 {
		argv = append(b, url)
	} else if runtime.GOOS == "darwin" {
		argv = []string{"open", url}
	} else {
		argv = []string{"xdg-open", url}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}

func oneLineText(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
