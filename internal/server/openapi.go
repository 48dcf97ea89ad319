package server

import (
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"net/http"
	"regexp"
	"sort"
	"strings"
)

// APIVersion is the version of the API description; it changes whenever the
// golden file testdata/openapi.json changes.
const APIVersion = "1.3.0"

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// OpenAPI builds the API description from the route table, so a route
// cannot exist without being described (and the test compares it with the
// golden file, so a change is deliberate).
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range s.routes() {
		ops := paths[rt.Pattern]
		if ops == nil {
			ops = map[string]any{}
			paths[rt.Pattern] = ops
		}
		op := map[string]any{
			"summary":     rt.Summary,
			"operationId": opID(rt),
			"responses": map[string]any{
				"default":    map[string]any{"description": "an RFC 9457 problem", "content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/Problem"}}}},
				okStatus(rt): map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{}}},
			},
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Pattern, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if rt.Method == "POST" && strings.Contains(rt.Summary, "Idempotency-Key") {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "required": false, "schema": map[string]any{"type": "string"},
				"description": "a retried request with the same key returns the job the first one created"})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Body != "" {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + rt.Body}}}}
		}
		if rt.Action != "" {
			op["security"] = []any{map[string]any{"bearer": []any{}}}
			op["x-lifeboat-permission"] = rt.Action
		} else {
			op["security"] = []any{}
		}
		ops[strings.ToLower(rt.Method)] = op
	}
	schemas := map[string]any{
		"Problem": map[string]any{"type": "object", "required": []string{"type", "title", "status", "detail", "code"}},
	}
	var bodies []string
	for _, rt := range s.routes() {
		if rt.Body != "" {
			bodies = append(bodies, rt.Body)
		}
	}
	sort.Strings(bodies)
	for _, b := range bodies {
		schemas[b] = map[string]any{"type": "object", "description": "see docs/api.md"}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "Lifeboat API", "version": APIVersion},
		"paths":   paths,
		"components": map[string]any{
			"schemas":         schemas,
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}},
		},
	}
}

func okStatus(rt route) string {
	switch {
	case rt.Method == "DELETE" && rt.Pattern != "/api/v1/apps/{app}":
		return "204"
	case rt.Method == "POST" && strings.Contains(rt.Summary, "Start"):
		return "202"
	case rt.Method == "POST" && rt.Pattern == "/api/v1/vaults":
		return "201"
	}
	return "200"
}

func opID(rt route) string {
	p := strings.TrimPrefix(rt.Pattern, "/api/v1/")
	p = pathParam.ReplaceAllString(p, "by-$1")
	p = strings.NewReplacer("/", "-", ".", "-").Replace(strings.Trim(p, "/"))
	return strings.ToLower(rt.Method) + "-" + p
}

func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request, _ *lifeboat.Principal) error {
	return writeJSON(w, http.StatusOK, s.OpenAPI())
}
