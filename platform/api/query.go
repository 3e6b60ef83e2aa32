package api

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// strictQuery refuses query parameters that name no field of the request, where the
// gateway's default parser silently ignores them: a misspelt filter must not return
// everything.
type strictQuery struct{}

var mapKey = regexp.MustCompile(`^(.*)\[(.*)\]$`)

func (strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key := range values {
		if m := mapKey.FindStringSubmatch(key); m != nil {
			key = m[1]
		}
		if !hasField(msg.ProtoReflect().Descriptor(), strings.Split(key, ".")) {
			return fmt.Errorf("unknown query parameter %q", key)
		}
	}
	return (&runtime.DefaultQueryParser{}).Parse(msg, values, filter)
}

func hasField(md protoreflect.MessageDescriptor, path []string) bool {
	for i, name := range path {
		f := md.Fields().ByName(protoreflect.Name(name))
		if f == nil {
			f = md.Fields().ByJSONName(name)
		}
		if f == nil {
			return false
		}
		if i < len(path)-1 {
			if f.Message() == nil {
				return false
			}
			md = f.Message()
		}
	}
	return true
}
