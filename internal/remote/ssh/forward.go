package ssh

import (
	"context"
	"io"
	"net"
	"sync"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Forward opens a local listener on 127.0.0.1 whose connections are carried
// through the SSH connection to remoteAddr as the remote host sees it (a
// database listening on the host's loopback, for instance): local tools
// (pg_dump, mariadb-dump) then reach a database behind SSH, and nothing is
// installed there. stop closes the listener and every forwarded connection.
func (c *Client) Forward(ctx context.Context, remoteAddr string) (localAddr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	// Check the remote end answers now, for a clear error.
	probe, err := c.conn.Dial("tcp", remoteAddr)
	if err != nil {
		ln.Close()
		return "", nil, lifeboat.Errorf(lifeboat.EUnavailable, "%s through SSH host %s: %v", remoteAddr, c.addr, err)
	}
	probe.Close()
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(n net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[n] = true
		} else {
			delete(conns, n)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			lc, err := ln.Accept()
			if err != nil {
				return
			}
			rc, err := c.conn.Dial("tcp", remoteAddr)
			if err != nil {
				lc.Close()
				continue
			}
			track(lc, true)
			track(rc, true)
			wg.Add(1)
			go func() {
				defer wg.Done()
				done := make(chan struct{}, 2)
				go func() { io.Copy(rc, lc); done <- struct{}{} }()
				go func() { io.Copy(lc, rc); done <- struct{}{} }()
				<-done
				lc.Close()
				rc.Close()
				<-done
				track(lc, false)
				track(rc, false)
			}()
		}
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ln.Close()
			mu.Lock()
			for n := range conns {
				n.Close()
			}
			mu.Unlock()
			wg.Wait()
		})
	}
	context.AfterFunc(ctx, stop)
	return ln.Addr().String(), stop, nil
}
