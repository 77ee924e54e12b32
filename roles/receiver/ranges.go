package main

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Every range http.ServeContent serves is a seek, and every seek a new
// read stream from the node: a request with thousands of small ranges
// cost the node and the gateway seconds of CPU each. So before
// ServeContent sees a Range header, its ranges are sorted and merged where
// they overlap or lie within rangeGap of each other (RFC 9110 §14.2 lets a
// server coalesce them), and if more than maxRanges are left the header is
// dropped and the whole file served, as nginx's max_ranges and Apache's
// MaxRanges do: never more streams than maxRanges, never more bytes than
// the file.
const (
	maxRanges = 16
	rangeGap  = 8 << 10 // less than a new stream from the node costs
)

type byteSpan struct{ start, end int64 } // [start, end)

// boundRanges rewrites r's Range header for a file of size bytes. A header
// it cannot read is dropped (the whole file is served), so that no reading
// of it by ServeContent can get past the bound.
func boundRanges(r *http.Request, size int64) {
	spec := r.Header.Get("Range")
	if spec == "" {
		return
	}
	spans, ok := parseSpans(spec, size)
	if !ok { // whatever ServeContent would make of it, it gets the whole file
		r.Header.Del("Range")
		return
	}
	if len(spans) == 0 {
		return // nothing starts inside the file: ServeContent answers 416
	}
	slices.SortFunc(spans, func(a, b byteSpan) int { return cmp.Compare(a.start, b.start) })
	merged := spans[:1]
	for _, s := range spans[1:] {
		last := &merged[len(merged)-1]
		if s.start <= last.end+rangeGap {
			last.end = max(last.end, s.end)
			continue
		}
		merged = append(merged, s)
	}
	if len(merged) > maxRanges {
		r.Header.Del("Range")
		return
	}
	parts := make([]string, len(merged))
	for i, s := range merged {
		parts[i] = fmt.Sprintf("%d-%d", s.start, s.end-1)
	}
	r.Header.Set("Range", "bytes="+strings.Join(parts, ","))
}

// parseSpans reads "bytes=a-b,c-,-n" as net/http does, keeping the ranges
// that start inside the file; ok is false for a header it cannot read.
func parseSpans(spec string, size int64) (spans []byteSpan, ok bool) {
	list, found := strings.CutPrefix(spec, "bytes=")
	if !found {
		return nil, false
	}
	for part := range strings.SplitSeq(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" { // net/http skips empty items: so must the count
			continue
		}
		first, last, found := strings.Cut(part, "-")
		if !found {
			return nil, false
		}
		first, last = strings.TrimSpace(first), strings.TrimSpace(last)
		var s byteSpan
		if first == "" { // -n: the last n bytes
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return nil, false
			}
			s = byteSpan{max(size-n, 0), size}
		} else {
			start, err := strconv.ParseInt(first, 10, 64)
			if err != nil || start < 0 {
				return nil, false
			}
			end := size
			if last != "" {
				l, err := strconv.ParseInt(last, 10, 64)
				if err != nil || l < start {
					return nil, false
				}
				end = min(l+1, size)
			}
			s = byteSpan{start, end}
		}
		if s.start < size && s.start < s.end {
			spans = append(spans, s)
		}
	}
	return spans, true
}
