// Package platform is the shared foundation of the orderflow services: Kafka and Avro
// plumbing, the transactional outbox, idempotent consumers, read-model projections,
// Postgres access, configuration, telemetry and the HTTP health surface.
//
// It knows no business type. Services depend on it; it depends on no service.
package platform
