// Package dlq reads and re-drives the dead-letter topic of a consumer group
// (<group>.dlq, written by package consumer).
//
// Re-driving produces the original key, value and headers back to the record's source
// topic, with a dlq_redriven_from header naming the dead letter and a dlq_redriven_for
// header naming the group. Every consumer group of that topic fetches it again, but only
// the group that dead-lettered it applies it (another chance, for instance after a fix
// was deployed); the others applied the original and skip it. The group's inbox keeps
// the row of a re-driven record for good, so re-driving the same record twice, even
// months apart, is harmless.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
)

// HeaderRedrivenFrom names the dead letter a re-driven record came from.
const HeaderRedrivenFrom = consumer.HeaderRedrivenFrom

// Record is one dead letter.
type Record struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Key             string            `json:"key"`
	ValueBytes      int               `json:"value_bytes"`
	Error           string            `json:"error"`
	Attempts        int               `json:"attempts"`
	SourceTopic     string            `json:"source_topic"`
	SourcePartition int32             `json:"source_partition"`
	SourceOffset    int64             `json:"source_offset"`
	DeadAt          time.Time         `json:"dead_at"`
	Headers         map[string]string `json:"headers"`

	raw *kgo.Record
}

// Read returns every dead letter of group, oldest first. A group whose dead-letter topic
// does not exist (yet) has none.
func Read(ctx context.Context, kcfg kafka.Config, group string) ([]Record, error) {
	topic := kafka.DeadLetterTopicName(group)
	admin, err := kafka.NewClient(kcfg)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	ends, err := kadm.NewClient(admin).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	if len(want) == 0 {
		return nil, nil
	}
	cl, err := kafka.NewClient(kcfg, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var out []Record
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for _, e := range fs.Errors() {
			return nil, fmt.Errorf("read %s: %w", topic, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := want[r.Partition]; ok && r.Offset < end {
				out = append(out, toRecord(r))
				if r.Offset+1 >= end {
					delete(want, r.Partition)
				}
			}
		})
	}
	slices.SortFunc(out, func(a, b Record) int {
		if a.Partition != b.Partition {
			return int(a.Partition - b.Partition)
		}
		return int(a.Offset - b.Offset)
	})
	return out, nil
}

func toRecord(r *kgo.Record) Record {
	hs := kafka.Headers(r)
	rec := Record{
		Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), ValueBytes: len(r.Value),
		Error: hs[consumer.HeaderDLQError], SourceTopic: hs[consumer.HeaderDLQTopic], Headers: hs, raw: r,
	}
	rec.Attempts, _ = strconv.Atoi(hs[consumer.HeaderDLQAttempts])
	p, _ := strconv.Atoi(hs[consumer.HeaderDLQPartition])
	rec.SourcePartition = int32(p)
	rec.SourceOffset, _ = strconv.ParseInt(hs[consumer.HeaderDLQOffset], 10, 64)
	rec.DeadAt, _ = time.Parse(time.RFC3339Nano, hs[consumer.HeaderDLQTime])
	return rec
}

// Redrive sends the dead letters of group at the given offsets (of partition 0, where
// every dead-letter topic lives; all of them when offsets is empty) back to their source
// topics, and returns the records it re-drove. An offset that is not in the topic is an
// error and nothing is sent.
func Redrive(ctx context.Context, kcfg kafka.Config, group string, offsets []int64) ([]Record, error) {
	all, err := Read(ctx, kcfg, group)
	if err != nil {
		return nil, err
	}
	selected := all
	if len(offsets) > 0 {
		byOffset := map[int64]Record{}
		for _, r := range all {
			byOffset[r.Offset] = r
		}
		selected = nil
		var missing []string
		for _, o := range offsets {
			r, ok := byOffset[o]
			if !ok {
				missing = append(missing, strconv.FormatInt(o, 10))
				continue
			}
			selected = append(selected, r)
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("no dead letter at offset %s of %s", strings.Join(missing, ", "), kafka.DeadLetterTopicName(group))
		}
	}
	if len(selected) == 0 {
		return nil, nil
	}
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, len(selected))
	for _, r := range selected {
		if r.SourceTopic == "" {
			return nil, fmt.Errorf("dead letter at offset %d has no %s header", r.Offset, consumer.HeaderDLQTopic)
		}
		var hs []kgo.RecordHeader
		for _, h := range r.raw.Headers {
			if !strings.HasPrefix(h.Key, "dlq_") {
				hs = append(hs, h)
			}
		}
		hs = append(hs, kgo.RecordHeader{Key: HeaderRedrivenFrom,
			Value: fmt.Appendf(nil, "%s/%d/%d", r.raw.Topic, r.Partition, r.Offset)},
			kgo.RecordHeader{Key: consumer.HeaderRedriveFor, Value: []byte(group)})
		recs = append(recs, &kgo.Record{Topic: r.SourceTopic, Key: r.raw.Key, Value: r.raw.Value, Headers: hs})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, fmt.Errorf("redrive: %w", err)
	}
	return selected, nil
}

// Summary is a one-line description of a dead letter for terminals.
func (r Record) Summary() string {
	return fmt.Sprintf("%d\t%s\t%s/%d/%d\t%s\t%s\tattempts=%d\t%s", r.Offset, r.DeadAt.Format(time.RFC3339),
		r.SourceTopic, r.SourcePartition, r.SourceOffset, r.Headers[events.HeaderType], r.Key, r.Attempts, r.Error)
}
