//go:build !gcready

package server

import (
	"context"

	"github.com/lifeboat-vault/lifeboat/internal/jobs"
	"github.com/lifeboat-vault/lifeboat/internal/lifeboat"
)

// Until the vault's markers and collector land, prune jobs fail clearly.
func (s *Server) runPrune(ctx context.Context, r *jobs.Run) (any, error) {
	return nil, lifeboat.Errorf(lifeboat.EInvalid, "prune is not available in this build yet")
}

func (s *Server) undelete(ctx context.Context, actor string, pt *lifeboat.Point) error {
	return lifeboat.Errorf(lifeboat.EInvalid, "undelete is not available in this build yet")
}
