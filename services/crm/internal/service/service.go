// Package service wires the crm service: its configuration, the topics it owns, the
// events it publishes and its components. It holds no business rules.
package service

import (
	"context"
	"net"
	"net/mail"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/orderflow/orderflow/avro/contract"
	"github.com/orderflow/orderflow/platform/boot"
	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/consumer"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
	"github.com/orderflow/orderflow/services/crm/internal/adapters/smtp"
	"github.com/orderflow/orderflow/services/crm/internal/app"
	"github.com/orderflow/orderflow/services/crm/internal/ports/events"
	crmhttp "github.com/orderflow/orderflow/services/crm/internal/ports/http"
	"github.com/orderflow/orderflow/services/crm/migrations"
)

// Name is the service's name in logs, metrics, traces and ce_source.
const Name = app.Source

// Config is the crm service's configuration.
type Config struct {
	config.Base
	config.Lingering
	SMTPAddr      string        `env:"ORDERFLOW_SMTP_ADDR,required"`
	MailFrom      string        `env:"ORDERFLOW_MAIL_FROM,default=orders@orderflow.example"`
	FollowUpDelay time.Duration `env:"ORDERFLOW_FOLLOWUP_DELAY,default=72h"`
}

// Validate checks the whole configuration.
func (c *Config) Validate() error {
	var p config.Problems
	if err := c.Base.Validate(); err != nil {
		p = append(p, err)
	}
	if err := c.Lingering.Validate(); err != nil {
		p = append(p, err)
	}
	if _, _, err := net.SplitHostPort(c.SMTPAddr); err != nil {
		p.Add("ORDERFLOW_SMTP_ADDR", "%q is not host:port", c.SMTPAddr)
	}
	if _, err := mail.ParseAddress(c.MailFrom); err != nil {
		p.Add("ORDERFLOW_MAIL_FROM", "%q is not an e-mail address", c.MailFrom)
	}
	if c.FollowUpDelay < 0 {
		p.Add("ORDERFLOW_FOLLOWUP_DELAY", "%v is negative", c.FollowUpDelay)
	}
	return p.Err()
}

// Spec describes the service to the shared runtime.
func Spec(version string, cfg *Config) boot.Spec {
	return boot.Spec{
		Name:       Name,
		Version:    version,
		Migrations: migrations.FS,
		Topics:     []kafka.Topic{kafka.EventTopic(contract.TopicCRMEngagements, contract.Partitions)},
		Publishes: []boot.Publication{
			{Topic: contract.TopicCRMEngagements, Type: contract.FollowUpScheduled, Linger: true},
			{Topic: contract.TopicCRMEngagements, Type: contract.CustomerNotified, Linger: true},
		},
		ConsumerGroups: []string{events.EngagementsGroup},
		Models:         []*projection.Model{events.CustomerTimeline()},
		Wire: func(ctx context.Context, d *boot.Deps) ([]boot.Runner, error) {
			a := app.New(d.Pool, d.Outbox, smtp.Mailer{Addr: cfg.SMTPAddr, From: cfg.MailFrom}, cfg.FollowUpDelay, d.Log)
			if err := a.ExportMetrics(otel.Meter("github.com/orderflow/orderflow/services/crm/internal/app")); err != nil {
				return nil, err
			}
			if err := crmhttp.Register(ctx, d.API, d.Pool, d.Log); err != nil {
				return nil, err
			}
			c, err := d.NewConsumerWith(events.EngagementsGroup, consumer.Options{Linger: cfg.ConsumerLinger, AfterCommit: a.Wake}, events.Topics...)
			if err != nil {
				return nil, err
			}
			events.Register(c, a)
			return []boot.Runner{c.Run, a.RunMailer, a.RunFollowUps}, nil
		},
	}
}
