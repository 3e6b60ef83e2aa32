// Package deploy checks the deployment descriptions without a container engine or a
// cluster: docker-compose.yml loaded with compose-go (the library Docker Compose uses),
// and every kustomize overlay under deploy/k8s rendered with the kustomize API and
// decoded strictly into the Kubernetes types and the CRD schemas. Each service's
// environment is compared with the variables its binary accepts (`<service> config-keys`).
// And it checks that the Go runtime setting the shared-machine deployments rely on
// (GODEBUG=schedtrace, ADR 0022) still does what it was chosen for on this Go release.
package deploy
