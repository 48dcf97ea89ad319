// Command notes is a small example web app used to exercise Lifeboat: a
// SQLite-backed notes API plus a directory of uploaded files, configured from
// an env file. See README.md.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite"
)

const (
	defaultAddr   = "127.0.0.1:8089"
	maxUploadSize = 32 << 20
	maxNoteSize   = 1 << 20
)

var uploadName = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$`)

type config struct {
	Addr     string
	Greeting string
	APIKey   string // secret: never logged or returned
	DataDir  string
	Logger   *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "notes:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is cancelled, then shuts down gracefully.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("notes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "env file with NOTES_* settings")
	dataDir := fs.String("data", "", "data directory (holds notes.db and uploads/)")
	addr := fs.String("addr", "", "listen address (overrides NOTES_ADDR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataDir == "" {
		return errors.New("-data is required")
	}
	cfg := config{Addr: defaultAddr, DataDir: *dataDir}
	if *configFile != "" {
		env, err := loadEnvFile(*configFile)
		if err != nil {
			return err
		}
		if v, ok := env["NOTES_ADDR"]; ok && v != "" {
			cfg.Addr = v
		}
		cfg.Greeting = env["NOTES_GREETING"]
		cfg.APIKey = env["NOTES_API_KEY"]
	}
	if *addr != "" {
		cfg.Addr = *addr
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg.Logger = logger

	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	defer s.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "data", cfg.DataDir, "auth", cfg.APIKey != "")

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

// loadEnvFile reads KEY=VALUE lines; blank lines and '#' comments are
// skipped and a value may be wrapped in double quotes.
func loadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE", path, n)
		}
		val = strings.TrimSpace(val)
		if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
			val = val[1 : len(val)-1]
		}
		env[key] = val
	}
	return env, sc.Err()
}

type server struct {
	cfg     config
	db      *sql.DB
	uploads string
	log     *slog.Logger
	mux     *http.ServeMux
}

type note struct {
	ID        int64  `json:"id"`
	Title     string `json:"title"`
	Body      string `json:"body"`
	CreatedAt string `json:"created_at"`
}

type upload struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// newServer opens DataDir/notes.db (default rollback journal, so a stopped
// app leaves one self-contained file) and DataDir/uploads/. A database that
// cannot be initialised is logged, not fatal: the app still starts and
// /healthz reports the failure.
func newServer(cfg config) (*server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	uploads := filepath.Join(cfg.DataDir, "uploads")
	if err := os.MkdirAll(uploads, 0o755); err != nil {
		return nil, err
	}
	dsn := "file:" + filepath.Join(cfg.DataDir, "notes.db") +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(DELETE)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	s := &server{cfg: cfg, db: db, uploads: uploads, log: cfg.Logger, mux: http.NewServeMux()}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS notes (
		id INTEGER PRIMARY KEY,
		title TEXT NOT NULL,
		body TEXT NOT NULL,
		created_at TEXT NOT NULL)`); err != nil {
		s.log.Error("database init failed", "err", err)
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /config", s.getConfig)
	s.mux.HandleFunc("POST /notes", s.createNote)
	s.mux.HandleFunc("GET /notes", s.listNotes)
	s.mux.HandleFunc("GET /notes/{id}", s.getNote)
	s.mux.HandleFunc("DELETE /notes/{id}", s.deleteNote)
	s.mux.HandleFunc("PUT /uploads/{name}", s.putUpload)
	s.mux.HandleFunc("GET /uploads/{name}", s.getUpload)
	s.mux.HandleFunc("GET /uploads", s.listUploads)
	return s, nil
}

func (s *server) Close() error { return s.db.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) { w.status = code; w.ResponseWriter.WriteHeader(code) }

// ServeHTTP enforces the API key on mutating requests and logs each request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !s.authorized(r) {
		httpError(sw, http.StatusUnauthorized, "missing or invalid API key")
	} else {
		s.mux.ServeHTTP(sw, r)
	}
	s.log.Info("request", "method", r.Method, "path", r.URL.Path, "status", sw.status, "dur", time.Since(start))
}

func (s *server) authorized(r *http.Request) bool {
	if s.cfg.APIKey == "" {
		return true
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.APIKey)) == 1
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

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	var n int64
	if err := s.db.QueryRowContext(r.Context(), `SELECT count(*) FROM notes`).Scan(&n); err != nil {
		s.log.Error("health check failed", "err", err)
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok")
}

func (s *server) getConfig(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"greeting": s.cfg.Greeting})
}

func (s *server) createNote(w http.ResponseWriter, r *http.Request) {
	var n note
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxNoteSize)).Decode(&n); err != nil {
		httpError(w, http.StatusBadRequest, "invalid JSON body")
		return
	} else if strings.TrimSpace(n.Title) == "" {
		httpError(w, http.StatusBadRequest, "title is required")
		return
	}
	n.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	err := s.db.QueryRowContext(r.Context(), `INSERT INTO notes (title, body, created_at)
		VALUES (?, ?, ?) RETURNING id`, n.Title, n.Body, n.CreatedAt).Scan(&n.ID)
	if err != nil {
		s.serverError(w, "insert note", err)
		return
	}
	writeJSON(w, http.StatusCreated, n)
}

// queryNotes returns the notes matching where (a SQL condition on id).
func (s *server) queryNotes(ctx context.Context, where string, args ...any) ([]note, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, title, body, created_at FROM notes WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	notes := []note{}
	for rows.Next() {
		var n note
		if err := rows.Scan(&n.ID, &n.Title, &n.Body, &n.CreatedAt); err != nil {
			return nil, err
		}
		notes = append(notes, n)
	}
	return notes, rows.Err()
}

func (s *server) listNotes(w http.ResponseWriter, r *http.Request) {
	if notes, err := s.queryNotes(r.Context(), "1"); err != nil {
		s.serverError(w, "list notes", err)
	} else {
		writeJSON(w, http.StatusOK, notes)
	}
}

func (s *server) getNote(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid note id")
		return
	}
	notes, err := s.queryNotes(r.Context(), "id = ?", id)
	switch {
	case err != nil:
		s.serverError(w, "get note", err)
	case len(notes) == 0:
		httpError(w, http.StatusNotFound, "note not found")
	default:
		writeJSON(w, http.StatusOK, notes[0])
	}
}

func (s *server) deleteNote(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid note id")
		return
	}
	var deleted int64
	err = s.db.QueryRowContext(r.Context(), `DELETE FROM notes WHERE id = ? RETURNING id`, id).Scan(&deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		httpError(w, http.StatusNotFound, "note not found")
	case err != nil:
		s.serverError(w, "delete note", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// uploadPath validates the {name} path value and returns its file path.
func (s *server) uploadPath(w http.ResponseWriter, r *http.Request) (string, string, bool) {
	name := r.PathValue("name")
	if !uploadName.MatchString(name) {
		httpError(w, http.StatusBadRequest, "invalid upload name")
		return "", "", false
	}
	return name, filepath.Join(s.uploads, name), true
}

func (s *server) putUpload(w http.ResponseWriter, r *http.Request) {
	name, path, ok := s.uploadPath(w, r)
	if !ok {
		return
	}
	// Write to a dot-prefixed temp file (never a valid name), then rename.
	tmp, err := os.CreateTemp(s.uploads, ".tmp-*")
	if err != nil {
		s.serverError(w, "store upload", err)
		return
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(tmp, h), http.MaxBytesReader(w, r.Body, maxUploadSize))
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, "upload exceeds 32 MiB")
	case err != nil:
		s.serverError(w, "store upload", err)
	default:
		writeJSON(w, http.StatusCreated, upload{Name: name, Size: size, SHA256: hex.EncodeToString(h.Sum(nil))})
	}
}

func (s *server) getUpload(w http.ResponseWriter, r *http.Request) {
	name, path, ok := s.uploadPath(w, r)
	if !ok {
		return
	}
	f, err := os.Open(path)
	var fi os.FileInfo
	if err == nil {
		defer f.Close()
		fi, err = f.Stat()
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		httpError(w, http.StatusNotFound, "upload not found")
	case err != nil:
		s.serverError(w, "open upload", err)
	default:
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, name, fi.ModTime(), f)
	}
}

func (s *server) listUploads(w http.ResponseWriter, r *http.Request) {
	list := []upload{}
	entries, err := os.ReadDir(s.uploads) // sorted by name
	for _, e := range entries {
		if err != nil || !e.Type().IsRegular() || !uploadName.MatchString(e.Name()) {
			continue
		}
		var f *os.File
		if f, err = os.Open(filepath.Join(s.uploads, e.Name())); err == nil {
			h := sha256.New()
			var n int64
			n, err = io.Copy(h, f)
			f.Close()
			list = append(list, upload{Name: e.Name(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		}
	}
	if err != nil {
		s.serverError(w, "list uploads", err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}
