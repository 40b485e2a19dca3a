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

var codec17 = Draft17{}

// The examples of §1.4.1 of draft-17, and the boundaries of each length.
func TestVarint17(t *testing.T) {
	for _, v := range []struct {
		b   []byte
		v   uint64
		min bool // the minimal encoding of v
	}{
		{[]byte{0x25}, 37, true},
		{[]byte{0x80, 0x25}, 37, false},
		{[]byte{0xbb, 0xbd}, 15293, true},
		// The text's table gives 0xdd7f3e7d = 494,878,333, which its own
		// rules contradict (0xdd = 110xxxxx starts a 3-byte varint, and
		// 494,878,333 needs 29 bits, so 5 bytes): an erratum, read by
		// the rules.
		{[]byte{0xdd, 0x7f, 0x3e}, 0x1d7f3e, true},
		{[]byte{0xf0, 0x1d, 0x7f, 0x3e, 0x7d}, 494878333, true},
		{[]byte{0xfa, 0xa1, 0xa0, 0xe4, 0x03, 0xd8}, 2893212287960, true},
		{[]byte{0xfe, 0xfa, 0x31, 0x8f, 0xa8, 0xe3, 0xca, 0x11}, 70423237261249041, true},
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 1<<64 - 1, true},
		{[]byte{0x7f}, 127, true},
		{[]byte{0x80, 0x80}, 128, true},
		{[]byte{0xbf, 0xff}, 1<<14 - 1, true},
		{[]byte{0xc0, 0x40, 0x00}, 1 << 14, true},
		{[]byte{0xf7, 0xff, 0xff, 0xff, 0xff}, 1<<35 - 1, true},
		{[]byte{0xfb, 0xff, 0xff, 0xff, 0xff, 0xff}, 1<<42 - 1, true},
		{[]byte{0xfe, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00}, 1 << 42, true},
		{[]byte{0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, 1 << 56, true},
	} {
		got, n, err := ParseVarint17(v.b)
		if err != nil || got != v.v || n != len(v.b) {
			t.Errorf("% x: %d %d %v, want %d", v.b, got, n, err, v.v)
		}
		r, err := readVarint17Rest(bufio.NewReader(bytes.NewReader(v.b[1:])), v.b[0])
		if err != nil || r != v.v {
			t.Errorf("% x read: %d %v", v.b, r, err)
		}
		if enc := AppendVarint17(nil, v.v); v.min && !bytes.Equal(enc, v.b) {
			t.Errorf("%d encodes as % x, want % x", v.v, enc, v.b)
		}
	}
	for _, bad := range [][]byte{{0xfc, 1, 2, 3, 4, 5, 6}, {0xfd, 1, 2, 3, 4, 5, 6, 7}} {
		var se *SessionError
		if _, _, err := ParseVarint17(bad); !errors.As(err, &se) || se.Code != ProtocolViolation {
			t.Errorf("% x: %v, want PROTOCOL_VIOLATION", bad, err)
		}
	}
	if _, _, err := ParseVarint17([]byte{0xc0, 0x01}); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
	// Below 64 both encodings are one and the same byte.
	for v := uint64(0); v < 64; v++ {
		if !bytes.Equal(AppendVarint17(nil, v), AppendVarint(nil, v)) {
			t.Fatalf("%d differs", v)
		}
	}
}

func FuzzVarint17(f *testing.F) {
	f.Add([]byte{0x25})
	f.Add([]byte{0xfe, 0xfa, 0x31, 0x8f, 0xa8, 0xe3, 0xca, 0x11})
	f.Add([]byte{0xfc})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ParseVarint17(b)
		if err != nil {
			return
		}
		enc := AppendVarint17(nil, v)
		if len(enc) > n {
			t.Fatalf("% x: minimal encoding % x is longer", b[:n], enc)
		}
		if back, m, err := ParseVarint17(enc); err != nil || back != v || m != len(enc) {
			t.Fatalf("%d: % x reads back %d %v", v, enc, back, err)
		}
	})
}

// samples17 are the draft-16 samples in draft-17's terms: the messages
// draft-17 removed are left out, SETUP names draft-17.
func samples17() []Message {
	var out []Message
	for _, m := range samples16() {
		switch v := m.(type) {
		case *MaxRequestID, *RequestsBlocked, *Unsubscribe, *FetchCancel, *PublishNamespaceDone, *PublishNamespaceCancel:
			continue
		case *ClientSetup:
			v.Versions = []uint64{Version17}
		case *ServerSetup:
			v.Version = Version17
		case *GoAway:
			v.Timeout = 30000
		}
		out = append(out, m)
	}
	return append(out,
		&PublishBlocked{Suffix: []string{"room"}, TrackName: "video"},
		&Subscribe{RequestID: 26, TrackName: "no namespace", SubscriberPriority: 255, Forward: true, FilterType: FilterAbsoluteRange, Start: Location{Group: 5}, EndGroup: 5},
	)
}

// streamContext17 is what the session knows when a message arrives on a
// request stream: the request it belongs to and its type.
func streamContext17(m Message) (id, typ uint64) {
	switch v := m.(type) {
	case *SubscribeUpdate:
		return v.SubscriptionRequestID, MsgSubscribe
	case *SubscribeUpdateOK:
		return v.RequestID, MsgSubscribeUpdate
	case *SubscribeUpdateError:
		return v.RequestID, MsgSubscribeUpdate
	case *ClientSetup, *ServerSetup, *GoAway, *Namespace, *NamespaceDone, *PublishBlocked:
		return 0, 0
	}
	id = reflect.ValueOf(m).Elem().FieldByName("RequestID").Uint()
	return id, testRequestType(id)
}

func read17(c Draft17, b []byte, id, typ uint64) (Message, error) {
	return c.ReadReply(bufio.NewReader(bytes.NewReader(b)), id, typ)
}

// encode17 encodes a sample with the codec of the end that sends it.
func encode17(m Message) (Draft17, []byte, error) {
	c := codec17
	if _, ok := m.(*ServerSetup); ok {
		c.Client = true // read by a client
	}
	b, err := c.AppendMessage(nil, m)
	return c, b, err
}

func TestDraft17RoundTripEveryMessage(t *testing.T) {
	for i, m := range samples17() {
		c, b, err := encode17(m)
		if err != nil {
			t.Fatalf("sample %d %T: %v", i, m, err)
		}
		id, typ := streamContext17(m)
		got, err := read17(c, b, id, typ)
		if err != nil {
			t.Fatalf("sample %d %T: % x: %v", i, m, b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("sample %d: round trip mismatch:\n got %#v\nwant %#v", i, got, m)
		}
	}
}

func TestDraft17RemovedMessages(t *testing.T) {
	for _, m := range []Message{&Unsubscribe{}, &FetchCancel{}, &PublishNamespaceDone{}, &PublishNamespaceCancel{}, &MaxRequestID{}, &RequestsBlocked{}, &UnsubscribeNamespace{}} {
		if _, err := codec17.AppendMessage(nil, m); !errors.Is(err, ErrNotInVersion) {
			t.Errorf("%T: %v", m, err)
		}
	}
	// Their draft-16 type numbers are unknown messages in draft-17.
	for _, typ := range []byte{0x09, 0x0a, 0x0c, 0x15, 0x17, 0x1a, 0x20, 0x21} {
		_, err := read17(codec17, frame(typ, 0x01), 0, 0)
		wantCode(t, err, ProtocolViolation)
	}
}

// frame17 is frame with a draft-17 message type.
func frame17(t uint64, payload ...byte) []byte {
	b := AppendVarint17(nil, t)
	b = append(b, byte(len(payload)>>8), byte(len(payload)))
	return append(b, payload...)
}

// TestDraft17Vectors decodes bytes written by hand from draft-17 and, for
// the first ones, as @moq/net 0.2.8 (@moq/watch 0.4.6) writes them.
func TestDraft17Vectors(t *testing.T) {
	for _, v := range []struct {
		name    string
		bytes   []byte
		id, typ uint64
		client  bool
		want    Message
	}{
		{"@moq/net SETUP", frame17(0x2f00,
			0x07, 0x0b, 'm', 'o', 'q', '-', 'l', 'i', 't', 'e', '-', 'j', 's', // IMPLEMENTATION
			0xe0, 0x04, 0x0b, 0x53, 0x01), // +0x40b53 = 0x40b5a (SOLICIT) = 1
			0, 0, false,
			&ClientSetup{Versions: []uint64{Version17}, Params: Params{
				BytesParam(ParamImplementation, []byte("moq-lite-js")), UintParam(0x40b5a, 1)}}},
		{"@moq/net SUBSCRIBE", frame17(0x03, 0x02, 0x00, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't',
			0x0c, 'c', 'a', 't', 'a', 'l', 'o', 'g', '.', 'j', 's', 'o', 'n', 0x04,
			0x10, 0x01, // FORWARD 1
			0x10, 0x64, // +0x10 = SUBSCRIBER_PRIORITY 100
			0x01, 0x01, 0x02, // +1 = SUBSCRIPTION_FILTER {Largest Object}
			0x01, 0x02), // +1 = GROUP_ORDER descending
			0, 0, false,
			&Subscribe{RequestID: 2, Namespace: []string{"live", "test"}, TrackName: "catalog.json", SubscriberPriority: 100,
				GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterLargestObject}},
		{"@moq/net SUBSCRIBE_NAMESPACE", frame17(0x11, 0x00, 0x00, 0x02, 0x04, 'l', 'i', 'v', 'e', 0x04, 't', 'e', 's', 't', 0x01, 0x00),
			0, 0, false, &SubscribeNamespace{RequestID: 0, Prefix: []string{"live", "test"}}},
		{"SUBSCRIBER_PRIORITY 200 is one byte", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x20, 0xc8),
			0, 0, false,
			&Subscribe{RequestID: 4, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 200, Forward: true, FilterType: FilterAbsoluteStart}},
		{"RENDEZVOUS_TIMEOUT is read and dropped", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x04, 0x80, 0xc8),
			0, 0, false,
			&Subscribe{RequestID: 4, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, Forward: true, FilterType: FilterAbsoluteStart}},
		{"AbsoluteRange with an End Group Delta", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x04, 0x04, 0x0a, 0x00, 0x02),
			0, 0, false,
			&Subscribe{RequestID: 4, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, Forward: true,
				FilterType: FilterAbsoluteRange, Start: Location{Group: 10}, EndGroup: 12}},
		{"SUBSCRIBE_OK: LARGEST_OBJECT is a Location", frame17(0x04, 0x05, 0x02, 0x08, 0x00, 0x01, 0x80, 0x90, 0x04, 0x22, 0x02),
			2, MsgSubscribe, false,
			&SubscribeOK{RequestID: 2, TrackAlias: 5, GroupOrder: GroupOrderDescending, ContentExists: true, Largest: Location{Group: 144, Object: 4}}},
		{"REQUEST_OK for a PUBLISH_NAMESPACE", frame17(0x07, 0x00), 7, MsgPublishNamespace, false, &PublishNamespaceOK{RequestID: 7}},
		{"REQUEST_ERROR for a FETCH", frame17(0x05, 0x10, 0x00, 0x02, 'n', 'o'), 3, MsgFetch, false,
			&FetchError{RequestID: 3, ErrorCode: FetchErrorTrackDoesNotExist, Reason: "no"}},
		{"PUBLISH_DONE", frame17(0x0b, 0x02, 0x03, 0x00), 2, MsgSubscribe, false,
			&PublishDone{RequestID: 2, StatusCode: PublishDoneTrackEnded, StreamCount: 3}},
		{"REQUEST_UPDATE names its subscription by the stream", frame17(0x02, 0x06, 0x00, 0x01, 0x10, 0x00), 2, MsgSubscribe, false,
			&SubscribeUpdate{RequestID: 6, SubscriptionRequestID: 2, Omit: OmitFilter | OmitPriority}},
		{"GOAWAY with a timeout", frame17(0x10, 0x00, 0x80, 0xc8), 0, 0, true, &GoAway{Timeout: 200}},
		{"server SETUP", frame17(0x2f00), 0, 0, true, &ServerSetup{Version: Version17}},
	} {
		t.Run(v.name, func(t *testing.T) {
			got, err := read17(Draft17{Client: v.client}, v.bytes, v.id, v.typ)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, v.want) {
				t.Fatalf("got %#v\nwant %#v", got, v.want)
			}
		})
	}
}

// @moq/net 0.2.8 writes draft-17 parameters as Key-Value-Pairs; with
// KVPParams we read and write them so (and only so).
func TestDraft17KVPParams(t *testing.T) {
	js := Draft17{KVPParams: true}
	ok := &SubscribeOK{RequestID: 2, TrackAlias: 5, GroupOrder: GroupOrderAscending, ContentExists: true, Largest: Location{Group: 144, Object: 4}}
	b, err := js.AppendMessage(nil, ok)
	if err != nil {
		t.Fatal(err)
	}
	// LARGEST_OBJECT (0x09) with a length, the Location inside in
	// draft-16's layout (what @moq/net's reader skips or decodes).
	if want := frame17(0x04, 0x05, 0x01, 0x09, 0x03, 0x40, 0x90, 0x04); !bytes.Equal(b, want) {
		t.Fatalf("% x, want % x", b, want)
	}
	if got, err := read17(js, b, 2, MsgSubscribe); err != nil || !reflect.DeepEqual(got, ok) {
		t.Fatalf("%#v %v", got, err)
	}
	// The text's encoding differs, and is what we send everyone else.
	std, _ := codec17.AppendMessage(nil, ok)
	if bytes.Equal(std, b) {
		t.Fatal("same bytes")
	}
	// @moq/net's SUBSCRIBE reads the same either way (values below 64).
	sub := frame17(0x03, 0x02, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x02, 0x10, 0x01, 0x11, 0x01, 0x02)
	a, err1 := read17(js, sub, 0, 0)
	c, err2 := read17(codec17, sub, 0, 0)
	if err1 != nil || err2 != nil || !reflect.DeepEqual(a, c) {
		t.Fatalf("%#v %v / %#v %v", a, err1, c, err2)
	}
}

func TestDraft17ReadErrors(t *testing.T) {
	for _, v := range []struct {
		name  string
		bytes []byte
		code  uint64
	}{
		{"required request ID beyond the first", frame17(0x03, 0x04, 0x03, 0x01, 0x01, 'a', 0x01, 'b', 0x00), InvalidRequiredRequestID},
		{"unknown parameter", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x06, 0x01), ProtocolViolation},
		{"FORWARD 2", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x10, 0x02), ProtocolViolation},
		{"LARGEST_OBJECT truncated", frame17(0x04, 0x05, 0x01, 0x09, 0x01), ProtocolViolation},
		{"invalid varint", frame17(0x03, 0xfc), ProtocolViolation},
		{"bad filter", frame17(0x03, 0x04, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x01, 0x09), ProtocolViolation},
	} {
		t.Run(v.name, func(t *testing.T) {
			_, err := read17(codec17, v.bytes, 2, MsgSubscribe)
			wantCode(t, err, v.code)
		})
	}
}

func TestDraft17DataStreams(t *testing.T) {
	for name, b := range streamSeeds17() {
		typ, sh, fh, objs, err := readDataStreamC(codec17, b)
		if err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		if len(objs) == 0 {
			t.Fatalf("%s: no objects", name)
		}
		_ = typ
		_, _ = sh, fh
	}
	// A group ID of 200 takes two bytes in either encoding, with
	// different bits.
	b := codec17.AppendSubgroupHeader(nil, SubgroupHeader{Type: 0x10, TrackAlias: 1, GroupID: 200, DefaultPriority: true})
	if want := []byte{0x30, 0x01, 0x80, 0xc8}; !bytes.Equal(b, want) {
		t.Fatalf("header % x, want % x", b, want)
	}
	for name, d := range datagramSeeds17() {
		if _, err := codec17.ParseDatagram(d); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDraft17ReadMessage(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		// The first byte picks the stream the bytes arrive on, the role
		// and the parameter encoding.
		id := uint64(data[0] >> 2)
		c := Draft17{Client: data[0]&1 == 1, KVPParams: data[0]&2 == 2}
		br := bufio.NewReader(bytes.NewReader(data[1:]))
		for i := 0; i < 16; i++ {
			m, err := c.ReadReply(br, id, testRequestType(id))
			if err != nil {
				checkErrKind(t, err)
				return
			}
			b, err := c.AppendMessage(nil, m)
			if err != nil {
				t.Fatalf("re-encoding decoded %#v: %v", m, err)
			}
			back, err := read17(c, b, id, testRequestType(id))
			if err != nil {
				t.Fatalf("re-parsing % x: %v", b, err)
			}
			if !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", back, m)
			}
			if b2, _ := c.AppendMessage(nil, back); !bytes.Equal(b, b2) {
				t.Fatalf("encoding not canonical")
			}
		}
	})
}

func FuzzDraft17StreamReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkStreamRoundTrip(t, codec17, data) })
}

func FuzzDraft17Datagram(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) { checkDatagramRoundTrip(t, codec17, data) })
}

func controlSeeds17() map[string][]byte {
	seeds := map[string][]byte{}
	for i, m := range samples17() {
		c, b, err := encode17(m)
		if err != nil {
			panic(err)
		}
		id, _ := streamContext17(m)
		if id > 63 {
			continue
		}
		first := byte(id << 2)
		if c.Client {
			first |= 1
		}
		seeds[fmt.Sprintf("sample-%02d-%s", i, strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(MessageName(m.Type())))] = append([]byte{first}, b...)
	}
	return seeds
}

// streamSeeds17 are the draft-16 stream seeds re-encoded as draft-17.
func streamSeeds17() map[string][]byte {
	seeds := map[string][]byte{}
	for name, b := range streamSeeds16() {
		typ, sh, fh, objs, err := readDataStream16(b)
		if err != io.EOF {
			panic(fmt.Sprintf("%s: %v", name, err))
		}
		var fhp *FetchHeader
		if typ == StreamTypeFetch {
			fhp = &fh
		}
		seeds[name] = encodeDataStreamC(nopTB{}, codec17, sh, fhp, objs)
	}
	return seeds
}

func datagramSeeds17() map[string][]byte {
	seeds := map[string][]byte{}
	for name, b := range datagramSeeds16() {
		d, err := codec16.ParseDatagram(b)
		if err != nil {
			continue
		}
		if seeds[name], err = codec17.AppendDatagram(nil, d); err != nil {
			panic(err)
		}
	}
	return seeds
}
