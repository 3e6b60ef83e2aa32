package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const v1 = `{"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "id", "type": "string"}]}`

func write(t *testing.T, dir, schema string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "Thing.avsc"), []byte(schema), 0o644); err != nil {
		t.Fatal(err)
	}
}

func quiet(t *testing.T) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCompatibilityGate(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, v1)
	if err := release(dir, quiet(t)); err != nil {
		t.Fatal(err)
	}
	// An optional field with a default reads every released version.
	write(t, dir, `{"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "id", "type": "string"},
		{"name": "note", "type": ["null", "string"], "default": null}]}`)
	if err := check(dir, quiet(t)); err != nil {
		t.Fatalf("compatible change refused: %v", err)
	}
	if err := release(dir, quiet(t)); err != nil {
		t.Fatal(err)
	}
	rel, err := readReleased(dir)
	if err != nil || len(rel["t.Thing"]) != 2 {
		t.Fatalf("released versions: %v %v", rel, err)
	}
	// A new required field cannot be read from old records.
	write(t, dir, `{"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "id", "type": "string"},
		{"name": "note", "type": ["null", "string"], "default": null}, {"name": "amount", "type": "long"}]}`)
	if err := check(dir, quiet(t)); err == nil || !strings.Contains(err.Error(), "t.Thing") || !strings.Contains(err.Error(), "released version 1") {
		t.Fatalf("incompatible change: %v", err)
	}
	// A changed type neither.
	write(t, dir, `{"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "id", "type": "long"}]}`)
	if err := check(dir, quiet(t)); err == nil {
		t.Fatal("a changed field type passed")
	}
	// A released event whose schema disappeared.
	if err := os.Remove(filepath.Join(dir, "Thing.avsc")); err != nil {
		t.Fatal(err)
	}
	if err := check(dir, quiet(t)); err == nil || !strings.Contains(err.Error(), "is gone") {
		t.Fatalf("deleted schema: %v", err)
	}
}

// The committed lock file matches the committed schemas: every change to a contract was
// checked and, once released, recorded.
func TestRepositorySchemasAreCompatible(t *testing.T) {
	if err := check("../..", quiet(t)); err != nil {
		t.Fatal(err)
	}
}
