package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// payloadAppender is implemented (with value receivers, so by T and *T) by
// every message type of this package.
type payloadAppender interface {
	Message
	appendPayload(e *encoder)
}

// AppendMessage appends m as a control message: type varint, 16-bit length,
// payload. (The PUBLISH, PUBLISH_OK and PUBLISH_ERROR figures in draft-14
// show "Length (i)"; §9's common framing, which every message follows and
// deployed peers use, is a 16-bit length, so that is used for all types.) It returns b unchanged and an error wrapping ErrInvalidMessage if
// the payload exceeds 65535 bytes or a field violates a limit of the draft
// (so that we never send something the peer must reject).
func AppendMessage(b []byte, m Message) ([]byte, error) {
	pa, ok := m.(payloadAppender)
	if !ok {
		return b, fmt.Errorf("%w: unsupported message type %T", ErrInvalidMessage, m)
	}
	t := m.Type()
	return appendFrame(b, t, encoder{msg: t}, pa.appendPayload)
}

// appendFrame appends a control message of wire type wireType whose payload
// body writes with e (e.b is ignored; e.msg and e.name name the message).
func appendFrame(b []byte, wireType uint64, e encoder, body func(*encoder)) ([]byte, error) {
	e.b = e.vi.append(b, wireType)
	lenAt := len(e.b)
	e.b = append(e.b, 0, 0) // length placeholder, patched below: one pass, no copy
	body(&e)
	if e.err != nil {
		return b, e.err
	}
	n := len(e.b) - lenAt - 2
	if n > MaxMessagePayload {
		return b, fmt.Errorf("%w: %s: payload %d bytes exceeds %d", ErrInvalidMessage, e.msgName(), n, MaxMessagePayload)
	}
	binary.BigEndian.PutUint16(e.b[lenAt:], uint16(n))
	return e.b, nil
}

// byteReader adapts a plain io.Reader without buffering, so that ReadMessage
// never consumes bytes beyond the message it returns.
type byteReader struct {
	r   io.Reader
	buf [1]byte
}

func (b *byteReader) ReadByte() (byte, error) {
	for {
		n, err := b.r.Read(b.buf[:])
		if n == 1 {
			return b.buf[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// ReadMessage reads exactly one control message. Pass a reader implementing
// io.ByteReader (e.g. *bufio.Reader) for efficiency; other readers are read
// byte by byte for the header.
//
// It returns io.EOF (unwrapped) if the stream ends cleanly before a message.
// A stream ending inside a message yields a *SessionError{ProtocolViolation}
// that also wraps io.ErrUnexpectedEOF. Read errors of r are returned wrapped.
// Decode problems are *SessionError with the draft's code.
func ReadMessage(r io.Reader) (Message, error) {
	t, payload, err := readFrame(r, draft14MessageName)
	if err != nil {
		return nil, err
	}
	return ParseMessage(t, payload)
}

// readFrame reads the type, length and payload of one control message;
// name names the types of the version ("" = unknown, PROTOCOL_VIOLATION).
func readFrame(r io.Reader, name func(uint64) string) (uint64, []byte, error) {
	return readFrameV(r, vint{}, name)
}

// readFrameV is readFrame with the varint encoding vi.
func readFrameV(r io.Reader, vi vint, name func(uint64) string) (uint64, []byte, error) {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = &byteReader{r: r}
	}
	t, err := vi.read(br)
	if err != nil {
		if err == io.EOF {
			return 0, nil, io.EOF
		}
		return 0, nil, readErr("control message type", err)
	}
	if name(t) == "" {
		return 0, nil, protocolViolation("unknown control message type 0x%x", t)
	}
	var n int
	for i := 0; i < 2; i++ {
		c, err := br.ReadByte()
		if err != nil {
			return 0, nil, readErr(name(t)+" length", err)
		}
		n = n<<8 | int(c)
	}
	// At most 65535 bytes: the allocation is bounded by the protocol maximum.
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, readErr(name(t)+" payload", err)
	}
	return t, payload, nil
}

// readErr classifies a read failure: end of stream inside a message is a
// truncation (PROTOCOL_VIOLATION + io.ErrUnexpectedEOF), anything else is the
// transport's error, passed through wrapped.
func readErr(what string, err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return truncated(what, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("moq wire: reading %s: %w", what, err)
}

// ParseMessage decodes a control message payload of the given type. Every
// byte of payload must be consumed (else PROTOCOL_VIOLATION). The returned
// message does not alias payload.
//
// The messages of one field, the same in every draft, are parseOneField's.
func ParseMessage(msgType uint64, payload []byte) (Message, error) {
	d := decoder{b: payload, msg: msgType}
	var m Message
	switch msgType {
	case MsgClientSetup:
		m = parseClientSetup(&d)
	case MsgServerSetup:
		m = &ServerSetup{Version: d.varint("selected version"), Params: d.params()}
	case MsgGoAway, MsgMaxRequestID, MsgRequestsBlocked, MsgUnsubscribe, MsgFetchCancel:
		m = parseOneField(&d, msgType)
	case MsgSubscribe:
		v := parseSubscribe(&d)
		m = &v
	case MsgTrackStatus:
		v := TrackStatus(parseSubscribe(&d))
		m = &v
	case MsgSubscribeOK:
		v := parseSubscribeOK(&d)
		m = &v
	case MsgTrackStatusOK:
		v := TrackStatusOK(parseSubscribeOK(&d))
		m = &v
	case MsgSubscribeError:
		v := SubscribeError(parseRequestError(&d))
		m = &v
	case MsgTrackStatusError:
		v := TrackStatusError(parseRequestError(&d))
		m = &v
	case MsgPublishError:
		v := PublishError(parseRequestError(&d))
		m = &v
	case MsgFetchError:
		v := FetchError(parseRequestError(&d))
		m = &v
	case MsgPublishNamespaceError:
		v := PublishNamespaceError(parseRequestError(&d))
		m = &v
	case MsgSubscribeNamespaceError:
		v := SubscribeNamespaceError(parseRequestError(&d))
		m = &v
	case MsgSubscribeUpdate:
		m = parseSubscribeUpdate(&d)
	case MsgPublishDone:
		m = &PublishDone{
			RequestID:   d.varint("request ID"),
			StatusCode:  d.varint("status code"),
			StreamCount: d.varint("stream count"),
			Reason:      d.reason(),
		}
	case MsgPublish:
		m = parsePublish(&d)
	case MsgPublishOK:
		v := &PublishOK{RequestID: d.varint("request ID")}
		v.Forward = d.flag("forward")
		v.SubscriberPriority = d.u8("subscriber priority")
		v.GroupOrder = d.groupOrder(true) // the subscriber's choice, as in SUBSCRIBE
		v.FilterType, v.Start, v.EndGroup = d.filter()
		v.Params = d.params()
		m = v
	case MsgFetch:
		m = parseFetch(&d)
	case MsgFetchOK:
		v := &FetchOK{RequestID: d.varint("request ID")}
		v.GroupOrder = d.groupOrder(false)
		v.EndOfTrack = d.flag("end of track")
		v.End = d.location("end")
		v.Params = d.params()
		m = v
	case MsgPublishNamespace:
		v := &PublishNamespace{RequestID: d.varint("request ID")}
		v.Namespace, _ = d.tuple("track namespace")
		v.Params = d.params()
		m = v
	case MsgPublishNamespaceOK:
		m = &PublishNamespaceOK{RequestID: d.varint("request ID")}
	case MsgPublishNamespaceDone:
		v := &PublishNamespaceDone{}
		v.Namespace, _ = d.tuple("track namespace")
		m = v
	case MsgPublishNamespaceCancel:
		v := &PublishNamespaceCancel{}
		v.Namespace, _ = d.tuple("track namespace")
		v.ErrorCode = d.varint("error code")
		v.Reason = d.reason()
		m = v
	case MsgSubscribeNamespace:
		v := &SubscribeNamespace{RequestID: d.varint("request ID")}
		v.Prefix = d.prefix("track namespace prefix")
		v.Params = d.params()
		m = v
	case MsgSubscribeNamespaceOK:
		m = &SubscribeNamespaceOK{RequestID: d.varint("request ID")}
	case MsgUnsubscribeNamespace:
		v := &UnsubscribeNamespace{}
		v.Prefix = d.prefix("track namespace prefix")
		m = v
	default:
		return nil, protocolViolation("unknown control message type 0x%x", msgType)
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

func parseClientSetup(d *decoder) *ClientSetup {
	m := &ClientSetup{}
	n := d.varint("number of supported versions")
	if d.err != nil {
		return m
	}
	if n > 0 {
		m.Versions = make([]uint64, 0, min(n, uint64(len(d.b)))) // >= 1 byte each
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Versions = append(m.Versions, d.varint("supported version"))
		}
	}
	m.Params = d.params()
	return m
}

func parseSubscribe(d *decoder) Subscribe {
	var m Subscribe
	m.RequestID = d.varint("request ID")
	var nsLen int
	m.Namespace, nsLen = d.tuple("track namespace")
	m.TrackName = d.trackName(nsLen)
	m.SubscriberPriority = d.u8("subscriber priority")
	m.GroupOrder = d.groupOrder(true)
	m.Forward = d.flag("forward")
	m.FilterType, m.Start, m.EndGroup = d.filter()
	m.Params = d.params()
	return m
}

func parseSubscribeOK(d *decoder) SubscribeOK {
	var m SubscribeOK
	m.RequestID = d.varint("request ID")
	m.TrackAlias = d.varint("track alias")
	m.Expires = d.varint("expires")
	m.GroupOrder = d.groupOrder(false)
	m.ContentExists = d.flag("content exists")
	if m.ContentExists {
		m.Largest = d.location("largest")
	}
	m.Params = d.params()
	return m
}

// parseRequestError decodes the common {Request ID, Error Code, Reason} layout.
func parseRequestError(d *decoder) SubscribeError {
	return SubscribeError{
		RequestID: d.varint("request ID"),
		ErrorCode: d.varint("error code"),
		Reason:    d.reason(),
	}
}

func parseSubscribeUpdate(d *decoder) *SubscribeUpdate {
	m := &SubscribeUpdate{}
	m.RequestID = d.varint("request ID")
	m.SubscriptionRequestID = d.varint("subscription request ID")
	m.Start = d.location("start")
	m.EndGroup = d.varint("end group")
	m.SubscriberPriority = d.u8("subscriber priority")
	m.Forward = d.flag("forward")
	m.Params = d.params()
	return m
}

func parsePublish(d *decoder) *Publish {
	m := &Publish{}
	m.RequestID = d.varint("request ID")
	var nsLen int
	m.Namespace, nsLen = d.tuple("track namespace")
	m.TrackName = d.trackName(nsLen)
	m.TrackAlias = d.varint("track alias")
	m.GroupOrder = d.groupOrder(false)
	m.ContentExists = d.flag("content exists")
	if m.ContentExists {
		m.Largest = d.location("largest")
	}
	m.Forward = d.flag("forward")
	m.Params = d.params()
	return m
}

func parseFetch(d *decoder) *Fetch {
	m := &Fetch{}
	m.RequestID = d.varint("request ID")
	m.SubscriberPriority = d.u8("subscriber priority")
	m.GroupOrder = d.groupOrder(true)
	m.FetchType = d.varint("fetch type")
	if d.err != nil {
		return m
	}
	if d.fetchRange(m, false) {
		m.Params = d.params()
	}
	return m
}

// fetchRange reads a FETCH's standalone or joining fields (the same in
// every draft but for empty namespace fields, which draft-16 forbids). It
// reports whether the fetch type was valid.
func (d *decoder) fetchRange(m *Fetch, nonEmpty bool) bool {
	switch m.FetchType {
	case FetchStandalone:
		var nsLen int
		m.Namespace, nsLen = d.tupleMin("track namespace", 1, nonEmpty)
		m.TrackName = d.trackName(nsLen)
		m.Start = d.location("start")
		m.End = d.location("end")
	case FetchRelativeJoining, FetchAbsoluteJoining:
		m.JoiningRequestID = d.varint("joining request ID")
		m.JoiningStart = d.varint("joining start")
	default:
		d.fail(ProtocolViolation, "invalid fetch type %d", m.FetchType)
		return false
	}
	return true
}

// Encoders. Value receivers so that AppendMessage accepts T and *T.

func (m ClientSetup) appendPayload(e *encoder) {
	e.varint("number of supported versions", uint64(len(m.Versions)))
	for _, v := range m.Versions {
		e.varint("supported version", v)
	}
	e.params(m.Params)
}

func (m ServerSetup) appendPayload(e *encoder) {
	e.varint("selected version", m.Version)
	e.params(m.Params)
}

func (m GoAway) appendPayload(e *encoder) {
	e.str("new session URI", m.NewSessionURI, MaxGoAwayURILen)
}

func (m MaxRequestID) appendPayload(e *encoder) { e.varint("request ID", m.RequestID) }

func (m RequestsBlocked) appendPayload(e *encoder) {
	e.varint("maximum request ID", m.MaximumRequestID)
}

func (m Subscribe) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.trackName(e.tuple("track namespace", m.Namespace), m.TrackName)
	e.u8(m.SubscriberPriority)
	e.groupOrder(m.GroupOrder, true)
	e.flag(m.Forward)
	e.filter(m.FilterType, m.Start, m.EndGroup)
	e.params(m.Params)
}

func (m TrackStatus) appendPayload(e *encoder) { Subscribe(m).appendPayload(e) }

func (m SubscribeOK) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.varint("track alias", m.TrackAlias)
	e.varint("expires", m.Expires)
	e.groupOrder(m.GroupOrder, false)
	e.flag(m.ContentExists)
	if m.ContentExists {
		e.location("largest", m.Largest)
	}
	e.params(m.Params)
}

func (m TrackStatusOK) appendPayload(e *encoder) { SubscribeOK(m).appendPayload(e) }

func (m SubscribeError) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.varint("error code", m.ErrorCode)
	e.reason(m.Reason)
}

func (m TrackStatusError) appendPayload(e *encoder) { SubscribeError(m).appendPayload(e) }
func (m PublishError) appendPayload(e *encoder)     { SubscribeError(m).appendPayload(e) }
func (m FetchError) appendPayload(e *encoder)       { SubscribeError(m).appendPayload(e) }
func (m PublishNamespaceError) appendPayload(e *encoder) {
	SubscribeError(m).appendPayload(e)
}
func (m SubscribeNamespaceError) appendPayload(e *encoder) {
	SubscribeError(m).appendPayload(e)
}

func (m SubscribeUpdate) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.varint("subscription request ID", m.SubscriptionRequestID)
	e.location("start", m.Start)
	e.varint("end group", m.EndGroup)
	e.u8(m.SubscriberPriority)
	e.flag(m.Forward)
	e.params(m.Params)
}

func (m Unsubscribe) appendPayload(e *encoder) { e.varint("request ID", m.RequestID) }

func (m PublishDone) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.varint("status code", m.StatusCode)
	e.varint("stream count", m.StreamCount)
	e.reason(m.Reason)
}

func (m Publish) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.trackName(e.tuple("track namespace", m.Namespace), m.TrackName)
	e.varint("track alias", m.TrackAlias)
	e.groupOrder(m.GroupOrder, false)
	e.flag(m.ContentExists)
	if m.ContentExists {
		e.location("largest", m.Largest)
	}
	e.flag(m.Forward)
	e.params(m.Params)
}

func (m PublishOK) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.flag(m.Forward)
	e.u8(m.SubscriberPriority)
	e.groupOrder(m.GroupOrder, true)
	e.filter(m.FilterType, m.Start, m.EndGroup)
	e.params(m.Params)
}

func (m Fetch) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.u8(m.SubscriberPriority)
	e.groupOrder(m.GroupOrder, true)
	if e.fetchRange(m, false) {
		e.params(m.Params)
	}
}

// fetchRange writes a FETCH's type and its standalone or joining fields
// (see decoder.fetchRange).
func (e *encoder) fetchRange(m Fetch, nonEmpty bool) bool {
	switch m.FetchType {
	case FetchStandalone:
		e.varint("fetch type", m.FetchType)
		e.trackName(e.tupleMin("track namespace", m.Namespace, 1, nonEmpty), m.TrackName)
		e.location("start", m.Start)
		e.location("end", m.End)
	case FetchRelativeJoining, FetchAbsoluteJoining:
		e.varint("fetch type", m.FetchType)
		e.varint("joining request ID", m.JoiningRequestID)
		e.varint("joining start", m.JoiningStart)
	default:
		e.failf("invalid fetch type %d", m.FetchType)
		return false
	}
	return true
}

func (m FetchOK) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.groupOrder(m.GroupOrder, false)
	e.flag(m.EndOfTrack)
	e.location("end", m.End)
	e.params(m.Params)
}

func (m FetchCancel) appendPayload(e *encoder) { e.varint("request ID", m.RequestID) }

func (m PublishNamespace) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.tuple("track namespace", m.Namespace)
	e.params(m.Params)
}

func (m PublishNamespaceOK) appendPayload(e *encoder) { e.varint("request ID", m.RequestID) }

func (m PublishNamespaceDone) appendPayload(e *encoder) {
	e.tuple("track namespace", m.Namespace)
}

func (m PublishNamespaceCancel) appendPayload(e *encoder) {
	e.tuple("track namespace", m.Namespace)
	e.varint("error code", m.ErrorCode)
	e.reason(m.Reason)
}

func (m SubscribeNamespace) appendPayload(e *encoder) {
	e.varint("request ID", m.RequestID)
	e.prefix("track namespace prefix", m.Prefix)
	e.params(m.Params)
}

func (m SubscribeNamespaceOK) appendPayload(e *encoder) { e.varint("request ID", m.RequestID) }

func (m UnsubscribeNamespace) appendPayload(e *encoder) {
	e.prefix("track namespace prefix", m.Prefix)
}

// parseOneField decodes the messages (of model type msg) whose payload is
// one field in every draft.
func parseOneField(d *decoder, msg uint64) Message {
	switch msg {
	case MsgGoAway:
		return &GoAway{NewSessionURI: d.str("new session URI", MaxGoAwayURILen)}
	case MsgMaxRequestID:
		return &MaxRequestID{RequestID: d.varint("request ID")}
	case MsgRequestsBlocked:
		return &RequestsBlocked{MaximumRequestID: d.varint("maximum request ID")}
	case MsgUnsubscribe:
		return &Unsubscribe{RequestID: d.varint("request ID")}
	case MsgFetchCancel:
		return &FetchCancel{RequestID: d.varint("request ID")}
	}
	return nil
}
