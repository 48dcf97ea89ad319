package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

const defaultHookTimeout = 5 * time.Minute

// maxHookOutput bounds what of a hook's output goes into the job log.
const maxHookOutput = 64 << 10

// validateHooks checks an app's hooks against its hosts' registered
// commands.
func validateHooks(a *lifeboat.App, hosts map[string]*lifeboat.Host) error {
	for i := range a.Hooks {
		h := &a.Hooks[i]
		where := fmt.Sprintf("app %s, hook %d (%s %s)", a.Name, i+1, h.When, h.Command)
		switch h.When {
		case lifeboat.PreBackup, lifeboat.PostBackup, lifeboat.PreRestore, lifeboat.PostRestore:
		default:
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: when %q: want pre-backup, post-backup, pre-restore or post-restore", where, h.When)
		}
		if h.OnFailure != "" && h.OnFailure != "abort" && h.OnFailure != "warn" {
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: onFailure %q: want abort or warn", where, h.OnFailure)
		}
		if h.Host == "" {
			h.Host = "local"
		}
		host := hosts[h.Host]
		if host == nil {
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: host %q is not registered", where, h.Host)
		}
		if h.Component != "" {
			if _, ok := findComponent(a, h.Component); !ok {
				return lifeboat.Errorf(lifeboat.EInvalid, "%s: the app has no component %q", where, h.Component)
			}
		}
		if _, ok := host.Commands[h.Command]; !ok {
			return lifeboat.Errorf(lifeboat.EInvalid, "%s: host %s has no registered command %q (commands are registered with the host, by who may register hosts)", where, h.Host, h.Command)
		}
	}
	return nil
}

func validateHostCommands(h *lifeboat.Host) error {
	for name, c := range h.Commands {
		if err := validName("command", name); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		if len(c.Argv) == 0 || !strings.HasPrefix(c.Argv[0], "/") {
			return lifeboat.Errorf(lifeboat.EInvalid, "host %s, command %s: argv must start with an absolute program path", h.Name, name)
		}
		for k := range c.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				return lifeboat.Errorf(lifeboat.EInvalid, "host %s, command %s: bad environment name %q", h.Name, name, k)
			}
		}
	}
	return nil
}

// runHooks runs the app's hooks of one moment, in order. A failing hook
// with onFailure abort fails the job, naming the hook; with warn it is
// logged and the job goes on.
//
// comps are the components the job takes or restores (nil: all of them):
// a component's hook runs only when its component is one of them.
func (s *Server) runHooks(ctx context.Context, r *jobs.Run, a *lifeboat.App, when string, comps []string) error {
	g, err := s.guard(ctx)
	if err != nil {
		return err
	}
	for i, h := range a.Hooks {
		if h.When != when || (h.Component != "" && comps != nil && !slices.Contains(comps, h.Component)) {
			continue
		}
		name := fmt.Sprintf("%s hook %d (%s on %s)", when, i+1, h.Command, hostName(h.Host))
		if h.Component != "" {
			name = fmt.Sprintf("%s hook %d of component %s (%s on %s)", when, i+1, h.Component, h.Command, hostName(h.Host))
		}
		host := g.Hosts[hostName(h.Host)]
		var cmd lifeboat.HostCommand
		ok := false
		if host != nil {
			cmd, ok = host.Commands[h.Command]
		}
		switch {
		case !ok:
			err = lifeboat.Errorf(lifeboat.EInvalid, "%s: the command is no longer registered on the host", name)
		case host.Kind == "ssh":
			err = s.runRemoteHook(ctx, r, a, host, name, cmd, h, when)
		default:
			err = s.runHook(ctx, r, a, name, cmd, h, when)
		}
		if err == nil {
			continue
		}
		if h.OnFailure == "warn" {
			r.Logf(ctx, "warn", "%v (onFailure: warn; going on)", err)
			continue
		}
		return err
	}
	return nil
}

func hostName(h string) string {
	if h == "" {
		return "local"
	}
	return h
}

func (s *Server) runHook(ctx context.Context, r *jobs.Run, a *lifeboat.App, name string, c lifeboat.HostCommand, h lifeboat.Hook, when string) error {
	timeout := h.Timeout.D()
	if timeout <= 0 {
		timeout = defaultHookTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(hctx, c.Argv[0], c.Argv[1:]...)
	cmd.Dir = c.Dir
	// A minimal environment: never the server's own (it may hold secrets).
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C",
		"LIFEBOAT_APP=" + a.Name, "LIFEBOAT_HOOK=" + when, "LIFEBOAT_JOB=" + r.Job.ID}
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+c.Env[k])
	}
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the whole group is killed on timeout
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitWriter{w: &out, n: maxHookOutput}, &limitWriter{w: &out, n: maxHookOutput}
	cmd.Stdin = nil
	start := time.Now()
	err := cmd.Run()
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
		return lifeboat.Errorf(lifeboat.EInvalid, "%s: %s not found", name, c.Argv[0])
	}
	return hookOutcome(ctx, hctx, r, name, &out, start, timeout, err)
}

// hookOutcome logs a hook's output line by line and turns its end into
// the job's: done, timed out, or failed, naming the hook.
func hookOutcome(ctx, hctx context.Context, r *jobs.Run, name string, out *bytes.Buffer, start time.Time, timeout time.Duration, err error) error {
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			r.Logf(ctx, "info", "%s: %s", name, line)
		}
	}
	switch {
	case err == nil:
		r.Logf(ctx, "info", "%s done in %s", name, time.Since(start).Round(time.Millisecond))
		return nil
	case errors.Is(hctx.Err(), context.DeadlineExceeded):
		return lifeboat.Errorf(lifeboat.EInvalid, "%s timed out after %s", name, timeout)
	default:
		return lifeboat.Errorf(lifeboat.EInvalid, "%s failed: %v", name, err)
	}
}

// limitWriter keeps the first n bytes.
type limitWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// runRemoteHook runs a registered command on an SSH host: the argument
// vector is quoted for the remote shell (never interpolated), through env(1)
// for the variables and the directory; nothing is installed there.
func (s *Server) runRemoteHook(ctx context.Context, r *jobs.Run, a *lifeboat.App, host *lifeboat.Host, name string, c lifeboat.HostCommand, h lifeboat.Hook, when string) error {
	timeout := h.Timeout.D()
	if timeout <= 0 {
		timeout = defaultHookTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cl, err := s.dialSSH(hctx, host)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer cl.Close()
	argv := []string{"env"}
	if c.Dir != "" {
		argv = append(argv, "-C", c.Dir)
	}
	argv = append(argv, "LIFEBOAT_APP="+a.Name, "LIFEBOAT_HOOK="+when, "LIFEBOAT_JOB="+r.Job.ID)
	keys := make([]string, 0, len(c.Env))
	for k := range c.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		argv = append(argv, k+"="+c.Env[k])
	}
	argv = append(argv, c.Argv...)
	var out bytes.Buffer
	start := time.Now()
	err = cl.Run(hctx, argv, nil, &limitWriter{w: &out, n: maxHookOutput})
	return hookOutcome(ctx, hctx, r, name, &out, start, timeout, err)
}
