package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// testRequestType stands for the session's table of outstanding requests:
// the request type is chosen by the request ID modulo 8, so that the
// samples, the vectors and the fuzzer all see replies of every kind.
func testRequestType(id uint64) uint64 {
	switch id % 8 {
	case 0:
		return MsgSubscribeNamespace
	case 1:
		return MsgPublish
	case 2:
		return MsgSubscribe
	case 3:
		return MsgFetch
	case 4:
		return MsgTrackStatus
	case 6:
		return MsgSubscribeUpdate
	case 7:
		return MsgPublishNamespace
	}
	return 0 // 5: nothing outstanding
}

var codec16 = Draft16{RequestType: testRequestType}

func read16(b []byte) (Message, error) {
	return codec16.ReadMessage(bufio.NewReader(bytes.NewReader(b)))
}

// samples16 has one model message of every kind draft-16 carries, in the
// form its decoder produces (defaults filled in, parameters in type order).
func samples16() []Message {
	ns := []string{"example.com", "meeting=123", "participant=100"}
	tok := BytesParam(ParamAuthToken, mustToken(Token{AliasType: TokenAliasRegister, Alias: 7, TokenType: 1, Value: []byte("jwt.payload.sig")}))
	tok2 := BytesParam(ParamAuthToken, mustToken(Token{AliasType: TokenAliasUseAlias, Alias: 7}))
	largest := BytesParam(p16LargestObject, appendLocation16(Location{Group: 9, Object: 1}))
	return []Message{
		&ClientSetup{Versions: []uint64{Version16}, Params: Params{
			BytesParam(ParamPath, []byte("/moq?x=1")),
			UintParam(ParamMaxRequestID, 1000),
			BytesParam(ParamAuthorizationToken, mustToken(Token{AliasType: TokenAliasUseValue, Value: []byte("secret")})),
			UintParam(ParamMaxAuthTokenCacheSize, 4096),
			BytesParam(ParamAuthority, []byte("relay.example:4443")),
			BytesParam(ParamImplementation, []byte("moqgate/0.1")),
			UintParam(0x40b5a, 1), UintParam(0x40b5a, 2), // unknown: repeats allowed
		}},
		&ServerSetup{Version: Version16, Params: Params{UintParam(ParamMaxRequestID, 1<<20), BytesParam(ParamImplementation, []byte("moqgate"))}},
		&GoAway{NewSessionURI: "moqt://other.example:4443/live"},
		&MaxRequestID{RequestID: 300},
		&RequestsBlocked{MaximumRequestID: 1<<30 + 5},
		&Subscribe{
			RequestID: 2, Namespace: ns, TrackName: "video/hd", SubscriberPriority: 200,
			GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterAbsoluteRange,
			Start: Location{Group: 70000, Object: 12}, EndGroup: 80000,
			Params: Params{UintParam(ParamDeliveryTimeout, 1500), tok, tok2, UintParam(p16NewGroupRequest, 5)},
		},
		&Subscribe{RequestID: 10, Namespace: []string{"x"}, TrackName: "", SubscriberPriority: 128, FilterType: FilterLargestObject},
		&Subscribe{RequestID: 18, Namespace: []string{"x"}, TrackName: "y", Forward: true, FilterType: FilterNextGroupStart},
		&SubscribeOK{
			RequestID: 2, TrackAlias: 17, Expires: 60000, GroupOrder: GroupOrderAscending,
			ContentExists: true, Largest: Location{Group: 1 << 33, Object: 99},
			Params:          Params{UintParam(ParamDeliveryTimeout, 10), UintParam(ParamMaxCacheDuration, 30000)},
			TrackExtensions: Params{UintParam(Ext16DefaultPublisherPriority, 7), BytesParam(0x40b5b, []byte{1, 2})},
		},
		&SubscribeOK{RequestID: 10, TrackAlias: 1 << 61, GroupOrder: GroupOrderDescending},
		&SubscribeError{RequestID: 2, ErrorCode: SubscribeErrorTrackDoesNotExist, RetryInterval: 1001, Reason: "no such track"},
		&SubscribeUpdate{
			RequestID: 6, SubscriptionRequestID: 2, Filter: FilterAbsoluteRange, Start: Location{Group: 70001},
			EndGroup: 80000, SubscriberPriority: 7, Params: Params{UintParam(ParamDeliveryTimeout, 800)},
		},
		&SubscribeUpdate{RequestID: 14, SubscriptionRequestID: 2, Omit: OmitFilter | OmitPriority | OmitForward},
		&SubscribeUpdate{RequestID: 22, SubscriptionRequestID: 2, Filter: FilterLargestObject, Omit: OmitPriority, Forward: true},
		&SubscribeUpdateOK{RequestID: 6, Params: Params{largest}},
		&SubscribeUpdateError{RequestID: 6, ErrorCode: SubscribeErrorNotSupported, Reason: "no"},
		&Unsubscribe{RequestID: 2},
		&PublishDone{RequestID: 2, StatusCode: PublishDoneMalformedTrack, StreamCount: MaxVarint, Reason: "bye"},
		&Publish{
			RequestID: 1, Namespace: []string{"live", "test"}, TrackName: "catalog", TrackAlias: 3,
			GroupOrder: GroupOrderDescending, ContentExists: true, Largest: Location{Group: 5},
			Params:          Params{tok, UintParam(ParamDeliveryTimeout, 9), UintParam(ParamMaxCacheDuration, 2000)},
			TrackExtensions: Params{UintParam(Ext16DynamicGroups, 1)},
		},
		&Publish{RequestID: 9, Namespace: []string{"x"}, TrackName: "y", GroupOrder: GroupOrderAscending, Forward: true},
		&PublishOK{
			RequestID: 1, Forward: true, SubscriberPriority: 9, GroupOrder: GroupOrderDescending,
			FilterType: FilterAbsoluteStart, Start: Location{Group: 4, Object: 2},
			Params: Params{UintParam(ParamDeliveryTimeout, 100)},
		},
		&PublishOK{RequestID: 9, SubscriberPriority: 128, FilterType: FilterAbsoluteRange, Start: Location{Group: 3}, EndGroup: 3},
		&PublishError{RequestID: 1, ErrorCode: PublishErrorUninterested, Reason: "not interested"},
		&Fetch{
			RequestID: 11, SubscriberPriority: 1, FetchType: FetchStandalone,
			Namespace: []string{"live", "test"}, TrackName: "audio",
			Start: Location{Group: 10}, End: Location{Group: 20}, Params: Params{tok2},
		},
		&Fetch{RequestID: 19, SubscriberPriority: 128, GroupOrder: GroupOrderDescending, FetchType: FetchRelativeJoining, JoiningRequestID: 2, JoiningStart: 3},
		&Fetch{RequestID: 27, FetchType: FetchAbsoluteJoining, JoiningRequestID: 2, JoiningStart: 1 << 35},
		&FetchOK{RequestID: 11, GroupOrder: GroupOrderAscending, EndOfTrack: true, End: Location{Group: 19, Object: 41}, Params: Params{UintParam(ParamMaxCacheDuration, 5)}},
		&FetchOK{RequestID: 19, GroupOrder: GroupOrderDescending, End: Location{Group: 1}},
		&FetchError{RequestID: 11, ErrorCode: FetchErrorInvalidJoiningRequestID, Reason: strings.Repeat("r", MaxReasonPhraseLen)},
		&FetchCancel{RequestID: 11},
		&TrackStatus{RequestID: 12, Namespace: []string{"a"}, TrackName: "", Forward: true, FilterType: FilterLargestObject, Params: Params{tok}},
		&TrackStatusOK{RequestID: 12, Expires: 5, GroupOrder: GroupOrderAscending, ContentExists: true, Largest: Location{Group: 2, Object: 3}},
		&TrackStatusOK{RequestID: 20, GroupOrder: GroupOrderAscending},
		&TrackStatusError{RequestID: 12, ErrorCode: SubscribeErrorExpiredAuthToken, Reason: "expired"},
		&PublishNamespace{RequestID: 15, Namespace: ns, Params: Params{tok}},
		&PublishNamespaceOK{RequestID: 15},
		&PublishNamespaceError{RequestID: 15, ErrorCode: PublishNamespaceErrorUnauthorized, Reason: "denied"},
		&PublishNamespaceDone{RequestID: 15},
		&PublishNamespaceCancel{RequestID: 15, ErrorCode: PublishNamespaceErrorUninterested, Reason: "gone"},
		&SubscribeNamespace{RequestID: 16, Prefix: []string{"example.com"}, Params: Params{tok, tok2}},
		&SubscribeNamespace{RequestID: 24, Publish: true},
		&SubscribeNamespace{RequestID: 32, Prefix: []string{"a"}, Publish: true, NoNamespaces: true},
		&SubscribeNamespaceOK{RequestID: 16},
		&SubscribeNamespaceError{RequestID: 16, ErrorCode: SubscribeNamespaceErrorNamespacePrefixOverlap, Reason: "overlap"},
		&Namespace{Suffix: []string{"live", "x"}},
		&Namespace{},
		&NamespaceDone{Suffix: []string{"x"}},
	}
}

func TestDraft16RoundTripEveryMessage(t *testing.T) {
	for i, m := range samples16() {
		b, err := codec16.AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("sample %d %T: %v", i, m, err)
		}
		got, err := read16(b)
		if err != nil {
			t.Fatalf("sample %d %T: % x: %v", i, m, b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("sample %d: round trip mismatch:\n got %#v\nwant %#v", i, got, m)
		}
		// Values encode like pointers.
		v := reflect.ValueOf(m).Elem().Interface().(Message)
		if b2, err := codec16.AppendMessage(nil, v); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("sample %d as a value: %v", i, err)
		}
	}
}

// TestDraft16Vectors decodes bytes written by hand from the draft (and, for
// the first ones, as @moq/net 0.2.8 sends them).
func TestDraft16Vectors(t *testing.T) {
	for _, v := range []struct {
		name  string
		bytes []byte
		want  Message
	}{
		{"@moq/net CLIENT_SETUP", frame(0x20, 0x03,
			0x02, 0x80, 0x00, 0xa4, 0x55, // MAX_REQUEST_ID 42069
			0x05, 0x0b, 'm', 'o', 'q', '-', 'l', 'i', 't', 'e', '-', 'j', 's', // +5 = IMPLEMENTATION
			0x80, 0x04, 0x0b, 0x53, 0x01), // +0x40b53 = 0x40b5a (SOLICIT) = 1
			&ClientSetup{Versions: []uint64{Version16}, Params: Params{
				UintParam(ParamMaxRequestID, 42069), BytesParam(ParamImplementation, []byte("moq-lite-js")), UintParam(0x40b5a, 1)}}},
		{"@moq/net SUBSCRIBE", frame(0x03, 0x02, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't',
			0x0c, 'c', 'a', 't', 'a', 'l', 'o', 'g', '.', 'j', 's', 'o', 'n', 0x04,
			0x10, 0x01, // FORWARD 1
			0x10, 0x40, 0x64, // +0x10 = SUBSCRIBER_PRIORITY 100
			0x01, 0x01, 0x02, // +1 = SUBSCRIPTION_FILTER {Largest Object}
			0x01, 0x02), // +1 = GROUP_ORDER descending
			&Subscribe{RequestID: 2, Namespace: []string{"live", "test"}, TrackName: "catalog.json", SubscriberPriority: 100,
				GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterLargestObject}},
		{"@moq/net SUBSCRIBE_NAMESPACE", frame(0x11, 0x00, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't', 0x01, 0x00),
			&SubscribeNamespace{RequestID: 0, Prefix: []string{"live", "test"}}},
		{"SUBSCRIBE without parameters", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x00),
			&Subscribe{RequestID: 2, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, Forward: true, FilterType: FilterAbsoluteStart}},
		{"SUBSCRIBE ignores a parameter of other messages", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x08, 0x05),
			&Subscribe{RequestID: 2, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, Forward: true, FilterType: FilterAbsoluteStart}},
		{"SUBSCRIBE_OK", frame(0x04, 0x02, 0x05, 0x01, 0x09, 0x02, 0x03, 0x04, 0x22, 0x02),
			&SubscribeOK{RequestID: 2, TrackAlias: 5, GroupOrder: GroupOrderDescending, ContentExists: true, Largest: Location{Group: 3, Object: 4}}},
		{"REQUEST_ERROR for a SUBSCRIBE", frame(0x05, 0x02, 0x10, 0x00, 0x03, 'n', 'o', 't'),
			&SubscribeError{RequestID: 2, ErrorCode: SubscribeErrorTrackDoesNotExist, Reason: "not"}},
		{"REQUEST_ERROR for a SUBSCRIBE_NAMESPACE", frame(0x05, 0x08, 0x30, 0x01, 0x00),
			&SubscribeNamespaceError{RequestID: 8, ErrorCode: SubscribeNamespaceErrorNamespacePrefixOverlap, RetryInterval: 1}},
		{"REQUEST_OK for a SUBSCRIBE_NAMESPACE", frame(0x07, 0x00, 0x00), &SubscribeNamespaceOK{RequestID: 0}},
		{"REQUEST_OK for a TRACK_STATUS", frame(0x07, 0x04, 0x01, 0x09, 0x02, 0x07, 0x00),
			&TrackStatusOK{RequestID: 4, GroupOrder: GroupOrderAscending, ContentExists: true, Largest: Location{Group: 7}}},
		// Eyevinn/moqtransport v0.9.0 leaves out Number of Parameters.
		{"REQUEST_OK without Number of Parameters", frame(0x07, 0x0f), &PublishNamespaceOK{RequestID: 15}},
		{"NAMESPACE with an empty suffix", frame(0x08, 0x00), &Namespace{}},
		{"PUBLISH_NAMESPACE_DONE", frame(0x09, 0x07), &PublishNamespaceDone{RequestID: 7}},
		{"PUBLISH_DONE MALFORMED_TRACK", frame(0x0b, 0x02, 0x12, 0x00, 0x00),
			&PublishDone{RequestID: 2, StatusCode: PublishDoneMalformedTrack}},
		{"REQUEST_UPDATE of the forward state only", frame(0x02, 0x06, 0x02, 0x01, 0x10, 0x00),
			&SubscribeUpdate{RequestID: 6, SubscriptionRequestID: 2, Omit: OmitFilter | OmitPriority}},
	} {
		t.Run(v.name, func(t *testing.T) {
			got, err := read16(v.bytes)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v.want) {
				t.Fatalf("got %#v\nwant %#v", got, v.want)
			}
		})
	}
}

func TestDraft16ReadErrors(t *testing.T) {
	for _, v := range []struct {
		name  string
		bytes []byte
		code  uint64
	}{
		{"draft-14 SUBSCRIBE_NAMESPACE_OK type", frame(0x12, 0x00), ProtocolViolation},
		{"UNSUBSCRIBE_NAMESPACE type", frame(0x14, 0x01, 0x01, 'a'), ProtocolViolation},
		{"unknown parameter", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x06, 0x01), ProtocolViolation},
		{"duplicate parameter", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x02, 0x10, 0x01, 0x00, 0x01), ProtocolViolation},
		{"FORWARD 2", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x10, 0x02), ProtocolViolation},
		{"GROUP_ORDER 3", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x22, 0x03), ProtocolViolation},
		{"SUBSCRIBER_PRIORITY 256", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x20, 0x41, 0x00), ProtocolViolation},
		{"DELIVERY_TIMEOUT 0", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x02, 0x00), ProtocolViolation},
		{"filter with trailing bytes", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x02, 0x02, 0x00), ProtocolViolation},
		{"filter type 5", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x01, 0x05), ProtocolViolation},
		{"bad token", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x03, 0x01, 0x09), KeyValueFormattingError},
		{"bad LARGEST_OBJECT", frame(0x04, 0x02, 0x05, 0x01, 0x09, 0x01, 0x03), KeyValueFormattingError},
		{"empty namespace field", frame(0x03, 0x02, 0x01, 0x00, 0x01, 'b', 0x00), ProtocolViolation},
		{"no namespace fields", frame(0x06, 0x07, 0x00, 0x00), ProtocolViolation},
		{"REQUEST_OK awaited by no request", frame(0x07, 0x05, 0x00), ProtocolViolation},
		{"REQUEST_OK for a SUBSCRIBE", frame(0x07, 0x02, 0x00), ProtocolViolation},
		{"REQUEST_ERROR awaited by no request", frame(0x05, 0x05, 0x00, 0x00, 0x00), ProtocolViolation},
		{"subscribe options 3", frame(0x11, 0x00, 0x01, 0x01, 'a', 0x03, 0x00), ProtocolViolation},
		{"track extension group order 3", frame(0x04, 0x02, 0x05, 0x00, 0x22, 0x03), ProtocolViolation},
		{"duplicate track extension", frame(0x04, 0x02, 0x05, 0x00, 0x22, 0x01, 0x00, 0x02), ProtocolViolation},
		{"parameter type overflow", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x02, 0x10, 0x01,
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00), ProtocolViolation},
		{"setup alias in CLIENT_SETUP", frame(0x20, 0x01, 0x03, 0x02, 0x02, 0x07), ProtocolViolation},
		{"duplicate known setup parameter", frame(0x20, 0x02, 0x02, 0x01, 0x00, 0x02), ProtocolViolation},
		{"length mismatch", frame(0x0a, 0x02, 0x00), ProtocolViolation},
	} {
		t.Run(v.name, func(t *testing.T) {
			_, err := read16(v.bytes)
			wantCode(t, err, v.code)
		})
	}
}

func TestDraft16EncodeErrors(t *testing.T) {
	for _, m := range []Message{
		&UnsubscribeNamespace{Prefix: []string{"a"}},
		&Subscribe{RequestID: 2, Namespace: []string{"a", ""}, FilterType: FilterLargestObject},
		&Subscribe{RequestID: 2, Namespace: []string{"a"}, FilterType: 0},
		&SubscribeUpdate{RequestID: 2, Filter: FilterAbsoluteRange},
		&SubscribeNamespace{RequestID: 2, NoNamespaces: true},
	} {
		if _, err := codec16.AppendMessage(nil, m); err == nil {
			t.Errorf("%#v encoded", m)
		}
	}
	if _, err := codec16.AppendMessage(nil, &UnsubscribeNamespace{}); !errors.Is(err, ErrNotInVersion) {
		t.Errorf("UNSUBSCRIBE_NAMESPACE: %v, want ErrNotInVersion", err)
	}
	if _, err := (Draft14{}).AppendMessage(nil, &Namespace{}); !errors.Is(err, ErrNotInVersion) {
		t.Errorf("draft-14 NAMESPACE: %v, want ErrNotInVersion", err)
	}
	// Parameters draft-16 does not define for a message are left out.
	b, err := codec16.AppendMessage(nil, &PublishNamespace{RequestID: 7, Namespace: []string{"a"},
		Params: Params{UintParam(ParamMaxCacheDuration, 1), UintParam(0x40b5a, 1)}})
	if err != nil || !bytes.Equal(b, frame(0x06, 0x07, 0x01, 0x01, 'a', 0x00)) {
		t.Errorf("PUBLISH_NAMESPACE: % x, %v", b, err)
	}
}

// TestDraft16ErrorCodes: the registries map as the drafts name the codes,
// and every code survives a round trip (the maps are permutations).
func TestDraft16ErrorCodes(t *testing.T) {
	for _, c := range []struct {
		name        string
		m           codeMap
		model, wire uint64
	}{
		{"subscribe does not exist", subscribeCodes16, SubscribeErrorTrackDoesNotExist, 0x10},
		{"subscribe invalid range", subscribeCodes16, SubscribeErrorInvalidRange, 0x11},
		{"subscribe malformed token", subscribeCodes16, SubscribeErrorMalformedAuthToken, 0x4},
		{"subscribe not supported", subscribeCodes16, SubscribeErrorNotSupported, 0x3},
		{"fetch invalid joining", fetchCodes16, FetchErrorInvalidJoiningRequestID, 0x32},
		{"fetch malformed track", fetchCodes16, FetchErrorMalformedTrack, 0x12},
		{"publish uninterested", publishCodes16, PublishErrorUninterested, 0x20},
		{"publish namespace uninterested", publishNamespaceCodes16, PublishNamespaceErrorUninterested, 0x20},
		{"prefix overlap", subscribeNamespaceCodes16, SubscribeNamespaceErrorNamespacePrefixOverlap, 0x30},
		{"prefix unknown", subscribeNamespaceCodes16, SubscribeNamespaceErrorNamespacePrefixUnknown, 0x10},
		{"publish done malformed", publishDoneCodes16, PublishDoneMalformedTrack, 0x12},
		{"publish done update failed", publishDoneCodes16, PublishDoneUpdateFailed, 0x8},
	} {
		if got := c.m.wire(c.model); got != c.wire {
			t.Errorf("%s: model 0x%x -> wire 0x%x, want 0x%x", c.name, c.model, got, c.wire)
		}
		if got := c.m.model(c.wire); got != c.model {
			t.Errorf("%s: wire 0x%x -> model 0x%x, want 0x%x", c.name, c.wire, got, c.model)
		}
	}
	for _, m := range []codeMap{subscribeCodes16, fetchCodes16, publishCodes16, publishNamespaceCodes16, subscribeNamespaceCodes16, publishDoneCodes16} {
		images := map[uint64]bool{}
		for c := uint64(0); c < 0x100; c++ {
			w := m.wire(c)
			if m.model(w) != c {
				t.Fatalf("code 0x%x -> 0x%x -> 0x%x", c, w, m.model(w))
			}
			if images[w] {
				t.Fatalf("two codes map to 0x%x", w)
			}
			images[w] = true
		}
	}
}

// TestDraft16AgainstDraft14: the same model message means the same thing in
// both drafts; fields draft-14 has as fields are draft-16 parameters.
func TestDraft16AgainstDraft14(t *testing.T) {
	m := &Subscribe{RequestID: 4, Namespace: []string{"live", "x"}, TrackName: "video", SubscriberPriority: 60,
		GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterLargestObject}
	b14, _ := AppendMessage(nil, m)
	b16, _ := codec16.AppendMessage(nil, m)
	m14, err := readOne(b14)
	if err != nil {
		t.Fatal(err)
	}
	m16, err := read16(b16)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m14, m16) {
		t.Fatalf("draft-14 %#v\ndraft-16 %#v", m14, m16)
	}
	if bytes.Equal(b14, b16) {
		t.Fatal("same bytes in both drafts")
	}
}

// ---- data plane ----

func TestDraft16SubgroupStreams(t *testing.T) {
	// Types 0x30-0x3D have no priority byte; the model's type is the
	// draft-14 one with DefaultPriority set.
	for _, typ := range []uint64{0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x18, 0x1d, 0x30, 0x31, 0x34, 0x35, 0x38, 0x3d} {
		h := SubgroupHeader{Type: typ &^ 0x20, TrackAlias: 2, GroupID: 5, SubgroupID: 9, PublisherPriority: 7, DefaultPriority: typ&0x20 != 0}
		if h.SubgroupIDMode() != SubgroupIDExplicit {
			h.SubgroupID = 0
		}
		if h.DefaultPriority {
			h.PublisherPriority = 0
		}
		b := codec16.AppendSubgroupHeader(nil, h)
		if b[0] != byte(typ) {
			t.Fatalf("type 0x%x written as 0x%x", typ, b[0])
		}
		r := codec16.NewStreamReader(bytes.NewReader(b))
		got, err := r.ReadStreamType()
		if err != nil || got != typ {
			t.Fatalf("type 0x%x read as 0x%x: %v", typ, got, err)
		}
		gh, err := r.ReadSubgroupHeader(got)
		if err != nil || gh != h {
			t.Fatalf("type 0x%x: %+v, %v; want %+v", typ, gh, err, h)
		}
	}
	for _, typ := range []uint64{0x16, 0x17, 0x1e, 0x36, 0x3f, 0x40, 0x50, 0x05 | 0x20} {
		_, err := codec16.NewStreamReader(bytes.NewReader([]byte{byte(typ), 0, 0, 0})).ReadStreamType()
		wantCode(t, err, ProtocolViolation)
	}
}

func TestDraft16ObjectExtensions(t *testing.T) {
	// Types 4 (value 7) and 77 ("abc") as draft-16 writes them: 77 is a
	// delta of 73 from 4.
	ext16 := []byte{0x04, 0x07, 0x40, 0x49, 0x03, 'a', 'b', 'c'}
	ext14 := []byte{0x04, 0x07, 0x40, 0x4d, 0x03, 'a', 'b', 'c'}
	stream := append([]byte{0x31, 0x02, 0x05, 0x00, byte(len(ext16))}, ext16...)
	stream = append(stream, 0x02, 'h', 'i', 0x01, 0x00, 0x00, 0x00) // object 1: no extensions, empty, Normal
	r := codec16.NewStreamReader(bytes.NewReader(stream))
	typ, _ := r.ReadStreamType()
	h, err := r.ReadSubgroupHeader(typ)
	if err != nil {
		t.Fatal(err)
	}
	oh, err := r.ReadSubgroupObject(h, 0, true, 0)
	if err != nil || !bytes.Equal(oh.Extensions, ext14) || oh.PayloadLen != 2 {
		t.Fatalf("%+v, %v", oh, err)
	}
	r.DiscardPayload(2)
	oh2, err := r.ReadSubgroupObject(h, 0, false, 0)
	if err != nil || oh2.ObjectID != 2 || oh2.Extensions != nil || oh2.Status != ObjectStatusNormal {
		t.Fatalf("%+v, %v", oh2, err)
	}
	if _, err := r.ReadSubgroupObject(h, 2, false, 0); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// Written back for draft-16, out of order in the model: sorted again.
	unsorted := append(append([]byte{}, ext14[2:]...), ext14[:2]...)
	b, err := codec16.AppendSubgroupObject(nil, 0x11, 0, true, ObjectHeader{ObjectID: 0, Extensions: unsorted, PayloadLen: 2})
	if err != nil || !bytes.Equal(b, append(append([]byte{0x00, byte(len(ext16))}, ext16...), 0x02)) {
		t.Fatalf("% x, %v", b, err)
	}
	// Does Not Exist is not a draft-16 status.
	if _, err := codec16.AppendSubgroupObject(nil, 0x10, 0, true, ObjectHeader{Status: ObjectStatusDoesNotExist}); !errors.Is(err, ErrNotInVersion) {
		t.Fatalf("Does Not Exist: %v", err)
	}
	for name, s := range map[string][]byte{
		"status 1":               {0x10, 0x02, 0x05, 0x80, 0x00, 0x00, 0x01},
		"status 5":               {0x10, 0x02, 0x05, 0x80, 0x00, 0x00, 0x05},
		"extensions on a status": {0x11, 0x02, 0x05, 0x80, 0x00, 0x02, 0x04, 0x01, 0x00, 0x03},
		"extension type overflow": {0x11, 0x02, 0x05, 0x80, 0x00, 0x0a,
			0x04, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	} {
		r := codec16.NewStreamReader(bytes.NewReader(s))
		typ, _ := r.ReadStreamType()
		h, err := r.ReadSubgroupHeader(typ)
		if err == nil {
			_, err = r.ReadSubgroupObject(h, 0, true, 0)
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantCode(t, err, ProtocolViolation)
	}
}

func TestDraft16FetchStream(t *testing.T) {
	ext14 := []byte{0x3c, 0x01}
	objs := []FetchObjectHeader{
		{GroupID: 1, ObjectID: 0, PublisherPriority: 0x80, PayloadLen: 3},
		{GroupID: 1, ObjectID: 1, PublisherPriority: 0x80, PayloadLen: 0},                // only the flags
		{GroupID: 1, ObjectID: 5, SubgroupID: 1, PublisherPriority: 0x80, PayloadLen: 1}, // next subgroup, explicit object
		{GroupID: 1, ObjectID: 6, SubgroupID: 1, PublisherPriority: 0x10, PayloadLen: 1}, // prior subgroup
		{GroupID: 2, ObjectID: 0, SubgroupID: 7, PublisherPriority: 0x10, Extensions: ext14, PayloadLen: 1},
		{GroupID: 2, ObjectID: 1, Datagram: true, PublisherPriority: 0x10, PayloadLen: 1},
	}
	b := codec16.AppendFetchHeader(nil, 8)
	var prev *FetchObjectHeader
	for i := range objs {
		var err error
		if b, err = codec16.AppendFetchObject(b, prev, objs[i]); err != nil {
			t.Fatal(err)
		}
		b = append(b, bytes.Repeat([]byte{'x'}, int(objs[i].PayloadLen))...)
		prev = &objs[i]
	}
	// An End of Non-Existent Range marker is skipped by the reader.
	b = append(b, 0x40, 0x8c, 0x03, 0x00)
	b, _ = codec16.AppendFetchObject(b, &FetchObjectHeader{GroupID: 3, ObjectID: 0, PublisherPriority: 0x10}, FetchObjectHeader{GroupID: 3, ObjectID: 1, PublisherPriority: 0x10})
	objs = append(objs, FetchObjectHeader{GroupID: 3, ObjectID: 1, PublisherPriority: 0x10})
	if want := []byte{0x05, 0x08, 0x1c, 0x01, 0x00, 0x80, 0x03}; !bytes.Equal(b[:len(want)], want) {
		t.Fatalf("first object % x, want % x", b[:len(want)], want)
	}
	r := codec16.NewStreamReader(bytes.NewReader(b))
	if typ, err := r.ReadStreamType(); err != nil || typ != StreamTypeFetch {
		t.Fatal(typ, err)
	}
	if fh, err := r.ReadFetchHeader(); err != nil || fh.RequestID != 8 {
		t.Fatal(fh, err)
	}
	for i, want := range objs {
		got, err := r.ReadFetchObject(0)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("object %d: %+v, %v; want %+v", i, got, err, want)
		}
		r.DiscardPayload(got.PayloadLen)
	}
	if _, err := r.ReadFetchObject(0); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	// Fetch objects have no status in draft-16.
	if _, err := codec16.AppendFetchObject(nil, nil, FetchObjectHeader{Status: ObjectStatusEndOfGroup}); !errors.Is(err, ErrNotInVersion) {
		t.Fatalf("status object: %v", err)
	}
	for name, s := range map[string][]byte{
		"first refers to the prior group":    {0x05, 0x01, 0x14, 0x00, 0x80, 0x00},
		"first refers to the prior priority": {0x05, 0x01, 0x0c, 0x01, 0x00, 0x00},
		"first refers to the prior subgroup": {0x05, 0x01, 0x1d, 0x01, 0x00, 0x80, 0x00},
		"flags 0x80":                         {0x05, 0x01, 0x40, 0x80},
	} {
		r := codec16.NewStreamReader(bytes.NewReader(s))
		r.ReadStreamType()
		r.ReadFetchHeader()
		_, err := r.ReadFetchObject(0)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantCode(t, err, ProtocolViolation)
	}
}

func TestDraft16Datagrams(t *testing.T) {
	ext := []byte{0x3c, 0x01}
	for i, d := range []Datagram{
		{Type: 0x00, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Payload: []byte("hi")},
		{Type: 0x03, TrackAlias: 2, GroupID: 5, ObjectID: 7, Extensions: ext, EndOfGroup: true, Payload: []byte("hi")},
		{Type: 0x0c, TrackAlias: 2, GroupID: 5, DefaultPriority: true, Payload: []byte("hi")},
		{Type: 0x24, TrackAlias: 2, GroupID: 5, PublisherPriority: 1},
		{Type: 0x20, TrackAlias: 2, GroupID: 5, ObjectID: 3, Status: ObjectStatusEndOfGroup},
		{Type: 0x2d, TrackAlias: 2, GroupID: 5, DefaultPriority: true, Extensions: ext},
	} {
		b, err := codec16.AppendDatagram(nil, d)
		if err != nil {
			t.Fatal(err)
		}
		if b[0] != byte(d.Type) {
			t.Fatalf("datagram %d: type 0x%x, want 0x%x", i, b[0], d.Type)
		}
		got, err := codec16.ParseDatagram(b)
		if err != nil || !reflect.DeepEqual(got, d) {
			t.Fatalf("datagram %d: %v, %v", i, got, err)
		}
	}
	for _, b := range [][]byte{
		{0x22, 0x02, 0x05, 0x01, 0x80, 0x03}, // STATUS with END_OF_GROUP
		{0x10, 0x02, 0x05, 0x01, 0x80},
		{0x30, 0x02, 0x05, 0x01, 0x80},
		{0x20, 0x02, 0x05, 0x01, 0x80, 0x01},                   // Does Not Exist
		{0x21, 0x02, 0x05, 0x01, 0x80, 0x02, 0x3c, 0x01, 0x03}, // extensions on a status
	} {
		_, err := codec16.ParseDatagram(b)
		wantCode(t, err, ProtocolViolation)
	}
}

func TestCodecForProtocol(t *testing.T) {
	for proto, want := range map[string]uint64{"": Version14, ALPN14: Version14, ALPN16: Version16, ALPN17: Version17} {
		c, ok := CodecForProtocol(proto, nil)
		if !ok || c.Version() != want {
			t.Errorf("%q: %v %v", proto, c, ok)
		}
	}
	if _, ok := CodecForProtocol("moqt-15", nil); ok {
		t.Error("moqt-15 accepted")
	}
	if f := (Draft14{}).Features(); f != (Features{}) {
		t.Errorf("draft-14 features %+v", f)
	}
}

// ---- fuzzing ----

func FuzzDraft16ReadMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 16; i++ {
			m, err := codec16.ReadMessage(br)
			if err != nil {
				checkErrKind(t, err)
				return
			}
			// Anything we accept we must be able to send, and it must come
			// back equal (the model's form is canonical; the bytes need not
			// be, e.g. parameters a message does not define are dropped).
			b, err := codec16.AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("re-encoding decoded %#v: %v", m, err)
			}
			back, err := read16(b)
			if err != nil {
				t.Fatalf("re-parsing % x: %v", b, err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", back, m)
			}
			if b2, _ := codec16.AppendMessage(nil, back); !bytes.Equal(b, b2) {
				t.Fatalf("encoding not canonical")
			}
		}
	})
}

// readDataStream16 parses a whole draft-16 data stream (see readDataStream).
func readDataStream16(data []byte) (typ uint64, sh SubgroupHeader, fh FetchHeader, objs []fuzzObj, err error) {
	return readDataStreamC(codec16, data)
}

// readDataStreamC is readDataStream16 for codec c (draft-16 or -17).
func readDataStreamC(c Codec, data []byte) (typ uint64, sh SubgroupHeader, fh FetchHeader, objs []fuzzObj, err error) {
	sr := c.NewStreamReader(bytes.NewReader(data))
	sr.(*streamReader16).MaxExtensionsLen = 4096
	if typ, err = sr.ReadStreamType(); err != nil {
		return
	}
	if typ == StreamTypeFetch {
		if fh, err = sr.ReadFetchHeader(); err != nil {
			return
		}
	} else if sh, err = sr.ReadSubgroupHeader(typ); err != nil {
		return
	}
	var prev uint64
	for len(objs) < 1000 {
		var o fuzzObj
		var n uint64
		if typ == StreamTypeFetch {
			if o.fetch, err = sr.ReadFetchObject(1 << 16); err != nil {
				return
			}
			n = o.fetch.PayloadLen
		} else {
			if o.sub, err = sr.ReadSubgroupObject(sh, prev, len(objs) == 0, 1<<16); err != nil {
				return
			}
			n = o.sub.PayloadLen
		}
		if n > 0 {
			o.payload = make([]byte, n)
			if _, err = sr.ReadPayload(o.payload); err != nil {
				return
			}
		}
		if typ != StreamTypeFetch {
			if len(objs) == 0 && sh.SubgroupIDMode() == SubgroupIDFirstObject {
				sh.SubgroupID = o.sub.ObjectID
			}
			prev = o.sub.ObjectID
		}
		objs = append(objs, o)
	}
	return
}

func encodeDataStream16(t testing.TB, sh SubgroupHeader, fh *FetchHeader, objs []fuzzObj) []byte {
	return encodeDataStreamC(t, codec16, sh, fh, objs)
}

// encodeDataStreamC is encodeDataStream16 for codec c.
func encodeDataStreamC(t testing.TB, c Codec, sh SubgroupHeader, fh *FetchHeader, objs []fuzzObj) []byte {
	var b []byte
	if fh != nil {
		b = c.AppendFetchHeader(b, fh.RequestID)
	} else {
		b = c.AppendSubgroupHeader(b, sh)
	}
	var prevID uint64
	var prev *FetchObjectHeader
	for i, o := range objs {
		var err error
		if fh != nil {
			b, err = c.AppendFetchObject(b, prev, o.fetch)
			prev = &objs[i].fetch
		} else {
			b, err = c.AppendSubgroupObject(b, sh.Type, prevID, i == 0, o.sub)
			prevID = o.sub.ObjectID
		}
		if err != nil {
			t.Fatalf("re-encoding object %d: %v", i, err)
		}
		b = append(b, o.payload...)
	}
	return b
}

func FuzzDraft16StreamReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkStreamRoundTrip(t, codec16, data) })
}

// checkStreamRoundTrip: what c's stream reader accepts re-encodes to a
// stream that reads back the same, and that encoding is canonical.
func checkStreamRoundTrip(t *testing.T, c Codec, data []byte) {
	{
		typ, sh, fh, objs, err := readDataStreamC(c, data)
		checkErrKind(t, err)
		if typ != StreamTypeFetch && !isSubgroupType16(typ) {
			return
		}
		if sh.Type == 0 && typ != StreamTypeFetch {
			return // the header itself failed
		}
		var fhp *FetchHeader
		if typ == StreamTypeFetch {
			fhp = &fh
		}
		enc := encodeDataStreamC(t, c, sh, fhp, objs)
		typ2, sh2, fh2, objs2, err2 := readDataStreamC(c, enc)
		if err2 != io.EOF {
			t.Fatalf("re-parse of re-encoded stream: %v", err2)
		}
		if typ2 != typ || sh2 != sh || fh2 != fh || !reflect.DeepEqual(objs, objs2) {
			t.Fatalf("round trip mismatch:\n%v %+v %+v %+v\n%v %+v %+v %+v", typ, sh, fh, objs, typ2, sh2, fh2, objs2)
		}
		if !bytes.Equal(encodeDataStreamC(t, c, sh2, fhp, objs2), enc) {
			t.Fatal("encoding not canonical")
		}
	}
}

func FuzzDraft16Datagram(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkDatagramRoundTrip(t, codec16, data) })
}

// checkDatagramRoundTrip is checkStreamRoundTrip for datagrams.
func checkDatagramRoundTrip(t *testing.T, c Codec, data []byte) {
	{
		d, err := c.ParseDatagram(data)
		if err != nil {
			checkErrKind(t, err)
			return
		}
		b, err := c.AppendDatagram(nil, d)
		if err != nil {
			t.Fatalf("re-encoding %v: %v", d, err)
		}
		d2, err := c.ParseDatagram(b)
		if err != nil {
			t.Fatalf("re-parse % x: %v", b, err)
		}
		// The encoder shortens an explicit Object ID 0.
		if d2.Type != d.Type && !(d.ObjectID == 0 && d2.Type == d.Type|datagramNoObjectID) {
			t.Fatalf("type 0x%x became 0x%x", d.Type, d2.Type)
		}
		d2.Type = d.Type
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip mismatch:\n got %v\nwant %v", d2, d)
		}
		if b2, _ := c.AppendDatagram(nil, d2); !bytes.Equal(b2, b) {
			t.Fatal("encoding not canonical")
		}
	}
}

func controlSeeds16() map[string][]byte {
	seeds := map[string][]byte{}
	var all []byte
	for i, m := range samples16() {
		b, err := codec16.AppendMessage(nil, m)
		if err != nil {
			panic(err)
		}
		seeds[fmt.Sprintf("sample-%02d-%s", i, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(MessageName(m.Type())))] = b
		all = append(all, b...)
	}
	seeds["all-samples"] = all
	seeds["eyevinn-request-ok"] = frame(0x07, 0x0f)
	seeds["unknown-param"] = frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x06, 0x01)
	seeds["track-extensions"] = frame(0x04, 0x02, 0x05, 0x00, 0x02, 0x05, 0x02, 0x09, 0x0a, 0x07, 0x14, 0x01)
	return seeds
}

func streamSeeds16() map[string][]byte {
	seeds := map[string][]byte{}
	for _, typ := range []uint64{0x10, 0x11, 0x13, 0x15, 0x19, 0x30, 0x35, 0x3b} {
		h := SubgroupHeader{Type: typ &^ 0x20, TrackAlias: 3, GroupID: 70000, PublisherPriority: 9, DefaultPriority: typ&0x20 != 0}
		if h.SubgroupIDMode() == SubgroupIDExplicit {
			h.SubgroupID = 2
		}
		if h.DefaultPriority {
			h.PublisherPriority = 0
		}
		var objs []fuzzObj
		for i, id := range []uint64{4, 5, 9} {
			o := fuzzObj{sub: ObjectHeader{ObjectID: id, PayloadLen: 3}, payload: []byte("abc")}
			if h.HasExtensions() && i == 1 {
				o.sub.Extensions = []byte{0x3c, 0x01, 0x40, 0x4d, 0x01, 'z'}
			}
			objs = append(objs, o)
		}
		objs = append(objs, fuzzObj{sub: ObjectHeader{ObjectID: 10, Status: ObjectStatusEndOfGroup}})
		seeds[fmt.Sprintf("subgroup-0x%x", typ)] = encodeDataStream16(nopTB{}, h, nil, objs)
	}
	fetch := []fuzzObj{
		{fetch: FetchObjectHeader{GroupID: 1, ObjectID: 2, PublisherPriority: 0x80, PayloadLen: 3}, payload: []byte("xyz")},
		{fetch: FetchObjectHeader{GroupID: 1, SubgroupID: 1, ObjectID: 3, PublisherPriority: 0x80, Extensions: []byte{0x3c, 0x01}}},
		{fetch: FetchObjectHeader{GroupID: 2, ObjectID: 0, Datagram: true, PublisherPriority: 1, PayloadLen: 1}, payload: []byte("d")},
	}
	seeds["fetch"] = encodeDataStream16(nopTB{}, SubgroupHeader{}, &FetchHeader{RequestID: 8}, fetch)
	seeds["fetch-end-of-range"] = []byte{0x05, 0x01, 0x1c, 0x01, 0x00, 0x80, 0x00, 0x40, 0x8c, 0x01, 0x05, 0x00, 0x00, 0x41, 0x0c, 0x02, 0x00, 0x04, 0x01, 0x00}
	return seeds
}

func datagramSeeds16() map[string][]byte {
	seeds := map[string][]byte{}
	ext := []byte{0x3c, 0x01}
	for _, d := range []Datagram{
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 7, Extensions: ext, EndOfGroup: true, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, DefaultPriority: true, Payload: []byte("hi")},
		{TrackAlias: 2, GroupID: 5, ObjectID: 3, Status: ObjectStatusEndOfTrack},
		{Type: 0x20, TrackAlias: 2, GroupID: 5, DefaultPriority: true},
	} {
		b, err := codec16.AppendDatagram(nil, d)
		if err != nil {
			panic(err)
		}
		seeds[fmt.Sprintf("datagram-0x%02x-%d", b[0], len(seeds))] = b
	}
	seeds["status-eog"] = []byte{0x22, 0x02, 0x05, 0x01, 0x80, 0x03}
	return seeds
}

// nopTB lets the seed builders use encodeDataStream16 outside a test.
type nopTB struct{ testing.TB }

func (nopTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Shaka Player 5.2.12 sends GROUP_ORDER 0 ("the publisher's preference",
// as draft-16's Priorities section reads it) in SUBSCRIBE: accepted.
func TestDraft16GroupOrderPublisherPreference(t *testing.T) {
	m, err := read16(frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x22, 0x00))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := m.(*Subscribe); !ok || s.GroupOrder != GroupOrderPublisher {
		t.Fatalf("got %#v, want a SUBSCRIBE with the publisher's group order", m)
	}
}
