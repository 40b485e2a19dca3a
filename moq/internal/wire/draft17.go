package wire

import (
	"fmt"
	"io"
	"reflect"
)

// Draft17 is the draft-ietf-moq-transport-17 codec. Its messages are
// draft-16's with these differences (change log of draft-17), which is why
// it runs draft-16's message code with the draft-17 switches of ctx17:
//
//   - every varint is the leading-ones encoding (varint17.go), in control
//     messages and on data streams and datagrams alike;
//   - one SETUP (0x2F00) instead of CLIENT_SETUP/SERVER_SETUP, its Setup
//     Options without a count (the message's length bounds them);
//   - requests carry a Required Request ID Delta after their Request ID,
//     replies none (each request has a bidirectional stream of its own:
//     ReadReply gets the request from the session);
//   - Message Parameters are Type-Value pairs typed per parameter: uint8
//     (FORWARD, SUBSCRIBER_PRIORITY, GROUP_ORDER), Location
//     (LARGEST_OBJECT), varint or length-prefixed; the Subscription Filter
//     ends with an End Group Delta;
//   - GOAWAY gains a Timeout; UNSUBSCRIBE, FETCH_CANCEL,
//     PUBLISH_NAMESPACE_DONE/_CANCEL, MAX_REQUEST_ID and REQUESTS_BLOCKED
//     are gone (closing or resetting the request's stream says them);
//     PUBLISH_BLOCKED is new.
//
// The data plane's layouts are draft-16's.
type Draft17 struct {
	// Client: this end is the client, so the peer's SETUP is the model's
	// ServerSetup (else its ClientSetup).
	Client bool
	// KVPParams writes and reads Message Parameters as draft-16 did
	// (Key-Value-Pairs: even type a varint, odd type length-prefixed,
	// LARGEST_OBJECT and SUBSCRIPTION_FILTER in draft-16's layout inside),
	// only with draft-17 varints. It is not draft-17: it is how @moq/net
	// 0.2.8 (MOQT_IMPLEMENTATION "moq-lite-js", the library of @moq/watch
	// 0.4.6) encodes draft-17 parameters, which it cannot read otherwise
	// (it reads a LARGEST_OBJECT Location as a length and bytes). The
	// session sets it for that peer only.
	KVPParams bool
}

var _ Codec = Draft17{}

// ctx17 is what the draft-17 message layer knows beyond the bytes.
type ctx17 struct {
	client bool
	kvp    bool // see Draft17.KVPParams
	// id is the request the stream being read belongs to (replies name
	// none).
	id uint64
}

// Draft-17 control message types that draft-16 lacks (§9 of draft-17).
const (
	d17Setup          = 0x2F00
	d17PublishBlocked = 0xF
)

// p17RendezvousTimeout is draft-17's RENDEZVOUS_TIMEOUT (SUBSCRIBE only).
const p17RendezvousTimeout = 0x04

func d17MessageName(t uint64) string {
	switch t {
	case d17Setup:
		return "SETUP"
	case d17PublishBlocked:
		return "PUBLISH_BLOCKED"
	case d16ClientSetup, d16ServerSetup, d16PublishNamespaceDone, d16Unsubscribe,
		d16PublishNamespaceCancel, d16MaxRequestID, d16FetchCancel, d16RequestsBlocked:
		return "" // removed in draft-17
	}
	return d16MessageName(t)
}

// PublishBlocked is draft-17's PUBLISH_BLOCKED: on a SUBSCRIBE_NAMESPACE
// stream, the publisher could not send PUBLISH for this track.
type PublishBlocked struct {
	Suffix    []string
	TrackName string
}

// MsgPublishBlocked is PublishBlocked's model type.
const MsgPublishBlocked = 0x1_0000_000F

func (PublishBlocked) Type() uint64 { return MsgPublishBlocked }

func (Draft17) Version() uint64 { return Version17 }

func (Draft17) Features() Features {
	return Features{NamespaceStreams: true, UpdateReplies: true, EmptyFetchOK: true, DynamicGroups: true, RequestStreams: true}
}

func (c Draft17) base(id, requestType uint64) Draft16 {
	return Draft16{
		RequestType: func(uint64) uint64 { return requestType },
		p17:         &ctx17{client: c.Client, kvp: c.KVPParams, id: id},
	}
}

// ReadMessage reads a message that is not a reply: SETUP and GOAWAY on the
// control stream, the request that opens a request stream, and what follows
// it there from the requester (REQUEST_UPDATE).
func (c Draft17) ReadMessage(r io.Reader) (Message, error) { return c.ReadReply(r, 0, 0) }

// ReadReply reads a message on the stream of request id, whose model type
// (MsgSubscribe, ...) is requestType: the replies are the model's replies
// to it, with RequestID id.
func (c Draft17) ReadReply(r io.Reader, id, requestType uint64) (Message, error) {
	t, payload, err := c.ReadFrame(r)
	if err != nil {
		return nil, err
	}
	return c.ParseReply(t, payload, id, requestType)
}

// ReadFrame reads one message's type and payload, for callers that choose
// the request context by the type (ParseReply).
func (Draft17) ReadFrame(r io.Reader) (uint64, []byte, error) {
	return readFrameV(r, loVint, d17MessageName)
}

// ParseReply decodes a payload of wire type t read on the stream of
// request id (see ReadReply).
func (c Draft17) ParseReply(t uint64, payload []byte, id, requestType uint64) (Message, error) {
	return c.base(id, requestType).ParseMessage(t, payload)
}

// IsRequestReply reports whether wire type t is REQUEST_OK or
// REQUEST_ERROR, whose meaning depends on the request they answer.
func IsRequestReply(t uint64) bool { return t == d16RequestOK || t == d16RequestError }

// ParseMessage decodes a payload of wire type t that is not a reply.
func (c Draft17) ParseMessage(t uint64, payload []byte) (Message, error) {
	return c.base(0, 0).ParseMessage(t, payload)
}

// AppendMessage encodes a model message as draft-17. Replies leave out
// their RequestID (the stream says it); the model's cancel messages have no
// draft-17 form (ErrNotInVersion: the session closes the stream instead).
func (c Draft17) AppendMessage(b []byte, m Message) ([]byte, error) {
	if rv := reflect.ValueOf(m); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return b, fmt.Errorf("%w: nil %T", ErrInvalidMessage, m)
		}
		m = rv.Elem().Interface().(Message)
	}
	d16 := c.base(0, 0)
	frame := func(t, model uint64, body func(*encoder)) ([]byte, error) {
		return appendFrame(b, t, d16.encoder(model, d17MessageName(t)), body)
	}
	switch v := m.(type) {
	case ClientSetup:
		return frame(d17Setup, MsgClientSetup, func(e *encoder) { e.setupParams16(v.Params) })
	case ServerSetup:
		return frame(d17Setup, MsgServerSetup, func(e *encoder) { e.setupParams16(v.Params) })
	case GoAway:
		return frame(d16GoAway, MsgGoAway, func(e *encoder) {
			e.str("new session URI", v.NewSessionURI, MaxGoAwayURILen)
			e.varint("timeout", v.Timeout)
		})
	case PublishDone:
		return frame(d16PublishDone, MsgPublishDone, func(e *encoder) {
			e.varint("status code", publishDoneCodes16.wire(v.StatusCode))
			e.varint("stream count", v.StreamCount)
			e.reason(v.Reason)
		})
	case PublishBlocked:
		return frame(d17PublishBlocked, MsgPublishBlocked, func(e *encoder) {
			e.trackName(e.tupleMin("track namespace suffix", v.Suffix, 0, true), v.TrackName)
		})
	case Unsubscribe, FetchCancel, PublishNamespaceDone, PublishNamespaceCancel, MaxRequestID, RequestsBlocked, UnsubscribeNamespace:
		return b, fmt.Errorf("%w: draft-17 has no %s", ErrNotInVersion, MessageName(m.Type()))
	}
	return d16.AppendMessage(b, m)
}

// parse decodes the draft-17 messages whose layout is not draft-16's; nil
// for the others.
func (x *ctx17) parse(d *decoder, t uint64) Message {
	switch t {
	case d17Setup:
		if x.client {
			d.msg = MsgServerSetup
			return &ServerSetup{Version: Version17, Params: d.setupParams16(false)}
		}
		d.msg = MsgClientSetup
		return &ClientSetup{Versions: []uint64{Version17}, Params: d.setupParams16(true)}
	case d16GoAway:
		return &GoAway{NewSessionURI: d.str("new session URI", MaxGoAwayURILen), Timeout: d.varint("timeout")}
	case d17PublishBlocked:
		m := &PublishBlocked{}
		var nsLen int
		m.Suffix, nsLen = d.tupleMin("track namespace suffix", 0, true)
		m.TrackName = d.trackName(nsLen)
		return m
	}
	return nil
}

// ---- the draft-17 switches of the draft-16 message code ----

func (c Draft16) messageName(t uint64) string {
	if c.p17 != nil {
		return d17MessageName(t)
	}
	return d16MessageName(t)
}

func (c Draft16) decoder(payload []byte, name string) decoder {
	d := decoder{b: payload, name: name}
	if c.p17 != nil {
		d.vi, d.p17, d.ctxID, d.kvp = loVint, true, c.p17.id, c.p17.kvp
	}
	return d
}

func (c Draft16) encoder(model uint64, name string) encoder {
	e := encoder{msg: model, name: name}
	if c.p17 != nil {
		e.vi, e.p17, e.kvp = loVint, true, c.p17.kvp
	}
	return e
}

// reqID reads a request's Request ID, and in draft-17 its Required Request
// ID Delta (checked, not acted on: the session handles requests in the
// order they arrive).
func (d *decoder) reqID() uint64 {
	id := d.varint("request ID")
	if d.p17 {
		if delta := d.varint("required request ID delta"); d.err == nil && delta > id/2 {
			d.fail(InvalidRequiredRequestID, "required request ID delta %d exceeds request ID %d", delta, id)
		}
	}
	return id
}

// replyID is the request a reply answers: on the wire in draft-16, the
// stream's in draft-17.
func (d *decoder) replyID() uint64 {
	if d.p17 {
		return d.ctxID
	}
	return d.varint("request ID")
}

// minNamespace is the fewest fields a track namespace may have (draft-17
// allows none, #1472).
func (d *decoder) minNamespace() uint64 {
	if d.p17 {
		return 0
	}
	return 1
}

func (e *encoder) minNamespace() int {
	if e.p17 {
		return 0
	}
	return 1
}

func (e *encoder) reqID(id uint64) {
	e.varint("request ID", id)
	if e.p17 {
		e.varint("required request ID delta", 0) // we never make a request wait for another
	}
}

func (e *encoder) replyID(id uint64) {
	if !e.p17 {
		e.varint("request ID", id)
	}
}

// paramKind17 is how a draft-17 Message Parameter's value is encoded.
type paramKind17 int

const (
	kindVarint paramKind17 = iota
	kindUint8
	kindLocation
	kindBytes
)

func paramKind(key uint64) (paramKind17, bool) {
	switch key {
	case p16DeliveryTimeout, p17RendezvousTimeout, p16Expires, p16NewGroupRequest:
		return kindVarint, true
	case p16Forward, p16SubscriberPriority, p16GroupOrder:
		return kindUint8, true
	case p16LargestObject:
		return kindLocation, true
	case p16AuthToken, p16SubscriptionFilter:
		return kindBytes, true
	}
	return 0, false
}

// parseParam reads one parameter whose type is a delta from prev. In
// draft-17 the value is decoded by the parameter's type and handed on in
// draft-16's form (LARGEST_OBJECT and SUBSCRIPTION_FILTER as draft-16
// bytes), so that the draft-16 checks and field mapping apply.
func (d *decoder) parseParam(prev uint64) (Param, int, error) {
	if !d.p17 || d.kvp {
		return parseKVPDelta(d.b, prev, d.vi)
	}
	b := d.b
	delta, n, err := loVint.parse(b)
	if err != nil || delta > MaxVarint-prev {
		return Param{}, 0, protocolViolation("parameter type truncated or too large")
	}
	p := Param{Key: prev + delta}
	kind, ok := paramKind(p.Key)
	if !ok {
		return Param{}, 0, protocolViolation("unknown parameter 0x%x", p.Key)
	}
	sub := decoder{b: b[n:], vi: loVint, name: d.name}
	switch kind {
	case kindVarint:
		p.Value = sub.varint("parameter value")
	case kindUint8:
		p.Value = uint64(sub.u8("parameter value"))
	case kindLocation:
		p.Bytes = appendLocation16(sub.location("largest object"))
	case kindBytes:
		p.Bytes = sub.raw("parameter value", MaxParamValueLen)
		if p.Key == p16SubscriptionFilter && sub.err == nil {
			p.Bytes = filter17To16(p.Bytes)
		}
	}
	if sub.err != nil {
		return Param{}, 0, sub.err.(*SessionError)
	}
	return p, len(b) - len(sub.b), nil
}

// dropParam17 consumes the draft-17 parameters draft-16 has no place for:
// RENDEZVOUS_TIMEOUT (we answer at once whether a publisher exists) and
// a DELIVERY_TIMEOUT of 0 (no timeout, #1450).
func dropParam17(msg uint64, p Param) bool {
	return (p.Key == p17RendezvousTimeout && msg == d16Subscribe) || (p.Key == p16DeliveryTimeout && p.Value == 0)
}

// filter17To16 rewrites a draft-17 Subscription Filter (leading-ones
// varints, End Group Delta) as draft-16's (End Group); a malformed one
// becomes one draft-16's parser refuses.
func filter17To16(b []byte) []byte {
	d := decoder{b: b, vi: loVint}
	ft := d.varint("filter type")
	var start Location
	var end uint64
	switch ft {
	case FilterAbsoluteStart:
		start = d.location("start")
	case FilterAbsoluteRange:
		start = d.location("start")
		delta := d.varint("end group delta")
		if delta > MaxVarint-start.Group {
			return []byte{0xff}
		}
		end = start.Group + delta
	}
	if d.err != nil || len(d.b) != 0 || ft > MaxVarint {
		return []byte{0xff} // not a filter: refused by parseFilter16
	}
	return appendFilter16(nil, ft, start, end)
}

// filter16To17 is the inverse of filter17To16 for a well-formed filter.
func filter16To17(b []byte) ([]byte, bool) {
	ft, start, end, ok := parseFilter16(b)
	if !ok || (ft == FilterAbsoluteRange && end < start.Group) {
		return nil, false
	}
	out := AppendVarint17(nil, ft)
	if ft == FilterAbsoluteStart || ft == FilterAbsoluteRange {
		out = AppendVarint17(AppendVarint17(out, start.Group), start.Object)
	}
	if ft == FilterAbsoluteRange {
		out = AppendVarint17(out, end-start.Group)
	}
	return out, true
}

// params17 writes sorted, checked parameters (draft-16 form) as draft-17
// Type-Value pairs.
func (e *encoder) params17(ps Params) {
	var prev uint64
	for _, p := range ps {
		kind, ok := paramKind(p.Key)
		if !ok {
			e.failf("parameter 0x%x is not in draft-17", p.Key)
			return
		}
		e.varint("parameter type", p.Key-prev)
		prev = p.Key
		switch kind {
		case kindVarint:
			e.varint("parameter value", p.Value)
		case kindUint8:
			if p.Value > 255 {
				e.failf("parameter 0x%x value %d exceeds 255", p.Key, p.Value)
				return
			}
			e.u8(uint8(p.Value))
		case kindLocation:
			l, ok := parseLocation16(p.Bytes)
			if !ok {
				e.failf("LARGEST_OBJECT is not a Location")
				return
			}
			e.location("largest object", l)
		case kindBytes:
			v := p.Bytes
			if p.Key == p16SubscriptionFilter {
				if v, ok = filter16To17(v); !ok {
					e.failf("malformed SUBSCRIPTION_FILTER")
					return
				}
			}
			if len(v) > MaxParamValueLen {
				e.failf("parameter 0x%x length %d exceeds %d", p.Key, len(v), MaxParamValueLen)
				return
			}
			e.varint("parameter length", uint64(len(v)))
			e.b = append(e.b, v...)
		}
	}
}

// ---- data plane: draft-16's layouts with draft-17 varints ----

// NewStreamReader reads a draft-17 data stream.
func (Draft17) NewStreamReader(r io.Reader) DataReader {
	sr := NewStreamReader(r)
	sr.vi = loVint
	return &streamReader16{StreamReader: sr}
}

func (Draft17) AppendSubgroupHeader(b []byte, h SubgroupHeader) []byte {
	return appendSubgroupHeader16(b, loVint, h)
}

func (Draft17) AppendSubgroupObject(b []byte, hdrType, prevObjectID uint64, first bool, oh ObjectHeader) ([]byte, error) {
	return appendSubgroupObject16(b, loVint, hdrType, prevObjectID, first, oh)
}

func (Draft17) AppendFetchHeader(b []byte, requestID uint64) []byte {
	return appendFetchHeaderV(b, loVint, requestID)
}

func (Draft17) AppendFetchObject(b []byte, prev *FetchObjectHeader, oh FetchObjectHeader) ([]byte, error) {
	return appendFetchObject16(b, loVint, prev, oh)
}

var datagram17 = func() objectRules {
	r := datagram16
	r.vi = loVint
	r.extensions = func(b []byte) ([]byte, error) { return extensionsDeltaTo14(b, loVint) }
	return r
}()

func (Draft17) ParseDatagram(b []byte) (Datagram, error) { return parseDatagram(b, &datagram17) }

func (Draft17) AppendDatagram(b []byte, d Datagram) ([]byte, error) {
	return appendDatagram16(b, loVint, d)
}
