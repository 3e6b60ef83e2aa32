package projection

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/backoff"
	"github.com/orderflow/orderflow/platform/events"
	"github.com/orderflow/orderflow/platform/kafka"
)

// ErrTopicMissing reports that a topic a model reads does not exist yet. On a suite's first
// start it only means that its owner has not started yet.
var ErrTopicMissing = errors.New("topic does not exist yet")

// offsets maps a partition to an offset.
type offsets map[position]int64

// bounds returns the first and the next-to-be-written offset of every partition of the
// topics.
func bounds(ctx context.Context, client *kgo.Client, topics []string) (start, end offsets, err error) {
	missing, err := kafka.MissingTopics(ctx, client, topics...)
	if err != nil {
		return nil, nil, err
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: %s (the service that owns a topic creates it when it first starts)", ErrTopicMissing, strings.Join(missing, ", "))
	}
	adm := kadm.NewClient(client)
	so, err := adm.ListStartOffsets(ctx, topics...)
	if err == nil {
		err = so.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list start offsets of %v: %w", topics, err)
	}
	eo, err := adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = eo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list end offsets of %v: %w", topics, err)
	}
	start, end = offsets{}, offsets{}
	so.Each(func(o kadm.ListedOffset) { start[position{o.Topic, o.Partition}] = o.Offset })
	eo.Each(func(o kadm.ListedOffset) { end[position{o.Topic, o.Partition}] = o.Offset })
	return start, end, nil
}

// offsetsAfter returns, per partition, the first offset whose record time is at or after
// t (the end offset when there is none).
func offsetsAfter(ctx context.Context, client *kgo.Client, topics []string, t time.Time) (offsets, error) {
	lo, err := kadm.NewClient(client).ListOffsetsAfterMilli(ctx, t.UnixMilli(), topics...)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("list offsets after %s: %w", t.Format(time.RFC3339), err)
	}
	out := offsets{}
	lo.Each(func(o kadm.ListedOffset) { out[position{o.Topic, o.Partition}] = o.Offset })
	return out, nil
}

// reader reads a model's partitions from given offsets with its own client (no consumer
// group) and decodes what it reads.
type reader struct {
	m      *Model
	dec    Decoder
	client *kgo.Client
}

func openReader(kcfg kafka.Config, m *Model, dec Decoder, from offsets, extra ...kgo.Opt) (*reader, error) {
	assign := map[string]map[int32]kgo.Offset{}
	for p, off := range from {
		if assign[p.Topic] == nil {
			assign[p.Topic] = map[int32]kgo.Offset{}
		}
		assign[p.Topic][p.Partition] = kgo.NewOffset().At(off)
	}
	opts := append([]kgo.Opt{kgo.ConsumePartitions(assign)}, extra...)
	client, err := kafka.NewClient(kcfg, opts...)
	if err != nil {
		return nil, err
	}
	return &reader{m: m, dec: dec, client: client}, nil
}

func (r *reader) close() { r.client.Close() }

// chunk is what one poll read.
type chunk struct {
	events  []Event
	bad     []badRecord
	records int
	// next is the offset after the last record read, per partition read.
	next offsets
	// high is each partition's high watermark as the broker last reported it.
	high offsets
}

// badRecord is a record that cannot be applied, ever.
type badRecord struct {
	rec *kgo.Record
	err *RecordError
}

// poll waits for records (until ctx ends or wait passes) and decodes up to max of them.
// keep, when not nil, filters records before decoding (records it refuses are dropped and
// not counted). A registry that does not answer is waited for: poll retries the decode
// with backoff until it succeeds or ctx ends.
func (r *reader) poll(ctx context.Context, wait time.Duration, max int, keep func(*kgo.Record) bool) (*chunk, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	fetches := r.client.PollRecords(pctx, max)
	cancel()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ferr error
	fetches.EachError(func(t string, p int32, err error) {
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			ferr = errors.Join(ferr, fmt.Errorf("fetch %s/%d: %w", t, p, err))
		}
	})
	if ferr != nil {
		return nil, ferr
	}
	c := &chunk{next: offsets{}, high: offsets{}}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		pos := position{fp.Topic, fp.Partition}
		c.high[pos] = fp.HighWatermark
		for _, rec := range fp.Records {
			if keep != nil && !keep(rec) {
				continue
			}
			c.records++
			c.next[pos] = rec.Offset + 1
			ev, routed, err := r.decode(ctx, rec)
			switch {
			case err != nil:
				c.bad = append(c.bad, badRecord{rec: rec, err: err})
			case routed:
				c.events = append(c.events, ev)
			}
		}
	})
	return c, nil
}

// decode parses a record's headers and payload. routed is false for an event type the
// model does not read.
func (r *reader) decode(ctx context.Context, rec *kgo.Record) (ev Event, routed bool, _ *RecordError) {
	md, err := events.ParseHeaders(rec.Headers)
	if err != nil {
		return Event{}, false, &RecordError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Err: err}
	}
	rt, ok := r.m.routes[md.Type]
	if !ok {
		return Event{}, false, nil
	}
	for attempt := 1; ; attempt++ {
		payload, err := rt.decode(r.dec, rec.Value)
		if err == nil {
			return Event{Metadata: md, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
				Key: string(rec.Key), Payload: payload, rec: rec}, true, nil
		}
		var tr interface{ Transient() bool }
		if !errors.As(err, &tr) || !tr.Transient() || ctx.Err() != nil {
			return Event{}, false, &RecordError{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Type: md.Type, Err: err}
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff.Duration(attempt, 100*time.Millisecond, 5*time.Second)):
		}
	}
}
