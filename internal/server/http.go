package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/lifeboat-vault/lifeboat/internal/catalog"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// statusOf maps error codes to HTTP statuses: one table.
var statusOf = map[lifeboat.Code]int{
	lifeboat.EInvalid:     http.StatusBadRequest,
	lifeboat.ENotFound:    http.StatusNotFound,
	lifeboat.EExists:      http.StatusConflict,
	lifeboat.EAuth:        http.StatusUnauthorized,
	lifeboat.EForbidden:   http.StatusForbidden,
	lifeboat.EUnavailable: http.StatusServiceUnavailable,
	lifeboat.ECorrupt:     http.StatusUnprocessableEntity,
	lifeboat.EPartial:     http.StatusOK,
	lifeboat.EInterrupted: http.StatusServiceUnavailable,
	lifeboat.ERateLimited: http.StatusTooManyRequests,
	lifeboat.EApproval:    http.StatusAccepted,
	lifeboat.EInternal:    http.StatusInternalServerError,
}

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail"`
	Code     string `json:"code"`
	Instance string `json:"instance,omitempty"`
}

func writeProblem(w http.ResponseWriter, r *http.Request, err error) {
	code := lifeboat.ErrorCode(err)
	st := statusOf[code]
	if st == 0 {
		st = http.StatusInternalServerError
	}
	detail := err.Error()
	if code == lifeboat.EInternal {
		var le *lifeboat.Error
		if !errors.As(err, &le) {
			detail = "internal error" // unexpected errors may carry anything; the log has it
		}
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(st)
	json.NewEncoder(w).Encode(Problem{Type: "https://lifeboat.dev/problems/" + string(code), Title: http.StatusText(st), Status: st,
		Detail: strings.ReplaceAll(detail, "\n", "; "), Code: string(code), Instance: r.URL.Path})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// maxBody bounds request bodies.
const maxBody = 8 << 20

// decode reads a JSON body strictly: unknown fields and trailing data are
// errors naming the field or offset.
func decode(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "request body: %v", err)
	}
	if len(body) > maxBody {
		return lifeboat.Errorf(lifeboat.EInvalid, "request body is larger than %d bytes", maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "request body: %s", jsonError(body, err))
	}
	if d.More() {
		return lifeboat.Errorf(lifeboat.EInvalid, "request body: data after the JSON value")
	}
	return nil
}

func jsonError(body []byte, err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(body, se.Offset)
		return fmt.Sprintf("line %d, column %d: %v", line, col, se)
	case errors.As(err, &te):
		line, col := lineCol(body, te.Offset)
		return fmt.Sprintf("line %d, column %d: field %q: want %s, got %s", line, col, te.Field, te.Type, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func lineCol(b []byte, off int64) (int, int) {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	line := 1 + bytes.Count(b[:off], []byte("\n"))
	col := int(off) - bytes.LastIndexByte(b[:off], '\n')
	return line, col
}

// page reads ?limit=&after=.
func page(r *http.Request) (catalog.Page, error) {
	pg := catalog.Page{After: r.URL.Query().Get("after")}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return pg, lifeboat.Errorf(lifeboat.EInvalid, "limit %q: want 1 to 1000", l)
		}
		pg.Limit = n
	}
	return pg, nil
}

// List is a page of items; Next is the cursor for the following page.
type List[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

func listOf[T any](items []T, pg catalog.Page, key func(T) string) List[T] {
	l := List[T]{Items: items}
	if l.Items == nil {
		l.Items = []T{}
	}
	lim := pg.Limit
	if lim == 0 {
		lim = 100
	}
	if len(items) == lim {
		l.Next = key(items[len(items)-1])
	}
	return l
}

// handler is an API handler: it returns an error for the adapter to write.
type handler func(w http.ResponseWriter, r *http.Request, p *lifeboat.Principal) error

type principalKey struct{}

// authenticate finds the caller from the Bearer token.
func (s *Server) authenticate(r *http.Request) (*lifeboat.Principal, error) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		return nil, lifeboat.Errorf(lifeboat.EAuth, "no API token: send Authorization: Bearer TOKEN")
	}
	p, err := s.db.Authenticate(r.Context(), strings.TrimSpace(tok))
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, lifeboat.Errorf(lifeboat.EAuth, "invalid, expired or revoked API token")
	}
	return p, err
}

// wrap turns a route into an http.Handler: authentication, the route's
// access decision, the handler, and one error writer.
func (s *Server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = withOrigin(w, r)
		kept, err := keepBody(r)
		if err != nil {
			writeProblem(w, r, err)
			return
		}
		r = kept
		var p *lifeboat.Principal
		if rt.Action != "" {
			if ap, ok := r.Context().Value(approvedKey{}).(*approved); ok {
				p = ap.principal // an approved request, run as its requester
			} else if p, err = s.authenticate(r); err != nil {
				writeProblem(w, r, err)
				return
			}
			if err := s.authorize(r, rt, p); err != nil {
				writeProblem(w, r, err)
				return
			}
		}
		if err := rt.Handler(w, r, p); err != nil {
			var ea *errApproval
			if errors.As(err, &ea) {
				writeApproval(w, ea)
				return
			}
			if lifeboat.ErrorCode(err) == lifeboat.EInternal {
				s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			writeProblem(w, r, err)
		}
	})
}
