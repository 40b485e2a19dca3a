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

type stringList []string

func (l *stringList) String() string     { return fmt.Sprint(*l) }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgFile := fs.String("config", "", "configuration file (YAML), laid over the embedded default")
	listen := fs.String("listen", "", "web and MoQ address, TCP and UDP (default from config, :4443)")
	rtmpAddr := fs.String("rtmp", "", "RTMP ingest address (default from config, :1935)")
	webrtcUDP := fs.String("webrtc-udp", "", "WebRTC UDP address (default from config, :8189)")
	var upstreams stringList
	fs.Var(&upstreams, "upstream", "upstream relay URL to pull from (repeatable)")
	var forwards stringList
	fs.Var(&forwards, "forward", "MoQ relay URL to push local broadcasts to (repeatable; query: draft=, insecure=1, fingerprint=, jwt=)")
	jwtSecret := fs.String("jwt-secret-file", "", "turn on JWT (HS256) auth with the secret in this file")
	logLevel := fs.String("log-level", "", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	load := func() (*config.Config, error) {
		cfg, err := config.Load(*cfgFile)
		if err != nil {
			return nil, err
		}
		// Flags override the file.
		if *listen != "" {
			cfg.Listen.Addr = *listen
		}
		if *rtmpAddr != "" {
			cfg.RTMP.Addr = *rtmpAddr
		}
		if *webrtcUDP != "" {
			cfg.WebRTC.UDP = *webrtcUDP
		}
		if len(upstreams) > 0 {
			cfg.Upstreams = upstreams
		}
		for _, u := range forwards {
			cfg.Forward = append(cfg.Forward, config.Forward{URL: u})
		}
		if *jwtSecret != "" {
			cfg.Auth.Mode, cfg.Auth.JWTSecretFile = config.AuthJWT, *jwtSecret
		}
		if *logLevel != "" {
			cfg.Log.Level = *logLevel
		}
		return cfg, cfg.Validate()
	}
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
