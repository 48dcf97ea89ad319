// Package sshtest gives tests the OpenSSH server that
// scripts/test-services.sh starts on this machine (its LIFEBOAT_TEST_SSH_*
// variables; see internal/testenv): a configuration, a client, and a
// directory the login user owns. Only test code imports it.
package sshtest

import (
	"context"
	"net"
	"os"
	"os/user"
	"strconv"
	"testing"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/remote/ssh"
	"github.com/lifeboat-vault/lifeboat/internal/testenv"
)

// Config returns the configuration of the test's server, skipping the test
// (failing it in CI) when the server's variables are not set.
func Config(t testing.TB) ssh.Config {
	t.Helper()
	env := testenv.Require(t, "LIFEBOAT_TEST_SSH_HOST", "LIFEBOAT_TEST_SSH_PORT", "LIFEBOAT_TEST_SSH_USER",
		"LIFEBOAT_TEST_SSH_KEY", "LIFEBOAT_TEST_SSH_HOSTKEY")
	key, err := os.ReadFile(env["LIFEBOAT_TEST_SSH_KEY"])
	if err != nil {
		t.Fatal(err)
	}
	return ssh.Config{
		Addr:       net.JoinHostPort(env["LIFEBOAT_TEST_SSH_HOST"], env["LIFEBOAT_TEST_SSH_PORT"]),
		User:       env["LIFEBOAT_TEST_SSH_USER"],
		PrivateKey: key,
		HostKey:    env["LIFEBOAT_TEST_SSH_HOSTKEY"],
		Timeout:    10 * time.Second,
	}
}

// Dial connects with c, closing the client when the test ends.
func Dial(t testing.TB, c ssh.Config) *ssh.Client {
	t.Helper()
	cl, err := ssh.Dial(context.Background(), c)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// SharedDir makes a temp directory the login user owns (the server runs on
// this machine: the test reads and writes the same files locally), removed
// when the test ends.
func SharedDir(t testing.TB, login string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lb-ssh-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		u, err := user.Lookup(login)
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
