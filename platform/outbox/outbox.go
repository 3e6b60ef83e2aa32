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
	"errors"
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
	enc      Encoder
	waker    atomic.Pointer[Waker]
	declared atomic.Pointer[map[declaration]bool] // the value: the event lingers
}

// Publication is an event type a service appends, on the topic it goes to.
type Publication struct {
	Topic string
	Type  events.Type
	// Linger marks an event no one waits on at once (it follows an outcome already
	// decided): a transaction that appended only such events wakes the relay with
	// WakeSoon, so that they wait up to the relay's linger and leave with the next event
	// someone waits on.
	//
	// Why: every published batch wakes every consumer group reading its topic. An event
	// that follows an order's outcome (its confirmation, the capture it causes, the
	// invoice) published alone costs the broker, each reading group and its database a
	// round trip of their own; riding with the next order's placement, it costs them
	// almost nothing (ADR 0024).
	Linger bool
}

type declaration struct{ topic, typ string }

// ErrUndeclared is the error of an Append whose event the service did not declare.
var ErrUndeclared = errors.New("not among the publications the service declared")

// Waker wakes the relay after a commit that appended; *Relay is one.
type Waker interface {
	// Wake makes the relay publish now.
	Wake(ctx context.Context)
	// WakeSoon makes it publish within its linger, or sooner with the next Wake.
	WakeSoon(ctx context.Context)
}

// SetWaker sets what wakes the relay after a commit.
func (o *Outbox) SetWaker(w Waker) {
	o.waker.Store(&w)
}

// Declare tells the outbox every event the service publishes; call it before the first
// Append. From then on Append refuses any other event with ErrUndeclared: the service
// registers the schemas of what it declares before it starts (and its deploy step checks
// them against the registry before a rollout), so an event missing from the list would
// have its schema registered on the fly, by the first transaction that writes it, and an
// incompatible change would fail there instead of stopping the rollout. An Outbox that
// was never given a declaration takes any event.
func (o *Outbox) Declare(ps ...Publication) {
	m := make(map[declaration]bool, len(ps))
	for _, p := range ps {
		m[declaration{p.Topic, p.Type.Name}] = p.Linger
	}
	o.declared.Store(&m)
}

// lingers reports whether e lingers, and an error if the service did not declare it.
func (o *Outbox) lingers(e events.Event) (bool, error) {
	m := o.declared.Load()
	if m == nil {
		return false, nil
	}
	linger, ok := (*m)[declaration{e.Topic, e.Type.Name}]
	if !ok {
		return false, fmt.Errorf("append %s to %s: %w (boot.Spec.Publishes)", e.Type.Name, e.Topic, ErrUndeclared)
	}
	return linger, nil
}

// Committed tells the relay that a transaction which appended has just committed, so
// that it publishes now rather than at its next periodic look. A *pg.Tx does this by
// itself when it commits (see Append); call Committed after committing any other
// transaction that appended, never inside it: the wake-up is deliberately not part of it.
//
// Why not NOTIFY inside the transaction: PostgreSQL serialises the commits of all
// notifying transactions on one lock held through the WAL flush, which capped the whole
// suite at a few hundred commits per second. Missing a call is harmless: the relay also
// looks on its own every RelayOptions.Fallback.
func (o *Outbox) Committed(ctx context.Context) {
	o.committed(ctx, true)
}

func (o *Outbox) committed(ctx context.Context, now bool) {
	w := o.waker.Load()
	switch {
	case w == nil:
	case now:
		(*w).Wake(ctx)
	default:
		(*w).WakeSoon(ctx)
	}
}

// New returns an Outbox that encodes payloads with enc.
func New(enc Encoder) *Outbox {
	return &Outbox{enc: enc}
}

// Append stores evs in the outbox as part of tx. The events become visible to the relay
// when tx commits and vanish if it rolls back. Encoding happens here, so the schema id in
// each record is the one the writing code was built with.
//
// In a *pg.Tx, the rows are written with COMMIT and the commit wakes the relay: now if
// the transaction appended an event that does not linger, soon otherwise (see
// Publication.Linger). After any other transaction, call Committed.
func (o *Outbox) Append(ctx context.Context, tx pgx.Tx, evs ...events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	var (
		topics  = make([]string, len(evs))
		keys    = make([]string, len(evs))
		values  = make([][]byte, len(evs))
		headers = make([][]byte, len(evs))
		now     bool
	)
	for i, e := range evs {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("append %s: %w", e.Type.Name, err)
		}
		linger, err := o.lingers(e)
		if err != nil {
			return err
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
		now = now || !linger
	}
	if d, ok := tx.(deferrer); ok { // written with COMMIT, in the same round trip
		rows := d.Local(o, func() any {
			r := &rows{}
			d.BeforeCommit(r.queue)
			d.AfterCommit(func(ctx context.Context) { o.committed(ctx, r.now) })
			return r
		}).(*rows)
		rows.topics = append(rows.topics, topics...)
		rows.keys = append(rows.keys, keys...)
		rows.values = append(rows.values, values...)
		rows.headers = append(rows.headers, headers...)
		rows.now = rows.now || now
		return nil
	}
	b := &pgx.Batch{}
	(&rows{topics: topics, keys: keys, values: values, headers: headers}).queue(b)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("append to outbox: %w", err)
	}
	return nil
}

// deferrer is a transaction that can gather statements to send with its COMMIT and act
// after it; *pg.Tx is one. Appends to it are written, all together, when it commits.
type deferrer interface {
	Local(key any, create func() any) any
	BeforeCommit(fn func(b *pgx.Batch))
	AfterCommit(fn func(ctx context.Context))
}

// rows are outbox rows to insert.
type rows struct {
	topics, keys    []string
	values, headers [][]byte
	now             bool // one of them does not linger: wake the relay now
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
