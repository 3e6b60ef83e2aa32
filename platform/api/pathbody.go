package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/orderflow/orderflow/platform/httpserver"
)

// pathWinsSilently refuses a REST body that names a path parameter with another value.
// A route whose body is the whole request ("*") and whose path carries one of its fields
// (PUT /v1/products/{sku}) has the gateway decode the body and then overwrite that field
// from the path, so {"sku": "B"} sent to /v1/products/A upserted A and said nothing
// about B. The same value in both places, or none in the body, passes; anything the
// body cannot be read as is left to the gateway's decoder, which names it.
func pathWinsSilently(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, pathParams map[string]string) {
		if len(pathParams) == 0 || r.Body == nil || r.Body == http.NoBody {
			next(w, r, pathParams)
			return
		}
		// GuardBody has already read the body into memory, at most the size limit.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			httpserver.WriteError(w, http.StatusBadRequest, "malformed_json", "", "the request body could not be read")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if field, bodyValue, pathValue, differs := bodyDiffersFromPath(body, pathParams); differs {
			httpserver.WriteError(w, http.StatusBadRequest, "invalid_field", field,
				field+" is "+pathValue+" in the path and "+bodyValue+" in the body; leave it out of the body or send the same value")
			return
		}
		next(w, r, pathParams)
	}
}

// bodyDiffersFromPath reports the first path parameter that the JSON object in body
// gives another value, under its proto name or its JSON name, with both values quoted.
func bodyDiffersFromPath(body []byte, pathParams map[string]string) (field, bodyValue, pathValue string, differs bool) {
	var obj map[string]json.RawMessage
	if json.Unmarshal(body, &obj) != nil {
		return "", "", "", false
	}
	for name, value := range pathParams {
		for _, key := range []string{name, jsonName(name)} {
			raw, ok := obj[key]
			if !ok {
				continue
			}
			var s string
			if json.Unmarshal(raw, &s) != nil {
				continue // not a string: the decoder refuses it by the field's type
			}
			if s != value {
				b, _ := json.Marshal(s)
				p, _ := json.Marshal(value)
				return name, string(b), string(p), true
			}
		}
	}
	return "", "", "", false
}

// jsonName is protojson's JSON name of a proto field name: lowerCamelCase.
func jsonName(protoName string) string {
	parts := strings.Split(protoName, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}
