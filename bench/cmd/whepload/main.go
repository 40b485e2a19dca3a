// Command whepload measures moqgate's WebRTC side against a `moqgate
// serve` child process: the latency WHIP→WHEP and RTMP→WHEP add (p50/p99,
// from send-time SEI messages in the video), and WHEP egress per core of
// server CPU with many pion viewers in this process.
//
//	go run ./bench/cmd/whepload                      # latency, then 100 viewers
//	go run ./bench/cmd/whepload -n 50,100,200 -latency=false
//
// The media is H.264 constrained baseline (ffmpeg libx264, -b:v BITRATE,
// GOP 1 s) and Opus (AAC for RTMP), made with ffmpeg beforehand. The
// server's CPU time is read from /proc/PID/stat over the measured window.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moqgate/moqgate/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "whepload:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("whepload", flag.ContinueOnError)
	bin := fs.String("moqgate", "", "moqgate binary (default: go build ./cmd/moqgate into a temporary directory)")
	counts := fs.String("n", "100", "viewer counts, comma separated (one load run each; empty: none)")
	latency := fs.Bool("latency", true, "measure WHIP→WHEP and RTMP→WHEP latency with one viewer")
	size := fs.String("size", "1280x720", "video size")
	fps := fs.Int("fps", 30, "video frame rate")
	kbps := fs.Int("bitrate", 2000, "video bit rate (kbit/s)")
	warmup := fs.Duration("warmup", 3*time.Second, "wait after the viewers connected, before measuring")
	window := fs.Duration("window", 10*time.Second, "measured steady state")
	verbose := fs.Bool("v", false, "log progress")
	config := fs.String("config", "", "moqgate config file for the server (e.g. to turn on pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var w, h int
	if _, err := fmt.Sscanf(*size, "%dx%d", &w, &h); err != nil {
		return fmt.Errorf("bad -size %q", *size)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	dir, err := os.MkdirTemp("", "whepload")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var extra []string
	if *config != "" {
		extra = append(extra, "--config", *config)
	}
	if *bin == "" {
		*bin = filepath.Join(dir, "moqgate")
		build := exec.Command("go", "build", "-o", *bin, "github.com/moqgate/moqgate/cmd/moqgate")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build moqgate: %w", err)
		}
	}
	m, err := bench.LoadWHEPMedia(dir, w, h, *fps, *kbps, 10)
	if err != nil {
		return err
	}
	fmt.Printf("media: H.264 %dx%d@%d at %.2f Mbit/s (measured), Opus / AAC\n", w, h, *fps, m.Bitrate()/1e6)
	if *latency {
		for _, rtmp := range []bool{false, true} {
			g, err := bench.StartGate(ctx, *bin, os.Stderr, extra...)
			if err != nil {
				return err
			}
			r, err := bench.MeasureLatency(ctx, g, m, rtmp, *warmup, *window)
			g.Close()
			if err != nil {
				return err
			}
			fmt.Println(r)
		}
	}
	for f := range strings.SplitSeq(*counts, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return fmt.Errorf("bad viewer count %q", f)
		}
		g, err := bench.StartGate(ctx, *bin, os.Stderr, extra...)
		if err != nil {
			return err
		}
		log.Info("load run", "viewers", n, "web", g.Web, "pid", g.PID)
		r, err := bench.RunLoad(ctx, g, m, bench.LoadConfig{Viewers: n, Warmup: *warmup, Window: *window, Logger: log})
		g.Close()
		if err != nil {
			return err
		}
		fmt.Println(r)
	}
	return nil
}
