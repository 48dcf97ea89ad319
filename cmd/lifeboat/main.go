// Command lifeboat is the recovery vault's single binary.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"golang.org/x/term"

	"github.com/lifeboat-vault/lifeboat/internal/cli"
)

func main() {
	// A lower GC target keeps peak memory low during backups and restores
	// (measured faster too); GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// LIFEBOAT_CPUPROFILE=FILE writes a CPU profile (for performance work).
	if p := os.Getenv("LIFEBOAT_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	env := cli.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv,
		IsTerminal: term.IsTerminal(int(os.Stderr.Fd())),
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		env.ReadPassword = func() ([]byte, error) { return term.ReadPassword(int(os.Stdin.Fd())) }
	}
	code := cli.Main(ctx, os.Args[1:], env)
	stop()
	pprof.StopCPUProfile()
	os.Exit(code)
}
