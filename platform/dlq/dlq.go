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

// Pages hold at most MaxPageLimit dead letters, DefaultPageLimit when the caller does not
// say. A dead-letter topic can hold millions of records (a producer's bug, a schema gone
// wrong): nothing here holds more than a page, or a batch of a re-drive, in memory.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// redriveBatch is how many dead letters a re-drive reads before it produces them.
const redriveBatch = 500

// readFetchBytes bounds each fetch of a dead-letter topic; readStall is how long a read
// waits for records the topic's end offset says are there before it gives up.
const (
	readFetchBytes = 1 << 20
	readStall      = 10 * time.Second
)

// Page is a stretch of a group's dead letters, oldest first.
type Page struct {
	DeadLetters []Record `json:"dead_letters"`
	// Next is the offset the following page starts at; nil when this page reached the end.
	Next *int64 `json:"next"`
	// Start is the offset of the oldest dead letter kept and End the offset the next one
	// will take: End-Start dead letters when the page was read.
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// List reads up to limit dead letters of group (1 to MaxPageLimit) from offset from on,
// or from the oldest one kept when from is older. A group whose dead-letter topic does not
// exist (yet) has none.
func List(ctx context.Context, kcfg kafka.Config, group string, from int64, limit int) (Page, error) {
	if limit < 1 || limit > MaxPageLimit {
		return Page{}, fmt.Errorf("limit %d is not between 1 and %d", limit, MaxPageLimit)
	}
	if from < 0 {
		return Page{}, fmt.Errorf("offset %d is negative", from)
	}
	topic := kafka.DeadLetterTopicName(group)
	start, end, err := bounds(ctx, kcfg, topic)
	if err != nil {
		return Page{}, err
	}
	p := Page{DeadLetters: []Record{}, Start: start, End: end}
	from = max(from, start)
	if from >= end {
		return p, nil
	}
	last := min(end, from+int64(limit))
	if err := scan(ctx, kcfg, topic, from, last, func(r Record) error {
		p.DeadLetters = append(p.DeadLetters, r)
		return nil
	}); err != nil {
		return Page{}, err
	}
	if last < end {
		p.Next = &last
	}
	return p, nil
}

// Each calls fn with every dead letter of group that is in the topic when it starts,
// oldest first, at most batch of them at a time.
func Each(ctx context.Context, kcfg kafka.Config, group string, batch int, fn func([]Record) error) error {
	topic := kafka.DeadLetterTopicName(group)
	start, end, err := bounds(ctx, kcfg, topic)
	if err != nil || start >= end {
		return err
	}
	recs := make([]Record, 0, batch)
	err = scan(ctx, kcfg, topic, start, end, func(r Record) error {
		if recs = append(recs, r); len(recs) < batch {
			return nil
		}
		err := fn(recs)
		recs = recs[:0]
		return err
	})
	if err == nil && len(recs) > 0 {
		err = fn(recs)
	}
	return err
}

// Get returns the dead letter of group at offset.
func Get(ctx context.Context, kcfg kafka.Config, group string, offset int64) (Record, error) {
	topic := kafka.DeadLetterTopicName(group)
	start, end, err := bounds(ctx, kcfg, topic)
	if err != nil {
		return Record{}, err
	}
	if start >= end {
		return Record{}, fmt.Errorf("no dead letter at offset %d of %s: it holds none", offset, topic)
	}
	if offset < start || offset >= end {
		return Record{}, fmt.Errorf("no dead letter at offset %d of %s: it holds offsets %d to %d", offset, topic, start, end-1)
	}
	var rec Record
	err = scan(ctx, kcfg, topic, offset, offset+1, func(r Record) error { rec = r; return nil })
	return rec, err
}

// bounds returns the first offset and the end offset of a dead-letter topic, which has one
// partition; both 0 when the topic does not exist.
func bounds(ctx context.Context, kcfg kafka.Config, topic string) (start, end int64, err error) {
	admin, err := kafka.NewClient(kcfg)
	if err != nil {
		return 0, 0, err
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return 0, 0, nil
	} else if err != nil {
		return 0, 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return 0, 0, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	e, okEnd := ends.Lookup(topic, 0)
	s, okStart := starts.Lookup(topic, 0)
	if !okEnd || !okStart { // a dead-letter topic has one partition, 0 (kafka.DeadLetterTopic)
		return 0, 0, fmt.Errorf("%s has no partition 0: it was not created as a dead-letter topic", topic)
	}
	return s.Offset, e.Offset, nil
}

// scan reads the dead letters at offsets from up to (not including) to, in order, and
// hands each to fn; it stops at fn's first error.
func scan(ctx context.Context, kcfg kafka.Config, topic string, from, to int64, fn func(Record) error) error {
	cl, err := kafka.NewClient(kcfg,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(from)}}),
		kgo.FetchMaxBytes(readFetchBytes), kgo.FetchMaxPartitionBytes(readFetchBytes))
	if err != nil {
		return err
	}
	defer cl.Close()
	for next := from; next < to; {
		pctx, cancel := context.WithTimeout(ctx, readStall)
		fs := cl.PollRecords(pctx, redriveBatch)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			return fmt.Errorf("read %s: no record at offset %d or after it within %v, though the topic ends at %d", topic, next, readStall, to)
		}
		for _, e := range fs.Errors() {
			if errors.Is(e.Err, context.DeadlineExceeded) {
				continue
			}
			return fmt.Errorf("read %s: %w", topic, e.Err)
		}
		for _, r := range fs.Records() {
			if r.Offset < next || r.Offset >= to {
				continue
			}
			if err := fn(toRecord(r)); err != nil {
				return err
			}
			next = r.Offset + 1
		}
	}
	return nil
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

// Redrive sends the dead letters of group at the given offsets (all of those in the topic
// when it starts, when offsets is empty) back to their source topics, redriveBatch at a
// time, and returns how many it sent. An offset that is not in the topic is an error, and
// then nothing is sent. An error after that (Kafka unavailable, a dead letter without its
// source topic) stops the re-drive with what was sent so far; sending those again is
// harmless, so the same re-drive can simply be repeated.
func Redrive(ctx context.Context, kcfg kafka.Config, group string, offsets []int64) (int, error) {
	topic := kafka.DeadLetterTopicName(group)
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	sent := 0
	send := func(batch []Record) error {
		recs := make([]*kgo.Record, 0, len(batch))
		for _, r := range batch {
			rec, err := redriven(group, r)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return fmt.Errorf("redrive: %w", err)
		}
		sent += len(recs)
		return nil
	}
	if len(offsets) == 0 {
		return sent, Each(ctx, kcfg, group, redriveBatch, send)
	}
	offsets = slices.Clone(offsets)
	slices.Sort(offsets)
	offsets = slices.Compact(offsets)
	start, end, err := bounds(ctx, kcfg, topic)
	if err != nil {
		return 0, err
	}
	var missing []string
	for _, o := range offsets {
		if o < start || o >= end {
			missing = append(missing, strconv.FormatInt(o, 10))
		}
	}
	if len(missing) > 0 {
		return 0, fmt.Errorf("no dead letter at offset %s of %s", strings.Join(missing, ", "), topic)
	}
	// Offsets close together are read in one pass; a gap of more than redriveBatch starts
	// a new one, so that a few offsets far apart do not read everything between them.
	for len(offsets) > 0 {
		run := 1
		for run < len(offsets) && run < redriveBatch && offsets[run]-offsets[run-1] <= redriveBatch {
			run++
		}
		want, batch := offsets[:run], make([]Record, 0, run)
		if err := scan(ctx, kcfg, topic, want[0], want[run-1]+1, func(r Record) error {
			if _, ok := slices.BinarySearch(want, r.Offset); ok {
				batch = append(batch, r)
			}
			return nil
		}); err != nil {
			return sent, err
		}
		if err := send(batch); err != nil {
			return sent, err
		}
		offsets = offsets[run:]
	}
	return sent, nil
}

// redriven is the record that sends dead letter r back to its source topic for group.
func redriven(group string, r Record) (*kgo.Record, error) {
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
	return &kgo.Record{Topic: r.SourceTopic, Key: r.raw.Key, Value: r.raw.Value, Headers: hs}, nil
}

// Summary is a one-line description of a dead letter for terminals.
func (r Record) Summary() string {
	return fmt.Sprintf("%d\t%s\t%s/%d/%d\t%s\t%s\tattempts=%d\t%s", r.Offset, r.DeadAt.Format(time.RFC3339),
		r.SourceTopic, r.SourcePartition, r.SourceOffset, r.Headers[events.HeaderType], r.Key, r.Attempts, r.Error)
}
