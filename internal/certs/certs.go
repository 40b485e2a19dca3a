// Package certs provides the certificate moqgate uses for QUIC and HTTPS.
//
// Without a configured certificate, a Manager makes a self-signed ECDSA
// P-256 certificate valid for 10 days (browsers accept a certificate pinned
// with WebTransport serverCertificateHashes only when its validity is under
// 14 days) and renews it at 2/3 of its lifetime. With a certificate and key
// file, it loads them and reloads them when the files change.
//
// Use GetCertificate in every tls.Config (QUIC and HTTPS) so a renewal takes
// effect for new connections at once, and serve Handler at
// /certificate.sha256 for browser clients that pin the certificate by hash.
package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults.
const (
	// DefaultValidity is the lifetime of a self-signed certificate.
	DefaultValidity = 10 * 24 * time.Hour
	// MaxValidity is the browser limit for serverCertificateHashes; a
	// self-signed certificate's whole validity must stay below it.
	MaxValidity = 14 * 24 * time.Hour
	// DefaultReloadInterval is how often configured files are checked.
	DefaultReloadInterval = 10 * time.Second
	// maxBackdate is how far before now a self-signed certificate starts, to
	// tolerate small clock differences (less for very short validities).
	maxBackdate = time.Minute
)

// Options configures a Manager.
type Options struct {
	// CertFile and KeyFile are PEM files. Both empty: self-signed.
	CertFile string
	KeyFile  string
	// Hostnames are extra DNS names or IP addresses for the self-signed
	// certificate, besides localhost, 127.0.0.1 and ::1.
	Hostnames []string
	// Validity of a self-signed certificate; 0 means DefaultValidity. It
	// must be below MaxValidity (minus the one-minute backdate).
	Validity time.Duration
	// ReloadInterval is how often Run checks configured files for changes;
	// 0 means DefaultReloadInterval.
	ReloadInterval time.Duration
	// Logger receives renewal and reload events; nil means slog.Default().
	Logger *slog.Logger
}

// state is one certificate and what is derived from it; swapped atomically.
type state struct {
	cert        *tls.Certificate
	fingerprint string
	notBefore   time.Time
	notAfter    time.Time
	fileStamp   fileStamp // configured files only
}

// Manager holds the current certificate and renews or reloads it.
type Manager struct {
	opts   Options
	log    *slog.Logger
	cur    atomic.Pointer[state]
	mu     sync.Mutex // serializes renewals and reloads
	notify chan struct{}
}

// New makes a Manager and its first certificate: it generates a self-signed
// one, or loads the configured files.
func New(opts Options) (*Manager, error) {
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("certs: cert file and key file must be given together")
	}
	if opts.Validity == 0 {
		opts.Validity = DefaultValidity
	}
	if opts.Validity < 0 || opts.Validity+maxBackdate >= MaxValidity {
		return nil, fmt.Errorf("certs: validity %s must be positive and below %s", opts.Validity, MaxValidity-maxBackdate)
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = DefaultReloadInterval
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	for _, h := range opts.Hostnames {
		if h == "" {
			return nil, errors.New("certs: empty hostname")
		}
	}
	m := &Manager{opts: opts, log: opts.Logger.With("component", "certs"), notify: make(chan struct{})}
	if err := m.refresh(); err != nil {
		return nil, err
	}
	return m, nil
}

// SelfSigned reports whether the Manager makes its own certificates.
func (m *Manager) SelfSigned() bool { return m.opts.CertFile == "" }

// GetCertificate returns the current certificate; use it as
// tls.Config.GetCertificate.
func (m *Manager) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cur.Load().cert, nil
}

// Certificate returns the current certificate.
func (m *Manager) Certificate() *tls.Certificate { return m.cur.Load().cert }

// Fingerprint returns the lowercase hex SHA-256 of the current leaf
// certificate's DER encoding, without separators.
func (m *Manager) Fingerprint() string { return m.cur.Load().fingerprint }

// NotAfter returns the expiry of the current certificate.
func (m *Manager) NotAfter() time.Time { return m.cur.Load().notAfter }

// Changed returns a channel that is closed at the next certificate change.
func (m *Manager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.notify
}

// TLSConfig returns a tls.Config (TLS 1.2+, TLS 1.3 for QUIC is enforced by
// quic-go) that serves the Manager's current certificate. Callers set
// NextProtos.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: m.GetCertificate,
	}
}

// Renew replaces the certificate now: a new self-signed one, or the
// configured files read again.
func (m *Manager) Renew() error { return m.refresh() }

// Run renews the self-signed certificate at 2/3 of its lifetime, or reloads
// changed certificate files, until ctx is done. Errors are logged and
// retried; Run returns nil when ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	for {
		wait := m.opts.ReloadInterval
		if m.SelfSigned() {
			wait = time.Until(renewAt(m.cur.Load()))
		}
		changed := m.Changed()
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-changed:
			// Renewed or reloaded by Renew: compute the next time again.
			t.Stop()
			continue
		case <-t.C:
		}
		if m.SelfSigned() {
			if err := m.refresh(); err != nil {
				m.log.Error("certificate renewal failed; retrying in 1m", "err", err)
				if !sleep(ctx, time.Minute) {
					return nil
				}
			}
			continue
		}
		st, err := stampFiles(m.opts.CertFile, m.opts.KeyFile)
		if err != nil {
			m.log.Warn("cannot check certificate files", "err", err)
			continue
		}
		if st == m.cur.Load().fileStamp {
			continue
		}
		if err := m.refresh(); err != nil {
			m.log.Error("certificate reload failed; keeping the current one", "err", err)
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// renewAt is when a self-signed certificate is renewed: 2/3 into its life.
func renewAt(s *state) time.Time {
	life := s.notAfter.Sub(s.notBefore)
	return s.notBefore.Add(life * 2 / 3)
}

// refresh makes or loads a certificate and installs it.
func (m *Manager) refresh() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var (
		s   *state
		err error
	)
	if m.SelfSigned() {
		s, err = generate(m.opts.Hostnames, m.opts.Validity)
	} else {
		s, err = load(m.opts.CertFile, m.opts.KeyFile)
	}
	if err != nil {
		return err
	}
	m.cur.Store(s)
	close(m.notify)
	m.notify = make(chan struct{})
	m.log.Info("certificate installed",
		"self_signed", m.SelfSigned(),
		"sha256", s.fingerprint,
		"not_after", s.notAfter.UTC().Format(time.RFC3339))
	return nil
}

func newState(cert *tls.Certificate, stamp fileStamp) (*state, error) {
	if len(cert.Certificate) == 0 {
		return nil, errors.New("certs: no certificate in chain")
	}
	leaf := cert.Leaf
	if leaf == nil {
		var err error
		leaf, err = x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("certs: parse certificate: %w", err)
		}
		cert.Leaf = leaf
	}
	return &state{
		cert:        cert,
		fingerprint: Fingerprint(cert.Certificate[0]),
		notBefore:   leaf.NotBefore,
		notAfter:    leaf.NotAfter,
		fileStamp:   stamp,
	}, nil
}

// Fingerprint returns the lowercase hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// generate makes a self-signed ECDSA P-256 certificate.
func generate(hostnames []string, validity time.Duration) (*state, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("certs: serial: %w", err)
	}
	now := time.Now()
	backdate := min(maxBackdate, validity/100)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "moqgate self-signed", Organization: []string{"moqgate"}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hostnames {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(tmpl.IPAddresses, ip.Equal) {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if !slices.Contains(tmpl.DNSNames, h) {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create certificate: %w", err)
	}
	return newState(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, fileStamp{})
}

// fileStamp identifies a version of the certificate and key files.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampFiles(certFile, keyFile string) (fileStamp, error) {
	c, err := os.Stat(certFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("certs: %w", err)
	}
	k, err := os.Stat(keyFile)
	if err != nil {
		return fileStamp{}, fmt.Errorf("certs: %w", err)
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// load reads a PEM certificate chain and key.
func load(certFile, keyFile string) (*state, error) {
	stamp, err := stampFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("certs: load %s and %s: %w", certFile, keyFile, err)
	}
	return newState(&cert, stamp)
}
