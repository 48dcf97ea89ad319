package location_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
	"github.com/lifeboat-vault/lifeboat/internal/storage/location"
)

// Bad S3 endpoints are refused before anything is contacted, and a
// password written into one never appears in the error.
func TestOpenRefusesBadS3Endpoints(t *testing.T) {
	for _, ep := range []string{
		"https://AKID:TopSecretPW@s3.example:443",
		"htps://AKID:TopSecretPW@s3.example:443",
		"https://s3.example:443/some/path",
		"s3.example:443",
	} {
		_, err := location.Open(context.Background(), location.Spec{Location: "s3://bucket/prefix", Endpoint: ep, AccessKey: "AKID", SecretKey: "sk"}, false)
		if err == nil {
			t.Errorf("endpoint %q accepted", ep)
			continue
		}
		if lifeboat.ErrorCode(err) != lifeboat.EInvalid {
			t.Errorf("endpoint %q: %v, want an invalid-input error", ep, err)
		}
		if strings.Contains(err.Error(), "TopSecretPW") {
			t.Errorf("endpoint %q: the password is in the error: %v", ep, err)
		}
	}
}

// Credentials typed into an s3:// location are refused without being
// echoed.
func TestCheckRefusesCredentialsInLocation(t *testing.T) {
	_, err := location.Check("s3://AKID:TopSecretPW@bucket/prefix")
	if lifeboat.ErrorCode(err) != lifeboat.EInvalid || strings.Contains(err.Error(), "TopSecretPW") {
		t.Errorf("check: %v", err)
	}
}

// An endpoint that is a plain web server (answering 200 to everything) is
// named as not answering as S3, with the endpoint in the message, not taken
// for S3 storage without conditional writes; the message names the
// endpoint, so that a wrong AWS_ENDPOINT_URL shows.
func TestOpenNamesEndpointThatIsNoS3(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<html><body>It works!</body></html>")
	}))
	defer srv.Close()
	_, err := location.Open(context.Background(), location.Spec{Location: "s3://bucket/prefix", Endpoint: srv.URL + "/?X-Amz-Security-Token=TopSecret", AccessKey: "AKID", SecretKey: "sk"}, false)
	if lifeboat.ErrorCode(err) != lifeboat.EUnavailable || !strings.Contains(err.Error(), "is it an S3 endpoint") || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("open on a web server: %v", err)
	}
	if strings.Contains(err.Error(), "TopSecret") {
		t.Errorf("the endpoint's query is in the error: %v", err)
	}
}
