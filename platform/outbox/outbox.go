// Package outbox implements the transactional outbox: a service writes its state change
// and the events announcing it in one Postgres transaction (Append), and a relay
// publishes committed events to Kafka (Relay).
//
// Guarantees:
//
//   - Nothing committed is lost and nothing rolled back is published: an event exists
//     only as an outbox row of a committed transaction, and a row is marked published
//     only after Kafka acknowledged it with acks=all.
//   - Events of one aggregate (topic and key) are published in the order their
//     transactions committed. Append takes a transaction-scoped advisory lock per
//     aggregate before inserting, so two transactions appending to the same aggregate
//     serialize, and the later one gets the higher id and commits later. The relay
//     publishes pending rows in id order and never tracks a high-water mark, so a row that
//     commits late with a lower id than rows already published (another aggregate's) is
//     still picked up on the next pass instead of being skipped.
//   - The relay may publish a row more than once: after a crash between Kafka's
//     acknowledgement and the marking, the batch goes out again. Consumers deduplicate by
//     ce_id (package consumer).
//   - One relay per database publishes at a time (a session advisory lock elects it), so
//     replicas of a service never interleave a batch.
package outbox

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"

	"github.com/orderflow/orderflow/platform/events"
)

// Channel is the LISTEN/NOTIFY channel that wakes the relay of another process.
const Channel = "platform_outbox"

// Encoder turns a payload into Confluent-framed Avro; *serde.Serde is one.
type Encoder interface {
	Encode(topic string, schema avro.Schema, v any) ([]byte, error)
}

// Outbox appends events inside a caller's transaction. It is safe for concurrent use.
type Outbox struct {
	enc  Encoder
	wake atomic.Pointer[func(context.Context)]
}

// Waker is what Committed calls; *Relay's Wake is one.
type Waker func(ctx context.Context)

// SetWaker sets what Committed calls to wake the relay.
func (o *Outbox) SetWaker(w Waker) {
	fn := (func(context.Context))(w)
	o.wake.Store(&fn)
}

// Committed tells the relay that a transaction which appended has just committed, so
// that it publishes now rather than at its next periodic look. Call it after the commit,
// never inside the transaction: the wake-up is deliberately not part of it.
//
// Why not NOTIFY inside the transaction: PostgreSQL serialises the commits of all
// notifying transactions on one lock held through the WAL flush, which capped the whole
// suite at a few hundred commits per second. Missing a call is harmless: the relay also
// looks on its own every RelayOptions.Fallback.
func (o *Outbox) Committed(ctx context.Context) {
	if w := o.wake.Load(); w != nil {
		(*w)(ctx)
	}
}

// New returns an Outbox that encodes payloads with enc.
func New(enc Encoder) *Outbox {
	return &Outbox{enc: enc}
}

// Append stores evs in the outbox as part of tx. The events become visible to the relay
// when tx commits and vanish if it rolls back. Encoding happens here, so the schema id in
// each record is the one the writing code was built with.
func (o *Outbox) Append(ctx context.Context, tx pgx.Tx, evs ...events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var (
		topics  = make([]string, len(evs))
		keys    = make([]string, len(evs))
		values  = make([][]byte, len(evs))
		headers = make([][]byte, len(evs))
	)
	for i, e := range evs {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("append %s: %w", e.Type.Name, err)
		}
		v, err := o.enc.Encode(e.Topic, e.Type.Schema, e.Payload)
		if err != nil {
			return fmt.Errorf("append %s: %w", e.Type.Name, err)
		}
		hj, err := encodeHeaders(e.Metadata.Headers())
		if err != nil {
			return fmt.Errorf("append %s: %w", e.Type.Name, err)
		}
		topics[i], keys[i], values[i], headers[i] = e.Topic, e.Key, v, hj
	}
	if d, ok := tx.(deferrer); ok { // written with COMMIT, in the same round trip
		rows := d.Local(o, func() any {
			r := &rows{}
			d.BeforeCommit(r.queue)
			return r
		}).(*rows)
		rows.topics = append(rows.topics, topics...)
		rows.keys = append(rows.keys, keys...)
		rows.values = append(rows.values, values...)
		rows.headers = append(rows.headers, headers...)
		return nil
	}
	b := &pgx.Batch{}
	(&rows{topics, keys, values, headers}).queue(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append to outbox: %w", err)
	}
	return nil
}

// deferrer is a transaction that can gather statements to send with its COMMIT;
// *pg.Tx is one. Appends to it are written, all together, when it commits.
type deferrer interface {
	Local(key any, create func() any) any
	BeforeCommit(fn func(b *pgx.Batch))
}

// rows are outbox rows to insert.
type rows struct {
	topics, keys    []string
	values, headers [][]byte
}

// queue adds to b the statements that insert r: first the aggregates' locks, in a fixed
// order (no deadlock between two appenders touching the same set), then the rows in the
// order given.
func (r *rows) queue(b *pgx.Batch) {
	b.Queue(`SELECT pg_advisory_xact_lock(h)
	           FROM (SELECT DISTINCT hashtextextended(t || '/' || k, 0) AS h
	                   FROM unnest($1::text[], $2::text[]) AS a(t, k)) s
	          ORDER BY h`, r.topics, r.keys)
	b.Queue(`INSERT INTO platform_outbox (topic, key, value, headers)
	         SELECT t, k, v, h::jsonb FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[])
	                WITH ORDINALITY AS a(t, k, v, h, n) ORDER BY n`, r.topics, r.keys, r.values, jsonStrings(r.headers))
}

func jsonStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}
