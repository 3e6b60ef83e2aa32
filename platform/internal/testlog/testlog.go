// Package testlog is a log sink for tests that read what a running component logged.
package testlog

import (
	"bytes"
	"sync"
)

// Buffer collects what is written to it; safe to read while another goroutine writes.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
