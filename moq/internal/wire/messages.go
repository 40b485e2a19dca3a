package wire

// Location identifies an Object within a Track (§1.4.1).
type Location struct{ Group, Object uint64 }

// Less reports l < o in the draft's order (group first, then object).
func (l Location) Less(o Location) bool {
	return l.Group < o.Group || (l.Group == o.Group && l.Object < o.Object)
}

// Compare returns -1, 0 or +1 as l is less than, equal to or greater than o.
func (l Location) Compare(o Location) int {
	switch {
	case l.Less(o):
		return -1
	case o.Less(l):
		return 1
	}
	return 0
}

// Message is a control message. ParseMessage and ReadMessage return pointers
// (*Subscribe, *SubscribeOK, ...); AppendMessage accepts pointers and values.
type Message interface{ Type() uint64 }

// ClientSetup is CLIENT_SETUP (§9.3).
type ClientSetup struct {
	Versions []uint64
	Params   Params
}

// ServerSetup is SERVER_SETUP (§9.3).
type ServerSetup struct {
	Version uint64
	Params  Params
}

// GoAway is GOAWAY (§9.4).
type GoAway struct {
	NewSessionURI string
	// Timeout (ms, 0 = none given) is draft-17's: how long the sender
	// waits before closing the session.
	Timeout uint64
}

// MaxRequestID is MAX_REQUEST_ID (§9.5).
type MaxRequestID struct {
	RequestID uint64
}

// RequestsBlocked is REQUESTS_BLOCKED (§9.6).
type RequestsBlocked struct {
	MaximumRequestID uint64
}

// Subscribe is SUBSCRIBE (§9.7). Start is on the wire only for
// FilterAbsoluteStart/FilterAbsoluteRange, EndGroup only for
// FilterAbsoluteRange; otherwise they are ignored when encoding and zero when
// decoded.
type Subscribe struct {
	RequestID          uint64
	Namespace          []string
	TrackName          string
	SubscriberPriority uint8
	GroupOrder         uint8
	Forward            bool
	FilterType         uint64
	Start              Location
	EndGroup           uint64
	Params             Params
}

// SubscribeOK is SUBSCRIBE_OK (§9.8). Largest is on the wire only when
// ContentExists.
type SubscribeOK struct {
	RequestID     uint64
	TrackAlias    uint64
	Expires       uint64
	GroupOrder    uint8
	ContentExists bool
	Largest       Location
	Params        Params
	// TrackExtensions are the draft-16 Track Extensions the model has no
	// field for (e.g. DEFAULT_PUBLISHER_PRIORITY, unknown ones); draft-14
	// does not carry them.
	TrackExtensions Params
}

// SubscribeError is SUBSCRIBE_ERROR (§9.9).
type SubscribeError struct {
	RequestID uint64
	ErrorCode uint64
	// RetryInterval is draft-16's REQUEST_ERROR Retry Interval (ms + 1;
	// 0 = do not retry); draft-14 does not carry it.
	RetryInterval uint64
	Reason        string
}

// SubscribeUpdate is SUBSCRIBE_UPDATE (§9.10), draft-16's REQUEST_UPDATE
// for a subscription. EndGroup is the end group plus 1; 0 means open-ended.
//
// Draft-16 updates only what the message carries: Omit says which fields
// were absent (unchanged), and Filter is the filter type that set Start and
// EndGroup (0 for draft-14, where they are plain fields).
type SubscribeUpdate struct {
	RequestID             uint64
	SubscriptionRequestID uint64
	Start                 Location
	EndGroup              uint64
	SubscriberPriority    uint8
	Forward               bool
	Params                Params
	Filter                uint64
	Omit                  uint8 // OmitFilter | OmitPriority | OmitForward
}

// SubscribeUpdate.Omit bits.
const (
	OmitFilter   = 1 << iota // Start, EndGroup and Filter unchanged
	OmitPriority             // SubscriberPriority unchanged
	OmitForward              // Forward unchanged
)

// Unsubscribe is UNSUBSCRIBE (§9.11).
type Unsubscribe struct {
	RequestID uint64
}

// PublishDone is PUBLISH_DONE (§9.12).
type PublishDone struct {
	RequestID   uint64
	StatusCode  uint64
	StreamCount uint64
	Reason      string
}

// Publish is PUBLISH (§9.13). Largest is on the wire only when ContentExists.
type Publish struct {
	RequestID       uint64
	Namespace       []string
	TrackName       string
	TrackAlias      uint64
	GroupOrder      uint8
	ContentExists   bool
	Largest         Location
	Forward         bool
	Params          Params
	TrackExtensions Params // see SubscribeOK
}

// PublishOK is PUBLISH_OK (§9.14). Start/EndGroup follow the same presence
// rules as in Subscribe.
type PublishOK struct {
	RequestID          uint64
	Forward            bool
	SubscriberPriority uint8
	GroupOrder         uint8
	FilterType         uint64
	Start              Location
	EndGroup           uint64
	Params             Params
}

// PublishError is PUBLISH_ERROR (§9.15).
type PublishError struct {
	RequestID     uint64
	ErrorCode     uint64
	RetryInterval uint64 // see SubscribeError
	Reason        string
}

// Fetch is FETCH (§9.16). Namespace, TrackName, Start and End are on the wire
// only for FetchStandalone (End is the end location plus 1, Object 0 = whole
// group); JoiningRequestID and JoiningStart only for the joining types.
type Fetch struct {
	RequestID          uint64
	SubscriberPriority uint8
	GroupOrder         uint8
	FetchType          uint64
	Namespace          []string
	TrackName          string
	Start, End         Location
	JoiningRequestID   uint64
	JoiningStart       uint64
	Params             Params
}

// FetchOK is FETCH_OK (§9.17).
type FetchOK struct {
	RequestID       uint64
	GroupOrder      uint8
	EndOfTrack      bool
	End             Location
	Params          Params
	TrackExtensions Params // see SubscribeOK
}

// FetchError is FETCH_ERROR (§9.18).
type FetchError struct {
	RequestID     uint64
	ErrorCode     uint64
	RetryInterval uint64 // see SubscribeError
	Reason        string
}

// FetchCancel is FETCH_CANCEL (§9.19).
type FetchCancel struct {
	RequestID uint64
}

// TrackStatus is TRACK_STATUS (§9.20); same layout as SUBSCRIBE. Convert with
// Subscribe(ts) / TrackStatus(s) when convenient.
type TrackStatus Subscribe

// TrackStatusOK is TRACK_STATUS_OK (§9.21); same layout as SUBSCRIBE_OK.
type TrackStatusOK SubscribeOK

// TrackStatusError is TRACK_STATUS_ERROR (§9.22); same layout as SUBSCRIBE_ERROR.
type TrackStatusError SubscribeError

// PublishNamespace is PUBLISH_NAMESPACE (§9.23).
type PublishNamespace struct {
	RequestID uint64
	Namespace []string
	Params    Params
}

// PublishNamespaceOK is PUBLISH_NAMESPACE_OK (§9.24).
type PublishNamespaceOK struct {
	RequestID uint64
}

// PublishNamespaceError is PUBLISH_NAMESPACE_ERROR (§9.25).
type PublishNamespaceError struct {
	RequestID     uint64
	ErrorCode     uint64
	RetryInterval uint64 // see SubscribeError
	Reason        string
}

// PublishNamespaceDone is PUBLISH_NAMESPACE_DONE (§9.26). Draft-14 names the
// namespace, draft-16 the request ID of the PUBLISH_NAMESPACE: senders set
// both, a decoded message has only its version's field.
type PublishNamespaceDone struct {
	Namespace []string
	RequestID uint64
}

// PublishNamespaceCancel is PUBLISH_NAMESPACE_CANCEL (§9.27); Namespace and
// RequestID as in PublishNamespaceDone.
type PublishNamespaceCancel struct {
	Namespace []string
	RequestID uint64
	ErrorCode uint64
	Reason    string
}

// SubscribeNamespace is SUBSCRIBE_NAMESPACE (§9.28). The zero value of the
// two flags is draft-14's meaning (announce the namespaces); draft-16's
// Subscribe Options 0 (PUBLISH only) sets both, 2 (both) sets Publish.
type SubscribeNamespace struct {
	RequestID    uint64
	Prefix       []string
	Params       Params
	Publish      bool // also wants PUBLISH for the tracks under the prefix
	NoNamespaces bool // wants no NAMESPACE messages
}

// SubscribeNamespaceOK is SUBSCRIBE_NAMESPACE_OK (§9.29).
type SubscribeNamespaceOK struct {
	RequestID uint64
}

// SubscribeNamespaceError is SUBSCRIBE_NAMESPACE_ERROR (§9.30).
type SubscribeNamespaceError struct {
	RequestID     uint64
	ErrorCode     uint64
	RetryInterval uint64 // see SubscribeError
	Reason        string
}

// UnsubscribeNamespace is UNSUBSCRIBE_NAMESPACE (§9.31).
type UnsubscribeNamespace struct {
	Prefix []string
}

// Messages later drafts added. They have no draft-14 encoding; their model
// types (see the Msg* constants) lie outside every draft's type space.

// SubscribeUpdateOK answers a draft-16 REQUEST_UPDATE of a subscription
// (REQUEST_OK). Params may carry LARGEST_OBJECT.
type SubscribeUpdateOK struct {
	RequestID uint64
	Params    Params
}

// SubscribeUpdateError refuses a draft-16 REQUEST_UPDATE (REQUEST_ERROR);
// ErrorCode is in the SUBSCRIBE_ERROR registry.
type SubscribeUpdateError SubscribeError

// Namespace is draft-16's NAMESPACE: on the stream of a SUBSCRIBE_NAMESPACE,
// a namespace under the prefix now exists. Suffix is what follows the
// prefix (possibly nothing).
type Namespace struct {
	Suffix []string
}

// NamespaceDone is draft-16's NAMESPACE_DONE: the namespace is gone.
type NamespaceDone struct {
	Suffix []string
}

// Value receivers, so that both T and *T satisfy Message.

func (ClientSetup) Type() uint64             { return MsgClientSetup }
func (ServerSetup) Type() uint64             { return MsgServerSetup }
func (GoAway) Type() uint64                  { return MsgGoAway }
func (MaxRequestID) Type() uint64            { return MsgMaxRequestID }
func (RequestsBlocked) Type() uint64         { return MsgRequestsBlocked }
func (Subscribe) Type() uint64               { return MsgSubscribe }
func (SubscribeOK) Type() uint64             { return MsgSubscribeOK }
func (SubscribeError) Type() uint64          { return MsgSubscribeError }
func (SubscribeUpdate) Type() uint64         { return MsgSubscribeUpdate }
func (Unsubscribe) Type() uint64             { return MsgUnsubscribe }
func (PublishDone) Type() uint64             { return MsgPublishDone }
func (Publish) Type() uint64                 { return MsgPublish }
func (PublishOK) Type() uint64               { return MsgPublishOK }
func (PublishError) Type() uint64            { return MsgPublishError }
func (Fetch) Type() uint64                   { return MsgFetch }
func (FetchOK) Type() uint64                 { return MsgFetchOK }
func (FetchError) Type() uint64              { return MsgFetchError }
func (FetchCancel) Type() uint64             { return MsgFetchCancel }
func (TrackStatus) Type() uint64             { return MsgTrackStatus }
func (TrackStatusOK) Type() uint64           { return MsgTrackStatusOK }
func (TrackStatusError) Type() uint64        { return MsgTrackStatusError }
func (PublishNamespace) Type() uint64        { return MsgPublishNamespace }
func (PublishNamespaceOK) Type() uint64      { return MsgPublishNamespaceOK }
func (PublishNamespaceError) Type() uint64   { return MsgPublishNamespaceError }
func (PublishNamespaceDone) Type() uint64    { return MsgPublishNamespaceDone }
func (PublishNamespaceCancel) Type() uint64  { return MsgPublishNamespaceCancel }
func (SubscribeNamespace) Type() uint64      { return MsgSubscribeNamespace }
func (SubscribeNamespaceOK) Type() uint64    { return MsgSubscribeNamespaceOK }
func (SubscribeNamespaceError) Type() uint64 { return MsgSubscribeNamespaceError }
func (UnsubscribeNamespace) Type() uint64    { return MsgUnsubscribeNamespace }
func (SubscribeUpdateOK) Type() uint64       { return MsgSubscribeUpdateOK }
func (SubscribeUpdateError) Type() uint64    { return MsgSubscribeUpdateError }
func (Namespace) Type() uint64               { return MsgNamespace }
func (NamespaceDone) Type() uint64           { return MsgNamespaceDone }
