// Package migrations embeds the logistics database's numbered SQL migrations.
package migrations

import "embed"

// FS holds the migrations at its root.
//
//go:embed *.sql
var FS embed.FS
