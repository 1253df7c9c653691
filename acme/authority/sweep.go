package authority

import (
	"context"
	"errors"
	"time"

	"github.com/varmenne/varmenne/acme"
)

// SweepStore is what the sweeper needs: failing challenges and orders that a
// serving process which is gone left processing, and those processing for longer
// than any live validation or issuance takes.
type SweepStore interface {
	SweepOrphaned(ctx context.Context, chProblem, orderProblem []byte) (challenges, orders int, err error)
	SweepStuckChallenges(ctx context.Context, olderThan time.Time, problem []byte) (int, error)
	SweepStuckOrders(ctx context.Context, olderThan time.Time, problem []byte) (int, error)
}

// sweepGrace is added to the longest a validation or an issuance may take before
// what is still processing is taken for abandoned.
const sweepGrace = time.Minute

// Sweep fails what a replica that died, or a database that was down while a result
// was recorded, left processing (ROBUSTNESS 76): at once what a serving process
// that is gone left (its liveness lock can be taken, store/liveness.go); and,
// whoever left them, challenges processing for longer
// than ValidationTimeout plus a minute (their authorizations and pending orders
// become invalid with them) and orders processing for longer than the issuance
// timeout plus a minute with no certificate. The client is told to start over. Every
// change is conditional on the row still being stuck, so replicas may sweep at once.
func (a *Authority) Sweep(ctx context.Context) (challenges, orders int, err error) {
	now := a.now()
	chProblem := problemJSON(acme.Errorf(acme.ServerInternal, "the validation was interrupted; create a new order"))
	orderProblem := problemJSON(acme.Errorf(acme.ServerInternal, "issuance was interrupted; create a new order with a new key"))
	challenges, orders, gerr := a.store.SweepOrphaned(ctx, chProblem, orderProblem)
	c, cerr := a.store.SweepStuckChallenges(ctx, now.Add(-(a.cfg.ValidationTimeout + sweepGrace)), chProblem)
	o, oerr := a.store.SweepStuckOrders(ctx, now.Add(-(issueTimeout + sweepGrace)), orderProblem)
	challenges, orders = challenges+c, orders+o
	if challenges > 0 {
		a.log.WarnContext(ctx, "interrupted validations failed", "challenges", challenges)
	}
	if orders > 0 {
		a.log.WarnContext(ctx, "interrupted issuances failed; their intents are left for reconciliation (varmenne intents list)", "orders", orders)
	}
	return challenges, orders, errors.Join(gerr, cerr, oerr)
}

// RunSweeper sweeps every interval until ctx ends. Safe on every replica at once.
func (a *Authority) RunSweeper(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, _, err := a.Sweep(ctx); err != nil && ctx.Err() == nil {
			a.log.ErrorContext(ctx, "sweeping stuck challenges and orders failed", "err", err)
		}
		a.deleteExpiredRateLimits(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
