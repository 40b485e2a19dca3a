// Package wire is the MoQ Transport wire format: a message model (the
// draft-ietf-moq-transport-14 control messages, data stream headers and
// datagrams, plus the few things later drafts added) and a Codec per
// version that turns it into bytes. The package-level functions are the
// draft-14 codec (§9, §10 of draft-14; Draft14 wraps them); Draft16 is
// draft-ietf-moq-transport-16's, translating to and from the same model.
//
// The package is stateless (Draft16 asks the session, through RequestType,
// which request a reply answers): session rules that need history (request
// ID ordering, track aliases, token caches, GOAWAY direction...) belong to
// the session layer. Everything that can be checked from the bytes of one message
// or object is checked here, with the termination code the draft names.
package wire

// Version numbers (0xff000000 + draft number).
const (
	Version14 uint64 = 0xff00000e // draft-ietf-moq-transport-14
	Version16 uint64 = 0xff000010 // draft-ietf-moq-transport-16
	Version17 uint64 = 0xff000011 // draft-ietf-moq-transport-17
)

// ALPN values (raw QUIC) and WebTransport protocols. Draft-14 and earlier
// share moq-00 and negotiate the version in CLIENT_SETUP/SERVER_SETUP;
// from draft-15 on the protocol is the version.
const (
	ALPN14 = "moq-00"
	ALPN16 = "moqt-16"
	ALPN17 = "moqt-17"
)

// Limits from the draft.
const (
	MaxNamespaceFields   = 32        // §2.4.1: tuple N must be 1..32
	MaxFullTrackNameLen  = 4096      // §2.4.1: sum of namespace fields + track name
	MaxReasonPhraseLen   = 1024      // §1.4.3
	MaxMessagePayload    = 1<<16 - 1 // §9: 16-bit Message Length
	MaxParamValueLen     = 1<<16 - 1 // §1.4.2: odd-type Key-Value-Pair length
	MaxGoAwayURILen      = 8192      // §9.4
	DefaultMaxExtensions = 1<<16 - 1 // local default for StreamReader.MaxExtensionsLen
)

// Control message types (§9).
const (
	MsgSubscribeUpdate         = 0x2
	MsgSubscribe               = 0x3
	MsgSubscribeOK             = 0x4
	MsgSubscribeError          = 0x5
	MsgPublishNamespace        = 0x6
	MsgPublishNamespaceOK      = 0x7
	MsgPublishNamespaceError   = 0x8
	MsgPublishNamespaceDone    = 0x9
	MsgUnsubscribe             = 0xA
	MsgPublishDone             = 0xB
	MsgPublishNamespaceCancel  = 0xC
	MsgTrackStatus             = 0xD
	MsgTrackStatusOK           = 0xE
	MsgTrackStatusError        = 0xF
	MsgGoAway                  = 0x10
	MsgSubscribeNamespace      = 0x11
	MsgSubscribeNamespaceOK    = 0x12
	MsgSubscribeNamespaceError = 0x13
	MsgUnsubscribeNamespace    = 0x14
	MsgMaxRequestID            = 0x15
	MsgFetch                   = 0x16
	MsgFetchCancel             = 0x17
	MsgFetchOK                 = 0x18
	MsgFetchError              = 0x19
	MsgRequestsBlocked         = 0x1A
	MsgPublish                 = 0x1D
	MsgPublishOK               = 0x1E
	MsgPublishError            = 0x1F
	MsgClientSetup             = 0x20
	MsgServerSetup             = 0x21
)

// Model types of the messages later drafts added (see messages.go). They are
// not wire types of any draft.
const (
	MsgSubscribeUpdateOK    = 0x1_0000_0002
	MsgSubscribeUpdateError = 0x1_0000_0003
	MsgNamespace            = 0x1_0000_0008
	MsgNamespaceDone        = 0x1_0000_000E
)

// MessageName returns the name of a control message type of the model (the
// draft-14 types and the Msg* types later drafts added), or "" if unknown.
func MessageName(t uint64) string {
	if n := draft14MessageName(t); n != "" {
		return n
	}
	return modelMessageName(t)
}

// draft14MessageName names the draft-14 wire types, "" for any other.
func draft14MessageName(t uint64) string {
	switch t {
	case MsgSubscribeUpdate:
		return "SUBSCRIBE_UPDATE"
	case MsgSubscribe:
		return "SUBSCRIBE"
	case MsgSubscribeOK:
		return "SUBSCRIBE_OK"
	case MsgSubscribeError:
		return "SUBSCRIBE_ERROR"
	case MsgPublishNamespace:
		return "PUBLISH_NAMESPACE"
	case MsgPublishNamespaceOK:
		return "PUBLISH_NAMESPACE_OK"
	case MsgPublishNamespaceError:
		return "PUBLISH_NAMESPACE_ERROR"
	case MsgPublishNamespaceDone:
		return "PUBLISH_NAMESPACE_DONE"
	case MsgUnsubscribe:
		return "UNSUBSCRIBE"
	case MsgPublishDone:
		return "PUBLISH_DONE"
	case MsgPublishNamespaceCancel:
		return "PUBLISH_NAMESPACE_CANCEL"
	case MsgTrackStatus:
		return "TRACK_STATUS"
	case MsgTrackStatusOK:
		return "TRACK_STATUS_OK"
	case MsgTrackStatusError:
		return "TRACK_STATUS_ERROR"
	case MsgGoAway:
		return "GOAWAY"
	case MsgSubscribeNamespace:
		return "SUBSCRIBE_NAMESPACE"
	case MsgSubscribeNamespaceOK:
		return "SUBSCRIBE_NAMESPACE_OK"
	case MsgSubscribeNamespaceError:
		return "SUBSCRIBE_NAMESPACE_ERROR"
	case MsgUnsubscribeNamespace:
		return "UNSUBSCRIBE_NAMESPACE"
	case MsgMaxRequestID:
		return "MAX_REQUEST_ID"
	case MsgFetch:
		return "FETCH"
	case MsgFetchCancel:
		return "FETCH_CANCEL"
	case MsgFetchOK:
		return "FETCH_OK"
	case MsgFetchError:
		return "FETCH_ERROR"
	case MsgRequestsBlocked:
		return "REQUESTS_BLOCKED"
	case MsgPublish:
		return "PUBLISH"
	case MsgPublishOK:
		return "PUBLISH_OK"
	case MsgPublishError:
		return "PUBLISH_ERROR"
	case MsgClientSetup:
		return "CLIENT_SETUP"
	case MsgServerSetup:
		return "SERVER_SETUP"
	}
	return ""
}

// modelMessageName names the model-only types; MessageName of a draft-14
// wire type never returns these.
func modelMessageName(t uint64) string {
	switch t {
	case MsgSubscribeUpdateOK:
		return "REQUEST_OK (update)"
	case MsgSubscribeUpdateError:
		return "REQUEST_ERROR (update)"
	case MsgNamespace:
		return "NAMESPACE"
	case MsgNamespaceDone:
		return "NAMESPACE_DONE"
	case MsgPublishBlocked:
		return "PUBLISH_BLOCKED"
	}
	return ""
}

// Setup parameter keys (§9.3.2). These live in their own, version-independent
// namespace. Note: draft-14's text gives MOQT_IMPLEMENTATION the same number as
// AUTHORITY (0x05), an editorial collision; draft-15+ and deployed clients
// (e.g. @moq/net) use 0x07, which is used here.
const (
	ParamPath                  = 0x01 // bytes
	ParamMaxRequestID          = 0x02 // varint
	ParamAuthorizationToken    = 0x03 // bytes (Token structure); may repeat
	ParamMaxAuthTokenCacheSize = 0x04 // varint
	ParamAuthority             = 0x05 // bytes
	ParamImplementation        = 0x07 // bytes
)

// Version-specific parameter keys (§9.2.1), used in every non-setup message.
const (
	ParamDeliveryTimeout  = 0x02 // varint, milliseconds
	ParamAuthToken        = 0x03 // bytes (Token structure); may repeat
	ParamMaxCacheDuration = 0x04 // varint, milliseconds
	// ParamNewGroupRequest (draft-16+): the largest group the subscriber
	// knows plus one (0: none); asks the original publisher for a new group.
	ParamNewGroupRequest = 0x32
)

// Authorization token Alias Types (§9.2.1.1).
const (
	TokenAliasDelete   = 0x0
	TokenAliasRegister = 0x1
	TokenAliasUseAlias = 0x2
	TokenAliasUseValue = 0x3
)

// Subscription filter types (§9.7).
const (
	// FilterNone is no draft's filter type: Shaka Player 5.2.12 sends it
	// for its MsfFilterType.NONE. It is read as the unfiltered
	// subscription both drafts describe (AbsoluteStart {0, 0}) and never
	// sent.
	FilterNone           = 0x0
	FilterNextGroupStart = 0x1
	FilterLargestObject  = 0x2
	FilterAbsoluteStart  = 0x3
	FilterAbsoluteRange  = 0x4
)

// Fetch types (§9.16).
const (
	FetchStandalone      = 0x1
	FetchRelativeJoining = 0x2
	FetchAbsoluteJoining = 0x3
)

// Group order values (§9.7).
const (
	GroupOrderPublisher  = 0x0 // only valid in requests (SUBSCRIBE, FETCH, TRACK_STATUS)
	GroupOrderAscending  = 0x1
	GroupOrderDescending = 0x2
)

// Object status values (§10.2.1.1).
const (
	ObjectStatusNormal       = 0x0
	ObjectStatusDoesNotExist = 0x1
	ObjectStatusEndOfGroup   = 0x3
	ObjectStatusEndOfTrack   = 0x4
)

// Object extension header types defined by the draft (§11).
const (
	ExtImmutableExtensions = 0x0B
	ExtPriorGroupIDGap     = 0x3C
	ExtPriorObjectIDGap    = 0x3E
)

// Unidirectional stream types (§10). Subgroup header types are built with
// SubgroupType.
const (
	StreamTypeFetch = 0x05
)

// Subgroup ID modes for SubgroupType (§10.4.2).
const (
	SubgroupIDZero        = 0 // Subgroup ID is 0, not on the wire
	SubgroupIDFirstObject = 1 // Subgroup ID is the first object's ID, not on the wire
	SubgroupIDExplicit    = 2 // Subgroup ID field present
)

// validObjectStatus reports whether s is a status the draft defines; any other
// value SHOULD be treated as PROTOCOL_VIOLATION (§10.2.1.1).
func validObjectStatus(s uint64) bool {
	switch s {
	case ObjectStatusNormal, ObjectStatusDoesNotExist, ObjectStatusEndOfGroup, ObjectStatusEndOfTrack:
		return true
	}
	return false
}
