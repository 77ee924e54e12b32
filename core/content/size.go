package content

import (
	"context"
	"fmt"

	cid "github.com/ipfs/go-cid"
	"golang.org/x/sys/unix"

	"github.com/avnode/avnode/core/fault"
)

// ErrTooLarge is wrapped by the error for content that declares more bytes
// than a reader allows.
var ErrTooLarge error = fault.New(fault.TooLarge, "content too large")

// TooLargeError names the size content declares and the limit it is over.
type TooLargeError struct {
	CID      cid.Cid
	Declared int64
	Limit    int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s declares %d bytes (%s), over the limit of %d bytes (%s)",
		e.CID, e.Declared, FormatBytes(e.Declared), e.Limit, FormatBytes(e.Limit))
}

func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// CheckDeclared refuses a declared size over limit (limit < 0: none).
func CheckDeclared(c cid.Cid, declared, limit int64) error {
	if limit >= 0 && declared > limit {
		return &TooLargeError{CID: c, Declared: declared, Limit: limit}
	}
	return nil
}

// SizeMismatch is the error for a block whose size is not what its parent says.
func SizeMismatch(c cid.Cid, declared, got int64) error {
	return sizeMismatch(c, declared, got)
}

// VerifySize checks the DAG at root as it is in bs, before anything of it
// is written out: the root's declared size is at most limit (limit < 0:
// none), every block is present, and every child holds the size its parent
// declares. It returns the root's kind and its size, now verified. Each
// distinct block is checked once, so a DAG that names one block many times
// costs what its distinct blocks cost, however large it claims to be.
func VerifySize(ctx context.Context, root cid.Cid, bs *Blockstore, limit int64) (kind string, size int64, err error) {
	kind, declared, err := Stat(root, bs)
	if err != nil {
		return "", 0, err
	}
	if err := CheckDeclared(root, declared, limit); err != nil {
		return "", 0, err
	}
	v := sizeVerifier{ctx: ctx, bs: bs, sizes: map[cid.Cid]int64{}}
	if size, err = v.size(root, 0); err != nil {
		return "", 0, fmt.Errorf("verify sizes of %s: %w", root, err)
	}
	return kind, size, nil
}

type sizeVerifier struct {
	ctx   context.Context
	bs    *Blockstore
	sizes map[cid.Cid]int64 // blocks checked, with what they hold
}

// size is what block c holds, once its children are checked against it.
func (v *sizeVerifier) size(c cid.Cid, depth int) (int64, error) {
	if n, ok := v.sizes[c]; ok {
		return n, nil
	}
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	if depth > maxDirDepth+maxFileDepth {
		return 0, fmt.Errorf("block %s: nested over %d deep; the DAG is malformed", c, maxDirDepth+maxFileDepth)
	}
	var size int64
	if c.Type() == codecRaw {
		n, err := v.bs.GetSize(c)
		if err != nil {
			return 0, err
		}
		size = int64(n)
	} else {
		data, err := v.bs.Get(c)
		if err != nil {
			return 0, err
		}
		declared, links, err := Sizes(c, data)
		if err != nil {
			return 0, err
		}
		for _, l := range links {
			got, err := v.size(l.CID, depth+1)
			if err != nil {
				return 0, err
			}
			if got != l.Size {
				return 0, sizeMismatch(l.CID, l.Size, got)
			}
		}
		size = declared
	}
	v.sizes[c] = size
	return size, nil
}

// FreeSpace is what the store's file system has free for this user, less
// margin (never below zero).
func (b *Blockstore) FreeSpace(margin int64) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(b.dir, &st); err != nil {
		return 0, fmt.Errorf("block store: free space of %s: %w", b.dir, err)
	}
	return max(int64(st.Bavail)*int64(st.Bsize)-margin, 0), nil // Bsize: int64 on Linux, uint32 on macOS
}

// FormatBytes writes n in binary units: 512 B, 1.5 MiB, 64.0 TiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
