package rtc

import (
	"net/http"
	"time"

	"github.com/moqgate/moqgate/internal/limit"
)

// DefaultMaxMediaSections bounds the m-lines of an offer: a publisher
// sends one per track (audio, video, a few simulcast layers at most).
const DefaultMaxMediaSections = 16

// pendingRetry is the Retry-After of a refusal for too many sessions
// awaiting ICE: about how long it takes one of them to connect or be
// reaped.
const pendingRetry = 5 * time.Second

// Limits bound what clients can make an Endpoint hold.
type Limits struct {
	// MaxMediaSections bounds an offer's m-lines (default
	// DefaultMaxMediaSections); more is refused with 400.
	MaxMediaSections int
	// Pending, if set, counts the sessions awaiting ICE (created, not yet
	// connected), shared by WHIP and WHEP; a newcomer over its limits is
	// refused with 503 and Retry-After before any peer connection is made.
	Pending *limit.Gate
	// OnRefuse, if set, is told of each refusal by Pending ("pending").
	OnRefuse func(reason string)
}

func (l Limits) maxMediaSections() int {
	if l.MaxMediaSections <= 0 {
		return DefaultMaxMediaSections
	}
	return l.MaxMediaSections
}

// admitPending reserves a slot for a session awaiting ICE.
func (l Limits) admitPending(remote string) (release func(), err error) {
	if l.Pending == nil {
		return func() {}, nil
	}
	release, err = l.Pending.Admit(remote)
	if err != nil {
		if l.OnRefuse != nil {
			l.OnRefuse("webrtc_pending")
		}
		return nil, &Error{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: pendingRetry}
	}
	return release, nil
}
