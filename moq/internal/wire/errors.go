package wire

import (
	"errors"
	"fmt"
)

// Session termination error codes (draft-14 §3.4 / §13.1.1). A decode error is
// reported as a *SessionError carrying one of these.
const (
	NoError                  = 0x0
	InternalError            = 0x1
	Unauthorized             = 0x2
	ProtocolViolation        = 0x3
	InvalidRequestID         = 0x4
	DuplicateTrackAlias      = 0x5
	KeyValueFormattingError  = 0x6
	TooManyRequests          = 0x7
	InvalidPath              = 0x8
	MalformedPath            = 0x9
	GoawayTimeout            = 0x10
	ControlMessageTimeout    = 0x11
	DataStreamTimeout        = 0x12
	AuthTokenCacheOverflow   = 0x13
	DuplicateAuthTokenAlias  = 0x14
	VersionNegotiationFailed = 0x15
	MalformedAuthToken       = 0x16
	UnknownAuthTokenAlias    = 0x17
	ExpiredAuthToken         = 0x18
	InvalidAuthority         = 0x19
	MalformedAuthority       = 0x1A

	// InvalidRequiredRequestID is draft-17's code 0x7 (TOO_MANY_REQUESTS
	// in drafts 14 and 16).
	InvalidRequiredRequestID = 0x7
)

// SUBSCRIBE_ERROR codes (§9.9, §13.1.2); TRACK_STATUS_ERROR uses the same.
const (
	SubscribeErrorInternalError      = 0x0
	SubscribeErrorUnauthorized       = 0x1
	SubscribeErrorTimeout            = 0x2
	SubscribeErrorNotSupported       = 0x3
	SubscribeErrorTrackDoesNotExist  = 0x4
	SubscribeErrorInvalidRange       = 0x5
	SubscribeErrorMalformedAuthToken = 0x10
	SubscribeErrorExpiredAuthToken   = 0x12
)

// PUBLISH_DONE status codes (§9.12, §13.1.3).
const (
	PublishDoneInternalError     = 0x0
	PublishDoneUnauthorized      = 0x1
	PublishDoneTrackEnded        = 0x2
	PublishDoneSubscriptionEnded = 0x3
	PublishDoneGoingAway         = 0x4
	PublishDoneExpired           = 0x5
	PublishDoneTooFarBehind      = 0x6
	PublishDoneMalformedTrack    = 0x7
	PublishDoneUpdateFailed      = 0x8 // draft-16 only
)

// PUBLISH_ERROR codes (§9.15, §13.1.4).
const (
	PublishErrorInternalError = 0x0
	PublishErrorUnauthorized  = 0x1
	PublishErrorTimeout       = 0x2
	PublishErrorNotSupported  = 0x3
	PublishErrorUninterested  = 0x4
)

// FETCH_ERROR codes (§9.18, §13.1.5).
const (
	FetchErrorInternalError           = 0x0
	FetchErrorUnauthorized            = 0x1
	FetchErrorTimeout                 = 0x2
	FetchErrorNotSupported            = 0x3
	FetchErrorTrackDoesNotExist       = 0x4
	FetchErrorInvalidRange            = 0x5
	FetchErrorNoObjects               = 0x6
	FetchErrorInvalidJoiningRequestID = 0x7
	FetchErrorUnknownStatusInRange    = 0x8
	FetchErrorMalformedTrack          = 0x9
	FetchErrorMalformedAuthToken      = 0x10
	FetchErrorExpiredAuthToken        = 0x12
)

// PUBLISH_NAMESPACE_ERROR codes (§9.25, §13.1.6, still titled ANNOUNCE_ERROR
// there); PUBLISH_NAMESPACE_CANCEL uses the same.
const (
	PublishNamespaceErrorInternalError      = 0x0
	PublishNamespaceErrorUnauthorized       = 0x1
	PublishNamespaceErrorTimeout            = 0x2
	PublishNamespaceErrorNotSupported       = 0x3
	PublishNamespaceErrorUninterested       = 0x4
	PublishNamespaceErrorMalformedAuthToken = 0x10
	PublishNamespaceErrorExpiredAuthToken   = 0x12
)

// SUBSCRIBE_NAMESPACE_ERROR codes (§9.30, §13.1.7).
const (
	SubscribeNamespaceErrorInternalError          = 0x0
	SubscribeNamespaceErrorUnauthorized           = 0x1
	SubscribeNamespaceErrorTimeout                = 0x2
	SubscribeNamespaceErrorNotSupported           = 0x3
	SubscribeNamespaceErrorNamespacePrefixUnknown = 0x4
	SubscribeNamespaceErrorNamespacePrefixOverlap = 0x5
	SubscribeNamespaceErrorMalformedAuthToken     = 0x10
	SubscribeNamespaceErrorExpiredAuthToken       = 0x12
)

// Data stream RESET_STREAM / RESET_STREAM_AT codes (§10.4.3, §13.1.8).
const (
	ResetInternalError   = 0x0
	ResetCancelled       = 0x1
	ResetDeliveryTimeout = 0x2
	ResetSessionClosed   = 0x3
	// Draft-16 only.
	ResetUnknownObjectStatus = 0x4
	ResetMalformedTrack      = 0x12
)

// SessionErrorName returns the draft's name for a session termination code,
// or "" if the code is not registered.
func SessionErrorName(code uint64) string {
	switch code {
	case NoError:
		return "NO_ERROR"
	case InternalError:
		return "INTERNAL_ERROR"
	case Unauthorized:
		return "UNAUTHORIZED"
	case ProtocolViolation:
		return "PROTOCOL_VIOLATION"
	case InvalidRequestID:
		return "INVALID_REQUEST_ID"
	case DuplicateTrackAlias:
		return "DUPLICATE_TRACK_ALIAS"
	case KeyValueFormattingError:
		return "KEY_VALUE_FORMATTING_ERROR"
	case TooManyRequests:
		return "TOO_MANY_REQUESTS"
	case InvalidPath:
		return "INVALID_PATH"
	case MalformedPath:
		return "MALFORMED_PATH"
	case GoawayTimeout:
		return "GOAWAY_TIMEOUT"
	case ControlMessageTimeout:
		return "CONTROL_MESSAGE_TIMEOUT"
	case DataStreamTimeout:
		return "DATA_STREAM_TIMEOUT"
	case AuthTokenCacheOverflow:
		return "AUTH_TOKEN_CACHE_OVERFLOW"
	case DuplicateAuthTokenAlias:
		return "DUPLICATE_AUTH_TOKEN_ALIAS"
	case VersionNegotiationFailed:
		return "VERSION_NEGOTIATION_FAILED"
	case MalformedAuthToken:
		return "MALFORMED_AUTH_TOKEN"
	case UnknownAuthTokenAlias:
		return "UNKNOWN_AUTH_TOKEN_ALIAS"
	case ExpiredAuthToken:
		return "EXPIRED_AUTH_TOKEN"
	case InvalidAuthority:
		return "INVALID_AUTHORITY"
	case MalformedAuthority:
		return "MALFORMED_AUTHORITY"
	}
	return ""
}

// SessionError is a wire problem for which the draft requires closing the
// session; Code is the session termination code to close it with.
//
// When the problem is a stream that ended in the middle of a message or
// object, the error also wraps io.ErrUnexpectedEOF, so both
// errors.As(err, &*SessionError) and errors.Is(err, io.ErrUnexpectedEOF) hold.
type SessionError struct {
	Code   uint64
	Reason string

	err error // optional cause, exposed through Unwrap
}

func (e *SessionError) Error() string {
	name := SessionErrorName(e.Code)
	if name == "" {
		name = "error"
	}
	return fmt.Sprintf("moq wire: %s (0x%x): %s", name, e.Code, e.Reason)
}

// Unwrap returns the underlying cause, if any (e.g. io.ErrUnexpectedEOF).
func (e *SessionError) Unwrap() error { return e.err }

func sessionErr(code uint64, format string, args ...any) *SessionError {
	return &SessionError{Code: code, Reason: fmt.Sprintf(format, args...)}
}

func protocolViolation(format string, args ...any) *SessionError {
	return sessionErr(ProtocolViolation, format, args...)
}

// truncated reports a stream that ended inside a message or object. The draft
// treats a FIN there as PROTOCOL_VIOLATION (§10.4); the cause is kept so that
// callers can also test for io.ErrUnexpectedEOF.
func truncated(what string, cause error) *SessionError {
	return &SessionError{Code: ProtocolViolation, Reason: what + " truncated", err: cause}
}

// ErrTooLarge is returned (wrapped) when an object's payload or extension
// block exceeds a limit the caller configured. It is a local resource limit,
// not a draft violation, so it is not a *SessionError: the caller decides
// whether to STOP_SENDING the stream or close the session.
var ErrTooLarge = errors.New("moq wire: object exceeds local size limit")

// ErrInvalidMessage is wrapped by AppendMessage errors: the message cannot be
// encoded without violating the draft (a limit or a field value).
var ErrInvalidMessage = errors.New("moq wire: invalid message")
