// Package api is the typed HTTP client of Lifeboat's API, used by the CLI
// (and the end-to-end tests). Errors come back as *lifeboat.Error with the
// code the server's problem+json named, so exit codes survive the wire.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Client talks to one server with one token.
type Client struct {
	BaseURL string // http://127.0.0.1:7480
	Token   string
	HTTP    *http.Client
}

// New makes a client.
func New(base, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

type problem struct {
	Detail string `json:"detail"`
	Code   string `json:"code"`
	Status int    `json:"status"`
}

// Do sends a request with a JSON body (nil: none) and decodes the JSON
// answer into out (nil: discarded). headers may add e.g. Idempotency-Key.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, headers ...string) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return lifeboat.Errorf(lifeboat.EInvalid, "server URL %q: %v", c.BaseURL, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		var ne net.Error
		var ue *url.Error
		if errors.As(err, &ne) || errors.As(err, &ue) {
			return lifeboat.Errorf(lifeboat.EUnavailable, "server %s is not reachable: %v", c.BaseURL, unwrapURL(err))
		}
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return lifeboat.Errorf(lifeboat.EUnavailable, "server %s: %v", c.BaseURL, err)
	}
	if resp.StatusCode == http.StatusAccepted && resp.Header.Get("Lifeboat-Approval") != "" {
		var p problem
		json.Unmarshal(data, &p)
		return &lifeboat.Error{Code: lifeboat.EApproval, Message: p.Detail}
	}
	if resp.StatusCode >= 300 {
		var p problem
		if json.Unmarshal(data, &p) == nil && p.Code != "" {
			return &lifeboat.Error{Code: lifeboat.Code(p.Code), Message: p.Detail}
		}
		return lifeboat.Errorf(codeOf(resp.StatusCode), "server %s: HTTP %d: %s", c.BaseURL, resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return lifeboat.Errorf(lifeboat.EInternal, "server %s: unreadable answer to %s %s: %v", c.BaseURL, method, path, err)
		}
	}
	return nil
}

func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func codeOf(status int) lifeboat.Code {
	switch status {
	case 400, 422:
		return lifeboat.EInvalid
	case 401:
		return lifeboat.EAuth
	case 403:
		return lifeboat.EForbidden
	case 404:
		return lifeboat.ENotFound
	case 409:
		return lifeboat.EExists
	case 503:
		return lifeboat.EUnavailable
	}
	return lifeboat.EInternal
}

// Path builds a URL path from a format with escaped arguments.
func Path(format string, args ...string) string {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = url.PathEscape(a)
	}
	return fmt.Sprintf(format, esc...)
}
