// Package service wires the crm service: its configuration, the topics it owns, the
// events it publishes and its components. It holds no business rules.
package service

import (
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/services/crm/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = "crm"

// Config is the crm service's configuration.
type Config struct {
	config.Base
}

// BaseConfig returns the shared part of the configuration.
func (c *Config) BaseConfig() *config.Base { return &c.Base }

// Spec describes the service to the shared runtime.
func Spec(version string) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics:     []kafka.Topic{kafka.EventTopic("crm.engagements", 6)},
	}
}
