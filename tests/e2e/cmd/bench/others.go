package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// otherStacks lists the processes of other stacks that share the machine with the
// benchmark's own: a Kafka broker, a PostgreSQL postmaster, Mailpit, a schema registry or
// an orderflow service that is not one of ours (another developer stack, or a test stack
// left running). Their CPU shows in no column of the report but takes the same cores, so
// a result measured beside them is not comparable to one measured alone.
func otherStacks(ours map[int]bool) []string {
	dirs, _ := os.ReadDir("/proc")
	var out []string
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || ours[pid] {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if c := component(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")); c != "" {
			out = append(out, fmt.Sprintf("%s (pid %d)", c, pid))
		}
	}
	slices.Sort(out)
	return out
}

// component names the part of a stack a command line starts, or returns "".
func component(args []string) string {
	if len(args) == 0 {
		return ""
	}
	name := filepath.Base(args[0])
	switch {
	case slices.Contains(args, "kafka.Kafka"):
		return "kafka"
	case name == "postgres" && slices.Contains(args, "-D"): // a postmaster, not a backend
		return "postgres"
	case strings.HasPrefix(name, "mailpit"):
		return "mailpit"
	case slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, "/registry.yaml") }):
		return "registry"
	case len(args) > 1 && args[1] == "serve" && slices.Contains(serviceDBs, name):
		return name
	}
	return ""
}
