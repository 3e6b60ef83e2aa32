// Command crm runs the orderflow crm service: customer timelines, e-mails and follow-ups.
//
// Usage: crm [serve | migrate | dlq ... | version]. Configuration comes from the
// environment (see the README).
package main

import (
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/services/crm/internal/service"
)

// version is set at build time: -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cfg := &service.Config{}
	boot.Main(service.Spec(version, cfg), cfg)
}
