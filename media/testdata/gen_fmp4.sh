#!/bin/sh
# Regenerates the fragmented-MP4 samples used by media/fmp4_*_test.go.
# Needs ffmpeg with libx264, libx265, libopus, libsvtav1, libvpx, libmp3lame
# (Debian 12: apt-get install ffmpeg). Run from this directory.
set -eu
SRC="-f lavfi -i testsrc2=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1"
LIVE="cmaf+frag_keyframe+empty_moov+default_base_moof"
ff() { ffmpeg -hide_banner -v error -y "$@"; }

# What `moqgate pub` documents: one moof per GOP holding both tracks.
ff $SRC -c:v libx264 -bf 2 -g 30 -crf 35 -c:a aac -b:a 32k -ac 2 -f mp4 -movflags $LIVE fmp4_h264_aac.mp4
# No B-frames, a moof per track (separate_moof), absolute base_data_offset, trun v0, mfra.
ff $SRC -c:v libx264 -bf 0 -g 15 -crf 35 -c:a aac -b:a 32k -f mp4 -movflags frag_keyframe+empty_moov+separate_moof fmp4_h264_aac_sep.mp4
# Several interleaved truns per traf.
ff $SRC -c:v libx264 -bf 2 -g 15 -crf 35 -c:a aac -b:a 32k -f mp4 -frag_interleave 4 -movflags $LIVE fmp4_h264_aac_interleave.mp4
ff $SRC -c:v libx265 -tag:v hvc1 -x265-params log-level=error -g 15 -crf 35 -c:a libopus -b:a 32k -f mp4 -movflags $LIVE fmp4_h265_opus.mp4
ff $SRC -c:v libsvtav1 -svtav1-params verbosity=0 -g 30 -crf 50 -preset 10 -c:a libopus -b:a 32k -f mp4 -movflags $LIVE fmp4_av1_opus.mp4
ff $SRC -c:v libvpx-vp9 -deadline realtime -g 30 -crf 50 -b:v 0 -c:a libmp3lame -b:a 32k -f mp4 -movflags $LIVE fmp4_vp9_mp3.mp4
