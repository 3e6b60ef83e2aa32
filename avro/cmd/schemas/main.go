// Command schemas keeps the event contracts evolvable: every .avsc under avro/ must stay
// BACKWARD_TRANSITIVE compatible with every version of it ever released, the rule the
// schema registry enforces at run time (DESIGN.md section 3), checked here before a
// change can land.
//
// Released versions live in avro/released.json: per record full name, every released
// schema in its canonical form, oldest first.
//
//	schemas check    fail on a schema that cannot read a released version, or a released
//	                 event whose .avsc is gone (make schemas-check, run by CI)
//	schemas release  append the current version of every schema that changed (make schemas-release)
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hamba/avro/v2"
)

func main() {
	if len(os.Args) != 3 || (os.Args[1] != "check" && os.Args[1] != "release") {
		fmt.Fprintln(os.Stderr, "usage: schemas check|release AVRO_DIR")
		os.Exit(2)
	}
	dir := os.Args[2]
	var err error
	if os.Args[1] == "check" {
		err = check(dir, os.Stdout)
	} else {
		err = release(dir, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// lockFile is the name of the released versions under the avro directory.
const lockFile = "released.json"

// Released maps a record's full name to its released schemas, canonical, oldest first.
type Released map[string][]string

// current reads every .avsc under dir: full name -> schema and the file it came from.
func current(dir string) (map[string]avro.Schema, map[string]string, error) {
	schemas, files := map[string]avro.Schema{}, map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".avsc") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		s, err := avro.ParseBytesWithCache(raw, "", &avro.SchemaCache{})
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		named, ok := s.(avro.NamedSchema)
		if !ok {
			return fmt.Errorf("%s: not a named schema", path)
		}
		if prev, dup := files[named.FullName()]; dup {
			return fmt.Errorf("%s and %s both define %s", prev, path, named.FullName())
		}
		schemas[named.FullName()], files[named.FullName()] = s, path
		return nil
	})
	return schemas, files, err
}

func readReleased(dir string) (Released, error) {
	raw, err := os.ReadFile(filepath.Join(dir, lockFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Released{}, nil
	}
	if err != nil {
		return nil, err
	}
	var r Released
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", lockFile, err)
	}
	return r, nil
}

// check reports every incompatibility at once.
func check(dir string, out *os.File) error {
	schemas, files, err := current(dir)
	if err != nil {
		return err
	}
	rel, err := readReleased(dir)
	if err != nil {
		return err
	}
	compat := avro.NewSchemaCompatibility()
	var problems []string
	for _, name := range sortedKeys(rel) {
		reader, ok := schemas[name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s was released but its .avsc is gone: consumers and replays still read it", name))
			continue
		}
		for i, w := range rel[name] {
			writer, err := avro.ParseWithCache(w, "", &avro.SchemaCache{})
			if err != nil {
				return fmt.Errorf("%s: released version %d of %s: %w", lockFile, i+1, name, err)
			}
			if err := compat.Compatible(reader, writer); err != nil {
				problems = append(problems, fmt.Sprintf("%s (%s) cannot read released version %d: %v", name, files[name], i+1, err))
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("schemas break BACKWARD_TRANSITIVE compatibility:\n  %s", strings.Join(problems, "\n  "))
	}
	unreleased := 0
	for name, s := range schemas {
		if v := rel[name]; len(v) == 0 || v[len(v)-1] != s.String() {
			unreleased++
		}
	}
	fmt.Fprintf(out, "%d schemas compatible with every released version (%d changed or new since the last release)\n", len(schemas), unreleased)
	return nil
}

// release checks, then appends every changed or new schema.
func release(dir string, out *os.File) error {
	if err := check(dir, out); err != nil {
		return err
	}
	schemas, _, err := current(dir)
	if err != nil {
		return err
	}
	rel, err := readReleased(dir)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(schemas) {
		canonical := schemas[name].String()
		if v := rel[name]; len(v) == 0 || v[len(v)-1] != canonical {
			rel[name] = append(rel[name], canonical)
			fmt.Fprintf(out, "released %s version %d\n", name, len(rel[name]))
		}
	}
	raw, err := json.MarshalIndent(rel, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, lockFile), append(raw, '\n'), 0o644)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
