// Package avro holds orderflow's event contracts: one .avsc file per event under a
// folder per publishing service, the source of truth, and the Go types generated from
// them by `make gen` (hamba/avro's avrogen). Never edit a generated file; change the
// .avsc and regenerate. Every change must stay BACKWARD_TRANSITIVE compatible.
package avro
