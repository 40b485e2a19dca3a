package forward

import "testing"

func TestTargetRename(t *testing.T) {
	tg := Target{URL: "moqt://x", Prefixes: []string{"live"}, RenameFrom: "live/", RenameTo: "customer42/live/"}
	for _, c := range []struct {
		local, remote string
		ok            bool
	}{
		{"live/a", "customer42/live/a", true},
		{"live/a/b", "customer42/live/a/b", true},
		{"other/a", "", false},
		{"lively/a", "", false},
	} {
		r, ok := tg.remote(c.local)
		if r != c.remote || ok != c.ok {
			t.Errorf("remote(%q) = %q, %v; want %q, %v", c.local, r, ok, c.remote, c.ok)
		}
		if !ok {
			continue
		}
		if l, ok := tg.local(r); !ok || l != c.local {
			t.Errorf("local(%q) = %q, %v; want %q", r, l, ok, c.local)
		}
	}
	// A request for a namespace that is not forwarded is not resolved.
	for _, r := range []string{"live/a", "customer42/other/a", "customer42"} {
		if l, ok := tg.local(r); ok {
			t.Errorf("local(%q) = %q, want refused", r, l)
		}
	}
}

func TestTargetValidate(t *testing.T) {
	for _, bad := range []Target{
		{URL: "rtmp://x"}, {URL: "moqt://"}, {URL: "moqt://x", Mode: "push"}, {URL: "moqt://x", Draft: 15},
		{URL: "moqt://x", RenameTo: "a"},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v: accepted", bad)
		}
	}
	tg := Target{URL: "https://relay.example.com/moq?jwt=SECRET", Draft: 16, Token: "SECRET", TokenInURL: true}
	if err := tg.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, opts, err := tg.dial()
	if err != nil || opts.Session.AuthToken != "SECRET" || raw != "https://relay.example.com/moq?jwt=SECRET" {
		t.Fatalf("dial() = %q, %+v, %v", raw, opts.Session.AuthToken, err)
	}
}
