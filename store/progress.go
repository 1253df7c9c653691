package store

import "context"

// Progress hears how far a long store operation has got: the organisation-wide
// revocation and the register import, which change many rows in one transaction.
// Begin comes at the start of each attempt with the number of rows to change (a
// retried transaction begins again), Add after each. A command puts one in the
// context (WithProgress) to show a progress line; the server puts none.
type Progress interface {
	Begin(total int)
	Add(n int)
}

type progressKey struct{}

// WithProgress is ctx carrying p, which the store's long operations under ctx tell
// how far they have got (as net/http/httptrace carries its hooks).
func WithProgress(ctx context.Context, p Progress) context.Context {
	return context.WithValue(ctx, progressKey{}, p)
}

// progressOf is the Progress ctx carries, or one that hears nothing.
func progressOf(ctx context.Context) Progress {
	if p, ok := ctx.Value(progressKey{}).(Progress); ok && p != nil {
		return p
	}
	return noProgress{}
}

type noProgress struct{}

func (noProgress) Begin(int) {}
func (noProgress) Add(int)   {}
