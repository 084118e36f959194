package broker

import (
	"context"

	"github.com/spuff-dev/spuff/app/approval"
)

// Approver asks a human, or a cache of earlier answers, whether a request may
// go ahead. It returns the audit method (approval.Method…) or an error with a
// wire code (DENIED, APPROVAL_TIMEOUT).
type Approver interface {
	Approve(ctx context.Context, q *approval.Request) (method string, err error)
}

var _ Approver = (*approval.Approver)(nil)
