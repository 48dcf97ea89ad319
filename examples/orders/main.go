// Command orders is a small example web app used to exercise Lifeboat: an
// orders API whose state lives in PostgreSQL. See README.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	defaultAddr  = "127.0.0.1:8090"
	maxOrderSize = 1 << 20
	maxCustomer  = 200
)

// schema is created on start; it never changes an existing table.
const schema = `CREATE TABLE IF NOT EXISTS orders (
	id          bigserial PRIMARY KEY,
	customer    text        NOT NULL,
	total_cents bigint      NOT NULL CHECK (total_cents >= 0),
	created_at  timestamptz NOT NULL DEFAULT now(),
	receipt     bytea
)`

// columns is every column, in the order order.scan reads them.
const columns = `id, customer, total_cents, created_at, receipt`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orders:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is cancelled, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("orders", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr, "listen address")
	dsn := fs.String("dsn", "", "PostgreSQL connection string without a password (default $ORDERS_DSN); the password comes from PGPASSWORD or PGPASSFILE")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *dsn == "" {
		*dsn = getenv("ORDERS_DSN")
	}
	if *dsn == "" {
		return errors.New("no database: pass -dsn or set ORDERS_DSN")
	}
	if dsnHasPassword(*dsn) {
		return errors.New("the DSN holds a password: remove it and use PGPASSWORD or a 0600 PGPASSFILE")
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	s, err := newServer(ctx, *dsn, logger)
	if err != nil {
		return err
	}
	defer s.Close()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "database", s.where)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

var kvPassword = regexp.MustCompile(`(^|\s)password\s*=`)

// dsnHasPassword reports whether a URL or key=value connection string
// carries a password itself.
func dsnHasPassword(dsn string) bool {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return strings.Contains(dsn, "password") // unparsable: be safe
		}
		if _, ok := u.User.Password(); ok {
			return true
		}
		return u.Query().Has("password")
	}
	return kvPassword.MatchString(dsn)
}

type server struct {
	pool  *pgxpool.Pool
	where string // user@host:port/database, for logs
	log   *slog.Logger
	mux   *http.ServeMux
}

type order struct {
	ID         int64     `json:"id"`
	Customer   string    `json:"customer"`
	TotalCents int64     `json:"total_cents"`
	CreatedAt  time.Time `json:"created_at"`
	Receipt    []byte    `json:"receipt,omitempty"` // base64 in JSON
}

// newServer connects to the database and creates the schema. A database
// that is unreachable or damaged is logged, not fatal: the app still
// starts and /healthz reports the failure.
func newServer(ctx context.Context, dsn string, logger *slog.Logger) (*server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid DSN: %w", err) // pgx redacts passwords
	}
	cfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	s := &server{pool: pool, log: logger, mux: http.NewServeMux(),
		where: fmt.Sprintf("%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database)}
	initCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := pool.Exec(initCtx, schema); err != nil {
		s.log.Error("database init failed", "err", err)
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("POST /orders", s.createOrder)
	s.mux.HandleFunc("GET /orders", s.listOrders)
	s.mux.HandleFunc("GET /orders/{id}", s.getOrder)
	return s, nil
}

func (s *server) Close() { s.pool.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// ServeHTTP logs each request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	s.mux.ServeHTTP(sw, r)
	s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", time.Since(start))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *server) serverError(w http.ResponseWriter, what string, err error) {
	s.log.Error(what, "err", err)
	httpError(w, http.StatusInternalServerError, what)
}

// healthz reads every column of the table, so a missing table or column
// (not only a lost connection) makes the app unhealthy.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM orders ORDER BY id LIMIT 1`)
	if err == nil {
		_, err = pgx.CollectRows(rows, scanOrder)
	}
	if err != nil {
		s.log.Error("health check failed", "err", err)
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}

func scanOrder(row pgx.CollectableRow) (order, error) {
	var o order
	err := row.Scan(&o.ID, &o.Customer, &o.TotalCents, &o.CreatedAt, &o.Receipt)
	o.CreatedAt = o.CreatedAt.UTC()
	return o, err
}

func (s *server) createOrder(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Customer   string `json:"customer"`
		TotalCents *int64 `json:"total_cents"`
		Receipt    []byte `json:"receipt"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxOrderSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			httpError(w, http.StatusRequestEntityTooLarge, "order exceeds 1 MiB")
		} else {
			httpError(w, http.StatusBadRequest, "invalid JSON body")
		}
		return
	}
	in.Customer = strings.TrimSpace(in.Customer)
	switch {
	case in.Customer == "":
		httpError(w, http.StatusBadRequest, "customer is required")
		return
	case len(in.Customer) > maxCustomer:
		httpError(w, http.StatusBadRequest, "customer is too long")
		return
	case in.TotalCents == nil || *in.TotalCents < 0:
		httpError(w, http.StatusBadRequest, "total_cents must be a number >= 0")
		return
	}
	rows, err := s.pool.Query(r.Context(), `INSERT INTO orders (customer, total_cents, receipt)
		VALUES ($1, $2, $3) RETURNING `+columns, in.Customer, *in.TotalCents, in.Receipt)
	var o order
	if err == nil {
		o, err = pgx.CollectExactlyOneRow(rows, scanOrder)
	}
	if err != nil {
		s.serverError(w, "insert order", err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/orders/%d", o.ID))
	writeJSON(w, http.StatusCreated, o)
}

// listOrders returns the orders by id; ?after=ID and ?limit=N page them.
func (s *server) listOrders(w http.ResponseWriter, r *http.Request) {
	after, limit := int64(0), int64(-1)
	q := r.URL.Query()
	var err error
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil {
			httpError(w, http.StatusBadRequest, "invalid after")
			return
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.ParseInt(v, 10, 64); err != nil || limit < 1 {
			httpError(w, http.StatusBadRequest, "invalid limit")
			return
		}
	}
	sql := `SELECT ` + columns + ` FROM orders WHERE id > $1 ORDER BY id`
	args := []any{after}
	if limit > 0 {
		sql += ` LIMIT $2`
		args = append(args, limit)
	}
	rows, err := s.pool.Query(r.Context(), sql, args...)
	var list []order
	if err == nil {
		list, err = pgx.CollectRows(rows, scanOrder)
	}
	if err != nil {
		s.serverError(w, "list orders", err)
		return
	}
	if list == nil {
		list = []order{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid order id")
		return
	}
	rows, err := s.pool.Query(r.Context(), `SELECT `+columns+` FROM orders WHERE id = $1`, id)
	var o order
	if err == nil {
		o, err = pgx.CollectExactlyOneRow(rows, scanOrder)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		httpError(w, http.StatusNotFound, "order not found")
	case err != nil:
		s.serverError(w, "get order", err)
	default:
		writeJSON(w, http.StatusOK, o)
	}
}
