// Package testevent is a small event contract, in two versions, for platform's tests.
package testevent

import (
	"errors"

	"github.com/orderflow/orderflow/platform/events"
)

// V1 is the first version of the contract.
var V1 = events.NewType("orderflow.test.Thing.v1", `{
  "type": "record", "name": "Thing", "namespace": "orderflow.test",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "amount", "type": "long"}
  ]}`)

// V2 adds an optional field, a backward- and forward-compatible change.
var V2 = events.NewType("orderflow.test.Thing.v1", `{
  "type": "record", "name": "Thing", "namespace": "orderflow.test",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "seq", "type": "long"},
    {"name": "amount", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]}`)

// Thing is the Go value of V1.
type Thing struct {
	ID     string `avro:"id"`
	Seq    int64  `avro:"seq"`
	Amount int64  `avro:"amount"`
}

// Validate rejects negative amounts, so tests can produce a payload that decodes but
// fails validation.
func (t *Thing) Validate() error {
	if t.Amount < 0 {
		return errors.New("amount is negative")
	}
	return nil
}

// ThingV2 is the Go value of V2.
type ThingV2 struct {
	ID     string  `avro:"id"`
	Seq    int64   `avro:"seq"`
	Amount int64   `avro:"amount"`
	Note   *string `avro:"note"`
}

// Noted is a second contract, for tests that need two event types on one topic: in the
// outbox's, an event no one waits on at once, which lingers.
var Noted = events.NewType("orderflow.test.Noted.v1", `{
  "type": "record", "name": "Noted", "namespace": "orderflow.test",
  "fields": [{"name": "id", "type": "string"}]}`)

// Note is the Go value of Noted.
type Note struct {
	ID string `avro:"id"`
}
