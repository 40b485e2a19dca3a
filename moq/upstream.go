package moq

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Relay-to-relay sessions identify themselves with the IMPLEMENTATION
// setup parameter, so that a relay never announces back to a peer what it
// learnt from a peer (loop prevention) while edges chained behind it still
// see everything.
const (
	ImplementationEdge = "moqgate-edge"
	ImplementationPeer = "moqgate-peer"
)

// UpstreamConfig names a relay to pull from (an upstream) or to exchange
// local broadcasts with (a peer).
type UpstreamConfig struct {
	// URL is moqt://host:port or https://host:port/path; its query may
	// carry jwt=TOKEN (sent as is), and fingerprint=HEX, insecure=1 or
	// draft=16, which are ours and are stripped before dialing.
	URL string
	// Peer: announce our local broadcasts to it too; broadcasts learnt
	// from a peer are never announced to other peers.
	Peer bool
	// Prefixes are the namespace prefixes to learn broadcasts under
	// (SUBSCRIBE_NAMESPACE needs at least one field). Default: "live".
	Prefixes []Namespace
	// Session configures the session (logger, limits).
	Session Config
	// RootCAs etc. for certificate verification come from Dial.
	Dial DialOptions
}

// ParseUpstreamURL splits our options (fingerprint, insecure, draft=14|16)
// off an upstream URL.
func ParseUpstreamURL(raw string) (string, DialOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", DialOptions{}, fmt.Errorf("upstream URL %q: %w", raw, err)
	}
	q := u.Query()
	var opts DialOptions
	opts.Fingerprint = q.Get("fingerprint")
	opts.Insecure = q.Get("insecure") == "1" || q.Get("insecure") == "true"
	if d := q.Get("draft"); d != "" {
		n, err := strconv.Atoi(d)
		if err == nil {
			opts.Version, err = DraftVersion(n)
		}
		if err != nil {
			return "", DialOptions{}, fmt.Errorf("upstream URL %q: draft %q: %w", raw, d, err)
		}
	}
	q.Del("fingerprint")
	q.Del("insecure")
	q.Del("draft")
	u.RawQuery = q.Encode()
	return u.String(), opts, nil
}

// RunUpstream keeps a session to an upstream relay or peer until ctx is
// done, reconnecting with backoff. The session's requests are served by
// the relay, so the upstream's PUBLISH_NAMESPACE messages register its
// broadcasts here and local subscribers' SUBSCRIBEs go to it, one per
// track.
func (r *Relay) RunUpstream(ctx context.Context, cfg UpstreamConfig) {
	log := r.log.With("upstream", redactURL(cfg.URL))
	if len(cfg.Prefixes) == 0 {
		cfg.Prefixes = []Namespace{{"live"}}
	}
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := r.upstreamOnce(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			backoff = 500 * time.Millisecond
		}
		log.Warn("upstream session ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(backoff*2, 15*time.Second)
	}
}

func (r *Relay) upstreamOnce(ctx context.Context, cfg UpstreamConfig) error {
	opts := cfg.Dial
	opts.Session = cfg.Session
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 3 * time.Second // notice a dead upstream within seconds
	}
	opts.Session.Handler = r
	if opts.Session.Logger == nil {
		opts.Session.Logger = r.log
	}
	opts.Session.Implementation = ImplementationEdge
	if cfg.Peer {
		opts.Session.Implementation = ImplementationPeer
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	s, err := Dial(dctx, cfg.URL, opts)
	cancel()
	if err != nil {
		return err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	r.mu.Lock()
	r.upstreams[s] = cfg.Peer
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.upstreams, s)
		r.mu.Unlock()
	}()
	r.log.Info("upstream connected", "upstream", redactURL(cfg.URL), "peer", cfg.Peer)
	for _, p := range cfg.Prefixes {
		ns, err := s.SubscribeNamespace(ctx, p)
		if err != nil {
			r.log.Warn("upstream refused the namespace subscription", "prefix", p.Path(), "err", err)
			continue
		}
		defer ns.Close()
	}
	if cfg.Peer {
		// Announce our local broadcasts to the peer: it subscribes to our
		// namespaces on its own session to us, which this one is not; so
		// the peer learns them there. Nothing more to do here.
		_ = cfg
	}
	<-s.Done()
	return s.Err()
}

// isRelaySession reports whether s is a session to an upstream or peer we
// dialed, and whether it is a peer.
func (r *Relay) isRelaySessionLocked(s *Session) (relay, peer bool) {
	if p, ok := r.upstreams[s]; ok {
		return true, p
	}
	impl, _ := s.PeerParams.Bytes(0x07)
	switch string(impl) {
	case ImplementationPeer:
		return true, true
	case ImplementationEdge:
		return true, false
	}
	return false, false
}

// upstreamForLocked returns a live upstream session to ask for a broadcast
// nobody announced here (on-demand pull), or nil.
func (r *Relay) upstreamForLocked() *Session {
	for s, peer := range r.upstreams {
		if !peer && s.ctx.Err() == nil {
			return s
		}
	}
	return nil
}

func redactURL(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i]
	}
	return raw
}
