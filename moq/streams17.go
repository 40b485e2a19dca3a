package moq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"sync"

	"github.com/moqgate/moqgate/moq/internal/wire"
)

// Draft-17 moves the control plane onto streams (wire.Features
// RequestStreams): a pair of unidirectional control streams that start
// with SETUP and then carry only GOAWAY, and one bidirectional stream per
// request, which carries the request, its replies and updates, and whose
// end is the request's end (the cancel messages are gone).
//
// The session engine keeps speaking its message model: send routes each
// message to the stream it belongs to, and what arrives on request
// streams is dispatched as if it had come on the control stream, the end of
// a stream turned into the cancel message of earlier drafts. So draft-17 is
// a codec plus this routing, over the same engine and media model.

// reqStream is one draft-17 request's bidirectional stream.
type reqStream struct {
	id   uint64 // the request's ID
	typ  uint64 // its model type (wire.MsgSubscribe, ...)
	mine bool   // we sent the request
	st   Stream
	ns   Namespace // PUBLISH_NAMESPACE: the namespace

	mu       sync.Mutex // serializes writes and guards what follows
	updates  []uint64   // our REQUEST_UPDATEs on it awaiting replies, oldest first
	answered bool       // the first reply went out (theirs) or came in (ours)
	finished bool       // PUBLISH_DONE sent or received
	closed   bool       // our side is closed
}

// uniPair is the draft-17 control stream pair seen as one Stream.
type uniPair struct {
	SendStream
	ReceiveStream
}

// peerQuirks17 adapts the draft-17 codec to the peer, known by its
// MOQT_IMPLEMENTATION (what the option is for, §9.3.2.5 of draft-17):
// @moq/net 0.2.8 encodes draft-17 Message Parameters as draft-16 did, and
// misreads a LARGEST_OBJECT sent as the text says (see
// wire.Draft17.KVPParams). Called once, before the session starts.
func (s *Session) peerQuirks17() {
	c, ok := s.codec.(wire.Draft17)
	if !ok || !strings.HasPrefix(s.PeerImplementation(), "moq-lite-js") {
		return
	}
	c.KVPParams = true
	s.codec = c
	s.log.Info("draft-17 peer is @moq/net: Message Parameters in its Key-Value-Pair encoding", "implementation", s.PeerImplementation())
}

// requestStreams reports whether requests travel on streams of their own.
func (s *Session) requestStreams() bool { return s.codec.Features().RequestStreams }

// openControl17 opens our control stream; acceptControl17 takes the
// peer's, which must begin with SETUP (its type is the stream type).
func (s *Session) openControl17(ctx context.Context) error {
	out, err := s.conn.OpenUniStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("moq: open control stream: %w", err)
	}
	s.ctrl = uniPair{SendStream: out}
	// No MAX_REQUEST_ID: the transport's stream limits bound requests.
	s.peerMaxReqID, s.maxPeerReqID = math.MaxUint64, math.MaxUint64
	return nil
}

func (s *Session) acceptControl17(ctx context.Context) error {
	in, err := s.conn.AcceptUniStream(ctx)
	if err != nil {
		return fmt.Errorf("moq: accept control stream: %w", err)
	}
	s.ctrl = uniPair{SendStream: s.ctrl.(uniPair).SendStream, ReceiveStream: in}
	s.ctrlR = bufio.NewReaderSize(in, 4096)
	return nil
}

// readOn reads a message on the stream of request id (of model type typ):
// draft-17 replies name no request, the stream does.
func (s *Session) readOn(r io.Reader, id, typ uint64) (wire.Message, error) {
	if c, ok := s.codec.(wire.Draft17); ok {
		return c.ReadReply(r, id, typ)
	}
	return s.codec.ReadMessage(r)
}

// requestID is the RequestID field of a model message (0 if none).
func requestID(m wire.Message) uint64 {
	v := reflect.ValueOf(m)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if f := v.FieldByName("RequestID"); f.IsValid() {
		return f.Uint()
	}
	return 0
}

// send17 routes a message of the model to its draft-17 stream.
func (s *Session) send17(m wire.Message) error {
	switch v := m.(type) {
	case *wire.ClientSetup, *wire.ServerSetup, *wire.GoAway:
		return s.sendControl(m)
	case *wire.MaxRequestID, *wire.RequestsBlocked:
		return nil // no such thing: stream limits do it
	case *wire.Subscribe, *wire.TrackStatus, *wire.Fetch, *wire.Publish, *wire.PublishNamespace:
		return s.openRequest17(m)
	case *wire.Unsubscribe, *wire.FetchCancel, *wire.PublishNamespaceCancel:
		s.resetRequest17(requestID(m))
		return nil
	case *wire.PublishNamespaceDone:
		s.finishRequest17(v.RequestID, nil)
		return nil
	case *wire.PublishDone:
		s.finishRequest17(v.RequestID, m)
		return nil
	case *wire.SubscribeUpdate:
		rs := s.reqStream(v.SubscriptionRequestID)
		if rs == nil {
			return nil // the subscription is gone
		}
		rs.mu.Lock()
		rs.updates = append(rs.updates, v.RequestID)
		rs.mu.Unlock()
		return s.writeRequest17(rs, m, false)
	}
	// A reply to one of the peer's requests (or to its update).
	rs := s.reqStream(requestID(m))
	if rs == nil {
		s.log.Debug("reply to a request whose stream is gone", "msg", fmt.Sprintf("%T", m))
		return nil
	}
	switch m.(type) {
	case *wire.SubscribeUpdateOK, *wire.SubscribeUpdateError:
		s.forgetRequest17(requestID(m), rs)
		return s.writeRequest17(rs, m, false)
	case *wire.SubscribeError, *wire.FetchError, *wire.PublishError, *wire.TrackStatusOK,
		*wire.TrackStatusError, *wire.PublishNamespaceError:
		return s.writeRequest17(rs, m, true) // the request ends here
	}
	return s.writeRequest17(rs, m, false)
}

// sendControl writes on our control stream.
func (s *Session) sendControl(m wire.Message) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	b, err := s.codec.AppendMessage(s.sendBuf[:0], m)
	if err != nil {
		return fmt.Errorf("moq: encode %T: %w", m, err)
	}
	s.sendBuf = b
	if _, err := s.ctrl.Write(b); err != nil {
		return fmt.Errorf("moq: write %T: %w", m, err)
	}
	return nil
}

func (s *Session) reqStream(id uint64) *reqStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqStreams[id]
}

func (s *Session) forgetRequest17(id uint64, rs *reqStream) {
	s.mu.Lock()
	if s.reqStreams[id] == rs {
		delete(s.reqStreams, id)
	}
	s.mu.Unlock()
}

// writeRequest17 writes m on rs; last closes our side of the stream
// afterwards (FIN). A stream the peer already gave up is not the
// session's problem: the write error is logged, not returned.
func (s *Session) writeRequest17(rs *reqStream, m wire.Message, last bool) error {
	b, err := s.codec.AppendMessage(nil, m)
	if err != nil {
		return fmt.Errorf("moq: encode %T: %w", m, err)
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.closed {
		return nil
	}
	if !rs.mine {
		rs.answered = true
	}
	if _, err := rs.st.Write(b); err != nil {
		s.log.Debug("request stream write failed", "request", rs.id, "err", err)
		rs.closed = true
		return nil
	}
	if last {
		rs.closed = true
		rs.st.Close()
	}
	return nil
}

// openRequest17 opens the stream of one of our requests, writes it and
// reads what comes back.
func (s *Session) openRequest17(m wire.Message) error {
	if s.ctx.Err() != nil {
		return s.Err()
	}
	st, err := s.conn.OpenStreamSync(s.ctx)
	if err != nil {
		return fmt.Errorf("moq: open request stream: %w", err)
	}
	rs := &reqStream{id: requestID(m), typ: m.Type(), mine: true, st: st}
	s.mu.Lock()
	s.reqStreams[rs.id] = rs
	s.mu.Unlock()
	if err := s.writeRequest17(rs, m, false); err != nil {
		s.forgetRequest17(rs.id, rs)
		st.CancelWrite(wire.ResetCancelled)
		st.CancelRead(wire.ResetCancelled)
		return err
	}
	s.wg.Add(1)
	go s.readRequest17(rs, bufio.NewReader(st))
	return nil
}

// resetRequest17 abandons a request: both directions of its stream are
// reset, which tells the peer.
func (s *Session) resetRequest17(id uint64) {
	rs := s.reqStream(id)
	if rs == nil {
		return
	}
	s.forgetRequest17(id, rs)
	rs.mu.Lock()
	rs.closed = true
	rs.mu.Unlock()
	rs.st.CancelWrite(wire.ResetCancelled)
	rs.st.CancelRead(wire.ResetCancelled)
}

// finishRequest17 ends a request cleanly: last (PUBLISH_DONE), if any, then
// FIN.
func (s *Session) finishRequest17(id uint64, last wire.Message) {
	rs := s.reqStream(id)
	if rs == nil {
		return
	}
	rs.mu.Lock()
	rs.finished = true
	rs.mu.Unlock()
	if last != nil {
		s.writeRequest17(rs, last, true)
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.closed {
		rs.closed = true
		rs.st.Close()
	}
}

// handleBidi17 serves a stream the peer opened: one of its requests.
func (s *Session) handleBidi17(st Stream) {
	defer s.wg.Done()
	r, m := s.readFirstMessage(st)
	if m == nil {
		return
	}
	if sn, ok := m.(*wire.SubscribeNamespace); ok {
		s.serveNamespaceStream(st, r, sn)
		return
	}
	switch m.(type) {
	case *wire.Subscribe, *wire.TrackStatus, *wire.Fetch, *wire.Publish, *wire.PublishNamespace:
	default:
		s.fail(protocolViolation("request stream begins with %T", m))
		return
	}
	rs := &reqStream{id: requestID(m), typ: m.Type(), st: st}
	if pn, ok := m.(*wire.PublishNamespace); ok {
		rs.ns = pn.Namespace
	}
	s.mu.Lock()
	_, dup := s.reqStreams[rs.id]
	if !dup {
		s.reqStreams[rs.id] = rs
	}
	s.mu.Unlock()
	if dup {
		s.fail(&wire.SessionError{Code: wire.InvalidRequestID, Reason: fmt.Sprintf("request ID %d reused", rs.id)})
		return
	}
	// Without MAX_REQUEST_ID, MaxRequests bounds the peer's open requests
	// here: one more is refused with EXCESSIVE_LOAD, retry after a second.
	s.mu.Lock()
	busy := s.activePeerReq >= s.cfg.MaxRequests
	s.mu.Unlock()
	if busy {
		s.writeRequest17(rs, refusalOf17(rs.typ, rs.id, reqExcessiveLoad, "too many open requests"), true)
		s.forgetRequest17(rs.id, rs)
		return
	}
	if err := s.dispatch(m); err != nil {
		s.fail(err)
		return
	}
	s.readRequest17(rs, r)
}

// readRequest17 reads the rest of a request stream and dispatches it;
// its end ends the request.
func (s *Session) readRequest17(rs *reqStream, r *bufio.Reader) {
	if rs.mine {
		defer s.wg.Done()
	}
	c := s.codec.(wire.Draft17)
	for {
		t, payload, err := c.ReadFrame(r)
		var m wire.Message
		if err == nil {
			// A REQUEST_OK/ERROR after the first reply answers our oldest
			// update; the rest belongs to the request.
			id, typ := rs.id, rs.typ
			rs.mu.Lock()
			if rs.mine && rs.answered && len(rs.updates) > 0 && wire.IsRequestReply(t) {
				id, typ = rs.updates[0], wire.MsgSubscribeUpdate
			}
			rs.mu.Unlock()
			m, err = c.ParseReply(t, payload, id, typ)
		}
		if err != nil {
			var se *wire.SessionError
			if errors.As(err, &se) && s.ctx.Err() == nil {
				s.fail(err)
				return
			}
			s.requestStreamEnded(rs)
			return
		}
		if err := s.onRequestStreamMessage(rs, m); err != nil {
			s.fail(err)
			return
		}
	}
}

// onRequestStreamMessage checks that m may come on rs now and dispatches
// it.
func (s *Session) onRequestStreamMessage(rs *reqStream, m wire.Message) error {
	rs.mu.Lock()
	first := !rs.answered
	switch v := m.(type) {
	case *wire.PublishDone:
		v.RequestID = rs.id
		rs.finished = true
	case *wire.SubscribeUpdateOK, *wire.SubscribeUpdateError:
		if len(rs.updates) > 0 {
			rs.updates = rs.updates[1:]
		}
	case *wire.SubscribeUpdate:
		if rs.mine && rs.typ != wire.MsgPublish || !rs.mine && rs.typ == wire.MsgPublish {
			rs.mu.Unlock()
			return protocolViolation("REQUEST_UPDATE from the responder of request %d", rs.id)
		}
		s.mu.Lock()
		s.reqStreams[v.RequestID] = rs // where its reply goes
		s.mu.Unlock()
	default:
		if !rs.mine || !first || !isReply17(m) {
			rs.mu.Unlock()
			return protocolViolation("%T on the stream of request %d", m, rs.id)
		}
	}
	if rs.mine {
		rs.answered = true
	}
	rs.mu.Unlock()
	if first && rs.mine && !isReply17(m) {
		return protocolViolation("%T before the reply to request %d", m, rs.id)
	}
	return s.dispatch(m)
}

// isReply17 reports whether m is a first reply to a request.
func isReply17(m wire.Message) bool {
	switch m.(type) {
	case *wire.SubscribeOK, *wire.SubscribeError, *wire.FetchOK, *wire.FetchError,
		*wire.PublishOK, *wire.PublishError, *wire.TrackStatusOK, *wire.TrackStatusError,
		*wire.PublishNamespaceOK, *wire.PublishNamespaceError:
		return true
	}
	return false
}

// requestStreamEnded turns the end of a request stream (FIN or reset) into
// what earlier drafts say with a message, and forgets the stream.
func (s *Session) requestStreamEnded(rs *reqStream) {
	s.forgetRequest17(rs.id, rs)
	rs.mu.Lock()
	answered, finished, wasClosed := rs.answered, rs.finished, rs.closed
	rs.closed = true
	rs.mu.Unlock()
	if !wasClosed {
		rs.st.Close()
	}
	if s.ctx.Err() != nil {
		return
	}
	var m wire.Message
	const why = "request stream closed"
	switch {
	case rs.mine && !answered:
		m = refusalOf17(rs.typ, rs.id, 0, why)
	case rs.mine && rs.typ == wire.MsgSubscribe && !finished:
		m = &wire.PublishDone{RequestID: rs.id, StatusCode: wire.PublishDoneInternalError, Reason: why}
	case rs.mine && rs.typ == wire.MsgPublish:
		m = &wire.Unsubscribe{RequestID: rs.id} // the subscriber is gone
	case rs.mine && rs.typ == wire.MsgPublishNamespace && !finished:
		m = &wire.PublishNamespaceCancel{RequestID: rs.id, Reason: why}
	case !rs.mine && rs.typ == wire.MsgSubscribe:
		m = &wire.Unsubscribe{RequestID: rs.id}
	case !rs.mine && rs.typ == wire.MsgFetch:
		m = &wire.FetchCancel{RequestID: rs.id}
	case !rs.mine && rs.typ == wire.MsgPublishNamespace:
		m = &wire.PublishNamespaceDone{RequestID: rs.id}
	case !rs.mine && rs.typ == wire.MsgPublish && !finished:
		m = &wire.PublishDone{RequestID: rs.id, StatusCode: wire.PublishDoneInternalError, Reason: why}
	}
	if m == nil {
		return
	}
	if err := s.dispatch(m); err != nil {
		s.log.Debug("request stream end", "request", rs.id, "err", err)
	}
}

// reqExcessiveLoad is REQUEST_ERROR EXCESSIVE_LOAD (draft-17), the same
// number in the model's registries (none of them defines 0x9).
const reqExcessiveLoad = 0x9

// refusalOf17 is the error reply of request type typ with code: the one
// moqgate sends when overloaded, and the one standing for our request
// whose stream ended unanswered.
func refusalOf17(typ, id, code uint64, why string) wire.Message {
	e := wire.SubscribeError{RequestID: id, ErrorCode: code, Reason: why}
	if code == reqExcessiveLoad {
		e.RetryInterval = 1001 // ms + 1
	}
	switch typ {
	case wire.MsgSubscribe:
		return &e
	case wire.MsgFetch:
		v := wire.FetchError(e)
		return &v
	case wire.MsgPublish:
		v := wire.PublishError(e)
		return &v
	case wire.MsgTrackStatus:
		v := wire.TrackStatusError(e)
		return &v
	case wire.MsgPublishNamespace:
		v := wire.PublishNamespaceError(e)
		return &v
	}
	return nil
}
