package wire

import (
	"reflect"
	"testing"
)

// The values deployed clients send where the drafts are ambiguous or
// contradict themselves are accepted and read as what the client means
// (README "Leniency"); the checks kept beside them still close.

func TestLenientDraft14(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want Message
	}{
		{"SUBSCRIBE group order 0 (Shaka)", frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x01, 0x02, 0x00),
			&Subscribe{Namespace: []string{"a"}, TrackName: "b", GroupOrder: GroupOrderPublisher, Forward: true, FilterType: FilterLargestObject}},
		{"FETCH group order 0 (Shaka, moqtransport)", frame(0x16, 0x00, 0x00, 0x00, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x00, 0x00, 0x00),
			&Fetch{GroupOrder: GroupOrderPublisher, FetchType: FetchStandalone, Namespace: []string{"a"}, TrackName: "b"}},
		{"TRACK_STATUS group order 0 (moqtransport)", frame(0x0d, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x00, 0x02, 0x00),
			&TrackStatus{Namespace: []string{"a"}, TrackName: "b", GroupOrder: GroupOrderPublisher, FilterType: FilterLargestObject}},
		{"PUBLISH_OK group order 0 = the publisher's", frame(0x1e, 0x01, 0x01, 0x80, 0x00, 0x02, 0x00),
			&PublishOK{RequestID: 1, Forward: true, SubscriberPriority: 128, GroupOrder: GroupOrderPublisher, FilterType: FilterLargestObject}},
		{"SUBSCRIBE_OK group order 0 = Ascending", frame(0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00),
			&SubscribeOK{TrackAlias: 1, GroupOrder: GroupOrderAscending}},
		{"TRACK_STATUS_OK group order 0 (moqtransport)", frame(0x0e, 0x00, 0x00, 0x00, 0x00, 0x01, 0x05, 0x02, 0x00),
			&TrackStatusOK{GroupOrder: GroupOrderAscending, ContentExists: true, Largest: Location{Group: 5, Object: 2}}},
		{"FETCH_OK group order 0", frame(0x18, 0x04, 0x00, 0x00, 0x05, 0x02, 0x00),
			&FetchOK{RequestID: 4, GroupOrder: GroupOrderAscending, End: Location{Group: 5, Object: 2}}},
		{"PUBLISH group order 0", frame(0x1d, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x00, 0x00, 0x01, 0x00),
			&Publish{RequestID: 1, Namespace: []string{"a"}, TrackName: "b", TrackAlias: 1, GroupOrder: GroupOrderAscending, Forward: true}},
		{"SUBSCRIBE filter type 0 (Shaka NONE) = unfiltered", frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x01, 0x00, 0x00),
			&Subscribe{Namespace: []string{"a"}, TrackName: "b", Forward: true, FilterType: FilterAbsoluteStart}},
		{"PUBLISH_OK filter type 0 = unfiltered", frame(0x1e, 0x01, 0x01, 0x80, 0x01, 0x00, 0x00),
			&PublishOK{RequestID: 1, Forward: true, SubscriberPriority: 128, GroupOrder: GroupOrderAscending, FilterType: FilterAbsoluteStart}},
		{"SUBSCRIBE_NAMESPACE empty prefix (@moq/net announced())", frame(0x11, 0x00, 0x00, 0x00),
			&SubscribeNamespace{}},
		{"UNSUBSCRIBE_NAMESPACE empty prefix", frame(0x14, 0x00), &UnsubscribeNamespace{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := readOne(c.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, c.want) {
				t.Fatalf("got %#v\nwant %#v", m, c.want)
			}
			// What we accept we can also send, and it reads back the same.
			b, err := AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := readOne(b); err != nil || !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip: %#v, %v", back, err)
			}
		})
	}
}

func TestStrictDraft14(t *testing.T) {
	for name, b := range map[string][]byte{
		"SUBSCRIBE group order 3":       frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x03, 0x01, 0x02, 0x00),
		"FETCH group order 3":           frame(0x16, 0x00, 0x00, 0x03, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x00, 0x00, 0x00),
		"PUBLISH_OK group order 3":      frame(0x1e, 0x01, 0x01, 0x80, 0x03, 0x02, 0x00),
		"SUBSCRIBE_OK group order 3":    frame(0x04, 0x00, 0x01, 0x00, 0x03, 0x00, 0x00),
		"TRACK_STATUS_OK group order 3": frame(0x0e, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00),
		"SUBSCRIBE filter type 5":       frame(0x03, 0x00, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x01, 0x05, 0x00),
		"PUBLISH_NAMESPACE no fields":   frame(0x06, 0x00, 0x00, 0x00),
		"SUBSCRIBE no namespace fields": frame(0x03, 0x00, 0x00, 0x01, 'b', 0x00, 0x00, 0x01, 0x02, 0x00),
		"prefix with 33 fields": frame(0x11, append(append([]byte{0x00, 0x21}, func() []byte {
			var f []byte
			for range 33 {
				f = append(f, 0x01, 'a')
			}
			return f
		}()...), 0x00)...),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := readOne(b)
			wantCode(t, err, ProtocolViolation)
		})
	}
}

func TestLenientDraft16(t *testing.T) {
	for _, c := range []struct {
		name string
		b    []byte
		want Message
	}{
		{"PUBLISH_OK GROUP_ORDER 0", frame(0x1e, 0x01, 0x01, 0x22, 0x00),
			&PublishOK{RequestID: 1, Forward: true, SubscriberPriority: 128, GroupOrder: GroupOrderPublisher, FilterType: FilterAbsoluteStart}},
		{"FETCH GROUP_ORDER 0", frame(0x16, 0x03, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x00, 0x00, 0x01, 0x22, 0x00),
			&Fetch{RequestID: 3, SubscriberPriority: 128, GroupOrder: GroupOrderPublisher, FetchType: FetchStandalone, Namespace: []string{"a"}, TrackName: "b"}},
		// TRACK_STATUS does not define GROUP_ORDER: ignored, whatever its value.
		{"TRACK_STATUS GROUP_ORDER 0", frame(0x0d, 0x04, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x22, 0x00),
			&TrackStatus{RequestID: 4, Namespace: []string{"a"}, TrackName: "b", Forward: true, FilterType: FilterLargestObject}},
		{"SUBSCRIPTION_FILTER type 0 (Shaka NONE) = unfiltered", frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x01, 0x00),
			&Subscribe{RequestID: 2, Namespace: []string{"a"}, TrackName: "b", SubscriberPriority: 128, Forward: true, FilterType: FilterAbsoluteStart}},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, err := read16(c.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(m, c.want) {
				t.Fatalf("got %#v\nwant %#v", m, c.want)
			}
			b, err := codec16.AppendMessage(nil, m)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := read16(b); err != nil || !reflect.DeepEqual(back, m) {
				t.Fatalf("round trip: %#v, %v", back, err)
			}
		})
	}
	for name, b := range map[string][]byte{
		"PUBLISH_OK GROUP_ORDER 3": frame(0x1e, 0x01, 0x01, 0x22, 0x03),
		"FETCH GROUP_ORDER 3":      frame(0x16, 0x03, 0x01, 0x01, 0x01, 'a', 0x01, 'b', 0x00, 0x00, 0x00, 0x00, 0x01, 0x22, 0x03),
		"SUBSCRIPTION_FILTER 5":    frame(0x03, 0x02, 0x01, 0x01, 'a', 0x01, 'b', 0x01, 0x21, 0x01, 0x05),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := read16(b)
			wantCode(t, err, ProtocolViolation)
		})
	}
}
