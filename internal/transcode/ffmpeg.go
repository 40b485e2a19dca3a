package transcode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"time"
)

var errResync = errors.New("resync")

// process is what a transcoder gives the shared ffmpeg code: its logger,
// its arguments, the loops that feed ffmpeg's stdin and read its stdout
// (the feed tells the reader where the input timeline starts), and the
// CPU meter of its processes.
type process struct {
	log    *slog.Logger
	what   string // "AAC to Opus", "video": for the log
	ffmpeg string
	args   func() []string
	feed   func(ctx context.Context, w io.Writer, startc chan<- int64) error
	read   func(ctx context.Context, r io.Reader, startc <-chan int64) error
	cpu    *cpuMeter
}

// supervise runs ffmpeg until ctx ends, restarting it (with backoff) when
// it exits, and at once when the input timeline jumps.
func (p *process) supervise(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		start := time.Now()
		err := p.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errResync) {
			p.log.Info(p.what + " timeline jumped; transcoder restarted")
			backoff = time.Second
			continue
		}
		p.log.Warn(p.what+" transcoder exited; restarting", "err", err, "after", backoff)
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// runOnce runs one ffmpeg process until it, its feed or its reader ends.
func (p *process) runOnce(ctx context.Context) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(pctx, p.ffmpeg, p.args()...)
	cmd.WaitDelay = 2 * time.Second
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr tail
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	p.cpu.attach(cmd.Process.Pid)
	defer func() { p.cpu.detach(cmd.ProcessState) }() // after the Wait below

	startc := make(chan int64, 1)
	feedErr := make(chan error, 1)
	go func() {
		feedErr <- p.feed(pctx, stdin, startc)
		stdin.Close()
	}()
	readErr := make(chan error, 1)
	go func() { readErr <- p.read(pctx, stdout, startc) }()

	var result error
	select {
	case result = <-feedErr:
	case result = <-readErr:
	case <-pctx.Done():
	}
	cancel()
	werr := cmd.Wait()
	if result == nil || errors.Is(result, context.Canceled) {
		result = werr
	}
	if s := stderr.String(); s != "" && !errors.Is(result, errResync) && ctx.Err() == nil {
		result = fmt.Errorf("%w (ffmpeg: %s)", result, s)
	}
	return result
}
