// Package serde encodes and decodes event payloads as Avro binary in the Confluent wire
// format (magic byte 0, 4-byte big-endian schema id, Avro payload), with schemas kept in
// a Confluent-compatible schema registry under TopicRecordNameStrategy subjects
// (<topic>-<namespace>.<Record>).
//
// Readers never assume the writer's schema: the schema id in every record is looked up in
// the registry and resolved against the reader's schema by Avro's resolution rules, so a
// consumer on an older or newer contract version than the producer decodes correctly as
// long as the change was compatible. Both lookups and resolutions are cached for the
// life of the Serde; a schema id, once issued, never changes meaning.
package serde

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/riferrei/srclient"
)

// magicByte starts every Confluent-framed record.
const magicByte = 0

// headerLen is the magic byte plus the 4-byte schema id.
const headerLen = 5

// Compatibility is the level every subject is registered with. BACKWARD_TRANSITIVE lets
// consumers on the newest schema read every record ever written, which replay relies on.
const Compatibility = srclient.BackwardTransitive

// FormatError reports bytes that are not a Confluent-framed record. It is permanent.
type FormatError struct{ Reason string }

func (e *FormatError) Error() string { return "not confluent wire format: " + e.Reason }

// Permanent reports that retrying cannot help.
func (e *FormatError) Permanent() bool { return true }

// UnknownSchemaError reports a schema id the registry does not know. It is permanent.
type UnknownSchemaError struct {
	ID  int
	Err error
}

func (e *UnknownSchemaError) Error() string {
	return fmt.Sprintf("schema id %d unknown to the registry: %v", e.ID, e.Err)
}

func (e *UnknownSchemaError) Unwrap() error { return e.Err }

// Permanent reports that retrying cannot help.
func (e *UnknownSchemaError) Permanent() bool { return true }

// DecodeError reports a payload that does not decode with its writer schema resolved
// against the reader schema, or a writer schema that cannot be resolved. It is permanent.
type DecodeError struct {
	ID     int
	Reader string
	Err    error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode schema id %d as %s: %v", e.ID, e.Reader, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Permanent reports that retrying cannot help.
func (e *DecodeError) Permanent() bool { return true }

// RegistryError reports a registry that did not answer or answered with a server error.
// It is transient: the same call may succeed later.
type RegistryError struct {
	Op  string
	Err error
}

func (e *RegistryError) Error() string { return e.Op + ": " + e.Err.Error() }

func (e *RegistryError) Unwrap() error { return e.Err }

// Transient reports that a retry may succeed.
func (e *RegistryError) Transient() bool { return true }

// Subject returns the TopicRecordNameStrategy subject of a record schema on a topic.
func Subject(topic string, schema avro.Schema) (string, error) {
	named, ok := schema.(avro.NamedSchema)
	if !ok {
		return "", fmt.Errorf("schema of type %s has no name", schema.Type())
	}
	return topic + "-" + named.FullName(), nil
}

// Serde is safe for concurrent use.
type Serde struct {
	client *srclient.SchemaRegistryClient

	mu       sync.RWMutex
	ids      map[registration]int       // what this process registered
	writers  map[int]avro.Schema        // writer schemas by id
	resolved map[resolution]avro.Schema // writer resolved against reader
}

type registration struct {
	subject     string
	fingerprint [32]byte
}

type resolution struct {
	writerID    int
	fingerprint [32]byte
}

// New returns a Serde talking to the registry at url. Registry calls time out after
// timeout.
func New(url string, timeout time.Duration) *Serde {
	c := srclient.NewSchemaRegistryClient(url, srclient.WithClient(&http.Client{Timeout: timeout}))
	c.CodecCreationEnabled(false) // hamba/avro does the encoding
	return &Serde{
		client:   c,
		ids:      map[registration]int{},
		writers:  map[int]avro.Schema{},
		resolved: map[resolution]avro.Schema{},
	}
}

// Register registers schema under the TopicRecordNameStrategy subject for topic, sets the
// subject's compatibility to BACKWARD_TRANSITIVE, and returns the schema id. Registering a
// schema the registry already holds returns its existing id. A schema that breaks
// compatibility with any earlier version is rejected by the registry.
func (s *Serde) Register(topic string, schema avro.Schema) (int, error) {
	subject, err := Subject(topic, schema)
	if err != nil {
		return 0, err
	}
	key := registration{subject: subject, fingerprint: schema.Fingerprint()}
	s.mu.RLock()
	id, ok := s.ids[key]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}
	if _, err := s.client.ChangeSubjectCompatibilityLevel(subject, Compatibility); err != nil {
		return 0, fmt.Errorf("set compatibility of %s: %w", subject, err)
	}
	// The full JSON form, not schema.String(): the canonical form drops defaults, which
	// the registry needs to judge compatibility.
	text, err := json.Marshal(schema)
	if err != nil {
		return 0, fmt.Errorf("render %s: %w", subject, err)
	}
	registered, err := s.client.CreateSchema(subject, string(text), srclient.Avro)
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", subject, err)
	}
	id = registered.ID()
	s.mu.Lock()
	s.ids[key] = id
	s.writers[id] = schema
	s.mu.Unlock()
	return id, nil
}

// Encode writes v with schema, framed with the id of schema's subject on topic. The first
// call per subject and schema registers it; later calls use the cached id.
func (s *Serde) Encode(topic string, schema avro.Schema, v any) ([]byte, error) {
	id, err := s.Register(topic, schema)
	if err != nil {
		return nil, err
	}
	payload, err := avro.Marshal(schema, v)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", schema.(avro.NamedSchema).FullName(), err)
	}
	return Frame(id, payload), nil
}

// Frame prefixes an Avro payload with the Confluent wire-format header.
func Frame(id int, payload []byte) []byte {
	out := make([]byte, headerLen+len(payload))
	out[0] = magicByte
	binary.BigEndian.PutUint32(out[1:headerLen], uint32(id))
	copy(out[headerLen:], payload)
	return out
}

// SchemaID returns the schema id of a Confluent-framed record.
func SchemaID(data []byte) (int, error) {
	if len(data) < headerLen {
		return 0, &FormatError{Reason: fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(data), headerLen)}
	}
	if data[0] != magicByte {
		return 0, &FormatError{Reason: fmt.Sprintf("magic byte is %#x, want 0", data[0])}
	}
	return int(binary.BigEndian.Uint32(data[1:headerLen])), nil
}

// Decode reads a Confluent-framed record into out, resolving the writer schema named by
// the record's schema id against reader. Errors that retrying cannot fix (bad framing, an
// unknown id, an unresolvable schema, a corrupt payload) have a Permanent method; others,
// such as an unreachable registry, are transient.
func (s *Serde) Decode(data []byte, reader avro.Schema, out any) error {
	id, err := SchemaID(data)
	if err != nil {
		return err
	}
	schema, err := s.readerFor(id, reader)
	if err != nil {
		return err
	}
	if err := avro.Unmarshal(schema, data[headerLen:], out); err != nil {
		return &DecodeError{ID: id, Reader: readerName(reader), Err: err}
	}
	return nil
}

// Writer returns the writer schema of a schema id, from the cache or the registry.
func (s *Serde) Writer(id int) (avro.Schema, error) {
	s.mu.RLock()
	w, ok := s.writers[id]
	s.mu.RUnlock()
	if ok {
		return w, nil
	}
	got, err := s.client.GetSchema(id)
	if err != nil {
		var regErr srclient.Error
		if errors.As(err, &regErr) && regErr.Code/100 == 404 {
			return nil, &UnknownSchemaError{ID: id, Err: err}
		}
		return nil, &RegistryError{Op: fmt.Sprintf("fetch schema id %d", id), Err: err}
	}
	w, err = avro.Parse(got.Schema())
	if err != nil {
		return nil, &DecodeError{ID: id, Reader: "(writer schema)", Err: err}
	}
	s.mu.Lock()
	s.writers[id] = w
	s.mu.Unlock()
	return w, nil
}

func (s *Serde) readerFor(id int, reader avro.Schema) (avro.Schema, error) {
	key := resolution{writerID: id, fingerprint: reader.Fingerprint()}
	s.mu.RLock()
	r, ok := s.resolved[key]
	s.mu.RUnlock()
	if ok {
		return r, nil
	}
	writer, err := s.Writer(id)
	if err != nil {
		return nil, err
	}
	if writer.Fingerprint() == reader.Fingerprint() {
		r = reader
	} else {
		r, err = avro.NewSchemaCompatibility().Resolve(reader, writer)
		if err != nil {
			return nil, &DecodeError{ID: id, Reader: readerName(reader), Err: err}
		}
	}
	s.mu.Lock()
	s.resolved[key] = r
	s.mu.Unlock()
	return r, nil
}

func readerName(s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return n.FullName()
	}
	return string(s.Type())
}
