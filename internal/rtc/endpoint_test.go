package rtc

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRefusedBeforeBody: a POST refused by Authorize is answered at once,
// even while its body is still dribbling in (net/http would otherwise
// read the body first).
func TestRefusedBeforeBody(t *testing.T) {
	ep := &Endpoint{Kind: "WHIP", Prefix: "/whip/",
		Authorize: func(r *http.Request, path, token string) (time.Time, error) {
			return time.Time{}, Errorf(http.StatusUnauthorized, "unauthorized")
		}}
	hs := httptest.NewServer(ep)
	defer hs.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /whip/live/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/sdp\r\nContent-Length: 5000\r\n\r\nv=0\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer while the body dribbles: %v", err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}
