package boot

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"

	"github.com/orderflow/orderflow/platform/config"
	"github.com/orderflow/orderflow/platform/dlq"
	"github.com/orderflow/orderflow/platform/httpserver"
	"github.com/orderflow/orderflow/platform/kafka"
	"github.com/orderflow/orderflow/platform/projection"
)

const dlqUsage = `usage:
  dlq list    [--group G] [--json]        every dead letter of the group, oldest first
  dlq show    [--group G] OFFSET          one dead letter with all its headers
  dlq redrive [--group G] (--all | OFFSET...)  send dead letters back to their source topic`

// dlqCommand implements `<service> dlq ...`. It talks to Kafka with the service's own
// credentials: who may run it is decided by who holds them.
func dlqCommand(ctx context.Context, spec Spec, base *config.Base, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return &UsageError{Msg: dlqUsage}
	}
	sub := args[0]
	if !slices.Contains([]string{"list", "show", "redrive"}, sub) {
		return &UsageError{Msg: fmt.Sprintf("unknown dlq command %q\n%s", sub, dlqUsage)}
	}
	fs := flag.NewFlagSet("dlq "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	group := fs.String("group", "", "consumer group")
	asJSON := fs.Bool("json", false, "print JSON")
	all := fs.Bool("all", false, "redrive every dead letter")
	if err := fs.Parse(args[1:]); err != nil {
		return &UsageError{Msg: err.Error() + "\n" + dlqUsage}
	}
	g, err := pickGroup(spec, *group)
	if err != nil {
		return err
	}
	kcfg := kafkaConfig(spec, base, slog.New(slog.DiscardHandler))
	offsets, err := parseOffsets(fs.Args())
	if err != nil {
		return err
	}
	switch sub {
	case "list": // page by page: a dead-letter topic can be far larger than memory
		if len(offsets) > 0 {
			return &UsageError{Msg: "dlq list lists them all and takes no OFFSET; dlq show OFFSET shows one\n" + dlqUsage}
		}
		if *asJSON {
			return listJSON(ctx, kcfg, g, stdout)
		}
		n := 0
		err := dlq.Each(ctx, kcfg, g, dlq.MaxPageLimit, func(recs []dlq.Record) error {
			for _, r := range recs {
				fmt.Fprintln(stdout, r.Summary())
			}
			n += len(recs)
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d dead letters in %s\n", n, kafka.DeadLetterTopicName(g))
		return nil
	case "show":
		if len(offsets) != 1 {
			return &UsageError{Msg: "dlq show takes one OFFSET\n" + dlqUsage}
		}
		rec, err := dlq.Get(ctx, kcfg, g, offsets[0])
		if err != nil {
			return err
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rec)
	default: // redrive
		if *all == (len(offsets) > 0) {
			return &UsageError{Msg: "dlq redrive takes --all or OFFSETs, not both or neither\n" + dlqUsage}
		}
		n, err := dlq.Redrive(ctx, kcfg, g, offsets)
		if err != nil && n > 0 {
			return fmt.Errorf("re-drove %d dead letters of %s, then: %w (re-driving them again is harmless)", n, kafka.DeadLetterTopicName(g), err)
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-drove %d dead letters of %s\n", n, kafka.DeadLetterTopicName(g))
		return nil
	}
}

// listJSON writes every dead letter of group as one JSON array, a page at a time.
func listJSON(ctx context.Context, kcfg kafka.Config, g string, w io.Writer) error {
	sep := "["
	err := dlq.Each(ctx, kcfg, g, dlq.MaxPageLimit, func(recs []dlq.Record) error {
		for _, r := range recs {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "%s%s", sep, b); err != nil {
				return err
			}
			sep = ","
		}
		return nil
	})
	if err != nil {
		return err
	}
	if sep == "[" {
		_, err = fmt.Fprintln(w, "[]")
	} else {
		_, err = fmt.Fprintln(w, "]")
	}
	return err
}

// deadLetterGroups names every dead-letter topic of the service: its consumer groups',
// and its read models' (live and replay).
func deadLetterGroups(spec Spec) []string {
	groups := slices.Clone(spec.ConsumerGroups)
	for _, m := range spec.Models {
		g := projection.DeadLetterGroup(spec.Name, m.Name)
		groups = append(groups, g, g+".replay")
	}
	return groups
}

func pickGroup(spec Spec, group string) (string, error) {
	groups := deadLetterGroups(spec)
	if group == "" {
		if len(groups) == 1 {
			return groups[0], nil
		}
		return "", &UsageError{Msg: fmt.Sprintf("--group is required; groups of %s: %v", spec.Name, groups)}
	}
	if !slices.Contains(groups, group) {
		return "", &UsageError{Msg: fmt.Sprintf("unknown group %q; groups of %s: %v", group, spec.Name, groups)}
	}
	return group, nil
}

func parseOffsets(args []string) ([]int64, error) {
	var out []int64
	for _, a := range args {
		o, err := strconv.ParseInt(a, 10, 64)
		if err != nil || o < 0 {
			return nil, &UsageError{Msg: fmt.Sprintf("offset %q is not a non-negative integer", a)}
		}
		out = append(out, o)
	}
	return out, nil
}

// dlqRoutes serves the dead letters over HTTP behind the admin token:
//
//	GET  /admin/dlq/{group}?from=OFFSET&limit=N  a page of dead letters (limit 1-1000, default 100)
//	POST /admin/dlq/{group}/redrive              {"all": true} or {"offsets": [3, 4]}
func dlqRoutes(srv *httpserver.Server, spec Spec, kcfg kafka.Config, token string) {
	srv.Handle("GET /admin/dlq/{group}", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := pickGroup(spec, r.PathValue("group"))
		if err != nil {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_group", "group", err.Error())
			return
		}
		from, limit, qerr := pageParams(r)
		if qerr != nil {
			qerr.Write(w)
			return
		}
		page, err := dlq.List(r.Context(), kcfg, g, from, limit)
		if err != nil {
			httpserver.WriteError(w, http.StatusServiceUnavailable, "kafka_unavailable", "", err.Error())
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, struct {
			Group string `json:"group"`
			dlq.Page
		}{g, page})
	})))
	srv.Handle("POST /admin/dlq/{group}/redrive", httpserver.RequireToken(token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g, err := pickGroup(spec, r.PathValue("group"))
		if err != nil {
			httpserver.WriteError(w, http.StatusNotFound, "unknown_group", "group", err.Error())
			return
		}
		if _, err := httpserver.Query(r); err != nil {
			err.Write(w)
			return
		}
		var body struct {
			All     bool    `json:"all"`
			Offsets []int64 `json:"offsets"`
		}
		if err := httpserver.DecodeJSON(w, r, &body, 1<<16); err != nil {
			err.Message += `; send {"all": true} or {"offsets": [...]}`
			err.Write(w)
			return
		}
		if body.All == (len(body.Offsets) > 0) {
			httpserver.WriteError(w, http.StatusBadRequest, "invalid_body", "offsets", "give either \"all\": true or a non-empty \"offsets\"")
			return
		}
		n, err := dlq.Redrive(r.Context(), kcfg, g, body.Offsets)
		if err != nil {
			msg := err.Error()
			if n > 0 {
				msg = fmt.Sprintf("re-drove %d, then: %v (re-driving them again is harmless)", n, err)
			}
			httpserver.WriteError(w, http.StatusUnprocessableEntity, "redrive_failed", "offsets", msg)
			return
		}
		httpserver.WriteJSON(w, http.StatusOK, map[string]any{"group": g, "redriven": n})
	})))
}

// pageParams reads ?from= and ?limit= of a dead-letter listing, refusing any other
// parameter.
func pageParams(r *http.Request) (from int64, limit int, err *httpserver.RequestError) {
	q, err := httpserver.Query(r, "from", "limit")
	if err != nil {
		return 0, 0, err
	}
	limit = dlq.DefaultPageLimit
	if v := q.Get("from"); v != "" {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, httpserver.Invalid("from", "from %q is not a non-negative offset", v)
		}
		from = n
	}
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > dlq.MaxPageLimit {
			return 0, 0, httpserver.Invalid("limit", "limit %q is not a whole number from 1 to %d", v, dlq.MaxPageLimit)
		}
		limit = n
	}
	return from, limit, nil
}
