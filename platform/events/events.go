// Package events defines the envelope every orderflow event travels in: an Avro payload
// plus CloudEvents metadata carried in Kafka headers (CloudEvents Kafka protocol binding,
// binary content mode), with correlation, causation and W3C trace context.
//
// The header names are a cross-service contract (DESIGN.md section 3): ce_specversion,
// ce_id, ce_type, ce_source, ce_time, ce_subject, content-type, correlationid,
// causationid, traceparent and tracestate. Changing one breaks every consumer.
package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
)

// Header names of the CloudEvents Kafka binding and the orderflow extensions.
const (
	HeaderSpecVersion   = "ce_specversion"
	HeaderID            = "ce_id"
	HeaderType          = "ce_type"
	HeaderSource        = "ce_source"
	HeaderTime          = "ce_time"
	HeaderSubject       = "ce_subject"
	HeaderContentType   = "content-type"
	HeaderCorrelationID = "correlationid"
	HeaderCausationID   = "causationid"
	HeaderTraceParent   = "traceparent"
	HeaderTraceState    = "tracestate"
)

// SpecVersion is the CloudEvents version orderflow speaks.
const SpecVersion = "1.0"

// ContentType is the datacontenttype of every orderflow payload: Avro binary in the
// Confluent wire format.
const ContentType = "application/avro"

// Type names one kind of event: its CloudEvents type (for example
// "orderflow.shop.OrderPlaced.v1") and the Avro schema its payload is written with.
// A Type is immutable once built and safe for concurrent use.
type Type struct {
	// Name is the ce_type value.
	Name string
	// Schema is the Avro record schema of the payload, the writer schema for producers
	// and the reader schema for consumers.
	Schema avro.Schema
}

// NewType parses an Avro schema and pairs it with a CloudEvents type name. It is meant
// for package-level variables of generated or hand-written contracts and panics on an
// invalid schema, which is a programming error caught by any test that loads the package.
func NewType(name, schema string) Type {
	s, err := avro.Parse(schema)
	if err != nil {
		panic(fmt.Sprintf("events: parse schema of %s: %v", name, err))
	}
	if _, ok := s.(*avro.RecordSchema); !ok {
		panic(fmt.Sprintf("events: schema of %s is %s, want a record", name, s.Type()))
	}
	return Type{Name: name, Schema: s}
}

// TypeOf names a generated contract type: its ce_type is the schema's full name with the
// contract's major version, "orderflow.shop.OrderPlaced" -> "orderflow.shop.OrderPlaced.v1".
// Compatible evolution keeps v1; an incompatible contract is a new record and a new type.
func TypeOf(schema avro.Schema) Type {
	named, ok := schema.(avro.NamedSchema)
	if !ok {
		panic(fmt.Sprintf("events: schema of type %s has no name", schema.Type()))
	}
	return Type{Name: named.FullName() + ".v1", Schema: schema}
}

// RecordName is the full name of the payload's Avro record, the <namespace>.<Record>
// part of a TopicRecordNameStrategy subject.
func (t Type) RecordName() string {
	if n, ok := t.Schema.(avro.NamedSchema); ok {
		return n.FullName()
	}
	return ""
}

// Metadata is what travels in the headers of one event.
type Metadata struct {
	ID            string    // ce_id: a UUID, the idempotency key of every consumer
	Type          string    // ce_type
	Source        string    // ce_source: the publishing service
	Time          time.Time // ce_time
	Subject       string    // ce_subject: the aggregate id
	CorrelationID string    // the order id for the whole workflow
	CausationID   string    // ce_id of the event that caused this one; empty for a command
	TraceParent   string    // W3C traceparent of the producing span
	TraceState    string    // W3C tracestate
}

// Event is one event to publish: where it goes, what it says and its metadata.
type Event struct {
	Topic    string
	Key      string // the aggregate id; Kafka partitions by it
	Type     Type
	Payload  any // a value hamba/avro can encode with Type.Schema
	Metadata Metadata
}

// Cause carries the metadata an event handler passes on to the events it emits.
type Cause struct {
	ID            string
	CorrelationID string
}

// New builds an event with a fresh UUID, the current time, and the correlation and
// causation ids taken from cause (which may be the zero Cause for events that start a
// workflow, where correlation falls back to the key). The trace context is filled from
// ctx when a span is active.
func New(ctx context.Context, source, topic, key string, typ Type, payload any, cause Cause) Event {
	corr := cause.CorrelationID
	if corr == "" {
		corr = key
	}
	md := Metadata{
		ID:            uuid.NewString(),
		Type:          typ.Name,
		Source:        source,
		Time:          time.Now().UTC(),
		Subject:       key,
		CorrelationID: corr,
		CausationID:   cause.ID,
	}
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	md.TraceParent = carrier.Get(HeaderTraceParent)
	md.TraceState = carrier.Get(HeaderTraceState)
	return Event{Topic: topic, Key: key, Type: typ, Payload: payload, Metadata: md}
}

// ShortName is the event name inside a ce_type: orderflow.billing.PaymentAuthorized.v1
// gives PaymentAuthorized. A type without dots is returned as it is.
func ShortName(ceType string) string {
	if parts := strings.Split(ceType, "."); len(parts) >= 2 {
		return parts[len(parts)-2]
	}
	return ceType
}

// Validate reports every missing part of the event at once.
func (e Event) Validate() error {
	var errs []error
	if e.Topic == "" {
		errs = append(errs, errors.New("topic is empty"))
	}
	if e.Key == "" {
		errs = append(errs, errors.New("key is empty"))
	}
	if e.Type.Schema == nil || e.Type.Name == "" {
		errs = append(errs, errors.New("type is not set"))
	}
	errs = append(errs, e.Metadata.validate()...)
	return errors.Join(errs...)
}

func (m Metadata) validate() []error {
	var errs []error
	if _, err := uuid.Parse(m.ID); err != nil {
		errs = append(errs, fmt.Errorf("%s %q is not a UUID", HeaderID, m.ID))
	}
	for _, f := range []struct{ name, v string }{
		{HeaderType, m.Type}, {HeaderSource, m.Source}, {HeaderSubject, m.Subject},
	} {
		if f.v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		}
	}
	if m.Time.IsZero() {
		errs = append(errs, errTimeEmpty)
	}
	return errs
}

var errTimeEmpty = errors.New(HeaderTime + " is empty")

// Headers renders the metadata as Kafka record headers in binary content mode.
func (m Metadata) Headers() []kgo.RecordHeader {
	h := []kgo.RecordHeader{
		{Key: HeaderSpecVersion, Value: []byte(SpecVersion)},
		{Key: HeaderID, Value: []byte(m.ID)},
		{Key: HeaderType, Value: []byte(m.Type)},
		{Key: HeaderSource, Value: []byte(m.Source)},
		{Key: HeaderTime, Value: []byte(m.Time.UTC().Format(time.RFC3339Nano))},
		{Key: HeaderSubject, Value: []byte(m.Subject)},
		{Key: HeaderContentType, Value: []byte(ContentType)},
		{Key: HeaderCorrelationID, Value: []byte(m.CorrelationID)},
	}
	if m.CausationID != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderCausationID, Value: []byte(m.CausationID)})
	}
	if m.TraceParent != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceParent, Value: []byte(m.TraceParent)})
	}
	if m.TraceState != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderTraceState, Value: []byte(m.TraceState)})
	}
	return h
}

// HeaderError reports headers that do not form a valid orderflow event. It is permanent:
// redelivering the same record cannot fix it.
type HeaderError struct {
	Problems []string
}

func (e *HeaderError) Error() string {
	return "invalid event headers: " + strings.Join(e.Problems, "; ")
}

// ParseHeaders reads the metadata of a consumed record. It rejects records that are not
// CloudEvents 1.0 in binary mode or lack an id, type, source, time or subject, naming
// every problem.
func ParseHeaders(headers []kgo.RecordHeader) (Metadata, error) {
	get := func(k string) (string, bool) {
		for i := len(headers) - 1; i >= 0; i-- { // the last value of a repeated header wins
			if headers[i].Key == k {
				return string(headers[i].Value), true
			}
		}
		return "", false
	}
	var problems []string
	if v, ok := get(HeaderSpecVersion); !ok {
		problems = append(problems, "missing "+HeaderSpecVersion)
	} else if v != SpecVersion {
		problems = append(problems, fmt.Sprintf("%s is %q, want %q", HeaderSpecVersion, v, SpecVersion))
	}
	var m Metadata
	m.ID, _ = get(HeaderID)
	m.Type, _ = get(HeaderType)
	m.Source, _ = get(HeaderSource)
	m.Subject, _ = get(HeaderSubject)
	m.CorrelationID, _ = get(HeaderCorrelationID)
	m.CausationID, _ = get(HeaderCausationID)
	m.TraceParent, _ = get(HeaderTraceParent)
	m.TraceState, _ = get(HeaderTraceState)
	timeInvalid := false
	if ts, ok := get(HeaderTime); ok {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s %q is not RFC 3339", HeaderTime, ts))
			timeInvalid = true
		}
		m.Time = t
	}
	for _, err := range m.validate() {
		if timeInvalid && errors.Is(err, errTimeEmpty) {
			continue // already reported as unparsable
		}
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return Metadata{}, &HeaderError{Problems: problems}
	}
	return m, nil
}

// Context returns ctx carrying the remote span context of the event, so that the
// consumer's span joins the producer's trace.
func (m Metadata) Context(ctx context.Context) context.Context {
	carrier := propagation.MapCarrier{HeaderTraceParent: m.TraceParent, HeaderTraceState: m.TraceState}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}

// Cause returns the Cause an event handler passes to the events it emits in reaction.
func (m Metadata) Cause() Cause {
	return Cause{ID: m.ID, CorrelationID: m.CorrelationID}
}
