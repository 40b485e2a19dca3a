package transcode

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// oggReader splits an Ogg stream (RFC 3533) of one logical stream into
// packets, joining those continued across pages.
type oggReader struct {
	r    *bufio.Reader
	hdr  [27]byte
	segs [255]byte
	buf  []byte // the packet being assembled
	pend [][]byte
}

func newOggReader(r io.Reader) *oggReader { return &oggReader{r: bufio.NewReaderSize(r, 64<<10)} }

// maxOggPacket bounds a packet (an Opus packet is at most 1275 bytes per
// frame, 120 ms; OpusTags may be larger).
const maxOggPacket = 1 << 20

// next returns the next complete packet.
func (o *oggReader) next() ([]byte, error) {
	for len(o.pend) == 0 {
		if err := o.page(); err != nil {
			return nil, err
		}
	}
	p := o.pend[0]
	o.pend = o.pend[1:]
	return p, nil
}

func (o *oggReader) page() error {
	if _, err := io.ReadFull(o.r, o.hdr[:]); err != nil {
		return err
	}
	if string(o.hdr[:4]) != "OggS" || o.hdr[4] != 0 {
		return errors.New("ogg: bad page header")
	}
	continued := o.hdr[5]&0x01 != 0
	if !continued {
		o.buf = o.buf[:0] // a packet cut off by a lost page is dropped
	}
	n := int(o.hdr[26])
	if _, err := io.ReadFull(o.r, o.segs[:n]); err != nil {
		return err
	}
	_ = binary.LittleEndian.Uint64(o.hdr[6:14]) // granule position: timing comes from the packets
	for _, l := range o.segs[:n] {
		start := len(o.buf)
		if start+int(l) > maxOggPacket {
			return fmt.Errorf("ogg: packet larger than %d bytes", maxOggPacket)
		}
		o.buf = append(o.buf, make([]byte, l)...)
		if _, err := io.ReadFull(o.r, o.buf[start:]); err != nil {
			return err
		}
		if l < 255 {
			o.pend = append(o.pend, append([]byte(nil), o.buf...))
			o.buf = o.buf[:0]
		}
	}
	return nil
}
