// Package e2e drives the running suite through the shop's HTTP API, the way a customer
// and an operator would, and checks the outcome in every service's own database and read
// model. It needs the full stack of `make test` (services included); outside it, the
// tests skip.
package e2e
