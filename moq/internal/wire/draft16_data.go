package wire

import (
	"fmt"
	"io"
)

// Draft-16 data plane (§10): subgroup header types gain DEFAULT_PRIORITY
// (0x30-0x3D, no priority byte), Key-Value-Pairs in extension blocks have
// delta-encoded types, Object Status loses Does Not Exist (0x1), fetch
// objects are encoded against the previous one (Serialization Flags) and
// carry no status, and datagrams gain DEFAULT_PRIORITY and status types
// without an Object ID.

const subgroupDefaultPriority = 0x20

// isSubgroupType16 reports whether t is a draft-16 SUBGROUP_HEADER type:
// 0b00X1XXXX with a Subgroup ID mode other than 0b11.
func isSubgroupType16(t uint64) bool {
	return t <= 0x3F && t&0x10 != 0 && t&subgroupModeMask != subgroupModeMask
}

// validObjectStatus16 reports whether s is a draft-16 Object Status.
func validObjectStatus16(s uint64) bool {
	return s == ObjectStatusNormal || s == ObjectStatusEndOfGroup || s == ObjectStatusEndOfTrack
}

// streamReader16 reads draft-16 data streams; the stream reading helpers
// and payload access are StreamReader's.
type streamReader16 struct {
	*StreamReader
	// The previous fetch object, what draft-16 encodes the next against.
	prev              FetchObjectHeader
	havePrev, haveLoc bool // an object / an object or range end was read
}

// NewStreamReader reads a draft-16 data stream; see DataReader.
func (Draft16) NewStreamReader(r io.Reader) DataReader {
	return &streamReader16{StreamReader: NewStreamReader(r)}
}

func (s *streamReader16) ReadStreamType() (uint64, error) { return s.readStreamType(isSubgroupType16) }

// ReadSubgroupHeader reads the header of stream type typ. The returned Type
// has the DEFAULT_PRIORITY bit cleared (it is in DefaultPriority instead),
// so that it is a draft-14 type the model understands.
func (s *streamReader16) ReadSubgroupHeader(typ uint64) (SubgroupHeader, error) {
	if !isSubgroupType16(typ) {
		return SubgroupHeader{}, protocolViolation("0x%x is not a subgroup header type", typ)
	}
	h := SubgroupHeader{Type: typ &^ subgroupDefaultPriority, DefaultPriority: typ&subgroupDefaultPriority != 0}
	if err := s.readSubgroupFields(&h); err != nil {
		return SubgroupHeader{}, err
	}
	return h, nil
}

func (s *streamReader16) ReadSubgroupObject(h SubgroupHeader, prevObjectID uint64, first bool, maxPayload uint64) (ObjectHeader, error) {
	return s.subgroupObject(h, prevObjectID, first, maxPayload, s.readExtensions16, &datagram16)
}

// readExtensions16 reads an extension block and rewrites it in the
// model's (draft-14) layout.
func (s *streamReader16) readExtensions16() ([]byte, error) {
	ext, err := s.readExtBlock()
	if err != nil || ext == nil {
		return nil, err
	}
	return extensionsDeltaTo14(ext, s.vi)
}

// Fetch object Serialization Flags (§10.4.4 of draft-16).
const (
	fetchSubgroupMask   = 0x03
	fetchSubgroupZero   = 0x00
	fetchSubgroupPrior  = 0x01
	fetchSubgroupNext   = 0x02
	fetchSubgroupField  = 0x03
	fetchObjectID       = 0x04
	fetchGroupID        = 0x08
	fetchPriority       = 0x10
	fetchExtensions     = 0x20
	fetchDatagram       = 0x40
	fetchEndNonExistent = 0x8C
	fetchEndUnknown     = 0x10C
)

// ReadFetchObject reads the next object of a fetch stream. The End of
// Non-Existent / Unknown Range markers are skipped (the model has no such
// thing: a gap is a gap); Status is always Normal.
func (s *streamReader16) ReadFetchObject(maxPayload uint64) (FetchObjectHeader, error) {
	for {
		flags, err := s.readFirst("fetch object serialization flags")
		if err != nil {
			return FetchObjectHeader{}, err
		}
		if flags == fetchEndNonExistent || flags == fetchEndUnknown {
			g, err := s.readField("end of range group ID")
			if err != nil {
				return FetchObjectHeader{}, err
			}
			o, err := s.readField("end of range object ID")
			if err != nil {
				return FetchObjectHeader{}, err
			}
			s.prev.GroupID, s.prev.ObjectID, s.haveLoc = g, o, true
			continue
		}
		if flags >= 128 {
			return FetchObjectHeader{}, protocolViolation("invalid fetch serialization flags 0x%x", flags)
		}
		return s.readFetchFields(flags, maxPayload)
	}
}

func (s *streamReader16) readFetchFields(flags, maxPayload uint64) (FetchObjectHeader, error) {
	oh := FetchObjectHeader{Datagram: flags&fetchDatagram != 0}
	needPrev := func(what string) error {
		return protocolViolation("fetch object takes its %s from a previous object, and there is none", what)
	}
	var err error
	if flags&fetchGroupID != 0 {
		if oh.GroupID, err = s.readField("fetch object group ID"); err != nil {
			return FetchObjectHeader{}, err
		}
	} else if !s.haveLoc {
		return FetchObjectHeader{}, needPrev("group ID")
	} else {
		oh.GroupID = s.prev.GroupID
	}
	if !oh.Datagram {
		switch flags & fetchSubgroupMask {
		case fetchSubgroupZero:
		case fetchSubgroupPrior, fetchSubgroupNext:
			if !s.havePrev || s.prev.Datagram {
				return FetchObjectHeader{}, needPrev("subgroup ID")
			}
			oh.SubgroupID = s.prev.SubgroupID
			if flags&fetchSubgroupMask == fetchSubgroupNext {
				if oh.SubgroupID >= MaxVarint {
					return FetchObjectHeader{}, protocolViolation("subgroup ID overflows")
				}
				oh.SubgroupID++
			}
		case fetchSubgroupField:
			if oh.SubgroupID, err = s.readField("fetch object subgroup ID"); err != nil {
				return FetchObjectHeader{}, err
			}
		}
	}
	if flags&fetchObjectID != 0 {
		if oh.ObjectID, err = s.readField("fetch object object ID"); err != nil {
			return FetchObjectHeader{}, err
		}
	} else if !s.haveLoc {
		return FetchObjectHeader{}, needPrev("object ID")
	} else {
		if s.prev.ObjectID >= MaxVarint {
			return FetchObjectHeader{}, protocolViolation("object ID overflows")
		}
		oh.ObjectID = s.prev.ObjectID + 1
	}
	if flags&fetchPriority != 0 {
		if oh.PublisherPriority, err = s.readByte("fetch object publisher priority"); err != nil {
			return FetchObjectHeader{}, err
		}
	} else if !s.havePrev {
		return FetchObjectHeader{}, needPrev("priority")
	} else {
		oh.PublisherPriority = s.prev.PublisherPriority
	}
	if flags&fetchExtensions != 0 {
		if oh.Extensions, err = s.readExtensions16(); err != nil {
			return FetchObjectHeader{}, err
		}
	}
	if oh.PayloadLen, err = s.readField("object payload length"); err != nil {
		return FetchObjectHeader{}, err
	}
	s.prev, s.havePrev, s.haveLoc = oh, true, true
	s.prev.Extensions = nil // only the fields later objects refer to
	if maxPayload != 0 && oh.PayloadLen > maxPayload {
		return oh, fmt.Errorf("%w: object payload length %d exceeds %d", ErrTooLarge, oh.PayloadLen, maxPayload)
	}
	return oh, nil
}

// AppendSubgroupHeader writes a draft-16 SUBGROUP_HEADER; DefaultPriority
// selects the 0x30-0x3D form without the priority byte. It panics on a
// header type that is not a subgroup type (a programming error).
func (Draft16) AppendSubgroupHeader(b []byte, h SubgroupHeader) []byte {
	return appendSubgroupHeader16(b, vint{}, h)
}

func appendSubgroupHeader16(b []byte, vi vint, h SubgroupHeader) []byte {
	if !IsSubgroupType(h.Type) {
		panic(fmt.Sprintf("wire: 0x%x is not a subgroup header type", h.Type))
	}
	t := h.Type
	if h.DefaultPriority {
		t |= subgroupDefaultPriority
	}
	b = vi.append(b, t)
	b = vi.append(b, h.TrackAlias)
	b = vi.append(b, h.GroupID)
	if h.SubgroupIDMode() == SubgroupIDExplicit {
		b = vi.append(b, h.SubgroupID)
	}
	if !h.DefaultPriority {
		b = append(b, h.PublisherPriority)
	}
	return b
}

// AppendSubgroupObject writes one object's fields up to the payload. An
// object of a status draft-16 lacks (Does Not Exist) is ErrNotInVersion;
// extensions of an object that is not Normal are left out (draft-16 allows
// none there). Programming errors panic as in AppendSubgroupObjectHeader.
func (Draft16) AppendSubgroupObject(b []byte, hdrType, prevObjectID uint64, first bool, oh ObjectHeader) ([]byte, error) {
	return appendSubgroupObject16(b, vint{}, hdrType, prevObjectID, first, oh)
}

func appendSubgroupObject16(b []byte, vi vint, hdrType, prevObjectID uint64, first bool, oh ObjectHeader) ([]byte, error) {
	if oh.PayloadLen == 0 && !validObjectStatus16(oh.Status) {
		return b, fmt.Errorf("%w: object status %d", ErrNotInVersion, oh.Status)
	}
	ext, err := extensions14ToDelta(oh.Extensions, vi)
	if err != nil {
		return b, err
	}
	if oh.PayloadLen == 0 && oh.Status != ObjectStatusNormal {
		ext = nil
	}
	oh.Extensions = ext // the same layout as draft-14 from here
	return appendSubgroupObjectHeaderV(b, vi, hdrType, prevObjectID, first, oh), nil
}

// AppendFetchHeader writes the stream type and FETCH_HEADER (as draft-14).
func (Draft16) AppendFetchHeader(b []byte, requestID uint64) []byte {
	return AppendFetchHeader(b, requestID)
}

// AppendFetchObject writes one fetch object's fields up to the payload,
// leaving out what equals the previous object (prev; nil for the first).
// Fetch objects carry no status in draft-16: one that is not Normal is
// ErrNotInVersion (its absence says the same).
func (Draft16) AppendFetchObject(b []byte, prev *FetchObjectHeader, oh FetchObjectHeader) ([]byte, error) {
	return appendFetchObject16(b, vint{}, prev, oh)
}

func appendFetchObject16(b []byte, vi vint, prev *FetchObjectHeader, oh FetchObjectHeader) ([]byte, error) {
	if oh.PayloadLen == 0 && oh.Status != ObjectStatusNormal {
		return b, fmt.Errorf("%w: fetch object status %d", ErrNotInVersion, oh.Status)
	}
	ext, err := extensions14ToDelta(oh.Extensions, vi)
	if err != nil {
		return b, err
	}
	var flags uint64
	switch {
	case oh.Datagram:
		flags = fetchDatagram
	case oh.SubgroupID == 0:
		flags = fetchSubgroupZero
	case prev != nil && !prev.Datagram && oh.SubgroupID == prev.SubgroupID:
		flags = fetchSubgroupPrior
	case prev != nil && !prev.Datagram && oh.SubgroupID == prev.SubgroupID+1:
		flags = fetchSubgroupNext
	default:
		flags = fetchSubgroupField
	}
	if prev == nil || oh.ObjectID != prev.ObjectID+1 {
		flags |= fetchObjectID
	}
	if prev == nil || oh.GroupID != prev.GroupID {
		flags |= fetchGroupID
	}
	if prev == nil || oh.PublisherPriority != prev.PublisherPriority {
		flags |= fetchPriority
	}
	if len(ext) > 0 {
		flags |= fetchExtensions
	}
	b = vi.append(b, flags)
	if flags&fetchGroupID != 0 {
		b = vi.append(b, oh.GroupID)
	}
	if flags&(fetchDatagram|fetchSubgroupMask) == fetchSubgroupField {
		b = vi.append(b, oh.SubgroupID)
	}
	if flags&fetchObjectID != 0 {
		b = vi.append(b, oh.ObjectID)
	}
	if flags&fetchPriority != 0 {
		b = append(b, oh.PublisherPriority)
	}
	if flags&fetchExtensions != 0 {
		b = vi.append(b, uint64(len(ext)))
		b = append(b, ext...)
	}
	return vi.append(b, oh.PayloadLen), nil
}

// OBJECT_DATAGRAM type bits of draft-16 (§10.3.1) beyond draft-14's.
const (
	datagram16DefaultPriority = 0x08
	datagram16Status          = 0x20
)

// isDatagramType16 reports whether t is a draft-16 OBJECT_DATAGRAM type:
// 0b00X0XXXX, and not STATUS together with END_OF_GROUP.
func isDatagramType16(t uint64) bool {
	if t > 0x2F || t&0x10 != 0 {
		return false
	}
	return t&datagram16Status == 0 || t&datagramEndOfGroup == 0
}

// ParseDatagram decodes a draft-16 OBJECT_DATAGRAM. Type keeps the wire
// type; Extensions is rewritten in the model's layout (a copy), Payload
// aliases b.
func (Draft16) ParseDatagram(b []byte) (Datagram, error) { return parseDatagram(b, &datagram16) }

var datagram16 = objectRules{
	isType:       isDatagramType16,
	isStatus:     func(t uint64) bool { return t&datagram16Status != 0 },
	hasObjectID:  func(t uint64, _ bool) bool { return t&datagramNoObjectID == 0 },
	defaultPrio:  func(t uint64) bool { return t&datagram16DefaultPriority != 0 },
	validStatus:  validObjectStatus16,
	noExtensions: func(s uint64) bool { return s != ObjectStatusNormal },
	extensions:   extensions16To14,
}

// AppendDatagram writes d as a draft-16 OBJECT_DATAGRAM, choosing the type
// from the fields: the status form iff Status != 0 or Type has the STATUS
// bit, End of Group (payload form only), Object ID omitted iff 0, priority
// omitted iff DefaultPriority, extensions iff any.
func (Draft16) AppendDatagram(b []byte, d Datagram) ([]byte, error) {
	return appendDatagram16(b, vint{}, d)
}

func appendDatagram16(b []byte, vi vint, d Datagram) ([]byte, error) {
	status := d.Status != 0 || (d.Type <= 0x2F && d.Type&datagram16Status != 0)
	if status && !validObjectStatus16(d.Status) {
		return b, fmt.Errorf("%w: object status %d", ErrNotInVersion, d.Status)
	}
	ext, err := extensions14ToDelta(d.Extensions, vi)
	if err != nil {
		return b, err
	}
	if status && d.Status != ObjectStatusNormal {
		ext = nil
	}
	var t uint64
	if status {
		t |= datagram16Status
	} else if d.EndOfGroup {
		t |= datagramEndOfGroup
	}
	if d.ObjectID == 0 {
		t |= datagramNoObjectID
	}
	if d.DefaultPriority {
		t |= datagram16DefaultPriority
	}
	if len(ext) > 0 {
		t |= datagramExtBit
	}
	b = vi.append(b, t)
	b = vi.append(b, d.TrackAlias)
	b = vi.append(b, d.GroupID)
	if d.ObjectID != 0 {
		b = vi.append(b, d.ObjectID)
	}
	if !d.DefaultPriority {
		b = append(b, d.PublisherPriority)
	}
	if len(ext) > 0 {
		b = vi.append(b, uint64(len(ext)))
		b = append(b, ext...)
	}
	if status {
		return vi.append(b, d.Status), nil
	}
	return append(b, d.Payload...), nil
}

// extensions16To14 rewrites a draft-16 extension block (delta-encoded
// types) in the draft-14 layout the model keeps. Values are copied as they
// are: IMMUTABLE_EXTENSIONS' contents are not rewritten, since relays must
// not modify them.
func extensions16To14(b []byte) ([]byte, error) { return extensionsDeltaTo14(b, vint{}) }

// extensionsDeltaTo14 is extensions16To14 for the varint encoding vi.
func extensionsDeltaTo14(b []byte, vi vint) ([]byte, error) {
	out := make([]byte, 0, len(b)+8)
	var prev uint64
	for len(b) > 0 {
		p, n, err := parseKVPDelta(b, prev, vi)
		if err != nil {
			return nil, err
		}
		out, b, prev = appendKVP(out, p), b[n:], p.Key
	}
	return out, nil
}

// extensions14To16 rewrites a model (draft-14 layout) extension block for
// draft-16: types sorted (stably) and delta-encoded.
func extensions14To16(b []byte) ([]byte, error) { return extensions14ToDelta(b, vint{}) }

// extensions14ToDelta is extensions14To16 for the varint encoding vi.
func extensions14ToDelta(b []byte, vi vint) ([]byte, error) {
	if len(b) == 0 {
		return nil, nil
	}
	ps, err := ParseExtensions(b)
	if err != nil {
		return nil, fmt.Errorf("%w: extension block: %v", ErrInvalidMessage, err)
	}
	sortParams(ps)
	out := make([]byte, 0, len(b))
	var prev uint64
	for _, p := range ps {
		out, prev = appendKVPDelta(out, p, prev, vi), p.Key
	}
	return out, nil
}
