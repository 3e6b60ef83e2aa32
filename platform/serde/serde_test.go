package serde_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/linkedin/goavro/v2"

	"github.com/orderflow/orderflow/platform/internal/testevent"
	"github.com/orderflow/orderflow/platform/kafka/kafkatest"
	"github.com/orderflow/orderflow/platform/serde"
)

func TestFraming(t *testing.T) {
	framed := serde.Frame(258, []byte{0xAA})
	if want := []byte{0, 0, 0, 1, 2, 0xAA}; string(framed) != string(want) {
		t.Fatalf("Frame = %x, want %x", framed, want)
	}
	id, err := serde.SchemaID(framed)
	if err != nil || id != 258 {
		t.Fatalf("SchemaID = %d, %v", id, err)
	}
	for _, bad := range [][]byte{nil, {0, 0, 0}, {1, 0, 0, 0, 1, 2}} {
		_, err := serde.SchemaID(bad)
		var fe *serde.FormatError
		if !errors.As(err, &fe) || !fe.Permanent() {
			t.Errorf("SchemaID(%x) = %v, want a permanent FormatError", bad, err)
		}
	}
}

func TestSubjectIsTopicRecordName(t *testing.T) {
	got, err := serde.Subject("shop.orders", testevent.V1.Schema)
	if err != nil || got != "shop.orders-orderflow.test.Thing" {
		t.Fatalf("Subject = %q, %v", got, err)
	}
}

func TestRoundTripAndRegistration(t *testing.T) {
	t.Parallel()
	url := kafkatest.RegistryURL(t)
	topic := kafkatest.Name("serde")
	s := serde.New(url, 5*time.Second)

	in := testevent.Thing{ID: "o-1", Seq: 7, Amount: 1999}
	data, err := s.Encode(topic, testevent.V1.Schema, in)
	if err != nil {
		t.Fatal(err)
	}
	id, err := serde.SchemaID(data)
	if err != nil {
		t.Fatal(err)
	}

	// The id resolves in the registry under the documented subject, with the
	// compatibility the contract demands.
	var latest struct {
		ID      int    `json:"id"`
		Subject string `json:"subject"`
		Schema  string `json:"schema"`
	}
	getJSON(t, fmt.Sprintf("%s/subjects/%s-orderflow.test.Thing/versions/latest", url, topic), &latest)
	if latest.ID != id {
		t.Fatalf("registry has id %d under the subject, record carries %d", latest.ID, id)
	}
	var cfg struct {
		Level string `json:"compatibilityLevel"`
	}
	getJSON(t, fmt.Sprintf("%s/config/%s-orderflow.test.Thing", url, topic), &cfg)
	if cfg.Level != "BACKWARD_TRANSITIVE" {
		t.Fatalf("subject compatibility %q, want BACKWARD_TRANSITIVE", cfg.Level)
	}

	// A fresh Serde (another process) decodes it by fetching the writer schema by id.
	var out testevent.Thing
	if err := serde.New(url, 5*time.Second).Decode(data, testevent.V1.Schema, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}

	// Another Avro implementation, given only the registry, reads the same bytes: what
	// any Confluent-compatible consumer does.
	var byID struct {
		Schema string `json:"schema"`
	}
	getJSON(t, fmt.Sprintf("%s/schemas/ids/%d", url, id), &byID)
	codec, err := goavro.NewCodec(byID.Schema)
	if err != nil {
		t.Fatal(err)
	}
	native, _, err := codec.NativeFromBinary(data[5:])
	if err != nil {
		t.Fatalf("goavro cannot read the payload: %v", err)
	}
	rec := native.(map[string]any)
	if rec["id"] != "o-1" || rec["seq"] != int64(7) || rec["amount"] != int64(1999) {
		t.Fatalf("goavro read %v", rec)
	}
}

func TestSchemaEvolutionBothWays(t *testing.T) {
	t.Parallel()
	url := kafkatest.RegistryURL(t)
	topic := kafkatest.Name("serde")
	s := serde.New(url, 5*time.Second)

	// Old writer, new reader: the added optional field takes its default.
	oldData, err := s.Encode(topic, testevent.V1.Schema, testevent.Thing{ID: "a", Seq: 1, Amount: 5})
	if err != nil {
		t.Fatal(err)
	}
	var asNew testevent.ThingV2
	if err := s.Decode(oldData, testevent.V2.Schema, &asNew); err != nil {
		t.Fatalf("new reader, old writer: %v", err)
	}
	if asNew.ID != "a" || asNew.Note != nil {
		t.Fatalf("new reader read %+v", asNew)
	}

	// New writer (registered as version 2 of the same subject), old reader: the field it
	// does not know is skipped.
	note := "gift"
	newData, err := s.Encode(topic, testevent.V2.Schema, testevent.ThingV2{ID: "b", Seq: 2, Amount: 6, Note: &note})
	if err != nil {
		t.Fatalf("register v2: %v", err)
	}
	oldID, _ := serde.SchemaID(oldData)
	newID, _ := serde.SchemaID(newData)
	if oldID == newID {
		t.Fatal("v1 and v2 got the same schema id")
	}
	var asOld testevent.Thing
	if err := serde.New(url, 5*time.Second).Decode(newData, testevent.V1.Schema, &asOld); err != nil {
		t.Fatalf("old reader, new writer: %v", err)
	}
	if asOld != (testevent.Thing{ID: "b", Seq: 2, Amount: 6}) {
		t.Fatalf("old reader read %+v", asOld)
	}
}

func TestIncompatibleSchemaIsRejected(t *testing.T) {
	t.Parallel()
	url := kafkatest.RegistryURL(t)
	topic := kafkatest.Name("serde")
	s := serde.New(url, 5*time.Second)
	if _, err := s.Register(topic, testevent.V1.Schema); err != nil {
		t.Fatal(err)
	}
	// A new required field without a default cannot read old records.
	breaking := avro.MustParse(`{"type":"record","name":"Thing","namespace":"orderflow.test","fields":[
	  {"name":"id","type":"string"},{"name":"seq","type":"long"},{"name":"amount","type":"long"},
	  {"name":"currency","type":"string"}]}`)
	if _, err := s.Register(topic, breaking); err == nil {
		t.Fatal("registry accepted a field without a default under BACKWARD_TRANSITIVE")
	}
}

func TestDecodeErrorsArePermanent(t *testing.T) {
	t.Parallel()
	url := kafkatest.RegistryURL(t)
	s := serde.New(url, 5*time.Second)
	var out testevent.Thing

	err := s.Decode(serde.Frame(987654321, []byte{2, 'x'}), testevent.V1.Schema, &out)
	var unknown *serde.UnknownSchemaError
	if !errors.As(err, &unknown) || !unknown.Permanent() {
		t.Fatalf("unknown id: got %v, want a permanent UnknownSchemaError", err)
	}

	good, err := s.Encode(kafkatest.Name("serde"), testevent.V1.Schema, testevent.Thing{ID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	truncated := good[:6]
	err = s.Decode(truncated, testevent.V1.Schema, &out)
	var de *serde.DecodeError
	if !errors.As(err, &de) || !de.Permanent() {
		t.Fatalf("truncated payload: got %v, want a permanent DecodeError", err)
	}
}

func TestUnreachableRegistryIsTransient(t *testing.T) {
	s := serde.New("http://127.0.0.1:1", time.Second)
	var out testevent.Thing
	err := s.Decode(serde.Frame(1, []byte{0}), testevent.V1.Schema, &out)
	var re *serde.RegistryError
	if !errors.As(err, &re) || !re.Transient() {
		t.Fatalf("got %v, want a transient RegistryError", err)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
