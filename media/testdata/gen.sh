#!/bin/sh
# Regenerates the small media samples used by the media package tests
# (ffmpeg 5.1, Debian 12). Each file is a fragmented MP4 with one track so the
# tests can read parameter sets and samples with mp4ff.
set -eu
cd "$(dirname "$0")"
FF="ffmpeg -hide_banner -loglevel error -y"
FRAG="-movflags frag_keyframe+empty_moov+default_base_moof"
SRC="-f lavfi -i testsrc2=size=320x180:rate=30:duration=1"
# H.264 High with B-frames, 180 lines (cropping), two GOPs.
$FF $SRC -c:v libx264 -profile:v high -preset veryfast -bf 2 -g 15 -pix_fmt yuv420p $FRAG h264_high.mp4
# H.264 Constrained Baseline level 3.0, 176x144.
$FF -f lavfi -i testsrc2=size=176x144:rate=25:duration=0.4 -c:v libx264 -profile:v baseline -level 3.0 -preset veryfast $FRAG h264_baseline.mp4
# H.264 High 10 4:2:2 (avcC extension fields).
$FF -f lavfi -i testsrc2=size=176x144:rate=25:duration=0.2 -c:v libx264 -profile:v high422 -preset veryfast -pix_fmt yuv422p10le $FRAG h264_high422_10.mp4
# H.265 Main with B-frames.
$FF $SRC -c:v libx265 -x265-params log-level=error:bframes=3:keyint=15 -tag:v hvc1 -pix_fmt yuv420p $FRAG hevc_main.mp4
# H.265 Main 10.
$FF -f lavfi -i testsrc2=size=256x144:rate=30:duration=0.3 -c:v libx265 -x265-params log-level=error -tag:v hvc1 -pix_fmt yuv420p10le $FRAG hevc_main10.mp4
# AV1 as IVF (ffmpeg writes an empty av1C with empty_moov). 8-bit, no colour
# description (short codec string):
$FF -f lavfi -i testsrc2=size=320x180:rate=30:duration=0.5 -c:v libaom-av1 -cpu-used 8 -g 10 -pix_fmt yuv420p av1.ivf
# AV1 10-bit BT.2020 PQ full range (long codec string).
$FF -f lavfi -i testsrc2=size=160x90:rate=30:duration=0.2 -c:v libaom-av1 -cpu-used 8 -pix_fmt yuv420p10le -color_primaries bt2020 -color_trc smpte2084 -colorspace bt2020nc -color_range pc av1_hdr.ivf
# VP9 profile 0 and VP8 (IVF: raw frames).
$FF -f lavfi -i testsrc2=size=320x180:rate=30:duration=0.5 -c:v libvpx-vp9 -b:v 200k -deadline realtime -cpu-used 8 -g 10 $FRAG vp9.mp4
$FF -f lavfi -i testsrc2=size=320x180:rate=30:duration=0.5 -c:v libvpx -deadline realtime -cpu-used 8 -g 10 vp8.ivf
# Audio.
$FF -f lavfi -i sine=frequency=440:sample_rate=48000:duration=1 -ac 2 -c:a aac -b:a 64k $FRAG aac_lc_48k_stereo.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=44100:duration=0.5 -ac 1 -c:a aac -b:a 32k $FRAG aac_lc_44k_mono.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=48000:duration=1 -ac 2 -c:a libopus -b:a 32k $FRAG opus.mp4
$FF -f lavfi -i sine=frequency=440:sample_rate=44100:duration=0.5 -ac 2 -c:a libmp3lame -b:a 64k $FRAG mp3.mp4
