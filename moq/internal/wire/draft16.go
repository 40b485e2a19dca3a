package wire

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
)

// Draft16 is the draft-ietf-moq-transport-16 codec. It translates between
// draft-16's bytes and the message model:
//
//   - REQUEST_OK and REQUEST_ERROR become the *_OK / *_ERROR of the request
//     they answer (found with RequestType), and those model replies are sent
//     as REQUEST_OK / REQUEST_ERROR; error codes are translated between the
//     REQUEST_ERROR registry and the model's per-request registries;
//   - fields that moved into parameters (priorities, group order, forward,
//     filter, expires, largest object) or Track Extensions (delivery
//     timeout, max cache duration, the publisher's group order) are the
//     model's fields again; parameters are delta-encoded Key-Value-Pairs;
//   - CLIENT_SETUP/SERVER_SETUP carry no version (ALPN chose it);
//   - object extension blocks are rewritten between delta-encoded types and
//     the model's draft-14 layout.
//
// A parameter or extension type above 2^62-1 is refused as a
// PROTOCOL_VIOLATION (the model keeps types as QUIC varints).
type Draft16 struct {
	// RequestType returns the model type (MsgSubscribe, MsgFetch, ...) of
	// the outstanding request with this ID that we sent, or 0. Replies
	// name only the request ID; what they mean depends on the request.
	RequestType func(requestID uint64) uint64

	// p17, if set, makes this the draft-17 message layer (see Draft17).
	p17 *ctx17
}

var _ Codec = Draft16{}

// Draft-16 control message types (§9).
const (
	d16RequestUpdate          = 0x2
	d16Subscribe              = 0x3
	d16SubscribeOK            = 0x4
	d16RequestError           = 0x5
	d16PublishNamespace       = 0x6
	d16RequestOK              = 0x7
	d16Namespace              = 0x8
	d16PublishNamespaceDone   = 0x9
	d16Unsubscribe            = 0xA
	d16PublishDone            = 0xB
	d16PublishNamespaceCancel = 0xC
	d16TrackStatus            = 0xD
	d16NamespaceDone          = 0xE
	d16GoAway                 = 0x10
	d16SubscribeNamespace     = 0x11
	d16MaxRequestID           = 0x15
	d16Fetch                  = 0x16
	d16FetchCancel            = 0x17
	d16FetchOK                = 0x18
	d16RequestsBlocked        = 0x1A
	d16Publish                = 0x1D
	d16PublishOK              = 0x1E
	d16ClientSetup            = 0x20
	d16ServerSetup            = 0x21
)

func d16MessageName(t uint64) string {
	switch t {
	case d16RequestUpdate:
		return "REQUEST_UPDATE"
	case d16Subscribe:
		return "SUBSCRIBE"
	case d16SubscribeOK:
		return "SUBSCRIBE_OK"
	case d16RequestError:
		return "REQUEST_ERROR"
	case d16PublishNamespace:
		return "PUBLISH_NAMESPACE"
	case d16RequestOK:
		return "REQUEST_OK"
	case d16Namespace:
		return "NAMESPACE"
	case d16PublishNamespaceDone:
		return "PUBLISH_NAMESPACE_DONE"
	case d16Unsubscribe:
		return "UNSUBSCRIBE"
	case d16PublishDone:
		return "PUBLISH_DONE"
	case d16PublishNamespaceCancel:
		return "PUBLISH_NAMESPACE_CANCEL"
	case d16TrackStatus:
		return "TRACK_STATUS"
	case d16NamespaceDone:
		return "NAMESPACE_DONE"
	case d16GoAway:
		return "GOAWAY"
	case d16SubscribeNamespace:
		return "SUBSCRIBE_NAMESPACE"
	case d16MaxRequestID:
		return "MAX_REQUEST_ID"
	case d16Fetch:
		return "FETCH"
	case d16FetchCancel:
		return "FETCH_CANCEL"
	case d16FetchOK:
		return "FETCH_OK"
	case d16RequestsBlocked:
		return "REQUESTS_BLOCKED"
	case d16Publish:
		return "PUBLISH"
	case d16PublishOK:
		return "PUBLISH_OK"
	case d16ClientSetup:
		return "CLIENT_SETUP"
	case d16ServerSetup:
		return "SERVER_SETUP"
	}
	return ""
}

// Draft-16 message parameter types (§9.2.2).
const (
	p16DeliveryTimeout    = 0x02
	p16AuthToken          = 0x03
	p16Expires            = 0x08
	p16LargestObject      = 0x09
	p16Forward            = 0x10
	p16SubscriberPriority = 0x20
	p16SubscriptionFilter = 0x21
	p16GroupOrder         = 0x22
	p16NewGroupRequest    = ParamNewGroupRequest
)

// Draft-16 extension header types (§11); the Track Extensions among them
// travel in SUBSCRIBE_OK, PUBLISH and FETCH_OK.
const (
	Ext16DeliveryTimeout          = 0x02
	Ext16MaxCacheDuration         = 0x04
	Ext16DefaultPublisherPriority = 0x0E
	Ext16DefaultGroupOrder        = 0x22
	Ext16DynamicGroups            = 0x30
)

// known16 reports whether key is a draft-16 message parameter: any other is
// a PROTOCOL_VIOLATION.
func known16(key uint64) bool {
	switch key {
	case p16DeliveryTimeout, p16AuthToken, p16Expires, p16LargestObject, p16Forward,
		p16SubscriberPriority, p16SubscriptionFilter, p16GroupOrder, p16NewGroupRequest:
		return true
	}
	return false
}

// allowed16 encodes where each parameter may appear (§9.2.2); elsewhere it
// MUST be ignored. TRACK_STATUS carries none of the delivery parameters.
func allowed16(msg, key uint64) bool {
	in := func(ts ...uint64) bool { return slices.Contains(ts, msg) }
	switch key {
	case p16DeliveryTimeout:
		return in(d16PublishOK, d16Subscribe, d16RequestUpdate)
	case p16AuthToken:
		return in(d16Publish, d16Subscribe, d16RequestUpdate, d16SubscribeNamespace,
			d16PublishNamespace, d16TrackStatus, d16Fetch)
	case p16Expires:
		return in(d16SubscribeOK, d16Publish, d16PublishOK, d16RequestOK)
	case p16LargestObject:
		return in(d16SubscribeOK, d16Publish, d16RequestOK)
	case p16Forward:
		return in(d16Subscribe, d16RequestUpdate, d16Publish, d16PublishOK, d16SubscribeNamespace)
	case p16SubscriberPriority:
		return in(d16Subscribe, d16Fetch, d16RequestUpdate, d16PublishOK)
	case p16SubscriptionFilter:
		return in(d16Subscribe, d16PublishOK, d16RequestUpdate)
	case p16GroupOrder:
		return in(d16Subscribe, d16PublishOK, d16Fetch)
	case p16NewGroupRequest:
		return in(d16PublishOK, d16Subscribe, d16RequestUpdate)
	}
	return false
}

func (Draft16) Version() uint64 { return Version16 }

func (Draft16) Features() Features {
	return Features{NamespaceStreams: true, UpdateReplies: true, EmptyFetchOK: true, DynamicGroups: true}
}

// ---- error code registries ----

// codeMap translates one error-code registry between the model (draft-14
// numbering) and draft-16. It is a permutation of the code space, so that
// any code, registered or not, survives a round trip: beyond the listed
// pairs, the wire codes the pairs use that are not model codes trade places
// with the model codes that are not wire codes; everything else is itself.
type codeMap struct{ toWire, toModel map[uint64]uint64 }

func newCodeMap(pairs ...[2]uint64) codeMap {
	m := codeMap{toWire: map[uint64]uint64{}, toModel: map[uint64]uint64{}}
	for _, p := range pairs {
		m.toWire[p[0]], m.toModel[p[1]] = p[1], p[0]
	}
	var needWire, needModel []uint64
	for _, p := range pairs {
		if _, ok := m.toWire[p[1]]; !ok {
			needWire = append(needWire, p[1]) // as a model code its identity image is taken
		}
		if _, ok := m.toModel[p[0]]; !ok {
			needModel = append(needModel, p[0]) // as a wire code its identity preimage is taken
		}
	}
	slices.Sort(needWire)
	slices.Sort(needModel)
	for i := range needWire {
		m.toWire[needWire[i]], m.toModel[needModel[i]] = needModel[i], needWire[i]
	}
	return m
}

func (m codeMap) wire(c uint64) uint64 {
	if v, ok := m.toWire[c]; ok {
		return v
	}
	return c
}

func (m codeMap) model(c uint64) uint64 {
	if v, ok := m.toModel[c]; ok {
		return v
	}
	return c
}

// REQUEST_ERROR codes (§13.1.2 of draft-16).
const (
	req16MalformedAuthToken      = 0x4
	req16ExpiredAuthToken        = 0x5
	req16DoesNotExist            = 0x10
	req16InvalidRange            = 0x11
	req16MalformedTrack          = 0x12
	req16Uninterested            = 0x20
	req16PrefixOverlap           = 0x30
	req16InvalidJoiningRequestID = 0x32
)

// INTERNAL_ERROR, UNAUTHORIZED, TIMEOUT and NOT_SUPPORTED (0-3) are the same
// in every registry.
var (
	subscribeCodes16 = newCodeMap(
		[2]uint64{SubscribeErrorTrackDoesNotExist, req16DoesNotExist},
		[2]uint64{SubscribeErrorInvalidRange, req16InvalidRange},
		[2]uint64{SubscribeErrorMalformedAuthToken, req16MalformedAuthToken},
		[2]uint64{SubscribeErrorExpiredAuthToken, req16ExpiredAuthToken},
	)
	fetchCodes16 = newCodeMap(
		[2]uint64{FetchErrorTrackDoesNotExist, req16DoesNotExist},
		[2]uint64{FetchErrorInvalidRange, req16InvalidRange},
		[2]uint64{FetchErrorInvalidJoiningRequestID, req16InvalidJoiningRequestID},
		[2]uint64{FetchErrorMalformedTrack, req16MalformedTrack},
		[2]uint64{FetchErrorMalformedAuthToken, req16MalformedAuthToken},
		[2]uint64{FetchErrorExpiredAuthToken, req16ExpiredAuthToken},
	)
	publishCodes16 = newCodeMap(
		[2]uint64{PublishErrorUninterested, req16Uninterested},
	)
	publishNamespaceCodes16 = newCodeMap(
		[2]uint64{PublishNamespaceErrorUninterested, req16Uninterested},
		[2]uint64{PublishNamespaceErrorMalformedAuthToken, req16MalformedAuthToken},
		[2]uint64{PublishNamespaceErrorExpiredAuthToken, req16ExpiredAuthToken},
	)
	subscribeNamespaceCodes16 = newCodeMap(
		[2]uint64{SubscribeNamespaceErrorNamespacePrefixUnknown, req16DoesNotExist},
		[2]uint64{SubscribeNamespaceErrorNamespacePrefixOverlap, req16PrefixOverlap},
		[2]uint64{SubscribeNamespaceErrorMalformedAuthToken, req16MalformedAuthToken},
		[2]uint64{SubscribeNamespaceErrorExpiredAuthToken, req16ExpiredAuthToken},
	)
	publishDoneCodes16 = newCodeMap(
		[2]uint64{PublishDoneMalformedTrack, 0x12},
	)
)

// ---- reading ----

// ReadMessage reads one draft-16 control message.
func (c Draft16) ReadMessage(r io.Reader) (Message, error) {
	t, payload, err := readFrame(r, d16MessageName)
	if err != nil {
		return nil, err
	}
	return c.ParseMessage(t, payload)
}

// ParseMessage decodes a draft-16 control message payload of wire type t
// into the model.
func (c Draft16) ParseMessage(t uint64, payload []byte) (Message, error) {
	name := c.messageName(t)
	if name == "" {
		return nil, protocolViolation("unknown control message type 0x%x", t)
	}
	d := c.decoder(payload, name)
	var m Message
	if c.p17 != nil {
		m = c.p17.parse(&d, t)
	}
	if m == nil {
		m = c.parseBody(&d, t)
	}
	d.finish()
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}

// parseBody decodes the fields of a message of wire type t.
func (c Draft16) parseBody(d *decoder, t uint64) (m Message) {
	switch t {
	case d16ClientSetup:
		d.msg = MsgClientSetup
		m = &ClientSetup{Versions: []uint64{Version16}, Params: d.setupParams16(true)}
	case d16ServerSetup:
		d.msg = MsgServerSetup
		m = &ServerSetup{Version: Version16, Params: d.setupParams16(false)}
	case d16GoAway:
		m = parseOneField(d, MsgGoAway)
	case d16MaxRequestID:
		m = parseOneField(d, MsgMaxRequestID)
	case d16RequestsBlocked:
		m = parseOneField(d, MsgRequestsBlocked)
	case d16Unsubscribe:
		m = parseOneField(d, MsgUnsubscribe)
	case d16FetchCancel:
		m = parseOneField(d, MsgFetchCancel)
	case d16PublishDone:
		m = &PublishDone{
			RequestID:   d.replyID(),
			StatusCode:  publishDoneCodes16.model(d.varint("status code")),
			StreamCount: d.varint("stream count"),
			Reason:      d.reason(),
		}
	case d16Subscribe, d16TrackStatus:
		m = parseSubscribe16(d, t)
	case d16SubscribeOK:
		m = parseSubscribeOK16(d)
	case d16RequestUpdate:
		m = parseRequestUpdate16(d)
	case d16Publish:
		m = parsePublish16(d)
	case d16PublishOK:
		m = parsePublishOK16(d)
	case d16Fetch:
		m = parseFetch16(d)
	case d16FetchOK:
		m = parseFetchOK16(d)
	case d16PublishNamespace:
		v := &PublishNamespace{RequestID: d.reqID()}
		v.Namespace, _ = d.tupleMin("track namespace", d.minNamespace(), true)
		v.Params = d.params16(t, nil)
		m = v
	case d16PublishNamespaceDone:
		m = &PublishNamespaceDone{RequestID: d.varint("request ID")}
	case d16PublishNamespaceCancel:
		m = &PublishNamespaceCancel{
			RequestID: d.varint("request ID"),
			ErrorCode: publishNamespaceCodes16.model(d.varint("error code")),
			Reason:    d.reason(),
		}
	case d16Namespace:
		v := &Namespace{}
		v.Suffix, _ = d.tupleMin("track namespace suffix", 0, true)
		m = v
	case d16NamespaceDone:
		v := &NamespaceDone{}
		v.Suffix, _ = d.tupleMin("track namespace suffix", 0, true)
		m = v
	case d16SubscribeNamespace:
		m = parseSubscribeNamespace16(d)
	case d16RequestOK:
		m = c.parseRequestOK(d)
	case d16RequestError:
		m = c.parseRequestError(d)
	}
	return m
}

func (c Draft16) requestType(id uint64) uint64 {
	if c.RequestType == nil {
		return 0
	}
	return c.RequestType(id)
}

func (c Draft16) parseRequestOK(d *decoder) Message {
	id := d.replyID()
	if d.err != nil {
		return nil
	}
	// Lenient: Eyevinn/moqtransport v0.9.0 leaves out Number of
	// Parameters when it has none.
	var ps Params
	if len(d.b) > 0 {
		ps = d.params16(d16RequestOK, nil)
	}
	switch rt := c.requestType(id); rt {
	case MsgPublishNamespace:
		return &PublishNamespaceOK{RequestID: id}
	case MsgSubscribeNamespace:
		return &SubscribeNamespaceOK{RequestID: id}
	case MsgTrackStatus:
		m := &TrackStatusOK{RequestID: id, GroupOrder: GroupOrderAscending}
		m.Expires, _ = ps.Uint(p16Expires)
		if b, ok := ps.Bytes(p16LargestObject); ok {
			m.ContentExists, m.Largest = true, mustLocation16(b)
		}
		return m
	case MsgSubscribeUpdate:
		return &SubscribeUpdateOK{RequestID: id, Params: ps}
	default:
		d.fail(ProtocolViolation, "reply to request %d, which awaits no REQUEST_OK (%s)", id, orNone(MessageName(rt)))
		return nil
	}
}

func orNone(s string) string {
	if s == "" {
		return "no such request"
	}
	return s
}

func (c Draft16) parseRequestError(d *decoder) Message {
	id := d.replyID()
	code := d.varint("error code")
	retry := d.varint("retry interval")
	reason := d.reason()
	if d.err != nil {
		return nil
	}
	e := SubscribeError{RequestID: id, ErrorCode: code, RetryInterval: retry, Reason: reason}
	switch rt := c.requestType(id); rt {
	case MsgSubscribe:
		e.ErrorCode = subscribeCodes16.model(code)
		return &e
	case MsgTrackStatus:
		e.ErrorCode = subscribeCodes16.model(code)
		v := TrackStatusError(e)
		return &v
	case MsgSubscribeUpdate:
		e.ErrorCode = subscribeCodes16.model(code)
		v := SubscribeUpdateError(e)
		return &v
	case MsgFetch:
		e.ErrorCode = fetchCodes16.model(code)
		v := FetchError(e)
		return &v
	case MsgPublish:
		e.ErrorCode = publishCodes16.model(code)
		v := PublishError(e)
		return &v
	case MsgPublishNamespace:
		e.ErrorCode = publishNamespaceCodes16.model(code)
		v := PublishNamespaceError(e)
		return &v
	case MsgSubscribeNamespace:
		e.ErrorCode = subscribeNamespaceCodes16.model(code)
		v := SubscribeNamespaceError(e)
		return &v
	default:
		d.fail(ProtocolViolation, "REQUEST_ERROR for request %d (%s)", id, orNone(MessageName(rt)))
		return nil
	}
}

func parseSubscribe16(d *decoder, t uint64) Message {
	m := Subscribe{RequestID: d.reqID()}
	var nsLen int
	m.Namespace, nsLen = d.tupleMin("track namespace", d.minNamespace(), true)
	m.TrackName = d.trackName(nsLen)
	// Defaults of omitted parameters (§9.2.2): priority 128, the
	// publisher's group order, forward 1, no filter (which is what
	// AbsoluteStart {0, 0} is).
	m.SubscriberPriority, m.Forward, m.FilterType = 128, true, FilterAbsoluteStart
	m.Params = d.params16(t, func(p Param) bool {
		switch p.Key {
		case p16SubscriberPriority:
			m.SubscriberPriority = uint8(p.Value)
		case p16GroupOrder:
			m.GroupOrder = uint8(p.Value)
		case p16Forward:
			m.Forward = p.Value == 1
		case p16SubscriptionFilter:
			m.FilterType, m.Start, m.EndGroup, _ = parseFilter16(p.Bytes)
		default:
			return false
		}
		return true
	})
	if t == d16TrackStatus {
		// No delivery parameters: the model's TRACK_STATUS is a SUBSCRIBE
		// for the Largest Object.
		m.SubscriberPriority, m.GroupOrder, m.Forward = 0, 0, true
		m.FilterType, m.Start, m.EndGroup = FilterLargestObject, Location{}, 0
		v := TrackStatus(m)
		return &v
	}
	return &m
}

func parseSubscribeOK16(d *decoder) Message {
	m := &SubscribeOK{RequestID: d.replyID(), TrackAlias: d.varint("track alias")}
	for _, p := range d.params16(d16SubscribeOK, nil) {
		switch p.Key {
		case p16Expires:
			m.Expires = p.Value
		case p16LargestObject:
			m.ContentExists, m.Largest = true, mustLocation16(p.Bytes)
		}
	}
	m.GroupOrder, m.Params, m.TrackExtensions = d.trackExtensions16()
	return m
}

func parsePublish16(d *decoder) Message {
	m := &Publish{RequestID: d.reqID()}
	var nsLen int
	m.Namespace, nsLen = d.tupleMin("track namespace", d.minNamespace(), true)
	m.TrackName = d.trackName(nsLen)
	m.TrackAlias = d.varint("track alias")
	m.Forward = true
	ps := d.params16(d16Publish, func(p Param) bool {
		switch p.Key {
		case p16Forward:
			m.Forward = p.Value == 1
		case p16LargestObject:
			m.ContentExists, m.Largest = true, mustLocation16(p.Bytes)
		case p16Expires:
			// Advisory; the model's PUBLISH has no field for it.
		default:
			return false
		}
		return true
	})
	var exts Params
	m.GroupOrder, exts, m.TrackExtensions = d.trackExtensions16()
	m.Params = append(ps, exts...)
	return m
}

func parsePublishOK16(d *decoder) Message {
	m := &PublishOK{RequestID: d.replyID()}
	m.SubscriberPriority, m.Forward, m.FilterType = 128, true, FilterAbsoluteStart
	m.Params = d.params16(d16PublishOK, func(p Param) bool {
		switch p.Key {
		case p16Forward:
			m.Forward = p.Value == 1
		case p16SubscriberPriority:
			m.SubscriberPriority = uint8(p.Value)
		case p16GroupOrder:
			m.GroupOrder = uint8(p.Value)
		case p16SubscriptionFilter:
			m.FilterType, m.Start, m.EndGroup, _ = parseFilter16(p.Bytes)
		case p16Expires:
		default:
			return false
		}
		return true
	})
	return m
}

func parseRequestUpdate16(d *decoder) Message {
	m := &SubscribeUpdate{RequestID: d.reqID(), SubscriptionRequestID: d.replyID()}
	m.Omit = OmitFilter | OmitPriority | OmitForward
	m.Params = d.params16(d16RequestUpdate, func(p Param) bool {
		switch p.Key {
		case p16SubscriberPriority:
			m.SubscriberPriority, m.Omit = uint8(p.Value), m.Omit&^OmitPriority
		case p16Forward:
			m.Forward, m.Omit = p.Value == 1, m.Omit&^OmitForward
		case p16SubscriptionFilter:
			var end uint64
			m.Filter, m.Start, end, _ = parseFilter16(p.Bytes)
			if m.Filter == FilterAbsoluteRange {
				m.EndGroup = end + 1 // the model's end group is exclusive
			}
			m.Omit &^= OmitFilter
		default:
			return false
		}
		return true
	})
	return m
}

func parseFetch16(d *decoder) Message {
	m := &Fetch{RequestID: d.reqID(), FetchType: d.varint("fetch type")}
	if d.err != nil {
		return m
	}
	if !d.fetchRange(m, true) {
		return m
	}
	m.SubscriberPriority = 128
	m.Params = d.params16(d16Fetch, func(p Param) bool {
		switch p.Key {
		case p16SubscriberPriority:
			m.SubscriberPriority = uint8(p.Value)
		case p16GroupOrder:
			m.GroupOrder = uint8(p.Value)
		default:
			return false
		}
		return true
	})
	return m
}

func parseFetchOK16(d *decoder) Message {
	m := &FetchOK{RequestID: d.replyID()}
	m.EndOfTrack = d.flag("end of track")
	m.End = d.location("end")
	d.params16(d16FetchOK, nil) // none is defined for FETCH_OK
	m.GroupOrder, m.Params, m.TrackExtensions = d.trackExtensions16()
	return m
}

func parseSubscribeNamespace16(d *decoder) Message {
	m := &SubscribeNamespace{RequestID: d.reqID()}
	m.Prefix, _ = d.tupleMin("track namespace prefix", 0, true)
	switch opt := d.varint("subscribe options"); opt {
	case 0:
		m.Publish, m.NoNamespaces = true, true
	case 1:
	case 2:
		m.Publish = true
	default:
		d.fail(ProtocolViolation, "invalid subscribe options %d", opt)
	}
	m.Params = d.params16(d16SubscribeNamespace, func(p Param) bool {
		return p.Key == p16Forward // only for the PUBLISH messages, which we do not send
	})
	return m
}

// ---- decoding helpers ----

// parseKVP16 decodes one Key-Value-Pair whose type is a delta from prev.
// Bytes aliases b.
func parseKVP16(b []byte, prev uint64) (Param, int, error) { return parseKVPDelta(b, prev, vint{}) }

// parseKVPDelta is parseKVP16 with the varint encoding vi.
func parseKVPDelta(b []byte, prev uint64, vi vint) (Param, int, error) {
	delta, n, err := vi.parse(b)
	if err != nil {
		return Param{}, 0, protocolViolation("key-value pair: truncated delta type")
	}
	if delta > MaxVarint-prev {
		return Param{}, 0, protocolViolation("key-value pair: type %d + %d exceeds 2^62-1", prev, delta)
	}
	p, m, err := parseKVPValueV(b[n:], prev+delta, vi)
	return p, n + m, err
}

// params16 reads Number of Parameters and the delta-encoded parameters of
// draft-16 message type msg. Unknown parameters are a PROTOCOL_VIOLATION,
// ones the message does not define are ignored, values are checked.
// take, if set, consumes parameters that are fields of the model message
// (returning true); the rest is returned (copied).
func (d *decoder) params16(msg uint64, take func(Param) bool) Params {
	n := d.varint("number of parameters")
	if d.err != nil || n == 0 {
		return nil
	}
	var out Params
	var prev uint64
	seen := make([]uint64, 0, min(n, 16))
	for i := uint64(0); i < n; i++ {
		p, used, err := d.parseParam(prev)
		if err != nil {
			d.fail(ProtocolViolation, "parameter %d: %s", i, err.(*SessionError).Reason)
			return nil
		}
		d.b, prev = d.b[used:], p.Key
		if d.p17 && dropParam17(msg, p) {
			continue
		}
		if !known16(p.Key) {
			d.fail(ProtocolViolation, "unknown parameter 0x%x", p.Key)
			return nil
		}
		if !allowed16(msg, p.Key) {
			continue
		}
		if p.Key != p16AuthToken {
			if slices.Contains(seen, p.Key) {
				d.fail(ProtocolViolation, "duplicate parameter 0x%x", p.Key)
				return nil
			}
			seen = append(seen, p.Key)
		}
		if code, why := checkParam16(p); why != "" {
			d.fail(code, "parameter 0x%x: %s", p.Key, why)
			return nil
		}
		if take != nil && take(p) {
			continue
		}
		if p.Bytes != nil {
			p.Bytes = slices.Clone(p.Bytes) // never alias the payload
		}
		out = append(out, p)
	}
	return out
}

// checkParam16 checks a known parameter's value; it returns the termination
// code and why, or "" if the value is fine.
func checkParam16(p Param) (uint64, string) {
	switch p.Key {
	case p16DeliveryTimeout:
		if p.Value == 0 {
			return ProtocolViolation, "DELIVERY_TIMEOUT 0"
		}
	case p16AuthToken:
		if _, err := ParseToken(p.Bytes); err != nil {
			return KeyValueFormattingError, err.(*SessionError).Reason
		}
	case p16LargestObject:
		if _, ok := parseLocation16(p.Bytes); !ok {
			return KeyValueFormattingError, "LARGEST_OBJECT is not a Location"
		}
	case p16Forward:
		if p.Value > 1 {
			return ProtocolViolation, fmt.Sprintf("FORWARD %d", p.Value)
		}
	case p16SubscriberPriority:
		if p.Value > 255 {
			return ProtocolViolation, fmt.Sprintf("SUBSCRIBER_PRIORITY %d", p.Value)
		}
	case p16GroupOrder:
		// 0 is outside the group-order section's list, but the Priorities
		// section still gives it "the publisher's preference", and Shaka
		// Player sends it: read it as that (GroupOrderPublisher).
		if p.Value > GroupOrderDescending {
			return ProtocolViolation, fmt.Sprintf("GROUP_ORDER %d", p.Value)
		}
	case p16SubscriptionFilter:
		if _, _, _, ok := parseFilter16(p.Bytes); !ok {
			return ProtocolViolation, "malformed SUBSCRIPTION_FILTER"
		}
	}
	return 0, ""
}

// setupParams16 reads setup parameters: their own key space, unknown keys
// ignored (and kept), the same checks as draft-14 plus: no token alias
// DELETE or USE_ALIAS in CLIENT_SETUP.
func (d *decoder) setupParams16(client bool) Params {
	var n uint64 = math.MaxUint64 // draft-17: Setup Options fill the message
	if !d.p17 {
		n = d.varint("number of parameters")
	}
	if d.err != nil || n == 0 {
		return nil
	}
	ps := make(Params, 0, min(n, uint64(len(d.b)/2)))
	var prev uint64
	for i := uint64(0); i < n && (!d.p17 || len(d.b) > 0); i++ {
		p, used, err := parseKVPDelta(d.b, prev, d.vi)
		if err != nil {
			d.fail(ProtocolViolation, "parameter %d: %s", i, err.(*SessionError).Reason)
			return nil
		}
		d.b, prev = d.b[used:], p.Key
		if p.Bytes != nil {
			p.Bytes = slices.Clone(p.Bytes)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil
	}
	if err := checkParams(d.msg, ps); err != nil {
		se := err.(*SessionError)
		d.fail(se.Code, "%s", se.Reason)
		return nil
	}
	if client {
		for _, p := range ps.All(ParamAuthorizationToken) {
			if t, _ := ParseToken(p.Bytes); t.AliasType == TokenAliasDelete || t.AliasType == TokenAliasUseAlias {
				d.fail(ProtocolViolation, "authorization token alias type %d in CLIENT_SETUP", t.AliasType)
				return nil
			}
		}
	}
	return ps
}

// trackExtensions16 reads the Track Extensions that end SUBSCRIBE_OK,
// PUBLISH and FETCH_OK: the publisher's group order (Ascending when
// absent), the model parameters they stand for (DELIVERY_TIMEOUT and
// MAX_CACHE_DURATION, which draft-14 sends as parameters) and the rest.
func (d *decoder) trackExtensions16() (groupOrder uint8, params, rest Params) {
	groupOrder = GroupOrderAscending
	if d.err != nil {
		return
	}
	var prev uint64
	var seen []uint64
	for len(d.b) > 0 {
		p, used, err := parseKVPDelta(d.b, prev, d.vi)
		if err != nil {
			d.fail(ProtocolViolation, "track extension: %s", err.(*SessionError).Reason)
			return
		}
		d.b, prev = d.b[used:], p.Key
		if p.Bytes != nil {
			p.Bytes = slices.Clone(p.Bytes)
		}
		switch p.Key {
		case Ext16DeliveryTimeout, Ext16MaxCacheDuration, Ext16DefaultPublisherPriority, Ext16DefaultGroupOrder, Ext16DynamicGroups:
			if slices.Contains(seen, p.Key) {
				d.fail(ProtocolViolation, "duplicate track extension 0x%x", p.Key)
				return
			}
			seen = append(seen, p.Key)
		}
		bad := false
		switch p.Key {
		case Ext16DeliveryTimeout:
			bad = p.Value == 0
			params = append(params, UintParam(ParamDeliveryTimeout, p.Value))
		case Ext16MaxCacheDuration:
			params = append(params, UintParam(ParamMaxCacheDuration, p.Value))
		case Ext16DefaultGroupOrder:
			bad = p.Value != GroupOrderAscending && p.Value != GroupOrderDescending
			groupOrder = uint8(p.Value)
		case Ext16DefaultPublisherPriority:
			bad = p.Value > 255
			rest = append(rest, p)
		case Ext16DynamicGroups:
			bad = p.Value > 1
			rest = append(rest, p)
		default:
			rest = append(rest, p)
		}
		if bad {
			d.fail(ProtocolViolation, "track extension 0x%x has value %d", p.Key, p.Value)
			return
		}
	}
	return
}

// parseFilter16 decodes a Subscription Filter that must fill b exactly.
func parseFilter16(b []byte) (ft uint64, start Location, endGroup uint64, ok bool) {
	d := decoder{b: b}
	ft, start, endGroup = d.filter() // the draft-14 layout, in a parameter
	return ft, start, endGroup, d.err == nil && len(d.b) == 0
}

func appendFilter16(b []byte, ft uint64, start Location, endGroup uint64) []byte {
	b = AppendVarint(b, ft)
	if ft == FilterAbsoluteStart || ft == FilterAbsoluteRange {
		b = AppendVarint(b, start.Group)
		b = AppendVarint(b, start.Object)
	}
	if ft == FilterAbsoluteRange {
		b = AppendVarint(b, endGroup)
	}
	return b
}

func parseLocation16(b []byte) (Location, bool) {
	d := decoder{b: b}
	l := d.location("location")
	return l, d.err == nil && len(d.b) == 0
}

// mustLocation16 decodes a LARGEST_OBJECT value checkParam16 accepted.
func mustLocation16(b []byte) Location {
	l, _ := parseLocation16(b)
	return l
}

func appendLocation16(l Location) []byte {
	return AppendVarint(AppendVarint(nil, l.Group), l.Object)
}

// ---- writing ----

// AppendMessage encodes a model message as draft-16. Model parameters that
// draft-16 does not define for the message are left out (a draft-16 peer
// must reject unknown ones); messages draft-16 lacks (UNSUBSCRIBE_NAMESPACE)
// are ErrNotInVersion.
func (c Draft16) AppendMessage(b []byte, m Message) ([]byte, error) {
	if rv := reflect.ValueOf(m); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return b, fmt.Errorf("%w: nil %T", ErrInvalidMessage, m)
		}
		m = rv.Elem().Interface().(Message)
	}
	frame := func(t, model uint64, body func(*encoder)) ([]byte, error) {
		return appendFrame(b, t, c.encoder(model, c.messageName(t)), body)
	}
	switch v := m.(type) {
	case ClientSetup:
		return frame(d16ClientSetup, MsgClientSetup, func(e *encoder) { e.setupParams16(v.Params) })
	case ServerSetup:
		return frame(d16ServerSetup, MsgServerSetup, func(e *encoder) { e.setupParams16(v.Params) })
	case GoAway:
		return frame(d16GoAway, MsgGoAway, v.appendPayload)
	case MaxRequestID:
		return frame(d16MaxRequestID, MsgMaxRequestID, v.appendPayload)
	case RequestsBlocked:
		return frame(d16RequestsBlocked, MsgRequestsBlocked, v.appendPayload)
	case Unsubscribe:
		return frame(d16Unsubscribe, MsgUnsubscribe, v.appendPayload)
	case FetchCancel:
		return frame(d16FetchCancel, MsgFetchCancel, v.appendPayload)
	case PublishDone:
		v.StatusCode = publishDoneCodes16.wire(v.StatusCode)
		return frame(d16PublishDone, MsgPublishDone, v.appendPayload)
	case Subscribe:
		return frame(d16Subscribe, MsgSubscribe, func(e *encoder) { e.subscribe16(v, false) })
	case TrackStatus:
		return frame(d16TrackStatus, MsgTrackStatus, func(e *encoder) { e.subscribe16(Subscribe(v), true) })
	case SubscribeOK:
		return frame(d16SubscribeOK, MsgSubscribeOK, func(e *encoder) {
			e.replyID(v.RequestID)
			e.varint("track alias", v.TrackAlias)
			e.params16(d16SubscribeOK, largestExpires16(v.ContentExists, v.Largest, v.Expires), nil)
			e.trackExtensions16(v.GroupOrder, v.Params, v.TrackExtensions)
		})
	case SubscribeError:
		return c.requestError(b, MsgSubscribeError, v, subscribeCodes16)
	case TrackStatusError:
		return c.requestError(b, MsgTrackStatusError, SubscribeError(v), subscribeCodes16)
	case SubscribeUpdateError:
		return c.requestError(b, MsgSubscribeUpdateError, SubscribeError(v), subscribeCodes16)
	case FetchError:
		return c.requestError(b, MsgFetchError, SubscribeError(v), fetchCodes16)
	case PublishError:
		return c.requestError(b, MsgPublishError, SubscribeError(v), publishCodes16)
	case PublishNamespaceError:
		return c.requestError(b, MsgPublishNamespaceError, SubscribeError(v), publishNamespaceCodes16)
	case SubscribeNamespaceError:
		return c.requestError(b, MsgSubscribeNamespaceError, SubscribeError(v), subscribeNamespaceCodes16)
	case PublishNamespaceOK:
		return c.requestOK(b, MsgPublishNamespaceOK, v.RequestID, nil)
	case SubscribeNamespaceOK:
		return c.requestOK(b, MsgSubscribeNamespaceOK, v.RequestID, nil)
	case TrackStatusOK:
		return c.requestOK(b, MsgTrackStatusOK, v.RequestID, largestExpires16(v.ContentExists, v.Largest, v.Expires))
	case SubscribeUpdateOK:
		return c.requestOK(b, MsgSubscribeUpdateOK, v.RequestID, v.Params)
	case SubscribeUpdate:
		return frame(d16RequestUpdate, MsgSubscribeUpdate, func(e *encoder) {
			e.reqID(v.RequestID)
			e.replyID(v.SubscriptionRequestID)
			var fields Params
			if v.Omit&OmitPriority == 0 {
				fields = append(fields, UintParam(p16SubscriberPriority, uint64(v.SubscriberPriority)))
			}
			if v.Omit&OmitForward == 0 {
				fields = append(fields, UintParam(p16Forward, b2u(v.Forward)))
			}
			if v.Omit&OmitFilter == 0 {
				ft, end := v.Filter, uint64(0)
				if ft == 0 {
					ft = FilterAbsoluteStart
					if v.EndGroup > 0 {
						ft = FilterAbsoluteRange
					}
				}
				if ft == FilterAbsoluteRange {
					if v.EndGroup == 0 {
						e.failf("absolute range without an end group")
						return
					}
					end = v.EndGroup - 1
				}
				fields = append(fields, BytesParam(p16SubscriptionFilter, appendFilter16(nil, ft, v.Start, end)))
			}
			e.params16(d16RequestUpdate, fields, v.Params)
		})
	case Publish:
		return frame(d16Publish, MsgPublish, func(e *encoder) {
			e.reqID(v.RequestID)
			e.trackName(e.tupleMin("track namespace", v.Namespace, e.minNamespace(), true), v.TrackName)
			e.varint("track alias", v.TrackAlias)
			fields := largestExpires16(v.ContentExists, v.Largest, 0)
			fields = append(fields, UintParam(p16Forward, b2u(v.Forward)))
			e.params16(d16Publish, fields, v.Params)
			e.trackExtensions16(v.GroupOrder, v.Params, v.TrackExtensions)
		})
	case PublishOK:
		return frame(d16PublishOK, MsgPublishOK, func(e *encoder) {
			e.replyID(v.RequestID)
			fields := Params{
				UintParam(p16Forward, b2u(v.Forward)),
				UintParam(p16SubscriberPriority, uint64(v.SubscriberPriority)),
			}
			if v.GroupOrder != GroupOrderPublisher {
				fields = append(fields, UintParam(p16GroupOrder, uint64(v.GroupOrder)))
			}
			if v.FilterType != 0 {
				fields = append(fields, BytesParam(p16SubscriptionFilter, appendFilter16(nil, v.FilterType, v.Start, v.EndGroup)))
			}
			e.params16(d16PublishOK, fields, v.Params)
		})
	case Fetch:
		return frame(d16Fetch, MsgFetch, func(e *encoder) {
			e.reqID(v.RequestID)
			if !e.fetchRange(v, true) {
				return
			}
			fields := Params{UintParam(p16SubscriberPriority, uint64(v.SubscriberPriority))}
			if v.GroupOrder != GroupOrderPublisher {
				fields = append(fields, UintParam(p16GroupOrder, uint64(v.GroupOrder)))
			}
			e.params16(d16Fetch, fields, v.Params)
		})
	case FetchOK:
		return frame(d16FetchOK, MsgFetchOK, func(e *encoder) {
			e.replyID(v.RequestID)
			e.flag(v.EndOfTrack)
			e.location("end", v.End)
			e.params16(d16FetchOK, nil, nil)
			e.trackExtensions16(v.GroupOrder, v.Params, v.TrackExtensions)
		})
	case PublishNamespace:
		return frame(d16PublishNamespace, MsgPublishNamespace, func(e *encoder) {
			e.reqID(v.RequestID)
			e.tupleMin("track namespace", v.Namespace, e.minNamespace(), true)
			e.params16(d16PublishNamespace, nil, v.Params)
		})
	case PublishNamespaceDone:
		return frame(d16PublishNamespaceDone, MsgPublishNamespaceDone, func(e *encoder) {
			e.varint("request ID", v.RequestID)
		})
	case PublishNamespaceCancel:
		return frame(d16PublishNamespaceCancel, MsgPublishNamespaceCancel, func(e *encoder) {
			e.varint("request ID", v.RequestID)
			e.varint("error code", publishNamespaceCodes16.wire(v.ErrorCode))
			e.reason(v.Reason)
		})
	case Namespace:
		return frame(d16Namespace, MsgNamespace, func(e *encoder) { e.tupleMin("track namespace suffix", v.Suffix, 0, true) })
	case NamespaceDone:
		return frame(d16NamespaceDone, MsgNamespaceDone, func(e *encoder) { e.tupleMin("track namespace suffix", v.Suffix, 0, true) })
	case SubscribeNamespace:
		return frame(d16SubscribeNamespace, MsgSubscribeNamespace, func(e *encoder) {
			e.reqID(v.RequestID)
			e.tupleMin("track namespace prefix", v.Prefix, 0, true)
			opt := uint64(1)
			switch {
			case v.NoNamespaces && v.Publish:
				opt = 0
			case v.NoNamespaces:
				e.failf("subscribe options: neither namespaces nor PUBLISH")
				return
			case v.Publish:
				opt = 2
			}
			e.varint("subscribe options", opt)
			e.params16(d16SubscribeNamespace, nil, v.Params)
		})
	}
	return b, fmt.Errorf("%w: draft-16 has no %s", ErrNotInVersion, MessageName(m.Type()))
}

func b2u(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// largestExpires16 is the LARGEST_OBJECT and EXPIRES parameters of a reply.
func largestExpires16(exists bool, largest Location, expires uint64) Params {
	var ps Params
	if expires > 0 {
		ps = append(ps, UintParam(p16Expires, expires))
	}
	if exists {
		ps = append(ps, BytesParam(p16LargestObject, appendLocation16(largest)))
	}
	return ps
}

func (c Draft16) requestOK(b []byte, model, id uint64, params Params) ([]byte, error) {
	return appendFrame(b, d16RequestOK, c.encoder(model, "REQUEST_OK"), func(e *encoder) {
		e.replyID(id)
		e.params16(d16RequestOK, nil, params)
	})
}

func (c Draft16) requestError(b []byte, model uint64, v SubscribeError, codes codeMap) ([]byte, error) {
	return appendFrame(b, d16RequestError, c.encoder(model, "REQUEST_ERROR"), func(e *encoder) {
		e.replyID(v.RequestID)
		e.varint("error code", codes.wire(v.ErrorCode))
		e.varint("retry interval", v.RetryInterval)
		e.reason(v.Reason)
	})
}

// subscribe16 writes SUBSCRIBE, or TRACK_STATUS (no delivery parameters).
func (e *encoder) subscribe16(v Subscribe, status bool) {
	e.reqID(v.RequestID)
	e.trackName(e.tupleMin("track namespace", v.Namespace, e.minNamespace(), true), v.TrackName)
	if status {
		e.params16(d16TrackStatus, nil, v.Params)
		return
	}
	if v.FilterType < FilterNextGroupStart || v.FilterType > FilterAbsoluteRange {
		e.failf("invalid filter type %d", v.FilterType)
		return
	}
	fields := Params{
		UintParam(p16SubscriberPriority, uint64(v.SubscriberPriority)),
		UintParam(p16Forward, b2u(v.Forward)),
		BytesParam(p16SubscriptionFilter, appendFilter16(nil, v.FilterType, v.Start, v.EndGroup)),
	}
	if v.GroupOrder != GroupOrderPublisher {
		fields = append(fields, UintParam(p16GroupOrder, uint64(v.GroupOrder)))
	}
	e.params16(d16Subscribe, fields, v.Params)
}

// params16 writes the parameters of draft-16 message msg: fields (made from
// the model's fields) and those of extra the message defines and fields
// does not already have.
func (e *encoder) params16(msg uint64, fields, extra Params) {
	if e.err != nil {
		return
	}
	ps := slices.Clone(fields)
	for _, p := range extra {
		if known16(p.Key) && allowed16(msg, p.Key) && !slices.ContainsFunc(fields, func(q Param) bool { return q.Key == p.Key }) {
			ps = append(ps, p)
		}
	}
	sortParams(ps)
	for i, p := range ps {
		if i > 0 && ps[i-1].Key == p.Key && p.Key != p16AuthToken {
			e.failf("duplicate parameter 0x%x", p.Key)
			return
		}
		if _, why := checkParam16(p); why != "" {
			e.failf("parameter 0x%x: %s", p.Key, why)
			return
		}
	}
	e.varint("number of parameters", uint64(len(ps)))
	if e.p17 && !e.kvp {
		e.params17(ps)
		return
	}
	e.kvps16(ps)
}

// setupParams16 writes setup parameters (any key; draft-14's checks).
func (e *encoder) setupParams16(ps Params) {
	if e.err != nil {
		return
	}
	if err := checkParams(e.msg, ps); err != nil {
		e.failf("%v", err)
		return
	}
	ps = slices.Clone(ps)
	sortParams(ps)
	if !e.p17 { // draft-17: no count, the options fill the message
		e.varint("number of parameters", uint64(len(ps)))
	}
	e.kvps16(ps)
}

// trackExtensions16 writes Track Extensions: the publisher's group order
// when not the default, the model parameters draft-16 moved here, and the
// extensions the model only carries along.
func (e *encoder) trackExtensions16(groupOrder uint8, params, rest Params) {
	if e.err != nil {
		return
	}
	var ps Params
	if groupOrder == GroupOrderDescending {
		ps = append(ps, UintParam(Ext16DefaultGroupOrder, GroupOrderDescending))
	}
	for _, p := range params {
		switch {
		case p.Key == ParamDeliveryTimeout && p.Value > 0:
			ps = append(ps, UintParam(Ext16DeliveryTimeout, p.Value))
		case p.Key == ParamMaxCacheDuration:
			ps = append(ps, UintParam(Ext16MaxCacheDuration, p.Value))
		}
	}
	for _, p := range rest {
		switch p.Key {
		case Ext16DeliveryTimeout, Ext16MaxCacheDuration, Ext16DefaultGroupOrder:
			continue // the model's fields say these
		}
		ps = append(ps, p)
	}
	sortParams(ps)
	e.kvps16(ps)
}

// kvps16 writes sorted Key-Value-Pairs with delta-encoded types.
func (e *encoder) kvps16(ps Params) {
	var prev uint64
	for _, p := range ps {
		if e.err != nil {
			return
		}
		switch {
		case p.Key > MaxVarint:
			e.failf("parameter key %d exceeds 2^62-1", p.Key)
		case p.Key&1 == 0 && p.Bytes != nil:
			e.failf("parameter 0x%x has an even key (varint) but Bytes set", p.Key)
		case p.Key&1 == 0 && p.Value > MaxVarint:
			e.failf("parameter 0x%x value exceeds 2^62-1", p.Key)
		case p.Key&1 == 1 && p.Value != 0:
			e.failf("parameter 0x%x has an odd key (bytes) but Value set", p.Key)
		case p.Key&1 == 1 && len(p.Bytes) > MaxParamValueLen:
			e.failf("parameter 0x%x length %d exceeds %d", p.Key, len(p.Bytes), MaxParamValueLen)
		default:
			e.b = appendKVPDelta(e.b, p, prev, e.vi)
			prev = p.Key
		}
	}
}

func appendKVP16(b []byte, p Param, prev uint64) []byte { return appendKVPDelta(b, p, prev, vint{}) }

// appendKVPDelta is appendKVP16 with the varint encoding vi.
func appendKVPDelta(b []byte, p Param, prev uint64, vi vint) []byte {
	b = vi.append(b, p.Key-prev)
	if p.Key&1 == 0 {
		return vi.append(b, p.Value)
	}
	b = vi.append(b, uint64(len(p.Bytes)))
	return append(b, p.Bytes...)
}

// sortParams orders parameters by type for delta encoding, keeping the
// order of repeated types.
func sortParams(ps Params) {
	slices.SortStableFunc(ps, func(a, b Param) int { return cmp.Compare(a.Key, b.Key) })
}
