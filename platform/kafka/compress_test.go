package kafka

import (
	"bytes"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A batch compresses to a standard LZ4 frame of 64 KiB blocks, which franz-go's own
// decompressor reads back. The block size in the header is what sizes the buffers on both
// sides: the writer's, and every reader's.
func TestLZ4BlocksRoundTripInSmallBlocks(t *testing.T) {
	src := []byte(strings.Repeat(`{"order_id":"3f1c","sku":"SKU-1","quantity":2}`, 2_000)) // ~94 KiB: two blocks
	c := newLZ4Blocks()
	// Twice: the second batch most likely gets the first one's pooled writer, whose
	// Reset must keep the block size.
	for round := range 2 {
		out, codec := c.Compress(new(bytes.Buffer), src)
		if codec != kgo.CodecLz4 || len(out) == 0 || len(out) >= len(src) {
			t.Fatalf("round %d: codec %v, %d bytes from %d", round, codec, len(out), len(src))
		}
		// Frame header: magic (4 bytes), FLG, BD; BD bits 4-6 are the block size, 4 = 64 KiB.
		if !bytes.Equal(out[:4], []byte{0x04, 0x22, 0x4d, 0x18}) || out[5]>>4&7 != 4 {
			t.Fatalf("round %d: frame header % x: want LZ4 magic and 64 KiB blocks (BD 0x40)", round, out[:6])
		}
		back, err := kgo.DefaultDecompressor().Decompress(out, kgo.CodecLz4)
		if err != nil || !bytes.Equal(back, src) {
			t.Fatalf("round %d: decompressed %d bytes, err %v; want the %d bytes compressed", round, len(back), err, len(src))
		}
	}
}
