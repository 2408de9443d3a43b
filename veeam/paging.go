package veeam

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/errgroup"
)

// MaxPages bounds one list read, so that a server reporting an absurd total
// cannot make the client loop for ever.
const MaxPages = 100_000

// maxPasses bounds the re-reads done when the list changed under the read.
const maxPasses = 3

// PageInfo is what a page says about the whole list.
type PageInfo struct {
	// Pages is the number of pages the list has at this page's size.
	Pages int
	// Total is the item count when the API reports one; it is compared
	// between pages to notice a list that changed during the read.
	Total int
}

// PageFunc fetches page n (0-based).
type PageFunc[T any] func(ctx context.Context, n int) ([]T, PageInfo, error)

// OffsetFunc fetches at most limit items starting at offset and returns the
// server's total.
type OffsetFunc[T any] func(ctx context.Context, offset, limit int) (items []T, total int, err error)

// ReadOffsetPages reads a whole offset/limit-paged list (VSPC, VBR): the first
// page, then the rest concurrently (at most concurrency at once), keyed by id
// so that a list that changes during the read neither loses nor duplicates
// items. When the server returns fewer items than asked for on a page that is
// not the last, its smaller page size is used for the remaining pages.
func ReadOffsetPages[T any, K comparable](ctx context.Context, concurrency, limit int, fetch OffsetFunc[T], id func(T) K) ([]T, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("page size %d", limit)
	}
	first, total, err := fetch(ctx, 0, limit)
	if err != nil {
		return nil, err
	}
	size := limit
	if n := len(first); n > 0 && n < limit && n < total {
		size = n // the server caps the page size below what we asked
	}
	info := func(total int) PageInfo { return PageInfo{Pages: ceilDiv(total, size), Total: total} }
	var firstUsed bool
	return ReadPages(ctx, concurrency, func(ctx context.Context, n int) ([]T, PageInfo, error) {
		if n == 0 && !firstUsed {
			firstUsed = true // ReadPages asks for page 0 first, alone
			return first, info(total), nil
		}
		items, total, err := fetch(ctx, n*size, size)
		if err != nil {
			return nil, PageInfo{}, err
		}
		return items, info(total), nil
	}, id)
}

// ReadPages reads a whole page-numbered list. Page 0 is read first and alone;
// the other pages it announces are read concurrently (errgroup, at most
// concurrency at once). If a later page announces more pages, those are read
// too. If the pages disagree about the list's size, the list changed during
// the read and items may have shifted across page boundaries, so the whole
// list is read again (at most maxPasses passes) and the passes are merged by
// id: nothing that existed throughout the read is lost, nothing is
// duplicated, and the newest copy of each item wins.
func ReadPages[T any, K comparable](ctx context.Context, concurrency int, fetch PageFunc[T], id func(T) K) ([]T, error) {
	if concurrency <= 0 {
		concurrency = 1
	}
	m := merger[T, K]{id: id}
	for pass := 1; ; pass++ {
		pages, stable, err := readPass(ctx, concurrency, fetch)
		if err != nil {
			return nil, err
		}
		m.pass = pass
		if pass == 1 {
			n := 0
			for _, p := range pages {
				n += len(p)
			}
			m.items = make([]T, 0, n)
			m.index = make(map[K]int, n)
		}
		for _, p := range pages {
			m.add(p)
		}
		if stable || pass >= maxPasses {
			return m.items, nil
		}
	}
}

// readPass reads every page once and reports whether all pages agreed on
// the list's size.
func readPass[T any](ctx context.Context, concurrency int, fetch PageFunc[T]) ([][]T, bool, error) {
	first, fi, err := fetch(ctx, 0)
	if err != nil {
		return nil, false, err
	}
	if fi.Pages > MaxPages {
		return nil, false, fmt.Errorf("list has %d pages, more than the %d a read may fetch", fi.Pages, MaxPages)
	}
	var (
		mu     sync.Mutex
		pages  = [][]T{first}
		want   = max(fi.Pages, 1)
		stable = true
	)
	for done := 1; ; {
		mu.Lock()
		target := want
		mu.Unlock()
		if done >= target {
			break
		}
		if target > MaxPages {
			return nil, false, fmt.Errorf("list has %d pages, more than the %d a read may fetch", target, MaxPages)
		}
		pages = append(pages, make([][]T, target-done)...)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		for n := done; n < target; n++ {
			g.Go(func() error {
				items, pi, err := fetch(gctx, n)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				pages[n] = items
				if pi != fi {
					stable = false
				}
				want = max(want, pi.Pages) // the list grew: read the new pages next
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return nil, false, err
		}
		done = target
	}
	return pages, stable, nil
}

// merger accumulates pages, deduplicated by id (of any comparable type;
// the zero value means "no id"), keeping first-seen order and the newest
// value.
type merger[T any, K comparable] struct {
	pass  int
	id    func(T) K
	index map[K]int
	items []T
}

func (m *merger[T, K]) add(items []T) {
	var none K
	for _, it := range items {
		k := m.id(it)
		if k == none {
			// Without an id an item cannot be matched across passes:
			// take it from the first pass only.
			if m.pass == 1 {
				m.items = append(m.items, it)
			}
			continue
		}
		if i, ok := m.index[k]; ok {
			m.items[i] = it
			continue
		}
		m.index[k] = len(m.items)
		m.items = append(m.items, it)
	}
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}
