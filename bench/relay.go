package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moqgate/moqgate/internal/certs"
	"github.com/moqgate/moqgate/moq"
)

// RelayChildEnv, set to "1" in a process's environment, makes
// MaybeRunRelayChild turn that process into a relay child. The benchmark's
// TestMain and cmd/fanout re-execute their own binary with it, so that the
// relay's CPU time is its own process's and can be measured apart from the
// load generator's.
const RelayChildEnv = "MOQGATE_BENCH_RELAY_CHILD"

// RelayUpstreamEnv, set in a relay child's environment to an upstream URL
// (moqt://HOST:PORT/?insecure=1), makes the child an edge: it pulls the
// broadcasts under "bench" and "live" from that relay (moq.Relay.RunUpstream).
const RelayUpstreamEnv = "MOQGATE_BENCH_RELAY_UPSTREAM"

// MaybeRunRelayChild runs the relay child and exits when RelayChildEnv is
// set; otherwise it returns at once. Call it first thing in main or
// TestMain.
func MaybeRunRelayChild() {
	if os.Getenv(RelayChildEnv) != "1" {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := RunRelayChild(context.Background(), os.Stdin, os.Stdout, log); err != nil {
		log.Error("relay child failed", "err", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// RunRelayChild serves a moq.Relay on 127.0.0.1 (an ephemeral UDP port,
// self-signed ECDSA certificate) and speaks a line protocol: it first
// writes "addr HOST:PORT", then answers the commands read from in:
//
//	stats            -> "stats USER_NS SYS_NS MALLOCS TOTAL_ALLOC_BYTES NUM_GC"
//	sessions         -> "sessions RELAY_OBJS_OUT RELAY_BYTES_OUT OBJS_IN BYTES_IN
//	                    OBJS_OUT BYTES_OUT": payload counters of the sessions
//	                    it served, those to relays (edges) apart (SessionStats)
//	profile PATH     -> "ok" or "err ...": CPU profile to PATH until
//	                    "stopprofile", and an allocation profile to PATH.allocs0
//	stopprofile      -> "ok": ends the CPU profile, allocation profile to
//	                    PATH.allocs1 (go tool pprof -sample_index=alloc_space
//	                    -base PATH.allocs0 PATH.allocs1 shows the window's)
//	trace PATH       -> "ok" or "err ...": runtime/trace to PATH until
//	                    "stoptrace" -> "ok"
//
// With FloorChildEnv set it serves the plain quic-go floor instead of the
// relay (see RunFloor), with the same commands.
//
// It shuts the relay down and returns when in reaches EOF.
func RunRelayChild(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cm, err := certs.New(certs.Options{Logger: log})
	if err != nil {
		return err
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer pc.Close()
	relay := moq.NewRelay(moq.RelayConfig{Logger: log})
	tally := newSessionTally(relay)
	srv := &moq.Server{Handler: tally, TLSConfig: cm.TLSConfig(), Logger: log}
	served := make(chan error, 1)
	if os.Getenv(FloorChildEnv) == "1" {
		go func() { served <- serveFloor(ctx, pc, cm.TLSConfig(), log) }()
	} else {
		go func() { served <- srv.Serve(ctx, pc) }()
	}
	if up := os.Getenv(RelayUpstreamEnv); up != "" {
		u, opts, err := moq.ParseUpstreamURL(up)
		if err != nil {
			return err
		}
		go relay.RunUpstream(ctx, moq.UpstreamConfig{URL: u, Dial: opts, Prefixes: []moq.Namespace{{"bench"}, {"live"}}})
	}

	w := bufio.NewWriter(out)
	reply := func(format string, args ...any) error {
		fmt.Fprintf(w, format+"\n", args...)
		return w.Flush()
	}
	if err := reply("addr %s", pc.LocalAddr()); err != nil {
		return err
	}
	var prof *os.File
	var profPath string
	stopProfile := func() error {
		if prof == nil {
			return nil
		}
		pprof.StopCPUProfile()
		err := prof.Close()
		prof = nil
		return errors.Join(err, writeAllocs(profPath+".allocs1"))
	}
	defer stopProfile()
	var traceFile *os.File
	stopTrace := func() error {
		if traceFile == nil {
			return nil
		}
		trace.Stop()
		err := traceFile.Close()
		traceFile = nil
		return err
	}
	defer stopTrace()

	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		var err error
		switch cmd {
		case "stats":
			var ru syscall.Rusage
			if rerr := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); rerr != nil {
				err = reply("err getrusage: %v", rerr)
				break
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			err = reply("stats %d %d %d %d %d", ru.Utime.Nano(), ru.Stime.Nano(), ms.Mallocs, ms.TotalAlloc, ms.NumGC)
		case "sessions":
			err = reply("sessions %s", tally.stats())
		case "profile":
			if prof != nil {
				err = reply("err a profile is running")
				break
			}
			f, ferr := os.Create(arg)
			if ferr != nil {
				err = reply("err %v", ferr)
				break
			}
			if perr := errors.Join(writeAllocs(arg+".allocs0"), pprof.StartCPUProfile(f)); perr != nil {
				f.Close()
				err = reply("err %v", perr)
				break
			}
			prof, profPath = f, arg
			err = reply("ok")
		case "trace":
			if traceFile != nil {
				err = reply("err a trace is running")
				break
			}
			f, ferr := os.Create(arg)
			if ferr == nil {
				if ferr = trace.Start(f); ferr != nil {
					f.Close()
				}
			}
			if ferr != nil {
				err = reply("err %v", ferr)
				break
			}
			traceFile = f
			err = reply("ok")
		case "stoptrace":
			if terr := stopTrace(); terr != nil {
				err = reply("err %v", terr)
				break
			}
			err = reply("ok")
		case "stopprofile":
			if perr := stopProfile(); perr != nil {
				err = reply("err %v", perr)
				break
			}
			err = reply("ok")
		default:
			err = reply("err unknown command %q", cmd)
		}
		if err != nil {
			return err
		}
	}
	sctx, scancel := context.WithTimeout(context.Background(), time.Second)
	srv.Shutdown(sctx)
	scancel()
	cancel()
	return <-served
}

// writeAllocs writes the allocation profile (everything since the start).
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // up-to-date statistics
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// RelayStats is a snapshot of a relay child's resource use.
type RelayStats struct {
	// CPU is user plus system time (getrusage RUSAGE_SELF), SysCPU the
	// system part (0 from ProcCPU).
	CPU, SysCPU time.Duration
	// Mallocs and AllocBytes are the Go heap allocations so far.
	Mallocs, AllocBytes uint64
	NumGC               uint32
}

// RelayProcess is a relay child started by StartRelayProcess.
type RelayProcess struct {
	// Addr is the relay's UDP address.
	Addr string

	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	mu    sync.Mutex
	done  chan error
}

// StartRelayProcess runs exe (a binary that calls MaybeRunRelayChild) as a
// relay child and waits for its address. Its standard error goes to
// stderr (may be nil); env adds to its environment (e.g. RelayUpstreamEnv).
func StartRelayProcess(ctx context.Context, exe string, stderr io.Writer, env ...string) (*RelayProcess, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), RelayChildEnv+"=1",
		// The loopback benchmark does not need the 7 MB socket buffers
		// quic-go asks for; don't print the warning when refused.
		"QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start relay child: %w", err)
	}
	p := &RelayProcess{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), done: make(chan error, 1)}
	type result struct {
		line string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		l, err := p.out.ReadString('\n')
		ch <- result{l, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-ctx.Done():
		r.err = ctx.Err()
	case <-time.After(30 * time.Second):
		r.err = errors.New("no address after 30 s")
	}
	if r.err == nil {
		var ok bool
		p.Addr, ok = strings.CutPrefix(strings.TrimSpace(r.line), "addr ")
		if !ok {
			r.err = fmt.Errorf("unexpected first line %q", r.line)
		}
	}
	go func() { p.done <- cmd.Wait() }()
	if r.err != nil {
		p.Close()
		return nil, fmt.Errorf("relay child: %w", r.err)
	}
	return p, nil
}

func (p *RelayProcess) command(cmd string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, cmd+"\n"); err != nil {
		return "", fmt.Errorf("relay child: %w", err)
	}
	l, err := p.out.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("relay child: %w", err)
	}
	l = strings.TrimSpace(l)
	if msg, ok := strings.CutPrefix(l, "err "); ok {
		return "", fmt.Errorf("relay child: %s", msg)
	}
	return l, nil
}

// Stats asks the child for its resource use.
func (p *RelayProcess) Stats() (RelayStats, error) {
	l, err := p.command("stats")
	if err != nil {
		return RelayStats{}, err
	}
	f := strings.Fields(l)
	if len(f) != 6 || f[0] != "stats" {
		return RelayStats{}, fmt.Errorf("relay child: bad stats line %q", l)
	}
	var v [5]uint64
	for i := range v {
		if v[i], err = strconv.ParseUint(f[i+1], 10, 64); err != nil {
			return RelayStats{}, fmt.Errorf("relay child: bad stats line %q", l)
		}
	}
	return RelayStats{CPU: time.Duration(v[0] + v[1]), SysCPU: time.Duration(v[1]), Mallocs: v[2], AllocBytes: v[3], NumGC: uint32(v[4])}, nil
}

// StartProfile starts a CPU profile of the child, written to path.
func (p *RelayProcess) StartProfile(path string) error {
	_, err := p.command("profile " + path)
	return err
}

// StartTrace starts a runtime/trace of the child, written to path.
func (p *RelayProcess) StartTrace(path string) error {
	_, err := p.command("trace " + path)
	return err
}

// StopTrace ends the trace.
func (p *RelayProcess) StopTrace() error {
	_, err := p.command("stoptrace")
	return err
}

// StopProfile ends the CPU profile.
func (p *RelayProcess) StopProfile() error {
	_, err := p.command("stopprofile")
	return err
}

// Close stops the child (it shuts down when its stdin closes) and waits
// for it, killing it after a few seconds.
func (p *RelayProcess) Close() error {
	p.stdin.Close()
	select {
	case err := <-p.done:
		return err
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		return <-p.done
	}
}

// ProcCPU returns the user plus system CPU time of any local process from
// /proc/PID/stat (10 ms resolution: USER_HZ is 100 on Linux), for relays
// that don't speak the child protocol, such as `moqgate serve`.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: fields count from the
	// last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat: %w", pid, err)
	}
	const userHZ = 100
	return time.Duration(ut+st) * (time.Second / userHZ), nil
}
