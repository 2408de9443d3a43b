package jsonr

import (
	"errors"
	"fmt"
)

// Paging is what a list page's envelope said about the whole list so far.
// Repeated members behave as encoding/json's pointers do: a later object
// updates an earlier one unless a null came between.
type Paging struct {
	// Has is set when the envelope carried a paging object.
	Has   bool
	Total int
}

// Read reads the paging object field (a null forgets an earlier one): its
// total is kept and the other int members named in checked are only
// type-checked, as the wire types declare them.
func (p *Paging) Read(r *Reader, field string, checked ...string) {
	if r.Null() {
		p.Has, p.Total = false, 0
		return
	}
	if !p.Has {
		p.Has, p.Total = true, 0
	}
	r.Object(field, func(k []byte) {
		if Key(k, "total") {
			p.Total = r.Int("total")
			return
		}
		for _, name := range checked {
			if Key(k, name) {
				r.Int(name)
				return
			}
		}
		r.Skip()
	})
}

// ReadList reads a list page, an object whose data member is the array of
// items, and hands each element of data to item (reset drops the items of
// an earlier data member: the last one wins). Every other member goes to
// member, which reads the API's paging object into p or skips it. The
// total is p's when the page had one, else the item count.
func ReadList(body []byte, item func(r *Reader), reset func(), member func(r *Reader, k []byte, p *Paging)) (int, error) {
	r := New(body)
	var (
		hasData bool
		count   int
		p       Paging
	)
	r.Object("response", func(k []byte) {
		if Key(k, "data") {
			reset()
			count = 0
			hasData = r.Array("data", func() { item(r); count++ })
			return
		}
		member(r, k, &p)
	})
	if err := r.End(); err != nil {
		return 0, err
	}
	if !hasData {
		return 0, errors.New("response has no data")
	}
	if !p.Has {
		return count, nil
	}
	if p.Total < 0 {
		return 0, fmt.Errorf("negative total %d", p.Total)
	}
	return p.Total, nil
}
