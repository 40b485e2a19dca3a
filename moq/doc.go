// Package moq is MoQ Transport for moqgate: the media model, the relay
// that holds it, and the sessions that map each draft's wire onto it.
//
// The model (model.go): a broadcast (a path, "live/test", or the namespace
// tuple split on "/") has named tracks; a track is a sequence of groups, a
// group a sequence of objects. Writers hold producer handles
// (BroadcastProducer, TrackProducer, GroupProducer), readers consumer
// handles (TrackConsumer, and its TrackReader / GroupReader), which cannot
// write or end anything. Objects are shared by reference between the
// cache and every consumer.
//
// The relay (relay.go, local.go) is the origin of broadcasts: it keeps one
// cache per track, one upstream subscription per track whatever the number
// of consumers, namespace announcements, grace periods and take-overs.
// In-process adapters reach it through Relay.Local: Publish for ingest,
// SubscribeTrack for egress, in memory, without a session. A remote peer
// is reached through a Session, which offers the same consumer API
// (Source), so an adapter is the same code on an origin, an edge or a
// client.
//
// Sessions (session.go, serve.go, subscribe.go, nsstream.go) are the engine
// that maps wire messages onto the model, over raw QUIC, WebTransport or
// in-process pipes (tests), in the client and the server role. They work on
// one message model (package wire's structs) whatever the draft; the
// draft's wire.Codec, chosen by the negotiated ALPN / WebTransport
// protocol, turns it into bytes. A new draft is a codec in moq/internal/wire
// (internal, so that no adapter depends on wire messages) plus what
// its engine does differently (wire.Features).
package moq
