package crmv1

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the crm API, generated from
// crm.proto by protoc-gen-openapiv2; the service serves it at /openapi.json.
//
//go:embed crm.swagger.json
var OpenAPI []byte
