// Package service wires the billing service: its configuration, the topics it owns, the
// events it publishes and its components. It holds no business rules.
package service

import (
	"context"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/billing/internal/adapters/provider"
	"github.com/orderflow/orderflow/services/billing/internal/app"
	"github.com/orderflow/orderflow/services/billing/internal/ports/events"
	billinghttp "github.com/orderflow/orderflow/services/billing/internal/ports/http"
	"github.com/orderflow/orderflow/services/billing/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = app.Source

// Config is the billing service's configuration.
type Config struct {
	config.Base
	// PaymentProvider selects the provider adapter; "local" is the deterministic one.
	PaymentProvider string `env:"ORDERFLOW_PAYMENT_PROVIDER,default=local"`
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	var p config.Problems
	if err := c.Base.Validate(); err != nil {
		p = append(p, err)
	}
	if c.PaymentProvider != "local" {
		p.Add("ORDERFLOW_PAYMENT_PROVIDER", "%q is not a known provider (local)", c.PaymentProvider)
	}
	return p.Err()
}

// Spec describes the service to the shared runtime.
func Spec(version string, cfg *Config) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics:     []kafka.Topic{kafka.EventTopic(contract.TopicBillingPayments, contract.Partitions)},
		Publishes: []boot.Publication{
			{Topic: contract.TopicBillingPayments, Type: contract.PaymentAuthorized},
			{Topic: contract.TopicBillingPayments, Type: contract.PaymentFailed},
			{Topic: contract.TopicBillingPayments, Type: contract.PaymentVoided},
			{Topic: contract.TopicBillingPayments, Type: contract.PaymentCaptured, Linger: true},
			{Topic: contract.TopicBillingPayments, Type: contract.PaymentRefunded},
			{Topic: contract.TopicBillingPayments, Type: contract.InvoiceIssued, Linger: true},
			{Topic: contract.TopicBillingPayments, Type: contract.InvoiceVoided},
		},
		ConsumerGroups: []string{events.PaymentsGroup},
		Models:         []*projection.Model{events.Revenue()},
		Wire: func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
			a := app.New(d.Outbox, provider.NewLocal())
			if err := billinghttp.Register(ctx, d.API, d.Pool, d.Log); err != nil {
				return nil, err
			}
			issuer, err := app.NewIssuer(d.Pool, a, d.Log)
			if err != nil {
				return nil, err
			}
			// Authorizations queue invoices; the issuer numbers them right after the commit.
			c, err := d.NewConsumerWith(events.PaymentsGroup, consumer.Options{AfterCommit: issuer.Wake}, events.Topics...)
			if err != nil {
				return nil, err
			}
			events.Register(c, a)
			return []boot.Runner{c.Run, issuer.Run}, nil
		},
	}
}
