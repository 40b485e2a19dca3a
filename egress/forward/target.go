// Package forward pushes local broadcasts into other MoQ relays (another
// moqgate, a MoQ CDN): per target one supervised session, reconnected with
// backoff and jitter, over which each matching local broadcast is
// announced (PUBLISH_NAMESPACE, the target subscribing to what it wants)
// or pushed track by track (PUBLISH). Objects go out from the relay's own
// caches, so they keep their group and object IDs, and a slow target
// loses groups without holding up anyone else.
package forward

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/moqgate/moqgate/moq"
)

// Modes of a target.
const (
	ModeAnnounce = "announce" // PUBLISH_NAMESPACE; the target subscribes
	ModePublish  = "publish"  // PUBLISH every track
	ModeAuto     = "auto"     // announce; PUBLISH if the target refuses announcements
)

// Target is one relay to forward to.
type Target struct {
	// URL is moqt://host:port[/path] or https://host:port/path; its query
	// may carry our fingerprint=, insecure=1 and draft= options as for
	// upstreams.
	URL string
	// Draft is 14, 16 or 17 (0: from the URL, else 14).
	Draft int
	// Token is sent as the session's AUTHORIZATION TOKEN and, with
	// TokenInURL, as ?jwt= too.
	Token      string
	TokenInURL bool
	// Fingerprint pins the target's certificate (hex SHA-256); Insecure
	// skips verification.
	Fingerprint string
	Insecure    bool
	// Prefixes are the local broadcast path prefixes to forward ("" all).
	Prefixes []string
	// RenameFrom/RenameTo rewrite a leading path prefix: live/ →
	// customer42/live/.
	RenameFrom, RenameTo string
	Mode                 string
	// Failover makes this target the standby of the one before it: it is
	// connected only while that one is not.
	Failover bool
	// Relayed forwards broadcasts learnt from upstreams and peers too
	// (off by default: that is how loops start).
	Relayed bool
}

// Validate reports what is wrong with t.
func (t *Target) Validate() error {
	u, err := url.Parse(t.URL)
	if err != nil {
		return fmt.Errorf("forward URL: %w", err)
	}
	if u.Scheme != "moqt" && u.Scheme != "https" {
		return fmt.Errorf("forward URL %s: scheme must be moqt or https", redact(t.URL))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("forward URL %s: missing host", redact(t.URL))
	}
	switch t.Mode {
	case "", ModeAnnounce, ModePublish, ModeAuto:
	default:
		return fmt.Errorf("forward mode %q: want announce, publish or auto", t.Mode)
	}
	switch t.Draft {
	case 0, 14, 16, 17:
	default:
		return fmt.Errorf("forward draft %d: want 14, 16 or 17", t.Draft)
	}
	if t.RenameTo != "" && t.RenameFrom == "" {
		return errors.New("forward rename: 'to' needs 'from'")
	}
	return nil
}

// dial returns the URL to dial and the dial options.
func (t *Target) dial() (string, moq.DialOptions, error) {
	raw, opts, err := moq.ParseUpstreamURL(t.URL)
	if err != nil {
		return "", opts, err
	}
	if t.Draft != 0 {
		if opts.Version, err = moq.DraftVersion(t.Draft); err != nil {
			return "", opts, err
		}
	}
	opts.Insecure = opts.Insecure || t.Insecure
	if t.Fingerprint != "" {
		opts.Fingerprint = t.Fingerprint
	}
	opts.Session.AuthToken = t.Token
	if t.Token != "" && t.TokenInURL {
		u, _ := url.Parse(raw)
		q := u.Query()
		q.Set("jwt", t.Token)
		u.RawQuery = q.Encode()
		raw = u.String()
	}
	return raw, opts, nil
}

// remote maps a local broadcast path to the target's, or reports that it
// is not forwarded there.
func (t *Target) remote(path string) (string, bool) {
	if !matches(path, t.Prefixes) {
		return "", false
	}
	if t.RenameFrom != "" && moq.HasPrefix(path, moq.ParsePath(t.RenameFrom)) {
		rest := strings.TrimPrefix(strings.TrimPrefix(path, strings.Trim(t.RenameFrom, "/")), "/")
		return joinPath(t.RenameTo, rest), true
	}
	return path, true
}

// local is remote's inverse: the local path a target's request names.
func (t *Target) local(remote string) (string, bool) {
	path := remote
	if t.RenameFrom != "" {
		to := moq.ParsePath(t.RenameTo)
		if !moq.HasPrefix(remote, to) {
			return "", false
		}
		path = joinPath(t.RenameFrom, strings.TrimPrefix(strings.TrimPrefix(remote, to.Path()), "/"))
	}
	if r, ok := t.remote(path); !ok || r != remote {
		return "", false
	}
	return path, true
}

func matches(path string, prefixes []string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, p := range prefixes {
		if moq.HasPrefix(path, moq.ParsePath(p)) {
			return true
		}
	}
	return false
}

func joinPath(prefix, rest string) string {
	prefix = strings.Trim(prefix, "/")
	switch {
	case prefix == "":
		return rest
	case rest == "":
		return prefix
	}
	return prefix + "/" + rest
}

// redact drops a URL's query (it may hold a token).
func redact(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i]
	}
	return raw
}
