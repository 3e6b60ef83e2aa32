// Package migrations embeds the crm database's numbered SQL migrations.
package migrations

import "embed"

// FS holds the migrations at its root.
//
//go:embed *.sql
var FS embed.FS
