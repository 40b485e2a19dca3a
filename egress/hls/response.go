package hls

import (
	"bytes"
	"net/http"
)

// bufferedResponse collects what a gohlslib handler writes. gohlslib's
// handlers block (blocking playlist reload, preload hints) without watching
// the request's context, so they run on their own goroutine against this
// buffer, and the request's goroutine decides when to stop waiting; it may
// read the buffer only once the handler has returned.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newBufferedResponse() *bufferedResponse {
	return &bufferedResponse{header: make(http.Header)}
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// code is the status written, or 404 when the handler wrote nothing:
// gohlslib answers an unknown file by returning without a word.
func (b *bufferedResponse) code() int {
	if b.status == 0 {
		return http.StatusNotFound
	}
	return b.status
}
