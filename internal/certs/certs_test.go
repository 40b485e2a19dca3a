package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	m, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

func isHex64(b []byte) bool { return regexp.MustCompile(`^[0-9a-f]{64}$`).Match(b) }

func TestSelfSigned(t *testing.T) {
	m := newManager(t, Options{Hostnames: []string{"media.example.com", "192.0.2.7", "localhost", "::1"}})
	if !m.SelfSigned() {
		t.Fatal("SelfSigned() = false")
	}
	cert := m.Certificate()
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.SignatureAlgorithm != x509.ECDSAWithSHA256 {
		t.Errorf("signature %v", leaf.SignatureAlgorithm)
	}
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	if life >= MaxValidity || life < DefaultValidity {
		t.Errorf("validity %v, want >= %v and < %v", life, DefaultValidity, MaxValidity)
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		t.Errorf("not valid now: %v..%v", leaf.NotBefore, leaf.NotAfter)
	}
	wantDNS := []string{"localhost", "media.example.com"}
	if strings.Join(leaf.DNSNames, ",") != strings.Join(wantDNS, ",") {
		t.Errorf("DNS SANs %v, want %v", leaf.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if strings.Join(ips, ",") != "127.0.0.1,::1,192.0.2.7" {
		t.Errorf("IP SANs %v", ips)
	}
	if leaf.IsCA || len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("usage: CA %v, ext %v", leaf.IsCA, leaf.ExtKeyUsage)
	}

	sum := sha256.Sum256(cert.Certificate[0])
	if fp := m.Fingerprint(); fp != hex.EncodeToString(sum[:]) || !isHex64([]byte(fp)) {
		t.Errorf("Fingerprint() = %q", fp)
	}
	// The certificate verifies for every name against itself as root.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "::1", "media.example.com", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("verify %s: %v", name, err)
		}
	}
	if m.NotAfter() != leaf.NotAfter {
		t.Errorf("NotAfter() = %v", m.NotAfter())
	}
}

func TestNewErrors(t *testing.T) {
	for name, o := range map[string]Options{
		"cert without key": {CertFile: "c.pem"},
		"key without cert": {KeyFile: "k.pem"},
		"too long":         {Validity: 14 * 24 * time.Hour},
		"negative":         {Validity: -time.Hour},
		"empty hostname":   {Hostnames: []string{""}},
		"missing files":    {CertFile: "/nonexistent/c.pem", KeyFile: "/nonexistent/k.pem"},
	} {
		o.Logger = quietLogger()
		if _, err := New(o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// handshake dials addr with TLS, pinning the certificate by fingerprint as a
// browser with serverCertificateHashes does, and returns the fingerprint seen.
func handshake(t *testing.T, addr string) string {
	t.Helper()
	var seen string
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		InsecureSkipVerify: true,
		ServerName:         "localhost",
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			seen = Fingerprint(raw[0])
			return nil
		},
	})
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	_ = conn.Close()
	return seen
}

func serveTLS(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				_ = c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

func TestRenewalSwapsLive(t *testing.T) {
	m := newManager(t, Options{Validity: 3 * time.Second})
	addr := serveTLS(t, m)
	first := m.Fingerprint()
	if got := handshake(t, addr); got != first {
		t.Fatalf("handshake saw %s, want %s", got, first)
	}
	changed := m.Changed()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	select {
	case <-changed:
	case <-time.After(8 * time.Second):
		t.Fatal("no renewal within 8s of a 3s certificate")
	}
	second := m.Fingerprint()
	if second == first {
		t.Fatal("fingerprint unchanged after renewal")
	}
	if got := handshake(t, addr); got != second {
		t.Errorf("after renewal handshake saw %s, want %s", got, second)
	}
	// The new certificate is fresh (X.509 times have whole seconds, so
	// allow for truncation).
	if left := time.Until(m.NotAfter()); left < time.Second {
		t.Errorf("new certificate expires in %v", left)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestRenew(t *testing.T) {
	m := newManager(t, Options{})
	first := m.Fingerprint()
	if err := m.Renew(); err != nil {
		t.Fatal(err)
	}
	if m.Fingerprint() == first {
		t.Error("Renew kept the fingerprint")
	}
}

func writePair(t *testing.T, dir string, hostnames ...string) (certFile, keyFile, fingerprint string) {
	t.Helper()
	s, err := generate(hostnames, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(s.cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile = filepath.Join(dir, "cert.pem")
	keyFile = filepath.Join(dir, "key.pem")
	// Write to temporary names and rename, as certificate tools do.
	write := func(path, typ string, der []byte) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, "PRIVATE KEY", keyDER)
	write(certFile, "CERTIFICATE", s.cert.Certificate[0])
	return certFile, keyFile, s.fingerprint
}

func TestFileCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, fp1 := writePair(t, dir, "one.example")
	m := newManager(t, Options{CertFile: certFile, KeyFile: keyFile, ReloadInterval: 20 * time.Millisecond})
	if m.SelfSigned() {
		t.Error("SelfSigned() = true with files")
	}
	if m.Fingerprint() != fp1 {
		t.Fatalf("fingerprint %s, want %s", m.Fingerprint(), fp1)
	}
	addr := serveTLS(t, m)
	if got := handshake(t, addr); got != fp1 {
		t.Fatalf("handshake saw %s", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Run(ctx) }()

	changed := m.Changed()
	_, _, fp2 := writePair(t, dir, "two.example")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("file change not picked up")
	}
	if m.Fingerprint() != fp2 {
		t.Fatalf("after reload fingerprint %s, want %s", m.Fingerprint(), fp2)
	}
	if got := handshake(t, addr); got != fp2 {
		t.Errorf("handshake after reload saw %s", got)
	}

	// A broken file is refused and the current certificate kept.
	if err := os.WriteFile(certFile, []byte("garbage, and longer than before"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if m.Fingerprint() != fp2 {
		t.Errorf("broken file replaced the certificate")
	}
	if err := m.Renew(); err == nil {
		t.Error("Renew with a broken file succeeded")
	}
}

func TestHandler(t *testing.T) {
	m := newManager(t, Options{})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	url := srv.URL + "/certificate.sha256"

	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if string(body) != m.Fingerprint() || !isHex64(body) || bytes.ContainsAny(body, "\r\n:") {
		t.Errorf("body %q, want %q exactly", body, m.Fingerprint())
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin": "*",
		"Cache-Control":               "no-store",
		"Content-Length":              "64",
	} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	req, _ := http.NewRequest(http.MethodOptions, url, nil)
	req.Header.Set("Origin", "http://example.com")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", "x-foo")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent ||
		resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") ||
		resp.Header.Get("Access-Control-Allow-Headers") != "x-foo" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}

	resp, err = http.Head(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD: %d, %d bytes", resp.StatusCode, len(body))
	}

	resp, err = http.Post(url, "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") == "" {
		t.Errorf("POST: %d", resp.StatusCode)
	}

	// The handler follows renewals.
	if err := m.Renew(); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if string(body) != m.Fingerprint() {
		t.Errorf("after renewal body %q, want %q", body, m.Fingerprint())
	}
}

func TestGetCertificateConcurrent(t *testing.T) {
	m := newManager(t, Options{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			_ = m.Renew()
		}
	}()
	for {
		select {
		case <-done:
			return
		default:
		}
		c, err := m.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || c == nil || len(c.Certificate) == 0 {
			t.Fatalf("GetCertificate: %v, %v", c, err)
		}
	}
}
