package wire

import (
	"bufio"
	"fmt"
	"io"
)

// Subgroup header type bits (§10.4.2): 0x10 | ext(0x01) | idMode<<1 | eog(0x08).
const (
	subgroupBase      = 0x10
	subgroupExtBit    = 0x01
	subgroupModeMask  = 0x06
	subgroupEndOfGrp  = 0x08
	subgroupModeShift = 1
)

// IsSubgroupType reports whether t is one of the 12 SUBGROUP_HEADER types
// (0x10-0x15, 0x18-0x1D).
func IsSubgroupType(t uint64) bool {
	return t&^0x0f == subgroupBase && (t&subgroupModeMask)>>subgroupModeShift <= SubgroupIDExplicit
}

// SubgroupType builds a SUBGROUP_HEADER type. subgroupIDMode is
// SubgroupIDZero, SubgroupIDFirstObject or SubgroupIDExplicit; any other
// value panics (a programming error).
func SubgroupType(extensions, endOfGroup bool, subgroupIDMode int) uint64 {
	if subgroupIDMode < SubgroupIDZero || subgroupIDMode > SubgroupIDExplicit {
		panic(fmt.Sprintf("wire: invalid subgroup ID mode %d", subgroupIDMode))
	}
	t := uint64(subgroupBase) | uint64(subgroupIDMode)<<subgroupModeShift
	if extensions {
		t |= subgroupExtBit
	}
	if endOfGroup {
		t |= subgroupEndOfGrp
	}
	return t
}

// SubgroupHeader is SUBGROUP_HEADER (§10.4.2). Type carries the flags; for
// SubgroupIDZero SubgroupID is 0, for SubgroupIDFirstObject it is not on the
// wire and the reader must set it to the first object's ID (ReadSubgroupHeader
// leaves it 0), for SubgroupIDExplicit it is on the wire.
type SubgroupHeader struct {
	Type              uint64
	TrackAlias        uint64
	GroupID           uint64
	SubgroupID        uint64
	PublisherPriority uint8
	// DefaultPriority (draft-16 types 0x30-0x3D, which Type does not
	// keep): no priority on the wire, the subscription's applies.
	DefaultPriority bool
}

// HasExtensions reports whether every object on the stream carries an
// Extension Headers Length field.
func (h SubgroupHeader) HasExtensions() bool { return h.Type&subgroupExtBit != 0 }

// EndOfGroup reports whether the last object before FIN ends the group.
func (h SubgroupHeader) EndOfGroup() bool { return h.Type&subgroupEndOfGrp != 0 }

// SubgroupIDMode returns SubgroupIDZero, SubgroupIDFirstObject or SubgroupIDExplicit.
func (h SubgroupHeader) SubgroupIDMode() int {
	return int(h.Type&subgroupModeMask) >> subgroupModeShift
}

// AppendSubgroupHeader appends the stream type and SUBGROUP_HEADER fields. It
// panics if h.Type is not a subgroup type or a field exceeds 2^62-1.
func AppendSubgroupHeader(b []byte, h SubgroupHeader) []byte {
	if !IsSubgroupType(h.Type) {
		panic(fmt.Sprintf("wire: 0x%x is not a subgroup header type", h.Type))
	}
	b = AppendVarint(b, h.Type)
	b = AppendVarint(b, h.TrackAlias)
	b = AppendVarint(b, h.GroupID)
	if h.SubgroupIDMode() == SubgroupIDExplicit {
		b = AppendVarint(b, h.SubgroupID)
	}
	return append(b, h.PublisherPriority)
}

// ObjectHeader is an object on a subgroup stream, without its payload.
// Extensions is the raw extension header block (a Key-Value-Pair sequence,
// see ParseExtensions). Status is meaningful only when PayloadLen == 0
// (otherwise the object is Normal).
type ObjectHeader struct {
	ObjectID   uint64
	Extensions []byte
	PayloadLen uint64
	Status     uint64
}

// AppendSubgroupObjectHeader appends the fields of one subgroup object up to
// (not including) the payload, which the caller writes itself so it is never
// copied. The Object ID Delta is ObjectID for the first object of the stream
// and ObjectID-prevObjectID-1 after that (§10.4.2).
//
// It panics on a programming error: ObjectID not greater than prevObjectID
// (not representable: the relay must open a new stream, §10.4.3), non-empty
// Extensions with a header type without extensions (they would be silently
// dropped), or a varint out of range.
func AppendSubgroupObjectHeader(b []byte, hdrType uint64, prevObjectID uint64, first bool, oh ObjectHeader) []byte {
	return appendSubgroupObjectHeaderV(b, vint{}, hdrType, prevObjectID, first, oh)
}

// appendSubgroupObjectHeaderV is AppendSubgroupObjectHeader with the varint
// encoding vi.
func appendSubgroupObjectHeaderV(b []byte, vi vint, hdrType uint64, prevObjectID uint64, first bool, oh ObjectHeader) []byte {
	delta := oh.ObjectID
	if !first {
		if oh.ObjectID <= prevObjectID {
			panic(fmt.Sprintf("wire: object ID %d not after previous %d on subgroup stream", oh.ObjectID, prevObjectID))
		}
		delta = oh.ObjectID - prevObjectID - 1
	}
	b = vi.append(b, delta)
	if hdrType&subgroupExtBit != 0 {
		b = vi.append(b, uint64(len(oh.Extensions)))
		b = append(b, oh.Extensions...)
	} else if len(oh.Extensions) != 0 {
		panic("wire: object has extensions but subgroup header type has none")
	}
	b = vi.append(b, oh.PayloadLen)
	if oh.PayloadLen == 0 {
		b = vi.append(b, oh.Status)
	}
	return b
}

// FetchHeader is FETCH_HEADER (§10.4.4).
type FetchHeader struct{ RequestID uint64 }

// FetchObjectHeader is an object on a fetch stream, without its payload.
type FetchObjectHeader struct {
	GroupID           uint64
	SubgroupID        uint64
	ObjectID          uint64
	PublisherPriority uint8
	Extensions        []byte
	PayloadLen        uint64
	Status            uint64 // meaningful only when PayloadLen == 0
	// Datagram: the object was sent as a datagram, so it has no subgroup
	// (draft-16 flag 0x40; draft-14 does not say).
	Datagram bool
}

// AppendFetchHeader appends the stream type (0x05) and FETCH_HEADER.
func AppendFetchHeader(b []byte, requestID uint64) []byte {
	return appendFetchHeaderV(b, vint{}, requestID)
}

func appendFetchHeaderV(b []byte, vi vint, requestID uint64) []byte {
	b = vi.append(b, StreamTypeFetch)
	return vi.append(b, requestID)
}

// AppendFetchObjectHeader appends one fetch object's fields up to the payload.
// It panics if a field exceeds 2^62-1.
func AppendFetchObjectHeader(b []byte, oh FetchObjectHeader) []byte {
	b = AppendVarint(b, oh.GroupID)
	b = AppendVarint(b, oh.SubgroupID)
	b = AppendVarint(b, oh.ObjectID)
	b = append(b, oh.PublisherPriority)
	b = AppendVarint(b, uint64(len(oh.Extensions)))
	b = append(b, oh.Extensions...)
	b = AppendVarint(b, oh.PayloadLen)
	if oh.PayloadLen == 0 {
		b = AppendVarint(b, oh.Status)
	}
	return b
}

// StreamReader decodes a unidirectional data stream: the stream type, then a
// subgroup or fetch header, then object headers, each followed by a payload
// the caller reads through Read, ReadPayload or DiscardPayload.
//
// Error conventions: io.EOF (unwrapped) when the stream ends cleanly where a
// new object (or the stream type) could start; a *SessionError for draft
// violations (a FIN inside a header is PROTOCOL_VIOLATION, and that error also
// wraps io.ErrUnexpectedEOF); ErrTooLarge (wrapped) for local limits; other
// read errors (e.g. a stream reset) wrapped as they come.
type StreamReader struct {
	r   *bufio.Reader
	own *bufio.Reader // our own buffer, kept across Reset to avoid reallocating
	vi  vint          // the varint encoding (draft-17's, or QUIC's)

	// MaxExtensionsLen bounds an object's extension header block; 0 means
	// DefaultMaxExtensions. The draft sets no limit, so exceeding it yields
	// ErrTooLarge rather than a session error.
	MaxExtensionsLen uint64
}

// NewStreamReader wraps r. A *bufio.Reader is used as is; anything else gets
// a bufio.Reader of its own.
func NewStreamReader(r io.Reader) *StreamReader {
	s := &StreamReader{}
	s.Reset(r)
	return s
}

// Reset makes s read from r, reusing its buffer (for pooling readers across
// streams). MaxExtensionsLen is kept.
func (s *StreamReader) Reset(r io.Reader) {
	if br, ok := r.(*bufio.Reader); ok {
		s.r = br
		return
	}
	if s.own == nil {
		s.own = bufio.NewReader(r)
	} else {
		s.own.Reset(r)
	}
	s.r = s.own
}

// readField reads a varint inside a header: any end of stream is a truncation.
func (s *StreamReader) readField(what string) (uint64, error) {
	v, err := s.vi.read(s.r)
	if err != nil {
		return 0, readErr(what, err)
	}
	return v, nil
}

// readFirst reads the first varint of a header or object: a clean end of
// stream there is io.EOF.
func (s *StreamReader) readFirst(what string) (uint64, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		if err == io.EOF {
			return 0, io.EOF
		}
		return 0, fmt.Errorf("moq wire: reading %s: %w", what, err)
	}
	v, err := s.vi.readRest(s.r, c)
	if err != nil {
		return 0, readErr(what, err)
	}
	return v, nil
}

func (s *StreamReader) readByte(what string) (byte, error) {
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, readErr(what, err)
	}
	return c, nil
}

// ReadStreamType reads the stream type varint. It returns io.EOF for a stream
// that ends before any byte, and the type together with a
// PROTOCOL_VIOLATION *SessionError for a type the draft does not define
// (§10: the session MUST be closed).
func (s *StreamReader) ReadStreamType() (uint64, error) { return s.readStreamType(IsSubgroupType) }

// readStreamType reads a stream type: FETCH_HEADER or a subgroup type of
// the draft.
func (s *StreamReader) readStreamType(isSubgroup func(uint64) bool) (uint64, error) {
	t, err := s.readFirst("stream type")
	if err != nil {
		return 0, err
	}
	if t != StreamTypeFetch && !isSubgroup(t) {
		return t, protocolViolation("unknown data stream type 0x%x", t)
	}
	return t, nil
}

// ReadSubgroupHeader reads the SUBGROUP_HEADER fields after the stream type
// typ (as returned by ReadStreamType).
func (s *StreamReader) ReadSubgroupHeader(typ uint64) (SubgroupHeader, error) {
	if !IsSubgroupType(typ) {
		return SubgroupHeader{}, protocolViolation("0x%x is not a subgroup header type", typ)
	}
	h := SubgroupHeader{Type: typ}
	if err := s.readSubgroupFields(&h); err != nil {
		return SubgroupHeader{}, err
	}
	return h, nil
}

// readSubgroupFields reads the fields of a subgroup header after its type:
// track alias, group, the explicit subgroup ID, and the publisher priority
// unless h.DefaultPriority (draft-16).
func (s *StreamReader) readSubgroupFields(h *SubgroupHeader) error {
	var err error
	if h.TrackAlias, err = s.readField("subgroup header track alias"); err != nil {
		return err
	}
	if h.GroupID, err = s.readField("subgroup header group ID"); err != nil {
		return err
	}
	if h.SubgroupIDMode() == SubgroupIDExplicit {
		if h.SubgroupID, err = s.readField("subgroup header subgroup ID"); err != nil {
			return err
		}
	}
	if !h.DefaultPriority {
		h.PublisherPriority, err = s.readByte("subgroup header publisher priority")
	}
	return err
}

// readObjectID reads a subgroup object's ID delta: the first object's ID,
// or the previous ID plus delta plus one.
func (s *StreamReader) readObjectID(prevObjectID uint64, first bool) (uint64, error) {
	delta, err := s.readFirst("object ID delta")
	if err != nil || first {
		return delta, err
	}
	// prev + delta + 1 must stay a valid varint (Object IDs are varints).
	if prevObjectID >= MaxVarint || delta > MaxVarint-prevObjectID-1 {
		return 0, protocolViolation("object ID delta %d after %d overflows", delta, prevObjectID)
	}
	return prevObjectID + delta + 1, nil
}

// ReadSubgroupObject reads the next object header of a subgroup stream with
// header h. prevObjectID and first describe the previous object read on this
// stream (first == true for the first one). For a SubgroupIDFirstObject
// header, the caller sets h.SubgroupID to the first returned ObjectID.
//
// maxPayload bounds PayloadLen (0 = no limit); when exceeded the header is
// returned together with an error wrapping ErrTooLarge. Extensions is a
// fresh slice the caller may keep.
func (s *StreamReader) ReadSubgroupObject(h SubgroupHeader, prevObjectID uint64, first bool, maxPayload uint64) (ObjectHeader, error) {
	return s.subgroupObject(h, prevObjectID, first, maxPayload, s.readExtensions, &datagram14)
}

// subgroupObject reads a subgroup object's header: its ID, extensions (with
// the draft's reader), payload length, and status by the draft's rules.
func (s *StreamReader) subgroupObject(h SubgroupHeader, prevObjectID uint64, first bool, maxPayload uint64,
	readExt func() ([]byte, error), r *objectRules) (ObjectHeader, error) {
	var oh ObjectHeader
	var err error
	if oh.ObjectID, err = s.readObjectID(prevObjectID, first); err != nil {
		return ObjectHeader{}, err
	}
	if h.HasExtensions() {
		if oh.Extensions, err = readExt(); err != nil {
			return ObjectHeader{}, err
		}
	}
	if err := s.readPayloadLenStatus(&oh.PayloadLen, &oh.Status, len(oh.Extensions) > 0, maxPayload, r); err != nil {
		return oh, err
	}
	return oh, nil
}

// readExtensions reads Extension Headers Length and the block.
func (s *StreamReader) readExtensions() ([]byte, error) {
	ext, err := s.readExtBlock()
	if err != nil || ext == nil {
		return nil, err
	}
	if err := validateExtensions(ext); err != nil {
		return nil, err
	}
	return ext, nil
}

// readExtBlock reads Extension Headers Length and the block, unchecked.
func (s *StreamReader) readExtBlock() ([]byte, error) {
	n, err := s.readField("extension headers length")
	if err != nil || n == 0 {
		return nil, err
	}
	max := s.MaxExtensionsLen
	if max == 0 {
		max = DefaultMaxExtensions
	}
	if n > max {
		return nil, fmt.Errorf("%w: extension headers length %d exceeds %d", ErrTooLarge, n, max)
	}
	// Bounded by max above, so a lying length cannot make us allocate much.
	ext := make([]byte, n)
	if _, err := io.ReadFull(s.r, ext); err != nil {
		return nil, readErr("extension headers", err)
	}
	return ext, nil
}

// readPayloadLenStatus reads Object Payload Length and, when it is zero, the
// Object Status, applying the §10.2.1 rules.
func (s *StreamReader) readPayloadLenStatus(payloadLen, status *uint64, hasExt bool, maxPayload uint64, r *objectRules) error {
	n, err := s.readField("object payload length")
	if err != nil {
		return err
	}
	*payloadLen = n
	if n > 0 {
		if maxPayload != 0 && n > maxPayload {
			return fmt.Errorf("%w: object payload length %d exceeds %d", ErrTooLarge, n, maxPayload)
		}
		*status = ObjectStatusNormal
		return nil
	}
	st, err := s.readField("object status")
	if err != nil {
		return err
	}
	if !r.validStatus(st) {
		return protocolViolation("unknown object status %d", st)
	}
	if r.noExtensions(st) && hasExt {
		return protocolViolation("object with status %d has extension headers", st)
	}
	*status = st
	return nil
}

// ReadFetchHeader reads the FETCH_HEADER fields after the stream type 0x05.
func (s *StreamReader) ReadFetchHeader() (FetchHeader, error) {
	id, err := s.readField("fetch header request ID")
	if err != nil {
		return FetchHeader{}, err
	}
	return FetchHeader{RequestID: id}, nil
}

// ReadFetchObject reads the next object header of a fetch stream. Limits and
// ownership are as for ReadSubgroupObject.
func (s *StreamReader) ReadFetchObject(maxPayload uint64) (FetchObjectHeader, error) {
	var oh FetchObjectHeader
	var err error
	if oh.GroupID, err = s.readFirst("fetch object group ID"); err != nil {
		return FetchObjectHeader{}, err
	}
	if oh.SubgroupID, err = s.readField("fetch object subgroup ID"); err != nil {
		return FetchObjectHeader{}, err
	}
	if oh.ObjectID, err = s.readField("fetch object object ID"); err != nil {
		return FetchObjectHeader{}, err
	}
	if oh.PublisherPriority, err = s.readByte("fetch object publisher priority"); err != nil {
		return FetchObjectHeader{}, err
	}
	if oh.Extensions, err = s.readExtensions(); err != nil {
		return FetchObjectHeader{}, err
	}
	if err := s.readPayloadLenStatus(&oh.PayloadLen, &oh.Status, len(oh.Extensions) > 0, maxPayload, &datagram14); err != nil {
		return oh, err
	}
	return oh, nil
}

// Read reads payload bytes. The caller must not read past the current
// object's PayloadLen, or it will consume the next object header.
func (s *StreamReader) Read(p []byte) (int, error) { return s.r.Read(p) }

// ReadPayload fills dst completely (like io.ReadFull). A stream ending before
// dst is full is a truncated object: *SessionError{ProtocolViolation}
// wrapping io.ErrUnexpectedEOF.
func (s *StreamReader) ReadPayload(dst []byte) (int, error) {
	n, err := io.ReadFull(s.r, dst)
	if err != nil {
		return n, readErr("object payload", err)
	}
	return n, nil
}

// DiscardPayload skips n payload bytes (an object the caller drops).
func (s *StreamReader) DiscardPayload(n uint64) error {
	for n > 0 {
		step := int(min(n, 1<<30))
		m, err := s.r.Discard(step)
		n -= uint64(m)
		if err != nil {
			return readErr("object payload", err)
		}
	}
	return nil
}

// Buffered returns the number of bytes already buffered (useful to tell
// whether another object is available without blocking).
func (s *StreamReader) Buffered() int { return s.r.Buffered() }
