package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// frame wraps a hand-written payload in the control message framing
// (single-byte type, 16-bit length) without using the encoder.
func frame(t byte, payload ...byte) []byte {
	return append([]byte{t, byte(len(payload) >> 8), byte(len(payload))}, payload...)
}

func TestRoundTripEveryMessage(t *testing.T) {
	seen := map[uint64]bool{}
	var stream []byte
	for _, m := range sampleMessages() {
		seen[m.Type()] = true
		b, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("%T: AppendMessage: %v", m, err)
		}
		got, err := ReadMessage(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%T: ReadMessage(% x): %v", m, b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T round trip:\n got %+v\nwant %+v", m, got, m)
		}
		// The value form encodes identically to the pointer form.
		b2, err := AppendMessage(nil, reflect.ValueOf(m).Elem().Interface().(Message))
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%T: value encoding differs: %v", m, err)
		}
		stream = append(stream, b...)
	}
	for typ := uint64(0); typ < 0x40; typ++ {
		if MessageName(typ) != "" && !seen[typ] {
			t.Errorf("no round-trip sample for %s", MessageName(typ))
		}
	}
	// All messages back to back on one stream, read with a plain (non
	// ByteReader) reader: ReadMessage must consume exactly one message each.
	r := struct{ io.Reader }{bytes.NewReader(stream)}
	for i, want := range sampleMessages() {
		got, err := ReadMessage(r)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("message %d: got %+v want %+v", i, got, want)
		}
	}
	if _, err := ReadMessage(r); err != io.EOF {
		t.Fatalf("after last message: got %v, want io.EOF", err)
	}
}

// Byte vectors written from the draft's field layouts (§9), independent of
// the encoder. Each is checked in both directions.
var controlVectors = []struct {
	name  string
	bytes []byte
	msg   Message
}{
	{"CLIENT_SETUP", []byte{
		0x20, 0x00, 0x13,
		0x01, 0xc0, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x0e, // 1 version: 0xff00000e as 8-byte varint
		0x02,             // 2 params
		0x02, 0x40, 0x64, // MAX_REQUEST_ID = 100
		0x07, 0x04, 'm', 'o', 'q', 'g', // IMPLEMENTATION = "moqg"
	}, &ClientSetup{Versions: []uint64{Version14}, Params: Params{UintParam(ParamMaxRequestID, 100), BytesParam(ParamImplementation, []byte("moqg"))}}},
	{"SERVER_SETUP", []byte{
		0x21, 0x00, 0x0b,
		0xc0, 0x00, 0x00, 0x00, 0xff, 0x00, 0x00, 0x0e,
		0x01, 0x02, 0x0a,
	}, &ServerSetup{Version: Version14, Params: Params{UintParam(ParamMaxRequestID, 10)}}},
	{"SUBSCRIBE largest object", []byte{
		0x03, 0x00, 0x17,
		0x00,                                                     // request ID
		0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't', // namespace
		0x05, 'v', 'i', 'd', 'e', 'o', // track name
		0x3c, // priority 60
		0x02, // descending
		0x01, // forward
		0x02, // Largest Object: no Start / End Group
		0x00, // no params
	}, &Subscribe{Namespace: []string{"live", "test"}, TrackName: "video", SubscriberPriority: 60, GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterLargestObject}},
	{"SUBSCRIBE absolute range + delivery timeout", []byte{
		0x03, 0x00, 0x11,
		0x02,
		0x01, 0x01, 'a',
		0x01, 'b',
		0x80, 0x01, 0x00,
		0x04,       // AbsoluteRange
		0x05, 0x01, // Start {5,1}
		0x09,                   // End Group
		0x01, 0x02, 0x43, 0xe8, // DELIVERY_TIMEOUT = 1000
	}, &Subscribe{RequestID: 2, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, GroupOrder: GroupOrderAscending, FilterType: FilterAbsoluteRange, Start: Location{5, 1}, EndGroup: 9, Params: Params{UintParam(ParamDeliveryTimeout, 1000)}}},
	{"SUBSCRIBE_OK", []byte{0x04, 0x00, 0x08, 0x00, 0x05, 0x00, 0x02, 0x01, 0x0a, 0x03, 0x00},
		&SubscribeOK{TrackAlias: 5, GroupOrder: GroupOrderDescending, ContentExists: true, Largest: Location{10, 3}}},
	{"SUBSCRIBE_ERROR", []byte{0x05, 0x00, 0x07, 0x02, 0x04, 0x04, 'n', 'o', 'p', 'e'},
		&SubscribeError{RequestID: 2, ErrorCode: SubscribeErrorTrackDoesNotExist, Reason: "nope"}},
	{"SUBSCRIBE_UPDATE", []byte{0x02, 0x00, 0x08, 0x02, 0x00, 0x05, 0x00, 0x0b, 0x0a, 0x01, 0x00},
		&SubscribeUpdate{RequestID: 2, Start: Location{5, 0}, EndGroup: 11, SubscriberPriority: 10, Forward: true}},
	{"FETCH relative joining", []byte{0x16, 0x00, 0x07, 0x04, 0x10, 0x01, 0x02, 0x00, 0x02, 0x00},
		&Fetch{RequestID: 4, SubscriberPriority: 16, GroupOrder: GroupOrderAscending, FetchType: FetchRelativeJoining, JoiningStart: 2}},
	{"FETCH standalone", []byte{
		0x16, 0x00, 0x0e,
		0x06, 0x00, 0x00, 0x01,
		0x01, 0x01, 'x', 0x01, 'y',
		0x00, 0x00, 0x05, 0x00, // Start {0,0}, End {5,0}
		0x00,
	}, &Fetch{RequestID: 6, FetchType: FetchStandalone, Namespace: []string{"x"}, TrackName: "y", End: Location{5, 0}}},
	{"FETCH_OK", []byte{0x18, 0x00, 0x06, 0x04, 0x01, 0x00, 0x05, 0x02, 0x00},
		&FetchOK{RequestID: 4, GroupOrder: GroupOrderAscending, End: Location{5, 2}}},
	{"PUBLISH", []byte{
		0x1d, 0x00, 0x12,
		0x01,
		0x01, 0x04, 'l', 'i', 'v', 'e',
		0x05, 'a', 'u', 'd', 'i', 'o',
		0x07,       // track alias
		0x01,       // ascending
		0x00,       // no content: Largest absent
		0x01, 0x00, // forward, no params
	}, &Publish{RequestID: 1, Namespace: []string{"live"}, TrackName: "audio", TrackAlias: 7, GroupOrder: GroupOrderAscending, Forward: true}},
	{"PUBLISH_OK", []byte{0x1e, 0x00, 0x06, 0x01, 0x01, 0x80, 0x02, 0x01, 0x00},
		&PublishOK{RequestID: 1, Forward: true, SubscriberPriority: 128, GroupOrder: GroupOrderDescending, FilterType: FilterNextGroupStart}},
	{"PUBLISH_DONE", []byte{0x0b, 0x00, 0x04, 0x00, 0x02, 0x03, 0x00},
		&PublishDone{StatusCode: PublishDoneTrackEnded, StreamCount: 3}},
	{"PUBLISH_NAMESPACE_DONE", []byte{0x09, 0x00, 0x0b, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't'},
		&PublishNamespaceDone{Namespace: []string{"live", "test"}}},
	{"SUBSCRIBE_NAMESPACE + USE_VALUE token", []byte{
		0x11, 0x00, 0x0d,
		0x00,
		0x01, 0x04, 'l', 'i', 'v', 'e',
		0x01, 0x03, 0x03, 0x03, 0x00, 't', // AUTHORIZATION TOKEN {USE_VALUE, type 0, "t"}
	}, &SubscribeNamespace{Prefix: []string{"live"}, Params: Params{BytesParam(ParamAuthToken, []byte{0x03, 0x00, 't'})}}},
	{"GOAWAY", []byte{0x10, 0x00, 0x05, 0x04, 'm', 'o', 'q', 't'}, &GoAway{NewSessionURI: "moqt"}},
	{"MAX_REQUEST_ID", []byte{0x15, 0x00, 0x02, 0x40, 0xc8}, &MaxRequestID{RequestID: 200}},
	{"REQUESTS_BLOCKED", []byte{0x1a, 0x00, 0x01, 0x3f}, &RequestsBlocked{MaximumRequestID: 63}},
	{"UNSUBSCRIBE_NAMESPACE", []byte{0x14, 0x00, 0x03, 0x01, 0x01, 'x'}, &UnsubscribeNamespace{Prefix: []string{"x"}}},
}

func TestControlVectors(t *testing.T) {
	for _, v := range controlVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := ReadMessage(bufio.NewReader(bytes.NewReader(v.bytes)))
			if err != nil {
				t.Fatalf("ReadMessage: %v", err)
			}
			if !reflect.DeepEqual(got, v.msg) {
				t.Fatalf("decoded\n %+v\nwant\n %+v", got, v.msg)
			}
			enc, err := AppendMessage(nil, v.msg)
			if err != nil {
				t.Fatalf("AppendMessage: %v", err)
			}
			if !bytes.Equal(enc, v.bytes) {
				t.Fatalf("encoded\n % x\nwant\n % x", enc, v.bytes)
			}
		})
	}
}

func TestAppendMessageKeepsPrefix(t *testing.T) {
	prefix := []byte("abc")
	b, err := AppendMessage(prefix, &MaxRequestID{RequestID: 1})
	if err != nil || string(b[:3]) != "abc" || !bytes.Equal(b[3:], []byte{0x15, 0x00, 0x01, 0x01}) {
		t.Fatalf("got % x, %v", b, err)
	}
	// On error, b is returned unchanged.
	b, err = AppendMessage(prefix, &MaxRequestID{RequestID: 1 << 62})
	if err == nil || !bytes.Equal(b, prefix) {
		t.Fatalf("got % x, %v", b, err)
	}
}

func wantCode(t *testing.T, err error, code uint64) {
	t.Helper()
	var se *SessionError
	if !errors.As(err, &se) {
		t.Fatalf("got %v (%T), want *SessionError 0x%x", err, err, code)
	}
	if se.Code != code {
		t.Fatalf("got code 0x%x (%v), want 0x%x", se.Code, err, code)
	}
}

func readOne(b []byte) (Message, error) { return ReadMessage(bufio.NewReader(bytes.NewReader(b))) }

func TestReadMessageTruncation(t *testing.T) {
	if _, err := readOne(nil); err != io.EOF {
		t.Fatalf("empty stream: got %v, want io.EOF", err)
	}
	for name, b := range map[string][]byte{
		"truncated type varint":   {0x40},
		"truncated 8-byte varint": {0xc0, 0x00, 0x00},
		"truncated length":        {0x05, 0x00},
		"truncated payload":       {0x05, 0x00, 0x07, 0x02, 0x04},
	} {
		_, err := readOne(b)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s: got %v, want io.ErrUnexpectedEOF", name, err)
			continue
		}
		wantCode(t, err, ProtocolViolation)
	}
	// Transport errors pass through wrapped, not as session errors.
	boom := errors.New("stream reset")
	_, err := ReadMessage(io.MultiReader(bytes.NewReader([]byte{0x05, 0x00}), &errReader{boom}))
	var se *SessionError
	if !errors.Is(err, boom) || errors.As(err, &se) {
		t.Fatalf("got %v, want wrapped transport error", err)
	}
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestParseVarint(t *testing.T) {
	for _, c := range []struct {
		b []byte
		v uint64
		n int
	}{
		{[]byte{0x25}, 37, 1},
		{[]byte{0x7b, 0xbd}, 15293, 2},
		{[]byte{0x9d, 0x7f, 0x3e, 0x7d}, 494878333, 4},
		{[]byte{0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c}, 151288809941952652, 8},
		{[]byte{0x40, 0x25}, 37, 2}, // non-minimal is accepted (RFC 9000 §16 example)
	} {
		v, n, err := ParseVarint(c.b)
		if err != nil || v != c.v || n != c.n {
			t.Errorf("ParseVarint(% x) = %d,%d,%v", c.b, v, n, err)
		}
		if n == VarintLen(v) && !bytes.Equal(AppendVarint(nil, v), c.b) {
			t.Errorf("AppendVarint(%d) = % x", v, AppendVarint(nil, v))
		}
		rv, err := ReadVarint(bytes.NewReader(c.b))
		if err != nil || rv != c.v {
			t.Errorf("ReadVarint(% x) = %d, %v", c.b, rv, err)
		}
	}
	if _, _, err := ParseVarint([]byte{0x80, 1}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short buffer: %v", err)
	}
	if _, err := ReadVarint(bytes.NewReader([]byte{0x80, 1})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short stream: %v", err)
	}
	if _, err := ReadVarint(bytes.NewReader(nil)); err != io.EOF {
		t.Errorf("empty stream: %v", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("AppendVarint(2^62) did not panic")
			}
		}()
		AppendVarint(nil, 1<<62)
	}()
}

func TestReadMessageErrors(t *testing.T) {
	ns33 := []byte{0x21}
	for i := 0; i < 33; i++ {
		ns33 = append(ns33, 0x01, 'a')
	}
	long := func(n int) []byte { return bytes.Repeat([]byte{'z'}, n) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

	// A SUBSCRIBE payload with the given forward / group order / filter bytes.
	subscribe := func(groupOrder, forward, filter byte, params ...byte) []byte {
		p := []byte{0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, groupOrder, forward, filter}
		if len(params) == 0 {
			params = []byte{0x00}
		}
		return frame(0x03, append(p, params...)...)
	}

	cases := []struct {
		name string
		b    []byte
		code uint64
	}{
		{"unknown type 0x01", frame(0x01), ProtocolViolation},
		{"unknown type 0x40 (old CLIENT_SETUP)", []byte{0x40, 0x40, 0x00, 0x00}, ProtocolViolation},
		{"unknown type 0x1b", frame(0x1b), ProtocolViolation},
		{"length too short", []byte{0x05, 0x00, 0x06, 0x02, 0x04, 0x04, 'n', 'o', 'p', 'e'}, ProtocolViolation},
		{"length too long", []byte{0x05, 0x00, 0x08, 0x02, 0x04, 0x04, 'n', 'o', 'p', 'e', 0xff}, ProtocolViolation},
		{"empty payload", frame(0x0a), ProtocolViolation},
		{"namespace with 33 fields", frame(0x09, ns33...), ProtocolViolation},
		{"namespace with 0 fields", frame(0x09, 0x00), ProtocolViolation},
		{"namespace over 4096 bytes", frame(0x09, cat([]byte{0x02, 0x48, 0x00}, long(2048), []byte{0x48, 0x01}, long(2049))...), ProtocolViolation},
		{"full track name over 4096 bytes", frame(0x03, cat([]byte{0x00, 0x01, 0x4f, 0xa0}, long(4000), []byte{0x40, 0x61}, long(97), []byte{0, 0, 1, 2, 0})...), ProtocolViolation},
		{"namespace field runs past payload", frame(0x09, 0x01, 0x05, 'a', 'b'), ProtocolViolation},
		{"reason over 1024 bytes", frame(0x05, cat([]byte{0x00, 0x00, 0x44, 0x01}, long(1025))...), ProtocolViolation},
		{"goaway URI over 8192 bytes", frame(0x10, cat([]byte{0x60, 0x01}, long(8193))...), ProtocolViolation},
		{"SUBSCRIBE forward = 2", subscribe(0x01, 0x02, 0x02), ProtocolViolation},
		{"SUBSCRIBE group order = 3", subscribe(0x03, 0x01, 0x02), ProtocolViolation},
		{"SUBSCRIBE filter type 5", subscribe(0x01, 0x01, 0x05), ProtocolViolation},
		{"SUBSCRIBE_OK content exists = 2", frame(0x04, 0x00, 0x01, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00), ProtocolViolation},
		{"SUBSCRIBE_UPDATE forward = 255", frame(0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x00), ProtocolViolation},
		{"PUBLISH forward = 2", frame(0x1d, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x01, 0x00, 0x02, 0x00), ProtocolViolation},
		{"PUBLISH_OK forward = 2", frame(0x1e, 0x01, 0x02, 0x00, 0x01, 0x01, 0x00), ProtocolViolation},
		{"FETCH_OK end of track = 2", frame(0x18, 0x04, 0x01, 0x02, 0x05, 0x02, 0x00), ProtocolViolation},
		{"FETCH type 4", frame(0x16, 0x04, 0x10, 0x01, 0x04, 0x00, 0x02, 0x00), ProtocolViolation},
		{"duplicate DELIVERY_TIMEOUT", subscribe(0x01, 0x01, 0x02, 0x02, 0x02, 0x01, 0x02, 0x02), ProtocolViolation},
		{"duplicate setup MAX_REQUEST_ID", frame(0x20, 0x00, 0x02, 0x02, 0x01, 0x02, 0x01), ProtocolViolation},
		{"duplicate setup PATH", frame(0x20, 0x00, 0x02, 0x01, 0x01, '/', 0x01, 0x00), ProtocolViolation},
		{"param length over 65535", subscribe(0x01, 0x01, 0x02, 0x01, 0x21, 0x80, 0x01, 0x00, 0x00), ProtocolViolation},
		{"param runs past payload", subscribe(0x01, 0x01, 0x02, 0x01, 0x21, 0x05, 'a'), ProtocolViolation},
		{"param count larger than params", subscribe(0x01, 0x01, 0x02, 0x80, 0x10, 0x00, 0x00, 0x02, 0x01), ProtocolViolation},
		{"token with unknown alias type", subscribe(0x01, 0x01, 0x02, 0x01, 0x03, 0x01, 0x05), KeyValueFormattingError},
		{"empty token", subscribe(0x01, 0x01, 0x02, 0x01, 0x03, 0x00), KeyValueFormattingError},
		{"DELETE token with trailing bytes", subscribe(0x01, 0x01, 0x02, 0x01, 0x03, 0x03, 0x00, 0x01, 0x01), KeyValueFormattingError},
		{"REGISTER token truncated", subscribe(0x01, 0x01, 0x02, 0x01, 0x03, 0x02, 0x01, 0x01), KeyValueFormattingError},
		{"setup token malformed", frame(0x20, 0x00, 0x01, 0x03, 0x01, 0x07), KeyValueFormattingError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := readOne(c.b)
			if err == nil {
				t.Fatalf("decoded %+v, want error", m)
			}
			t.Log(err)
			wantCode(t, err, c.code)
		})
	}
}

func TestParamDuplicatesAllowed(t *testing.T) {
	// Repeatable (auth token), unknown keys, and version-specific keys in
	// messages that do not define them (which MUST be ignored) may repeat.
	cases := map[string][]byte{
		"auth token twice":                 frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x01, 0x01, 0x02, 0x02, 0x03, 0x02, 0x02, 0x07, 0x03, 0x02, 0x02, 0x07),
		"unknown even key twice":           frame(0x04, 0x00, 0x01, 0x00, 0x01, 0x00, 0x02, 0x3a, 0x01, 0x3a, 0x02),
		"MAX_CACHE_DURATION in SUBSCRIBE":  frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x01, 0x01, 0x02, 0x02, 0x04, 0x01, 0x04, 0x02),
		"auth token in FETCH_OK malformed": frame(0x18, 0x04, 0x01, 0x00, 0x05, 0x02, 0x02, 0x03, 0x01, 0x09, 0x03, 0x00),
		"unknown setup param twice":        frame(0x21, 0x01, 0x02, 0x09, 0x00, 0x09, 0x01, 0x41),
	}
	for name, b := range cases {
		if _, err := readOne(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestLimitsAccepted(t *testing.T) {
	// Exactly at the limits must pass in both directions.
	ns := make([]string, MaxNamespaceFields)
	for i := range ns {
		ns[i] = strings.Repeat("n", 100)
	}
	msgs := []Message{
		&Subscribe{Namespace: ns, TrackName: strings.Repeat("t", MaxFullTrackNameLen-3200), FilterType: FilterLargestObject},
		&SubscribeError{Reason: strings.Repeat("r", MaxReasonPhraseLen)},
		&GoAway{NewSessionURI: strings.Repeat("u", MaxGoAwayURILen)},
		&ClientSetup{Params: Params{BytesParam(0x41, make([]byte, MaxParamValueLen-10))}},
	}
	for _, m := range msgs {
		b, err := AppendMessage(nil, m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		got, err := readOne(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%T: %v", m, err)
		}
	}
}

type fakeMessage struct{}

func (fakeMessage) Type() uint64 { return 0x3 }

func TestAppendMessageErrors(t *testing.T) {
	ns33 := make([]string, 33)
	cases := map[string]Message{
		"namespace 33 fields":     &PublishNamespace{Namespace: ns33},
		"empty namespace":         &PublishNamespaceDone{},
		"full name over 4096":     &Subscribe{Namespace: []string{strings.Repeat("a", 4000)}, TrackName: strings.Repeat("b", 97), FilterType: FilterLargestObject},
		"reason over 1024":        &FetchError{Reason: strings.Repeat("r", 1025)},
		"goaway URI over 8192":    GoAway{NewSessionURI: strings.Repeat("u", 8193)},
		"payload over 65535":      &ClientSetup{Params: Params{BytesParam(0x41, make([]byte, 40000)), BytesParam(0x43, make([]byte, 40000))}},
		"param over 65535":        &ClientSetup{Params: Params{BytesParam(0x41, make([]byte, 65536))}},
		"varint overflow":         &Unsubscribe{RequestID: 1 << 62},
		"location overflow":       &FetchOK{GroupOrder: 1, End: Location{Group: 1 << 63}},
		"even param with bytes":   &SubscribeOK{GroupOrder: 1, Params: Params{{Key: 2, Bytes: []byte{1}}}},
		"odd param with value":    &SubscribeOK{GroupOrder: 1, Params: Params{{Key: 5, Value: 1}}},
		"duplicate known param":   &SubscribeOK{GroupOrder: 1, Params: Params{UintParam(ParamDeliveryTimeout, 1), UintParam(ParamDeliveryTimeout, 2)}},
		"malformed token":         &Fetch{FetchType: FetchAbsoluteJoining, Params: Params{BytesParam(ParamAuthToken, []byte{9})}},
		"group order 0 in OK":     &SubscribeOK{},
		"group order 3":           &Subscribe{Namespace: []string{"a"}, GroupOrder: 3, FilterType: FilterLargestObject},
		"filter type 0":           &PublishOK{GroupOrder: 1},
		"fetch type 0":            &Fetch{},
		"unsupported type":        fakeMessage{},
		"track status group ord0": &TrackStatusOK{},
	}
	for name, m := range cases {
		if _, err := AppendMessage(nil, m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: got %v, want ErrInvalidMessage", name, err)
		}
	}
}

func TestParamsAccessors(t *testing.T) {
	p := Params{UintParam(2, 5), BytesParam(3, []byte("a")), BytesParam(3, []byte("b"))}
	if v, ok := p.Uint(2); !ok || v != 5 {
		t.Error("Uint(2)")
	}
	if _, ok := p.Uint(3); ok {
		t.Error("Uint on odd key")
	}
	if b, ok := p.Bytes(3); !ok || string(b) != "a" {
		t.Error("Bytes(3)")
	}
	if _, ok := p.Bytes(2); ok {
		t.Error("Bytes on even key")
	}
	if _, ok := p.Get(4); ok {
		t.Error("Get(4)")
	}
	if len(p.All(3)) != 2 {
		t.Error("All(3)")
	}
}

func TestTokens(t *testing.T) {
	for _, tok := range []Token{
		{AliasType: TokenAliasDelete, Alias: 300},
		{AliasType: TokenAliasRegister, Alias: 1, TokenType: 2, Value: []byte("v")},
		{AliasType: TokenAliasUseAlias, Alias: 1},
		{AliasType: TokenAliasUseValue, TokenType: 0, Value: []byte("value")},
		{AliasType: TokenAliasUseValue, TokenType: 5},
	} {
		b, err := AppendToken(nil, tok)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseToken(b)
		if err != nil || !reflect.DeepEqual(got, tok) {
			t.Errorf("token %+v: got %+v, %v", tok, got, err)
		}
	}
	if _, err := AppendToken(nil, Token{AliasType: 4}); err == nil {
		t.Error("AppendToken accepted alias type 4")
	}
}

func TestLocationLess(t *testing.T) {
	a, b, c := Location{1, 5}, Location{2, 0}, Location{2, 1}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Error("Less")
	}
	if a.Compare(b) != -1 || c.Compare(b) != 1 || a.Compare(a) != 0 {
		t.Error("Compare")
	}
}

func TestSessionErrorString(t *testing.T) {
	_, err := readOne(frame(0x01))
	if !strings.Contains(err.Error(), "PROTOCOL_VIOLATION") {
		t.Errorf("error text %q", err)
	}
}
