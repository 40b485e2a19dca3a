package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func TestDatagramVectors(t *testing.T) {
	ext := []byte{0x3c, 0x01} // Prior Group ID Gap = 1
	cases := []struct {
		name string
		b    []byte
		d    Datagram
	}{
		{"0x00 payload", []byte{0x00, 0x02, 0x05, 0x07, 0x80, 'h', 'i'},
			Datagram{Type: 0x00, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Payload: []byte("hi")}},
		{"0x01 ext", []byte{0x01, 0x02, 0x05, 0x07, 0x80, 0x02, 0x3c, 0x01, 'h', 'i'},
			Datagram{Type: 0x01, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Extensions: ext, Payload: []byte("hi")}},
		{"0x02 end of group", []byte{0x02, 0x02, 0x05, 0x07, 0x80, 'h', 'i'},
			Datagram{Type: 0x02, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Payload: []byte("hi"), EndOfGroup: true}},
		{"0x03 ext + end of group", []byte{0x03, 0x02, 0x05, 0x07, 0x80, 0x02, 0x3c, 0x01, 'h', 'i'},
			Datagram{Type: 0x03, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Extensions: ext, Payload: []byte("hi"), EndOfGroup: true}},
		{"0x04 object ID 0", []byte{0x04, 0x02, 0x05, 0x80, 'h', 'i'},
			Datagram{Type: 0x04, TrackAlias: 2, GroupID: 5, PublisherPriority: 0x80, Payload: []byte("hi")}},
		{"0x05 object ID 0 + ext", []byte{0x05, 0x02, 0x05, 0x80, 0x02, 0x3c, 0x01, 'h', 'i'},
			Datagram{Type: 0x05, TrackAlias: 2, GroupID: 5, PublisherPriority: 0x80, Extensions: ext, Payload: []byte("hi")}},
		{"0x06 object ID 0 + end of group, empty payload", []byte{0x06, 0x02, 0x05, 0x80},
			Datagram{Type: 0x06, TrackAlias: 2, GroupID: 5, PublisherPriority: 0x80, EndOfGroup: true}},
		{"0x07 all flags", []byte{0x07, 0x02, 0x05, 0x80, 0x02, 0x3c, 0x01, 'h', 'i'},
			Datagram{Type: 0x07, TrackAlias: 2, GroupID: 5, PublisherPriority: 0x80, Extensions: ext, Payload: []byte("hi"), EndOfGroup: true}},
		{"0x20 status end of group", []byte{0x20, 0x02, 0x05, 0x07, 0x80, 0x03},
			Datagram{Type: 0x20, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Status: ObjectStatusEndOfGroup}},
		{"0x20 status does not exist, object 0", []byte{0x20, 0x02, 0x05, 0x00, 0x80, 0x01},
			Datagram{Type: 0x20, TrackAlias: 2, GroupID: 5, PublisherPriority: 0x80, Status: ObjectStatusDoesNotExist}},
		{"0x21 status end of track + ext", []byte{0x21, 0x02, 0x05, 0x07, 0x80, 0x02, 0x3c, 0x01, 0x04},
			Datagram{Type: 0x21, TrackAlias: 2, GroupID: 5, ObjectID: 7, PublisherPriority: 0x80, Extensions: ext, Status: ObjectStatusEndOfTrack}},
		{"large varints", []byte{0x00, 0x80, 0x01, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 'p'},
			Datagram{TrackAlias: 1 << 16, GroupID: 1 << 32, ObjectID: 16383, PublisherPriority: 0xff, Payload: []byte("p")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := ParseDatagram(c.b)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d, c.d) {
				t.Fatalf("parsed %+v\nwant %+v", d, c.d)
			}
			enc := AppendDatagram(nil, c.d)
			// The encoder omits Object ID 0 and keeps every other flag, so
			// only 0x00-0x03 with object 0 would change type; none here do.
			if !bytes.Equal(enc, c.b) {
				t.Fatalf("encoded % x\nwant % x", enc, c.b)
			}
		})
	}
}

func TestDatagramTypeSelection(t *testing.T) {
	for _, c := range []struct {
		d    Datagram
		want uint64
	}{
		{Datagram{ObjectID: 1}, 0x00},
		{Datagram{ObjectID: 1, Extensions: []byte{2, 0}}, 0x01},
		{Datagram{ObjectID: 1, EndOfGroup: true}, 0x02},
		{Datagram{ObjectID: 1, Type: 0x02}, 0x02},
		{Datagram{ObjectID: 1, EndOfGroup: true, Extensions: []byte{2, 0}}, 0x03},
		{Datagram{}, 0x04},
		{Datagram{Type: 0x00}, 0x04}, // explicit Object ID 0 is shortened
		{Datagram{Extensions: []byte{2, 0}}, 0x05},
		{Datagram{EndOfGroup: true}, 0x06},
		{Datagram{EndOfGroup: true, Extensions: []byte{2, 0}}, 0x07},
		{Datagram{Type: 0x01, ObjectID: 3}, 0x00}, // no extensions: bit dropped
		{Datagram{Status: ObjectStatusEndOfTrack}, 0x20},
		{Datagram{Status: ObjectStatusEndOfGroup, EndOfGroup: true, Payload: []byte("dropped")}, 0x20},
		{Datagram{Type: 0x20}, 0x20},
		{Datagram{Type: 0x21, Extensions: []byte{2, 0}}, 0x21},
		{Datagram{Status: ObjectStatusEndOfGroup, Extensions: []byte{2, 0}}, 0x21},
	} {
		if got := c.d.WireType(); got != c.want {
			t.Errorf("%v: WireType 0x%x, want 0x%x", c.d, got, c.want)
		}
		b := AppendDatagram(nil, c.d)
		p, err := ParseDatagram(b)
		if err != nil || p.Type != c.want {
			t.Errorf("%v: parsed %v, %v", c.d, p, err)
		}
	}
}

func TestDatagramErrors(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                        nil,
		"unknown type 0x08":            {0x08, 0x02, 0x05, 0x07, 0x80},
		"unknown type 0x22":            {0x22, 0x02, 0x05, 0x07, 0x80, 0x00},
		"unknown type 0x10":            {0x10, 0x02, 0x05, 0x07, 0x80},
		"truncated type":               {0x40},
		"truncated alias":              {0x00},
		"truncated object ID":          {0x00, 0x02, 0x05},
		"truncated priority":           {0x04, 0x02, 0x05},
		"ext present, length 0":        {0x01, 0x02, 0x05, 0x07, 0x80, 0x00, 'h'},
		"ext runs past":                {0x01, 0x02, 0x05, 0x07, 0x80, 0x05, 0x3c},
		"ext framing broken":           {0x01, 0x02, 0x05, 0x07, 0x80, 0x02, 0x3d, 0x05, 'h'},
		"status missing":               {0x20, 0x02, 0x05, 0x07, 0x80},
		"bytes after status":           {0x20, 0x02, 0x05, 0x07, 0x80, 0x03, 0x00},
		"unknown status 2":             {0x20, 0x02, 0x05, 0x07, 0x80, 0x02},
		"does not exist with ext":      {0x21, 0x02, 0x05, 0x07, 0x80, 0x02, 0x3c, 0x01, 0x01},
		"status ext present, length 0": {0x21, 0x02, 0x05, 0x07, 0x80, 0x00, 0x03},
	} {
		if d, err := ParseDatagram(b); err == nil {
			t.Errorf("%s: parsed %v", name, d)
		} else {
			wantCode(t, err, ProtocolViolation)
		}
	}
}

func TestDatagramPayloadAliases(t *testing.T) {
	b := []byte{0x00, 0x02, 0x05, 0x07, 0x80, 'h', 'i'}
	d, err := ParseDatagram(b)
	if err != nil {
		t.Fatal(err)
	}
	b[5] = 'H'
	if string(d.Payload) != "Hi" {
		t.Fatal("payload was copied")
	}
}
