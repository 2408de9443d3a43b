package veeam

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// list is a server-side list whose contents tests change between pages.
type list struct {
	mu    sync.Mutex
	items []string
	// maxLimit caps the page size like a server with its own maximum.
	maxLimit int
	// onFetch runs before each page is served (offset of the page).
	onFetch func(l *list, offset int)
	calls   atomic.Int32
	// inFlight and peak measure concurrency.
	inFlight, peak atomic.Int32
}

func newList(n int) *list {
	l := &list{}
	for i := range n {
		l.items = append(l.items, fmt.Sprintf("item-%05d", i))
	}
	return l
}

func (l *list) fetch(_ context.Context, offset, limit int) ([]string, int, error) {
	n := l.inFlight.Add(1)
	defer l.inFlight.Add(-1)
	for {
		p := l.peak.Load()
		if n <= p || l.peak.CompareAndSwap(p, n) {
			break
		}
	}
	l.calls.Add(1)
	if l.onFetch != nil {
		l.onFetch(l, offset)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.maxLimit > 0 && limit > l.maxLimit {
		limit = l.maxLimit
	}
	if offset >= len(l.items) {
		return nil, len(l.items), nil
	}
	end := min(offset+limit, len(l.items))
	return slices.Clone(l.items[offset:end]), len(l.items), nil
}

func ident(s string) string { return s }

func TestReadOffsetPages(t *testing.T) {
	for _, tc := range []struct {
		name      string
		n, limit  int
		maxLimit  int
		wantCalls int32
	}{
		{"empty", 0, 500, 0, 1},
		{"one page", 10, 500, 0, 1},
		{"exact pages", 1000, 500, 0, 2},
		{"odd total", 1001, 500, 0, 3},
		{"server caps page size", 1001, 500, 200, 6},
		{"page size one", 7, 1, 0, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newList(tc.n)
			l.maxLimit = tc.maxLimit
			got, err := ReadOffsetPages(t.Context(), 4, tc.limit, l.fetch, ident)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, l.items) {
				t.Fatalf("got %d items, want %d (first diff matters)", len(got), len(l.items))
			}
			if c := l.calls.Load(); c != tc.wantCalls {
				t.Errorf("%d page requests, want %d", c, tc.wantCalls)
			}
		})
	}
}

func TestReadOffsetPagesConcurrencyBound(t *testing.T) {
	l := newList(100)
	l.onFetch = func(_ *list, offset int) {
		if offset > 0 {
			time.Sleep(5 * time.Millisecond) // let concurrency build up
		}
	}
	if _, err := ReadOffsetPages(t.Context(), 3, 5, l.fetch, ident); err != nil {
		t.Fatal(err)
	}
	if p := l.peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak %d pages in flight, want 2..3 (limit 3)", p)
	}
}

func TestReadOffsetPagesChangingList(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(l *list)
		// want are ids that must be present (existed throughout).
	}{
		{"append", func(l *list) { l.items = append(l.items, "item-zzzzz-1", "item-zzzzz-2") }},
		{"insert at front", func(l *list) { l.items = append([]string{"item-aaaa"}, l.items...) }},
		{"delete at front", func(l *list) { l.items = l.items[3:] }},
		{"grow by pages", func(l *list) {
			for i := range 25 {
				l.items = append(l.items, fmt.Sprintf("item-new-%02d", i))
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newList(23)
			orig := slices.Clone(l.items)
			var changed atomic.Bool
			l.onFetch = func(l *list, offset int) {
				// Change the list once, after the first page was served.
				if offset > 0 && changed.CompareAndSwap(false, true) {
					l.mu.Lock()
					tc.change(l)
					l.mu.Unlock()
				}
			}
			got, err := ReadOffsetPages(t.Context(), 2, 5, l.fetch, ident)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]int{}
			for _, s := range got {
				seen[s]++
			}
			for s, n := range seen {
				if n > 1 {
					t.Errorf("%s returned %d times", s, n)
				}
			}
			l.mu.Lock()
			final := slices.Clone(l.items)
			l.mu.Unlock()
			// Everything in the list before and after the change must be there.
			for _, s := range orig {
				if slices.Contains(final, s) && seen[s] == 0 {
					t.Errorf("lost %s", s)
				}
			}
			for _, s := range final {
				if seen[s] == 0 {
					t.Errorf("lost %s (present at the end)", s)
				}
			}
		})
	}
}

func TestReadOffsetPagesErrors(t *testing.T) {
	boom := errors.New("boom")
	l := newList(30)
	l.onFetch = func(_ *list, offset int) {}
	fetch := func(ctx context.Context, offset, limit int) ([]string, int, error) {
		if offset == 20 {
			return nil, 0, boom
		}
		return l.fetch(ctx, offset, limit)
	}
	if _, err := ReadOffsetPages(t.Context(), 2, 10, fetch, ident); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
	huge := func(context.Context, int, int) ([]string, int, error) { return []string{"a"}, 1 << 30, nil }
	if _, err := ReadOffsetPages(t.Context(), 2, 1, huge, ident); err == nil {
		t.Error("absurd total accepted")
	}
	first := func(context.Context, int, int) ([]string, int, error) { return nil, 0, boom }
	if _, err := ReadOffsetPages(t.Context(), 2, 10, first, ident); !errors.Is(err, boom) {
		t.Errorf("first page error = %v", err)
	}
}

func TestReadPagesNumbered(t *testing.T) {
	// A page-numbered list (EM): 3 pages of 2, the last page announcing a
	// fourth one.
	data := [][]string{{"a", "b"}, {"c", "d"}, {"e", "f"}, {"g"}}
	fetch := func(_ context.Context, n int) ([]string, PageInfo, error) {
		pages := 3
		if n == 2 {
			pages = 4
		}
		if n >= len(data) {
			return nil, PageInfo{Pages: pages}, nil
		}
		return data[n], PageInfo{Pages: pages}, nil
	}
	got, err := ReadPages(t.Context(), 2, fetch, ident)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "d", "e", "f", "g"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
