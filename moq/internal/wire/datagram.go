package wire

import "fmt"

// OBJECT_DATAGRAM type bits (§10.3.1). Payload types are 0x00-0x07; status
// types are 0x20 and 0x21.
const (
	datagramExtBit      = 0x01
	datagramEndOfGroup  = 0x02
	datagramNoObjectID  = 0x04
	datagramStatusBase  = 0x20
	datagramPayloadMask = 0x07
)

// IsDatagramType reports whether t is an OBJECT_DATAGRAM type.
func IsDatagramType(t uint64) bool { return t <= datagramPayloadMask || t == 0x20 || t == 0x21 }

func isStatusDatagram(t uint64) bool { return t == 0x20 || t == 0x21 }

// Datagram is one OBJECT_DATAGRAM (§10.3.1).
//
// ParseDatagram fills every field; Type is the wire type and EndOfGroup is
// derived from it. Extensions and Payload alias the parsed buffer.
//
// AppendDatagram derives the wire type from the fields, so it never writes an
// invalid combination:
//   - status form (0x20/0x21) iff Status != 0 or Type is 0x20/0x21; it has no
//     payload (any Payload is not written) and no End of Group flag;
//   - otherwise payload form, with the End of Group bit iff EndOfGroup (or
//     Type has that bit) and the Object ID omitted iff ObjectID == 0;
//   - the extensions bit iff len(Extensions) > 0 (an empty block with the
//     bit set is a PROTOCOL_VIOLATION for datagrams).
type Datagram struct {
	Type              uint64
	TrackAlias        uint64
	GroupID           uint64
	ObjectID          uint64
	PublisherPriority uint8
	Extensions        []byte
	Status            uint64
	Payload           []byte
	EndOfGroup        bool
	// DefaultPriority (draft-16 DEFAULT_PRIORITY bit): no priority on the
	// wire, the subscription's applies.
	DefaultPriority bool
}

// WireType returns the type AppendDatagram will write for d.
func (d Datagram) WireType() uint64 {
	var t uint64
	if d.Status != 0 || isStatusDatagram(d.Type) {
		t = datagramStatusBase
	} else {
		if d.EndOfGroup || (d.Type <= datagramPayloadMask && d.Type&datagramEndOfGroup != 0) {
			t |= datagramEndOfGroup
		}
		if d.ObjectID == 0 {
			t |= datagramNoObjectID
		}
	}
	if len(d.Extensions) > 0 {
		t |= datagramExtBit
	}
	return t
}

// AppendDatagram appends d as an OBJECT_DATAGRAM (see Datagram for how the
// type is chosen). The payload is copied; to avoid that, append the header of
// a Datagram without Payload and write the payload after it. It panics if a
// field exceeds 2^62-1.
func AppendDatagram(b []byte, d Datagram) []byte {
	t := d.WireType()
	b = AppendVarint(b, t)
	b = AppendVarint(b, d.TrackAlias)
	b = AppendVarint(b, d.GroupID)
	if t&datagramNoObjectID == 0 || isStatusDatagram(t) {
		b = AppendVarint(b, d.ObjectID)
	}
	b = append(b, d.PublisherPriority)
	if t&datagramExtBit != 0 {
		b = AppendVarint(b, uint64(len(d.Extensions)))
		b = append(b, d.Extensions...)
	}
	if isStatusDatagram(t) {
		return AppendVarint(b, d.Status)
	}
	return append(b, d.Payload...)
}

// ParseDatagram decodes one OBJECT_DATAGRAM. Violations are *SessionError
// (PROTOCOL_VIOLATION for an unknown type, truncation, trailing bytes after a
// status, an empty extension block, an unknown status or extensions on a Does
// Not Exist object). Extensions and Payload alias b: nothing is copied.
func ParseDatagram(b []byte) (Datagram, error) { return parseDatagram(b, &datagram14) }

// objectRules are what a draft's objects differ in, in OBJECT_DATAGRAMs
// (all of it) and on streams (statuses and extensions); the parsing is
// shared.
type objectRules struct {
	isType      func(t uint64) bool
	isStatus    func(t uint64) bool
	hasObjectID func(t uint64, status bool) bool
	defaultPrio func(t uint64) bool
	validStatus func(s uint64) bool
	// noExtensions: a status that may not carry extension headers.
	noExtensions func(s uint64) bool
	// extensions validates an extension block, or rewrites it in the
	// model's layout.
	extensions func(b []byte) ([]byte, error)
	vi         vint // the varint encoding
}

var datagram14 = objectRules{
	isType:       IsDatagramType,
	isStatus:     isStatusDatagram,
	hasObjectID:  func(t uint64, status bool) bool { return status || t&datagramNoObjectID == 0 },
	defaultPrio:  func(uint64) bool { return false },
	validStatus:  validObjectStatus,
	noExtensions: func(s uint64) bool { return s == ObjectStatusDoesNotExist },
	extensions:   func(b []byte) ([]byte, error) { return b, validateExtensions(b) },
}

func parseDatagram(b []byte, r *objectRules) (Datagram, error) {
	var d Datagram
	next := func(what string) (uint64, error) {
		v, n, err := r.vi.parse(b)
		if err != nil {
			return 0, protocolViolation("datagram: %s truncated", what)
		}
		b = b[n:]
		return v, nil
	}
	var err error
	if d.Type, err = next("type"); err != nil {
		return Datagram{}, err
	}
	if !r.isType(d.Type) {
		return Datagram{}, protocolViolation("unknown datagram type 0x%x", d.Type)
	}
	status := r.isStatus(d.Type)
	d.DefaultPriority = r.defaultPrio(d.Type)
	if d.TrackAlias, err = next("track alias"); err != nil {
		return Datagram{}, err
	}
	if d.GroupID, err = next("group ID"); err != nil {
		return Datagram{}, err
	}
	if r.hasObjectID(d.Type, status) {
		if d.ObjectID, err = next("object ID"); err != nil {
			return Datagram{}, err
		}
	}
	if !d.DefaultPriority {
		if len(b) == 0 {
			return Datagram{}, protocolViolation("datagram: publisher priority truncated")
		}
		d.PublisherPriority, b = b[0], b[1:]
	}
	if d.Type&datagramExtBit != 0 {
		n, err := next("extension headers length")
		if err != nil {
			return Datagram{}, err
		}
		if n == 0 {
			return Datagram{}, protocolViolation("datagram: extensions present with length 0")
		}
		if n > uint64(len(b)) {
			return Datagram{}, protocolViolation("datagram: extension headers length %d runs past end", n)
		}
		if d.Extensions, err = r.extensions(b[:n]); err != nil {
			return Datagram{}, err
		}
		b = b[n:]
	}
	if status {
		if d.Status, err = next("object status"); err != nil {
			return Datagram{}, err
		}
		if len(b) != 0 {
			return Datagram{}, protocolViolation("datagram: %d bytes after object status", len(b))
		}
		if !r.validStatus(d.Status) {
			return Datagram{}, protocolViolation("datagram: unknown object status %d", d.Status)
		}
		if r.noExtensions(d.Status) && len(d.Extensions) > 0 {
			return Datagram{}, protocolViolation("datagram: object with status %d has extension headers", d.Status)
		}
		return d, nil
	}
	d.EndOfGroup = d.Type&datagramEndOfGroup != 0
	if len(b) > 0 {
		d.Payload = b
	}
	return d, nil
}

// String is for logs.
func (d Datagram) String() string {
	return fmt.Sprintf("datagram{type=0x%x alias=%d group=%d object=%d prio=%d ext=%dB status=%d payload=%dB eog=%v}",
		d.Type, d.TrackAlias, d.GroupID, d.ObjectID, d.PublisherPriority, len(d.Extensions), d.Status, len(d.Payload), d.EndOfGroup)
}
