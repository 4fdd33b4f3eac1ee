#!/usr/bin/env bash
# gen_images.sh: regenerates the small test images of the image-input tests in
# tests/data/vision/ (committed; the tests read them, nothing at test time needs ImageMagick):
#   pattern.png  32x32 RGB gradient (red across, green down, blue 64)     PNG
#   pattern.jpg  the same pixels, JPEG quality 90                         JPEG
#   pattern.webp the same pixels, lossless                                WebP
#   checker.gif  24x24 black-and-white checkerboard of 4-pixel squares    GIF
#   stripes.bmp  40x20 vertical stripes (red, blue)                        BMP (24-bit)
#   huge.png     5000x5000 of one grey: a few KiB of PNG past LIM_MEDIA_PIXELS (413)
#   tone.wav     0.25 s of a 440 Hz sine, 16 kHz mono 16-bit              WAV
#   tone.mp3     tone.wav through LAME: CBR 32 kbit/s mono, no Xing/LAME tag MP3
# The pixels are written as plain PPM text by this script (so they are exactly these), then
# converted by ImageMagick's convert (Debian package imagemagick); the MP3 is encoded by
# `lame --quiet -t --cbr -b 32 -m m` (Debian package lame 3.100; the same bytes on every run).
# Usage: tools/gen_images.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/tests/data/vision
command -v convert >/dev/null || { echo "gen_images.sh: needs ImageMagick (apt-get install imagemagick)" >&2; exit 1; }
command -v lame >/dev/null || { echo "gen_images.sh: needs LAME (apt-get install lame)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ppm() { # ppm FILE W H EXPR(x,y) -> "r g b"
    local f=$1 w=$2 h=$3 expr=$4
    awk -v w="$w" -v h="$h" 'BEGIN { print "P3"; print w, h; print 255;
        for (y = 0; y < h; y++) for (x = 0; x < w; x++) { '"$expr"' } }' >"$f"
}
ppm "$tmp/pattern.ppm" 32 32 'print int(x * 255 / 31), int(y * 255 / 31), 64'
ppm "$tmp/checker.ppm" 24 24 'v = ((int(x / 4) + int(y / 4)) % 2) * 255; print v, v, v'
ppm "$tmp/stripes.ppm" 40 20 'if (int(x / 5) % 2) print 0, 0, 255; else print 255, 0, 0'

strip="-strip -define png:exclude-chunks=date,time"
convert "$tmp/pattern.ppm" $strip "png24:$out/pattern.png"
convert "$tmp/pattern.ppm" -strip -quality 90 -sampling-factor 4:4:4 "$out/pattern.jpg"
convert "$tmp/pattern.ppm" -strip -define webp:lossless=true "$out/pattern.webp"
convert "$tmp/checker.ppm" -strip "$out/checker.gif"
convert "$tmp/stripes.ppm" -strip "bmp3:$out/stripes.bmp"
convert -size 5000x5000 xc:gray50 $strip "png8:$out/huge.png"

# WAV by hand: RIFF header, then 4000 little-endian 16-bit samples.
awk 'BEGIN { n = 4000; rate = 16000;
    printf "RIFF"; le32(36 + 2 * n); printf "WAVEfmt "; le32(16); le16(1); le16(1);
    le32(rate); le32(rate * 2); le16(2); le16(16); printf "data"; le32(2 * n);
    for (i = 0; i < n; i++) { v = int(8000 * sin(2 * 3.14159265 * 440 * i / rate)); if (v < 0) v += 65536; le16(v) } }
    function le16(v) { printf "%c%c", v % 256, int(v / 256) % 256 }
    function le32(v) { le16(v % 65536); le16(int(v / 65536)) }' | LC_ALL=C cat >"$out/tone.wav"
lame --quiet -t --cbr -b 32 -m m "$out/tone.wav" "$out/tone.mp3"
ls -l "$out" >&2
