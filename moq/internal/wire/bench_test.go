package wire

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkSubgroupObject measures the relay's per-object data-plane cost:
// AppendSubgroupObjectHeader on the send side plus ReadSubgroupObject (and
// reading the payload) on the receive side. One b.N iteration = one object.
func BenchmarkSubgroupObject(b *testing.B) {
	for _, bc := range []struct {
		name    string
		ext     bool
		payload int
	}{
		{"noext-100B", false, 100},
		{"ext-1200B", true, 1200},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const batch = 256
			h := SubgroupHeader{Type: SubgroupType(bc.ext, false, SubgroupIDZero), TrackAlias: 3, GroupID: 1000}
			payload := make([]byte, bc.payload)
			var ext []byte
			if bc.ext {
				ext = AppendExtensions(nil, Params{UintParam(ExtPriorObjectIDGap, 1)})
			}
			buf := make([]byte, 0, batch*(bc.payload+16))
			dst := make([]byte, bc.payload)
			rd := bytes.NewReader(nil)
			sr := NewStreamReader(rd)
			b.SetBytes(int64(bc.payload))
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				buf = buf[:0]
				for i := 0; i < n; i++ {
					buf = AppendSubgroupObjectHeader(buf, h.Type, uint64(i-1), i == 0, ObjectHeader{ObjectID: uint64(i), Extensions: ext, PayloadLen: uint64(len(payload))})
					buf = append(buf, payload...)
				}
				rd.Reset(buf)
				sr.Reset(rd)
				var prev uint64
				for i := 0; i < n; i++ {
					oh, err := sr.ReadSubgroupObject(h, prev, i == 0, 1<<20)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := sr.ReadPayload(dst[:oh.PayloadLen]); err != nil {
						b.Fatal(err)
					}
					prev = oh.ObjectID
				}
				if _, err := sr.ReadSubgroupObject(h, prev, false, 0); err != io.EOF {
					b.Fatal(err)
				}
				done += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "objects/s")
		})
	}
}
