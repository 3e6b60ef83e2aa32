package kafka

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Blocks compresses produced batches as LZ4 frames of 64 KiB blocks. franz-go's own
// LZ4 writer keeps pierrec/lz4's default of 4 MiB blocks: each writer in use holds 4 MiB
// buffers from a process-wide pool (12 MiB of shop's 32 MiB live heap under load), and
// every reader of such a frame allocates as much to decode it, though a batch here is a
// few KiB and at most a mebibyte. Frames stay standard LZ4, so any Kafka client reads
// them; frames written before with 4 MiB blocks still decode.
type lz4Blocks struct{ writers sync.Pool }

// compressor is shared by every client of the process: its pool holds one writer per
// batch being compressed at a time.
var compressor = newLZ4Blocks()

func newLZ4Blocks() *lz4Blocks {
	c := &lz4Blocks{}
	c.writers.New = func() any {
		w := lz4.NewWriter(nil)
		// The options are constants and the writer is new, so Apply cannot fail unless
		// the package changed under us; carrying on would write 4 MiB blocks unnoticed.
		if err := w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.CompressionLevelOption(lz4.Fast)); err != nil {
			panic(fmt.Sprintf("kafka: lz4 writer options: %v", err))
		}
		return w
	}
	return c
}

// Compress implements kgo.Compressor. franz-go sends the batch uncompressed when the
// frame is not smaller, as it is for a single small record.
func (c *lz4Blocks) Compress(dst *bytes.Buffer, src []byte, _ ...kgo.CompressFlag) ([]byte, kgo.CompressionCodecType) {
	w := c.writers.Get().(*lz4.Writer)
	defer c.writers.Put(w)
	w.Reset(dst)
	if _, err := w.Write(src); err != nil {
		return nil, kgo.CodecError
	}
	if err := w.Close(); err != nil {
		return nil, kgo.CodecError
	}
	return dst.Bytes(), kgo.CodecLz4
}
