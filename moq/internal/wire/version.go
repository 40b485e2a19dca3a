package wire

import (
	"errors"
	"fmt"
	"io"
)

// Codec is the wire format of one MoQ Transport version. A session speaks
// the message model of this package (the draft-14 message structs, plus the
// few messages later drafts added) and leaves the bytes to a Codec, so a
// new draft is a new Codec, not a new session.
type Codec interface {
	// Version is the version number (Version14, Version16).
	Version() uint64
	// Features are the session behaviours that differ between versions
	// without being a matter of bytes.
	Features() Features

	// ReadMessage reads one control message (same conventions as the
	// package-level ReadMessage).
	ReadMessage(r io.Reader) (Message, error)
	// AppendMessage encodes a model message. A message this version cannot
	// express yields an error wrapping ErrNotInVersion.
	AppendMessage(b []byte, m Message) ([]byte, error)

	// NewStreamReader reads a unidirectional data stream.
	NewStreamReader(r io.Reader) DataReader
	// AppendSubgroupHeader and AppendSubgroupObject write a subgroup
	// stream (see the package-level functions of the same names). An
	// object the version cannot carry (a status it does not have) yields
	// ErrNotInVersion: leave it out.
	AppendSubgroupHeader(b []byte, h SubgroupHeader) []byte
	AppendSubgroupObject(b []byte, hdrType, prevObjectID uint64, first bool, oh ObjectHeader) ([]byte, error)
	// AppendFetchHeader and AppendFetchObject write a fetch stream; prev
	// is the previous object on the stream (nil for the first), which
	// draft-16 encodes objects against.
	AppendFetchHeader(b []byte, requestID uint64) []byte
	AppendFetchObject(b []byte, prev *FetchObjectHeader, oh FetchObjectHeader) ([]byte, error)
	// ParseDatagram and AppendDatagram handle OBJECT_DATAGRAM.
	ParseDatagram(b []byte) (Datagram, error)
	AppendDatagram(b []byte, d Datagram) ([]byte, error)
}

// Features are what a version changes in the session's behaviour.
type Features struct {
	// NamespaceStreams: SUBSCRIBE_NAMESPACE opens its own bidirectional
	// stream, answered there with REQUEST_OK/REQUEST_ERROR and then
	// NAMESPACE/NAMESPACE_DONE; closing the stream unsubscribes. Requests
	// then travel on several streams, so their IDs may arrive out of order.
	NamespaceStreams bool
	// UpdateReplies: an update of a subscription is answered
	// (SubscribeUpdateOK/SubscribeUpdateError) and may move its start
	// backwards.
	UpdateReplies bool
	// EmptyFetchOK: a FETCH with no objects in range is answered with
	// FETCH_OK and an empty stream, not FETCH_ERROR NO_OBJECTS.
	EmptyFetchOK bool
	// DynamicGroups: a subscriber can ask the original publisher for a new
	// group (NEW_GROUP_REQUEST, ParamNewGroupRequest), where the track says
	// it supports that (the DYNAMIC_GROUPS track extension).
	DynamicGroups bool
	// RequestStreams: every request opens a bidirectional stream of its
	// own, answered there (replies name no request ID); closing or
	// resetting it cancels the request; the control streams are a pair of
	// unidirectional streams starting with SETUP; no MAX_REQUEST_ID.
	RequestStreams bool
}

// DataReader reads a unidirectional data stream; see StreamReader for the
// conventions. What it returns is in the model's terms: extension blocks in
// draft-14 layout, subgroup header types without draft-16's
// DEFAULT_PRIORITY bit.
type DataReader interface {
	ReadStreamType() (uint64, error)
	ReadSubgroupHeader(typ uint64) (SubgroupHeader, error)
	ReadSubgroupObject(h SubgroupHeader, prevObjectID uint64, first bool, maxPayload uint64) (ObjectHeader, error)
	ReadFetchHeader() (FetchHeader, error)
	ReadFetchObject(maxPayload uint64) (FetchObjectHeader, error)
	Read(p []byte) (int, error)
	ReadPayload(dst []byte) (int, error)
	DiscardPayload(n uint64) error
}

// ErrNotInVersion is wrapped by encoders given something the version has no
// way to express.
var ErrNotInVersion = errors.New("moq wire: not expressible in this version")

// CodecForProtocol returns the codec of a negotiated ALPN or WebTransport
// protocol: moqt-16 is draft-16; moq-00 or none is draft-14 (negotiated in
// setup). requestType is given to codecs whose replies name only a request
// ID (see Draft16.RequestType). ok is false for a protocol of no version
// this package speaks.
func CodecForProtocol(protocol string, requestType func(requestID uint64) uint64) (c Codec, ok bool) {
	switch protocol {
	case "", ALPN14:
		return Draft14{}, true
	case ALPN16:
		return Draft16{RequestType: requestType}, true
	case ALPN17:
		return Draft17{}, true // the session sets Client
	}
	return nil, false
}

// Draft14 is the draft-14 codec: the package-level functions.
type Draft14 struct{}

var _ Codec = Draft14{}

func (Draft14) Version() uint64    { return Version14 }
func (Draft14) Features() Features { return Features{} }

func (Draft14) ReadMessage(r io.Reader) (Message, error) { return ReadMessage(r) }

func (Draft14) AppendMessage(b []byte, m Message) ([]byte, error) {
	if draft14MessageName(m.Type()) == "" {
		return b, fmt.Errorf("%w: draft-14 has no %s", ErrNotInVersion, MessageName(m.Type()))
	}
	return AppendMessage(b, m)
}

func (Draft14) NewStreamReader(r io.Reader) DataReader { return NewStreamReader(r) }

func (Draft14) AppendSubgroupHeader(b []byte, h SubgroupHeader) []byte {
	return AppendSubgroupHeader(b, h)
}

func (Draft14) AppendSubgroupObject(b []byte, hdrType, prevObjectID uint64, first bool, oh ObjectHeader) ([]byte, error) {
	return AppendSubgroupObjectHeader(b, hdrType, prevObjectID, first, oh), nil
}

func (Draft14) AppendFetchHeader(b []byte, requestID uint64) []byte {
	return AppendFetchHeader(b, requestID)
}

func (Draft14) AppendFetchObject(b []byte, _ *FetchObjectHeader, oh FetchObjectHeader) ([]byte, error) {
	return AppendFetchObjectHeader(b, oh), nil
}

func (Draft14) ParseDatagram(b []byte) (Datagram, error) { return ParseDatagram(b) }

func (Draft14) AppendDatagram(b []byte, d Datagram) ([]byte, error) {
	return AppendDatagram(b, d), nil
}
