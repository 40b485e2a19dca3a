# syntax=docker/dockerfile:1

# Build: a static moqgate binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/moqgate ./cmd/moqgate

# Run: Debian slim with ffmpeg.
FROM debian:12-slim
RUN apt-get update \
	&& DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ffmpeg ca-certificates \
	&& rm -rf /var/lib/apt/lists/*
COPY --from=build /out/moqgate /usr/local/bin/moqgate
# web/MoQ: HTTP(S) on TCP, QUIC (raw MoQ, WebTransport) on UDP; RTMP; WebRTC.
EXPOSE 4443/tcp 4443/udp 1935/tcp 8189/udp 8890/udp
USER 65532:65532
ENTRYPOINT ["moqgate"]
