package wire

import "strings"

// mustToken encodes a token for use as a parameter value in fixtures.
func mustToken(t Token) []byte {
	b, err := AppendToken(nil, t)
	if err != nil {
		panic(err)
	}
	return b
}

// sampleMessages has one message of every type, with non-trivial values
// (multi-byte varints, optional fields present, parameters of both parities).
// It is also the source of the FuzzReadMessage seed corpus.
func sampleMessages() []Message {
	ns := []string{"example.com", "meeting=123", "participant=100"}
	tok := BytesParam(ParamAuthToken, mustToken(Token{AliasType: TokenAliasRegister, Alias: 7, TokenType: 1, Value: []byte("jwt.payload.sig")}))
	tok2 := BytesParam(ParamAuthToken, mustToken(Token{AliasType: TokenAliasUseAlias, Alias: 7}))
	unknownOdd := BytesParam(0x40b5b, []byte{0, 1, 2})
	unknownEven := UintParam(0x40b5a, 1<<40)
	return []Message{
		&ClientSetup{
			Versions: []uint64{0xff0dad02, 0xff0dad01, Version14},
			Params: Params{
				UintParam(ParamMaxRequestID, 1000),
				BytesParam(ParamPath, []byte("/moq?x=1")),
				BytesParam(ParamAuthority, []byte("relay.example:4443")),
				BytesParam(ParamImplementation, []byte("moqgate/0.1")),
				BytesParam(ParamAuthorizationToken, mustToken(Token{AliasType: TokenAliasUseValue, TokenType: 0, Value: []byte("secret")})),
				UintParam(ParamMaxAuthTokenCacheSize, 4096),
				unknownEven,
			},
		},
		&ServerSetup{Version: Version14, Params: Params{UintParam(ParamMaxRequestID, 1<<20), BytesParam(ParamImplementation, []byte("moqgate"))}},
		&GoAway{NewSessionURI: "moqt://other.example:4443/live"},
		&MaxRequestID{RequestID: 300},
		&RequestsBlocked{MaximumRequestID: 1<<30 + 5},
		&Subscribe{
			RequestID: 2, Namespace: ns, TrackName: "video/hd", SubscriberPriority: 200,
			GroupOrder: GroupOrderDescending, Forward: true, FilterType: FilterAbsoluteRange,
			Start: Location{Group: 70000, Object: 12}, EndGroup: 80000,
			Params: Params{UintParam(ParamDeliveryTimeout, 1500), tok, tok2, unknownOdd, unknownOdd},
		},
		&SubscribeOK{
			RequestID: 2, TrackAlias: 17, Expires: 60000, GroupOrder: GroupOrderAscending,
			ContentExists: true, Largest: Location{Group: 1 << 33, Object: 99},
			Params: Params{UintParam(ParamDeliveryTimeout, 10), UintParam(ParamMaxCacheDuration, 30000)},
		},
		&SubscribeError{RequestID: 4, ErrorCode: SubscribeErrorTrackDoesNotExist, Reason: "no such track"},
		&SubscribeUpdate{
			RequestID: 6, SubscriptionRequestID: 2, Start: Location{Group: 70001, Object: 0},
			EndGroup: 79999, SubscriberPriority: 7, Forward: false,
			Params: Params{UintParam(ParamDeliveryTimeout, 800)},
		},
		&Unsubscribe{RequestID: 2},
		&PublishDone{RequestID: 2, StatusCode: PublishDoneTrackEnded, StreamCount: MaxVarint, Reason: "bye"},
		&Publish{
			RequestID: 1, Namespace: []string{"live", "test"}, TrackName: "catalog", TrackAlias: 3,
			GroupOrder: GroupOrderAscending, ContentExists: true, Largest: Location{Group: 5, Object: 0},
			Forward: true, Params: Params{UintParam(ParamMaxCacheDuration, 2000), tok},
		},
		&PublishOK{
			RequestID: 1, Forward: true, SubscriberPriority: 9, GroupOrder: GroupOrderDescending,
			FilterType: FilterAbsoluteStart, Start: Location{Group: 4, Object: 2},
			Params: Params{UintParam(ParamDeliveryTimeout, 100)},
		},
		&PublishError{RequestID: 3, ErrorCode: PublishErrorUninterested, Reason: "not interested"},
		&Fetch{
			RequestID: 8, SubscriberPriority: 1, GroupOrder: GroupOrderPublisher, FetchType: FetchStandalone,
			Namespace: []string{"live", "test"}, TrackName: "audio",
			Start: Location{Group: 10, Object: 0}, End: Location{Group: 20, Object: 0},
			Params: Params{tok2},
		},
		&FetchOK{RequestID: 8, GroupOrder: GroupOrderAscending, EndOfTrack: true, End: Location{Group: 19, Object: 41}, Params: Params{UintParam(ParamMaxCacheDuration, 5)}},
		&FetchError{RequestID: 10, ErrorCode: FetchErrorInvalidJoiningRequestID, Reason: strings.Repeat("r", MaxReasonPhraseLen)},
		&FetchCancel{RequestID: 8},
		&TrackStatus{
			RequestID: 12, Namespace: []string{"a"}, TrackName: "", SubscriberPriority: 0,
			GroupOrder: GroupOrderAscending, Forward: false, FilterType: FilterLargestObject,
			Params: Params{tok},
		},
		&TrackStatusOK{RequestID: 12, TrackAlias: 0, Expires: 0, GroupOrder: GroupOrderDescending, ContentExists: false, Params: Params{UintParam(ParamMaxCacheDuration, 1)}},
		&TrackStatusError{RequestID: 12, ErrorCode: SubscribeErrorExpiredAuthToken, Reason: "expired"},
		&PublishNamespace{RequestID: 14, Namespace: ns, Params: Params{tok}},
		&PublishNamespaceOK{RequestID: 14},
		&PublishNamespaceError{RequestID: 14, ErrorCode: PublishNamespaceErrorUnauthorized, Reason: "denied"},
		&PublishNamespaceDone{Namespace: ns},
		&PublishNamespaceCancel{Namespace: ns, ErrorCode: PublishNamespaceErrorTimeout, Reason: "timeout"},
		&SubscribeNamespace{RequestID: 16, Prefix: []string{"example.com", ""}, Params: Params{tok, tok2}},
		&SubscribeNamespaceOK{RequestID: 16},
		&SubscribeNamespaceError{RequestID: 16, ErrorCode: SubscribeNamespaceErrorNamespacePrefixOverlap, Reason: "overlap"},
		&UnsubscribeNamespace{Prefix: []string{"example.com"}},
		// Variants exercising the other optional-field layouts.
		&Subscribe{RequestID: 20, Namespace: []string{"x"}, TrackName: "y", GroupOrder: GroupOrderPublisher, Forward: true, FilterType: FilterNextGroupStart},
		&Subscribe{RequestID: 22, Namespace: []string{"x"}, TrackName: "y", FilterType: FilterAbsoluteStart, Start: Location{Group: 1, Object: 2}},
		&SubscribeOK{RequestID: 20, TrackAlias: 1 << 61, GroupOrder: GroupOrderAscending},
		&Publish{RequestID: 5, Namespace: []string{"x"}, TrackName: "y", GroupOrder: GroupOrderDescending},
		&PublishOK{RequestID: 5, GroupOrder: GroupOrderAscending, FilterType: FilterAbsoluteRange, Start: Location{Group: 3}, EndGroup: 3},
		&Fetch{RequestID: 24, GroupOrder: GroupOrderDescending, FetchType: FetchRelativeJoining, JoiningRequestID: 2, JoiningStart: 3},
		&Fetch{RequestID: 26, FetchType: FetchAbsoluteJoining, JoiningRequestID: 2, JoiningStart: 1 << 35},
		&ClientSetup{},
		&GoAway{},
	}
}
