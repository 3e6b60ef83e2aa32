// Package projection builds a service's read models from Kafka topics, and rebuilds them
// from the topics' history while the service keeps serving (DESIGN.md section 5).
//
// A read model (Model) owns a few tables and is written only by its Apply function,
// which receives decoded events in batches and writes them with multi-row statements.
// The offsets the model has consumed are stored in platform_projection_offsets in the
// same transaction as the rows they produced, so the tables always reflect exactly the
// events before those offsets. No consumer group is involved: partitions are assigned
// directly, and one replica per database runs a model (a session advisory lock elects
// it).
//
// Apply must be a pure function of the events: the same events give the same rows
// whatever the interleaving of partitions and topics, and an event delivered twice (the
// outbox relay may publish one twice, at two offsets) changes nothing the second time.
// Event times, never now(). That is what lets Rebuild read every topic at full speed and
// lets Verify compare a rebuilt model with the live one row by row.
//
// Rebuild builds a new version of a model into shadow tables (<table>__shadow) with its
// own Kafka client, reports progress, and when it has caught up with the head of every
// partition, takes the model's exclusive lock (the live runner pauses between two
// batches), drains the last records, renames the shadow tables into place, stores its
// offsets and bumps the epoch, all in one transaction. Queries keep answering from the
// old tables until that commit. Verify does the same rebuild, stops exactly at the live
// runner's offsets, compares row counts and a content hash per table and names every
// differing key, and drops the shadow.
package projection

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/orderflow/orderflow/platform/events"
)

// Decoder reads a Confluent-framed payload with a reader schema; *serde.Serde is one.
type Decoder interface {
	Decode(data []byte, reader avro.Schema, out any) error
}

// Validator is implemented by payloads that check themselves after decoding.
type Validator interface {
	Validate() error
}

// Table is a table of a read model.
type Table struct {
	// Name is the live table's name.
	Name string
	// Key lists the columns that identify a row, comma-separated; Verify orders and
	// compares rows by it.
	Key string
	// AppendOnly declares a table whose rows are only ever inserted, one per Key, with
	// copies of the same key identical (a row per event id). A rebuild then fills its
	// shadow without the unique index on Key, Tables.Bulk reports it so Apply writes with
	// COPY instead of INSERT ... ON CONFLICT, and the rebuild removes duplicates before it
	// builds the index. Random keys (UUIDs) make the index the dearest part of a rebuild.
	AppendOnly bool
}

// Event is a decoded record.
type Event struct {
	events.Metadata
	Topic     string
	Partition int32
	Offset    int64
	Key       string
	// Payload is the decoded value of the type registered with On, as a value (not a
	// pointer).
	Payload any

	rec *kgo.Record // for a dead letter
}

// Tables names the physical tables a batch writes to: the live tables, or their shadow
// copies during a rebuild. Apply must name its tables through it, never literally.
type Tables struct {
	names map[string]string
	bulk  map[string]bool
}

// Of returns the quoted physical name of the model's table live. An unknown name panics:
// it is a programming error that every test of the model hits.
func (t Tables) Of(live string) string {
	return pgx.Identifier{t.Name(live)}.Sanitize()
}

// Name returns the physical name of the model's table live, unquoted (for CopyFrom).
func (t Tables) Name(live string) string {
	p, ok := t.names[live]
	if !ok {
		panic(fmt.Sprintf("projection: table %q is not declared by the model", live))
	}
	return p
}

// Bulk reports that the AppendOnly table live has no unique index on its key right now:
// write its rows with COPY (pgx CopyFrom), without conflict handling; duplicates are
// removed before the index is built.
func (t Tables) Bulk(live string) bool { return t.bulk[live] }

// ApplyFunc writes a batch of events into the tables named by t, inside tx. Events of one
// partition come in offset order; events of different partitions in no particular order.
type ApplyFunc func(ctx context.Context, tx pgx.Tx, t Tables, batch []Event) error

// Model is a read model. Declare it once, register the event types it reads with On, and
// hand it to the service's boot.Spec.
type Model struct {
	// Name identifies the model in commands, URLs, metrics and bookkeeping rows:
	// lowercase words joined by hyphens. Never rename a model: a new name is a new model
	// and is rebuilt from history on its first start.
	Name string
	// Tables are the tables the model owns, created by the service's migrations.
	Tables []Table
	// Topics are the topics the model reads.
	Topics []string
	// Apply writes a batch.
	Apply ApplyFunc

	routes map[string]route
}

type route struct {
	typ    events.Type
	decode func(dec Decoder, data []byte) (any, error)
}

// On declares that m reads events of typ, decoded into T with typ's schema as the reader
// schema (older writer versions are resolved against it).
func On[T any](m *Model, typ events.Type) {
	if m.routes == nil {
		m.routes = map[string]route{}
	}
	m.routes[typ.Name] = route{typ: typ, decode: func(dec Decoder, data []byte) (any, error) {
		var v T
		if err := dec.Decode(data, typ.Schema, &v); err != nil {
			return nil, err
		}
		if val, ok := any(&v).(Validator); ok {
			if err := val.Validate(); err != nil {
				return nil, fmt.Errorf("validate %s: %w", typ.Name, err)
			}
		}
		return v, nil
	}}
}

var modelName = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Validate names what is wrong with the declaration.
func (m *Model) Validate() error {
	var errs []error
	if !modelName.MatchString(m.Name) {
		errs = append(errs, fmt.Errorf("model name %q is not lowercase words joined by hyphens", m.Name))
	}
	if len(m.Tables) == 0 {
		errs = append(errs, fmt.Errorf("model %s declares no tables", m.Name))
	}
	for _, t := range m.Tables {
		if t.Name == "" || t.Key == "" {
			errs = append(errs, fmt.Errorf("model %s: a table needs a name and a key", m.Name))
		}
	}
	if len(m.Topics) == 0 {
		errs = append(errs, fmt.Errorf("model %s reads no topics", m.Name))
	}
	if len(m.routes) == 0 {
		errs = append(errs, fmt.Errorf("model %s reads no event types (projection.On)", m.Name))
	}
	if m.Apply == nil {
		errs = append(errs, fmt.Errorf("model %s has no Apply", m.Name))
	}
	return errors.Join(errs...)
}

// live returns the live table names.
func (m *Model) live() Tables {
	t := Tables{names: map[string]string{}}
	for _, tb := range m.Tables {
		t.names[tb.Name] = tb.Name
	}
	return t
}

// shadow returns the shadow table names; bulk says whether append-only tables are still
// without their key index.
func (m *Model) shadow(bulk bool) Tables {
	t := Tables{names: map[string]string{}, bulk: map[string]bool{}}
	for _, tb := range m.Tables {
		t.names[tb.Name] = shadowName(tb.Name)
		t.bulk[tb.Name] = bulk && tb.AppendOnly
	}
	return t
}

func shadowName(table string) string { return table + "__shadow" }

// UnknownModelError is a model name the service does not have.
type UnknownModelError struct {
	Name  string
	Known []string
}

func (e *UnknownModelError) Error() string {
	return fmt.Sprintf("unknown read model %q; this service has: %v", e.Name, e.Known)
}

// Find returns the model called name among models, or an *UnknownModelError listing the
// valid names.
func Find(models []*Model, name string) (*Model, error) {
	names := make([]string, 0, len(models))
	for _, m := range models {
		if m.Name == name {
			return m, nil
		}
		names = append(names, m.Name)
	}
	slices.Sort(names)
	return nil, &UnknownModelError{Name: name, Known: names}
}

// Lock ids. The swap lock is shared by every live batch and taken exclusively by a swap
// or a verification; the run lock elects the replica that runs the model live; the
// rebuild lock lets one rebuild of a model run at a time across every process.
func lockID(kind, model string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("orderflow.projection." + kind + "\x00" + model))
	return int64(h.Sum64())
}

func swapLock(model string) int64    { return lockID("swap", model) }
func runLock(model string) int64     { return lockID("run", model) }
func rebuildLock(model string) int64 { return lockID("rebuild", model) }

// RebuildLockID is the session advisory lock a rebuild of model holds in its database.
// Operators can see who holds it in pg_locks; tests hold it to play a second process.
func RebuildLockID(model string) int64 { return rebuildLock(model) }

// RecordError names a record that cannot be applied: it does not decode, or fails
// validation.
type RecordError struct {
	Topic     string
	Partition int32
	Offset    int64
	Type      string
	Err       error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record %s/%d@%d (%s): %v", e.Topic, e.Partition, e.Offset, e.Type, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// position is a partition of a topic.
type position struct {
	Topic     string
	Partition int32
}

func (p position) String() string { return fmt.Sprintf("%s/%d", p.Topic, p.Partition) }

// since is time.Since, overridable in tests of progress reporting.
var since = time.Since
