module github.com/moqgate/moqgate

go 1.26.8

require (
	github.com/Eyevinn/mp4ff v0.56.0
	github.com/bluenviron/gortmplib v1.0.1
	github.com/bluenviron/mediacommon/v2 v2.9.4
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/quic-go/quic-go v0.64.1
	github.com/quic-go/webtransport-go v0.13.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/Eyevinn/moqtransport v0.9.0 // indirect
	github.com/abema/go-mp4 v1.7.1 // indirect
	github.com/dunglas/httpsfv v1.1.1 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/mengelbart/qlog v0.1.0 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/net v0.56.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)
