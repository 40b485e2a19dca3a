package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/moqgate/moqgate/internal/config"
	"github.com/moqgate/moqgate/internal/server"
)

// optString is a string flag that knows whether it was given (even as
// ""), so that an empty value can turn a listener off.
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string     { return o.v }
func (o *optString) Set(v string) error { o.v, o.set = v, true; return nil }

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// serveFlags are serve's flags; help prints them too.
type serveFlags struct {
	cfgFile, listen, rtmpAddr, webrtcUDP, jwtSecret, logLevel, record string
	srtAddr                                                           optString
	upstreams, forwards                                               stringList
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cfgFile, "config", "", "configuration file (YAML), laid over the embedded default")
	fs.StringVar(&f.listen, "listen", "", "web and MoQ address, TCP and UDP (default from config, :4443)")
	fs.StringVar(&f.rtmpAddr, "rtmp", "", "RTMP ingest address (default from config, :1935)")
	fs.StringVar(&f.webrtcUDP, "webrtc-udp", "", "WebRTC UDP address (default from config, :8189)")
	fs.Var(&f.srtAddr, "srt", `SRT UDP address (default from config, :8890; "" disables SRT)`)
	fs.Var(&f.upstreams, "upstream", "upstream relay URL to pull from (repeatable)")
	fs.Var(&f.forwards, "forward", "MoQ relay URL to push local broadcasts to (repeatable; query: draft=, insecure=1, fingerprint=, jwt=)")
	fs.StringVar(&f.jwtSecret, "jwt-secret-file", "", "turn on JWT (HS256) auth with the secret in this file")
	fs.StringVar(&f.record, "record", "", "record broadcasts into this directory (the config's record: section for more)")
	fs.StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (default from config, info)")
}

// load reads the config file and lays the flags over it.
func (f *serveFlags) load() (*config.Config, error) {
	cfg, err := config.Load(f.cfgFile)
	if err != nil {
		return nil, err
	}
	if f.listen != "" {
		cfg.Listen.Addr = f.listen
	}
	if f.rtmpAddr != "" {
		cfg.RTMP.Addr = f.rtmpAddr
	}
	if f.webrtcUDP != "" {
		cfg.WebRTC.UDP = f.webrtcUDP
	}
	if f.srtAddr.set {
		cfg.SRT.Addr = f.srtAddr.v
	}
	if len(f.upstreams) > 0 {
		cfg.Upstreams = f.upstreams
	}
	for _, u := range f.forwards {
		cfg.Forward = append(cfg.Forward, config.Forward{URL: u})
	}
	if f.jwtSecret != "" {
		cfg.Auth.Mode, cfg.Auth.JWTSecretFile = config.AuthJWT, f.jwtSecret
	}
	if f.record != "" {
		cfg.Record.Dir = f.record
	}
	if f.logLevel != "" {
		cfg.Log.Level = f.logLevel
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: moqgate serve [flags]\n  flags override the config file, which is laid over the embedded default")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	load := f.load
	cfg, err := load()
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.Log.SlogLevel())
	srv, err := server.New(cfg, log)
	if err != nil {
		return err
	}
	// SIGHUP reloads what can change live (auth keys, limits).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			cfg, err := load()
			if err == nil {
				err = srv.Reload(cfg)
			}
			if err != nil {
				log.Error("reload failed; keeping the current configuration", "err", err)
			}
		}
	}()
	return srv.Run(ctx)
}
