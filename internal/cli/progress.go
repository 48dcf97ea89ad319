package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/vault"
)

// progressBar draws one status line on a terminal: files, bytes, rate, ETA.
// It draws nothing when stderr is not a terminal (pipes stay quiet).
type progressBar struct {
	w     io.Writer
	p     *vault.Progress
	verb  string
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	on    bool
}

func startProgress(env Env, verb string, p *vault.Progress, quiet bool) *progressBar {
	b := &progressBar{w: env.Stderr, p: p, verb: verb, start: time.Now(), stop: make(chan struct{}), on: env.IsTerminal && !quiet}
	if !b.on {
		return b
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-b.stop:
				return
			case <-t.C:
				b.draw()
			}
		}
	}()
	return b
}

func (b *progressBar) draw() {
	el := time.Since(b.start)
	bytes := b.p.Bytes.Load()
	rate := float64(bytes) / max(el.Seconds(), 0.001)
	line := fmt.Sprintf("%s %s  %d files  %s  %s/s", b.verb, fmtDur(el), b.p.Files.Load(), fmtBytes(bytes), fmtBytes(int64(rate)))
	if tb := b.p.TotalBytes.Load(); b.p.ScanDone.Load() && tb > 0 {
		pct := min(100, float64(bytes)*100/float64(tb))
		eta := "?"
		if rate > 0 && tb > bytes {
			eta = fmtDur(time.Duration(float64(tb-bytes) / rate * float64(time.Second)))
		}
		line = fmt.Sprintf("%s %s  %d/%d files  %s/%s (%.0f%%)  %s/s  ETA %s", b.verb, fmtDur(el), b.p.Files.Load(), b.p.TotalFiles.Load(),
			fmtBytes(bytes), fmtBytes(tb), pct, fmtBytes(int64(rate)), eta)
	}
	if w := b.p.Warnings.Load(); w > 0 {
		line += fmt.Sprintf("  %d warnings", w)
	}
	fmt.Fprintf(b.w, "\r\x1b[K%s", line)
}

func (b *progressBar) done() {
	if !b.on {
		return
	}
	close(b.stop)
	b.wg.Wait()
	fmt.Fprint(b.w, "\r\x1b[K")
}

func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func fmtDur(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
