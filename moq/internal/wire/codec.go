package wire

import (
	"fmt"
)

// encoder accumulates a control message payload. The first error sticks, so
// per-message code can be written straight-line.
type encoder struct {
	vi   vint // the varint encoding (draft-17's leading ones, or QUIC's)
	p17  bool // draft-17 message layout (see Draft17)
	kvp  bool // Draft17.KVPParams
	b    []byte
	msg  uint64
	name string // the message's name in errors; "" means MessageName(msg)
	err  error
}

func (e *encoder) msgName() string {
	if e.name != "" {
		return e.name
	}
	return MessageName(e.msg)
}

func (e *encoder) failf(format string, args ...any) {
	if e.err == nil {
		e.err = fmt.Errorf("%w: %s: %s", ErrInvalidMessage, e.msgName(), fmt.Sprintf(format, args...))
	}
}

func (e *encoder) varint(field string, v uint64) {
	if e.err != nil {
		return
	}
	if v > MaxVarint {
		e.failf("%s %d exceeds 2^62-1", field, v)
		return
	}
	e.b = e.vi.append(e.b, v)
}

func (e *encoder) u8(v uint8) { e.b = append(e.b, v) }

func (e *encoder) flag(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

func (e *encoder) location(field string, l Location) {
	e.varint(field+" group", l.Group)
	e.varint(field+" object", l.Object)
}

// str writes a length-prefixed string of at most max bytes.
func (e *encoder) str(field, s string, max int) {
	if e.err != nil {
		return
	}
	if len(s) > max {
		e.failf("%s length %d exceeds %d", field, len(s), max)
		return
	}
	e.b = e.vi.append(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

// tuple writes a namespace tuple and returns its total field length, which
// counts towards the Full Track Name limit.
func (e *encoder) tuple(field string, ns []string) int { return e.tupleMin(field, ns, 1, false) }

// prefix writes a namespace prefix of 0..32 fields: what the decoder
// accepts (see decoder.prefix) it can send, though an empty prefix is
// draft-16's, not draft-14's.
func (e *encoder) prefix(field string, ns []string) { e.tupleMin(field, ns, 0, false) }

// tupleMin writes a namespace tuple of minFields..32 fields (non-empty ones
// when nonEmpty: draft-16 §2.4.1) and returns its length.
func (e *encoder) tupleMin(field string, ns []string, minFields int, nonEmpty bool) int {
	if e.err != nil {
		return 0
	}
	if len(ns) < minFields || len(ns) > MaxNamespaceFields {
		e.failf("%s has %d fields, want %d..%d", field, len(ns), minFields, MaxNamespaceFields)
		return 0
	}
	total := 0
	for _, f := range ns {
		if nonEmpty && f == "" {
			e.failf("%s has an empty field", field)
			return 0
		}
		total += len(f)
	}
	if total > MaxFullTrackNameLen {
		e.failf("%s length %d exceeds %d", field, total, MaxFullTrackNameLen)
		return 0
	}
	e.b = e.vi.append(e.b, uint64(len(ns)))
	for _, f := range ns {
		e.b = e.vi.append(e.b, uint64(len(f)))
		e.b = append(e.b, f...)
	}
	return total
}

func (e *encoder) trackName(nsLen int, name string) {
	e.str("full track name", name, MaxFullTrackNameLen-nsLen)
}

func (e *encoder) reason(r string) { e.str("reason phrase", r, MaxReasonPhraseLen) }

// groupOrder enforces the draft's ranges: requests (and PUBLISH_OK, see
// decoder.groupOrder) may ask for the publisher's order (0); responses
// must state 1 or 2.
func (e *encoder) groupOrder(v uint8, allowPublisher bool) {
	if v > GroupOrderDescending || (v == GroupOrderPublisher && !allowPublisher) {
		e.failf("invalid group order %d", v)
		return
	}
	e.u8(v)
}

func (e *encoder) filter(ft uint64, start Location, endGroup uint64) {
	if ft < FilterNextGroupStart || ft > FilterAbsoluteRange {
		e.failf("invalid filter type %d", ft)
		return
	}
	e.varint("filter type", ft)
	if ft == FilterAbsoluteStart || ft == FilterAbsoluteRange {
		e.location("start", start)
	}
	if ft == FilterAbsoluteRange {
		e.varint("end group", endGroup)
	}
}

func (e *encoder) params(ps Params) {
	if e.err != nil {
		return
	}
	for _, p := range ps {
		if p.Key > MaxVarint {
			e.failf("parameter key %d exceeds 2^62-1", p.Key)
			return
		}
		if p.Key&1 == 0 {
			if p.Bytes != nil {
				e.failf("parameter 0x%x has an even key (varint) but Bytes set", p.Key)
				return
			}
			if p.Value > MaxVarint {
				e.failf("parameter 0x%x value exceeds 2^62-1", p.Key)
				return
			}
		} else {
			if p.Value != 0 {
				e.failf("parameter 0x%x has an odd key (bytes) but Value set", p.Key)
				return
			}
			if len(p.Bytes) > MaxParamValueLen {
				e.failf("parameter 0x%x length %d exceeds %d", p.Key, len(p.Bytes), MaxParamValueLen)
				return
			}
		}
	}
	// Refuse to send what the peer would have to reject.
	if err := checkParams(e.msg, ps); err != nil {
		e.failf("%v", err)
		return
	}
	e.b = e.vi.append(e.b, uint64(len(ps)))
	for _, p := range ps {
		e.b = appendKVP(e.b, p)
	}
}

// decoder reads a complete control message payload. Running past the end of
// the payload is a length mismatch, which §9 makes a PROTOCOL_VIOLATION.
type decoder struct {
	vi  vint // as in encoder
	p17 bool // draft-17 message layout (see Draft17)
	kvp bool // Draft17.KVPParams
	// ctxID is the request of the stream being read (draft-17 replies).
	ctxID uint64
	b     []byte
	msg   uint64
	name  string // as in encoder
	err   error
}

func (d *decoder) msgName() string {
	if d.name != "" {
		return d.name
	}
	return MessageName(d.msg)
}

func (d *decoder) fail(code uint64, format string, args ...any) {
	if d.err == nil {
		d.err = sessionErr(code, "%s: %s", d.msgName(), fmt.Sprintf(format, args...))
	}
}

func (d *decoder) varint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := d.vi.parse(d.b)
	if err != nil {
		d.fail(ProtocolViolation, "%s runs past end of payload", field)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(field string) uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(ProtocolViolation, "%s runs past end of payload", field)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) flag(field string) bool {
	v := d.u8(field)
	if v > 1 {
		d.fail(ProtocolViolation, "%s is %d, want 0 or 1", field, v)
	}
	return v == 1
}

func (d *decoder) location(field string) Location {
	g := d.varint(field + " group")
	o := d.varint(field + " object")
	return Location{Group: g, Object: o}
}

// raw reads a length-prefixed byte field of at most max bytes. The length is
// checked against what is left of the payload before anything is allocated.
func (d *decoder) raw(field string, max uint64) []byte {
	n := d.varint(field + " length")
	if d.err != nil {
		return nil
	}
	if n > max {
		d.fail(ProtocolViolation, "%s length %d exceeds %d", field, n, max)
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(ProtocolViolation, "%s length %d runs past end of payload", field, n)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(field string, max uint64) string { return string(d.raw(field, max)) }

func (d *decoder) tuple(field string) ([]string, int) { return d.tupleMin(field, 1, false) }

// prefix reads a namespace prefix. Draft-14 asks for 1..32 fields, but
// @moq/net sends 0 fields to discover every namespace (announced() with no
// prefix), which draft-16 allows: accepted, it matches every namespace.
func (d *decoder) prefix(field string) []string {
	ns, _ := d.tupleMin(field, 0, false)
	return ns
}

// tupleMin reads a namespace tuple of minFields..32 fields (each at least
// one byte long when nonEmpty: draft-16 §2.4.1) and returns its length.
func (d *decoder) tupleMin(field string, minFields uint64, nonEmpty bool) ([]string, int) {
	n := d.varint(field + " field count")
	if d.err != nil {
		return nil, 0
	}
	if n < minFields || n > MaxNamespaceFields {
		d.fail(ProtocolViolation, "%s has %d fields, want %d..%d", field, n, minFields, MaxNamespaceFields)
		return nil, 0
	}
	if n == 0 {
		return nil, 0
	}
	ns := make([]string, 0, n)
	total := 0
	for i := uint64(0); i < n; i++ {
		f := d.raw(field, uint64(MaxFullTrackNameLen-total))
		if d.err != nil {
			return nil, 0
		}
		if nonEmpty && len(f) == 0 {
			d.fail(ProtocolViolation, "%s field %d is empty", field, i)
			return nil, 0
		}
		total += len(f)
		ns = append(ns, string(f))
	}
	return ns, total
}

func (d *decoder) trackName(nsLen int) string {
	return d.str("full track name", uint64(MaxFullTrackNameLen-nsLen))
}

func (d *decoder) reason() string { return d.str("reason phrase", MaxReasonPhraseLen) }

// groupOrder reads a group order. In a request (SUBSCRIBE, FETCH,
// TRACK_STATUS, and PUBLISH_OK, the subscriber's answer) 0 is the
// publisher's order. In a reply, where the draft calls 0 an error,
// 0 is read as Ascending, the order a publisher has when it states none
// (lenient: Eyevinn/moqtransport v0.9.0 sends TRACK_STATUS_OK with 0).
func (d *decoder) groupOrder(request bool) uint8 {
	v := d.u8("group order")
	if d.err == nil && v > GroupOrderDescending {
		d.fail(ProtocolViolation, "invalid group order %d", v)
	}
	if v == GroupOrderPublisher && !request {
		return GroupOrderAscending
	}
	return v
}

func (d *decoder) filter() (ft uint64, start Location, endGroup uint64) {
	ft = d.varint("filter type")
	if d.err != nil {
		return 0, Location{}, 0
	}
	switch ft {
	case FilterNone:
		ft = FilterAbsoluteStart // unfiltered: see FilterNone
	case FilterNextGroupStart, FilterLargestObject:
	case FilterAbsoluteStart:
		start = d.location("start")
	case FilterAbsoluteRange:
		start = d.location("start")
		endGroup = d.varint("end group")
	default:
		d.fail(ProtocolViolation, "invalid filter type %d", ft)
	}
	return ft, start, endGroup
}

func (d *decoder) params() Params {
	n := d.varint("number of parameters")
	if d.err != nil || n == 0 {
		return nil
	}
	// Each pair takes at least two bytes: never trust n for the allocation.
	ps := make(Params, 0, min(n, uint64(len(d.b)/2)))
	for i := uint64(0); i < n; i++ {
		p, used, err := parseKVP(d.b)
		if err != nil {
			d.fail(ProtocolViolation, "parameter %d: %s", i, err.(*SessionError).Reason)
			return nil
		}
		if p.Bytes != nil {
			// Copy: the message must not pin or alias the caller's buffer.
			p.Bytes = append([]byte(nil), p.Bytes...)
		}
		ps = append(ps, p)
		d.b = d.b[used:]
	}
	if err := checkParams(d.msg, ps); err != nil {
		if d.err == nil {
			se := err.(*SessionError)
			d.err = &SessionError{Code: se.Code, Reason: d.msgName() + ": " + se.Reason}
		}
		return nil
	}
	return ps
}

func (d *decoder) finish() {
	if d.err == nil && len(d.b) != 0 {
		d.fail(ProtocolViolation, "%d bytes left after last field (length mismatch)", len(d.b))
	}
}
