package hosting

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"

	"github.com/avnode/avnode/core/content"
)

// FreeMargin is the free space a get leaves on the store's disk when
// content.max_fetch_mb is 0; the limit is then never below it either.
const FreeMargin = 1 << 30

// fetchLimit is the most one get may fetch and write, in bytes.
func (s *Service) fetchLimit() (int64, error) {
	if s.maxFetchMB > 0 {
		return int64(s.maxFetchMB) << 20, nil
	}
	free, err := s.Blocks.FreeSpace(FreeMargin)
	if err != nil {
		return 0, err
	}
	return max(free, FreeMargin), nil
}

// explainLimit says what to do about content over the limit.
func (s *Service) explainLimit(err error) error {
	if !errors.Is(err, content.ErrTooLarge) {
		return err
	}
	if s.maxFetchMB > 0 {
		return fmt.Errorf("%w; content.max_fetch_mb is %d: raise it if you mean to get this", err, s.maxFetchMB)
	}
	return fmt.Errorf("%w; the limit is the free space of the block store's disk less 1 GiB (content.max_fetch_mb 0): free space, or set content.max_fetch_mb, if you mean to get this", err)
}

// VerifiedSize is the kind and size of content held here, once its
// structure is checked (every block present and holding what its parent
// declares) and its size is within the limit. Every size the node reports
// or writes by comes from here: a DAG declaring more than it holds, or more
// than the limit, is refused before anything of it is written.
func (s *Service) VerifiedSize(ctx context.Context, c cid.Cid) (kind string, size int64, err error) {
	limit, err := s.fetchLimit()
	if err != nil {
		return "", 0, err
	}
	if v, ok := s.verified.get(c); ok {
		if err := content.CheckDeclared(c, v.size, limit); err != nil {
			return "", 0, s.explainLimit(err)
		}
		return v.kind, v.size, nil
	}
	kind, size, err = content.VerifySize(ctx, c, s.Blocks, limit)
	if err != nil {
		return "", 0, s.explainLimit(err)
	}
	s.verified.add(c, verifiedSize{kind: kind, size: size})
	return kind, size, nil
}

type verifiedSize struct {
	kind string
	size int64
}

// verifiedSizes remembers content whose size was verified: a CID's blocks
// never change, so a range read of a large file does not walk it again.
// When full it starts over, which only costs walking again.
type verifiedSizes struct {
	mu sync.Mutex
	m  map[cid.Cid]verifiedSize
}

const maxVerified = 4096

func (v *verifiedSizes) get(c cid.Cid) (verifiedSize, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.m[c]
	return s, ok
}

func (v *verifiedSizes) add(c cid.Cid, s verifiedSize) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerified {
		v.m = map[cid.Cid]verifiedSize{}
	}
	v.m[c] = s
}
