package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/avnode/avnode/sdk"
)

// target is what a request asks for: a path inside a name's content or a CID's.
type target struct {
	name string // empty for /cid/
	root string // the CID paths start from: the name's ROOT, or the /cid/ CID
	path string // "" for the root, else "/a/b": cleaned, no trailing slash
	// cacheControl is the Cache-Control of what is served: a CID's content
	// never changes, a name's may once its zone's TTL has passed.
	cacheControl string
}

// What the gateway tells browsers to cache. Errors are not cached: the
// next try may work.
const (
	immutable = "public, max-age=31536000, immutable"
	noStore   = "no-store"
	sniffLen  = 512 // what http.DetectContentType looks at
)

// cleanPath turns a URL's path inside a site into target.path; ".." cannot
// climb out of the site.
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return ""
	}
	return p
}

// checkedName is name in lower case, or false once a 400 says why it is
// not a name.
func (g *gateway) checkedName(w http.ResponseWriter, name string) (string, bool) {
	name = strings.ToLower(name)
	if err := checkName(name); err != nil {
		g.fail(w, http.StatusBadRequest, "%q is not an avnode name: %v.\nNames look like einstein.avtr or api.coolblog.code.", name, err)
		return "", false
	}
	return name, true
}

// rootedPath is an escaped path with one leading slash: as a Location,
// //evil.example.com or /\evil.example.com would leave the origin.
func rootedPath(p string) string { return "/" + strings.TrimLeft(p, "/\\") }

// serveName serves path p of a name's content.
func (g *gateway) serveName(w http.ResponseWriter, r *http.Request, name, p string) {
	name, ok := g.checkedName(w, name)
	if !ok {
		return
	}
	res, maxAge, err := g.resolve(r.Context(), name)
	if sdk.IsNotFound(err) {
		g.fail(w, http.StatusNotFound, "no such name: %s has no claim or zone in the network (%s).\n"+
			"Check the spelling; a name claimed a moment ago may take a few seconds to appear.", name, status.Convert(err).Message())
		return
	}
	if status.Code(err) == codes.Unavailable && r.Context().Err() == nil {
		// The node cannot ask the network (it knows no peers yet): the
		// name may well exist.
		w.Header().Set("Retry-After", "10")
		g.fail(w, http.StatusServiceUnavailable, "%s: this gateway's node cannot resolve names now (%s).\nTry again in a few seconds.",
			name, status.Convert(err).Message())
		return
	}
	if err != nil {
		g.failLookup(w, r, name, err)
		return
	}
	if res.Root == "" {
		g.fail(w, http.StatusNotFound, "%s exists but has no content yet (its zone has no ROOT record).\n"+
			"Its owner publishes some with `avnode publish DIR --name %s`.", name, name)
		return
	}
	g.serveContent(w, r, target{name: name, root: res.Root, path: cleanPath(p),
		cacheControl: fmt.Sprintf("public, max-age=%d", int64(maxAge/time.Second))})
}

// serveContent serves a file, a directory's index.html, or a listing.
func (g *gateway) serveContent(w http.ResponseWriter, r *http.Request, t target) {
	if t.cacheControl == "" {
		t.cacheControl = immutable
	}
	for retried := false; ; retried = true {
		res, err := g.lookup(r.Context(), t)
		if err != nil {
			g.failLookup(w, r, t.String(), err)
			return
		}
		slash := strings.HasSuffix(r.URL.Path, "/")
		code := http.StatusFound // a name's path may change kind
		if t.name == "" {
			code = http.StatusMovedPermanently
		}
		if res.Kind == "dir" && !slash {
			redirect(w, r, r.URL.EscapedPath()+"/", code)
			return
		}
		if res.Kind != "dir" && slash && t.path != "" {
			redirect(w, r, strings.TrimSuffix(r.URL.EscapedPath(), "/"), code)
			return
		}
		cid, size, fileName := res.CID, res.Size, path.Base(t.path)
		if res.Kind == "dir" {
			index, ok := res.Entry("index.html")
			if !ok || index.Kind != "file" {
				g.serveListing(w, r, t, res)
				return
			}
			cid, size, fileName = index.CID, index.Size, "index.html"
		}
		err = g.serveFile(w, r, t, cid, size, fileName)
		if err == nil {
			return
		}
		if sdk.IsNotFound(err) && !retried {
			// What we remembered is gone from the node's store (collected
			// after the node's fetch lease, FetchLease in core/hosting):
			// forget this root and fetch again, once.
			g.paths.removePrefix(t.root)
			g.paths.removePrefix(res.Root)
			continue
		}
		g.fail(w, http.StatusBadGateway, "%s: the node could not read %s from its store: %s.\nTry again; if it persists, the node's log says more.",
			t, cid, status.Convert(err).Message())
		return
	}
}

func (t target) String() string {
	if t.name != "" {
		return t.name + t.path
	}
	return "/cid/" + t.root + t.path
}

// serveFile serves a file from the node's store; http.ServeContent does
// ranges, HEAD and conditional requests on the ETag. It returns an error,
// before anything is written, when the file cannot be read.
func (g *gateway) serveFile(w http.ResponseWriter, r *http.Request, t target, cid string, size int64, fileName string) error {
	// The first bytes are read before the headers: they tell whether the
	// node still has the file, give the content type of a file whose name
	// does not, and are all of a small file.
	var head []byte
	if size > 0 {
		rc, err := g.host.ReadFile(r.Context(), cid, 0, min(size, sniffLen))
		if err != nil {
			return err
		}
		head, err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	ctype := mime.TypeByExtension(path.Ext(fileName))
	if ctype == "" {
		ctype = http.DetectContentType(head)
	}
	h := w.Header()
	h.Set("Content-Type", ctype)
	h.Set("ETag", `"`+cid+`"`)
	h.Set("Cache-Control", t.cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	f := &fileReader{ctx: r.Context(), host: g.host, cid: cid, size: size, head: head}
	defer f.Close()
	boundRanges(r, size)
	http.ServeContent(w, r, fileName, time.Time{}, f)
	return nil
}

// fileReader is an io.ReadSeeker over a file in the node's store, for
// http.ServeContent: it reads through ReadFile streams of growing windows
// from the offset it is asked for, starting again after a seek. ServeContent
// never says how much of a range it wants, so a first window of 64 KiB
// keeps a short range from making the node read to the end of the file,
// and doubling windows keep a long one to a few streams.
type fileReader struct {
	ctx    context.Context
	host   sdk.Host
	cid    string
	size   int64
	head   []byte // the file's first bytes, already read
	off    int64
	rc     io.ReadCloser // a stream from off, opened on the first Read there
	window int64         // the length the last stream asked for
	end    int64         // where that stream ends
}

const (
	firstReadWindow = 64 << 10
	maxReadWindow   = 8 << 20
)

func (f *fileReader) Read(p []byte) (int, error) {
	if f.off >= f.size {
		return 0, io.EOF
	}
	if f.off < int64(len(f.head)) {
		n := copy(p, f.head[f.off:])
		f.off += int64(n)
		return n, nil
	}
	if f.rc == nil {
		f.window = min(max(2*f.window, firstReadWindow), maxReadWindow)
		length := min(f.window, f.size-f.off)
		rc, err := f.host.ReadFile(f.ctx, f.cid, f.off, length)
		if err != nil {
			return 0, err
		}
		f.rc, f.end = rc, f.off+length
	}
	n, err := f.rc.Read(p)
	f.off += int64(n)
	if err == io.EOF {
		f.rc.Close()
		f.rc = nil
		switch {
		case f.off < f.end:
			err = fmt.Errorf("read %s: the node's stream ended at byte %d of %d: %w", f.cid, f.off, f.size, io.ErrUnexpectedEOF)
		case f.off < f.size: // this window is done, not the file
			err = nil
		}
	}
	return n, err
}

func (f *fileReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.size
	}
	if offset < 0 {
		return f.off, fmt.Errorf("seek %s to %d: before the start", f.cid, offset)
	}
	if offset != f.off {
		f.Close()
		f.off, f.window = offset, 0
	}
	return offset, nil
}

func (f *fileReader) Close() error {
	if f.rc != nil {
		f.rc.Close()
		f.rc = nil
	}
	return nil
}

// serveListing serves an HTML list of a directory without index.html.
func (g *gateway) serveListing(w http.ResponseWriter, r *http.Request, t target, dir *sdk.Fetched) {
	title := html.EscapeString(t.String() + "/")
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>%s</title></head>\n<body>\n<h1>%s</h1>\n<table>\n", title, title)
	if t.path != "" {
		b.WriteString("<tr><td><a href=\"../\">../</a></td><td></td></tr>\n")
	}
	for _, e := range dir.Entries {
		name, size := e.Name, formatSize(e.Size)
		if e.Kind == "dir" {
			name, size = name+"/", ""
		}
		// url.URL escapes the name as a path and protects a name with a
		// colon from being read as a scheme.
		href := (&url.URL{Path: name}).String()
		fmt.Fprintf(&b, "<tr><td><a href=\"%s\">%s</a></td><td>%s</td></tr>\n", html.EscapeString(href), html.EscapeString(name), size)
	}
	b.WriteString("</table>\n</body></html>\n")
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("ETag", `"`+dir.CID+`"`)
	h.Set("Cache-Control", t.cacheControl)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b.Bytes()))
}

func formatSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// redirect sends a redirect to a path on the request's own origin: a
// relative Location, with one leading slash, so that a path like
// //evil.example.com cannot send the browser to another host.
func redirect(w http.ResponseWriter, r *http.Request, to string, code int) {
	to = rootedPath(to)
	if r.URL.RawQuery != "" {
		to += "?" + r.URL.RawQuery
	}
	redirectTo(w, to, code)
}

func redirectTo(w http.ResponseWriter, location string, code int) {
	w.Header().Set("Location", location)
	w.Header().Set("Cache-Control", noStore)
	w.WriteHeader(code)
}

// failLookup answers a resolve or fetch that failed, by what failed.
func (g *gateway) failLookup(w http.ResponseWriter, r *http.Request, what string, err error) {
	msg := status.Convert(err).Message()
	switch {
	case r.Context().Err() != nil:
		// The browser went away; nobody reads this.
		g.fail(w, http.StatusServiceUnavailable, "%s: the request was cancelled.", what)
	case errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "5")
		g.fail(w, http.StatusServiceUnavailable, "%s: the gateway is busy: %d resolves and fetches are under way (max_concurrent_fetches) and none finished within %s.\n"+
			"Try again in a few seconds.", what, cap(g.slots), g.timeout)
	case errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled:
		w.Header().Set("Retry-After", "5")
		g.fail(w, http.StatusServiceUnavailable, "%s: the gateway is stopping; try again when the node is back.", what)
	case sdk.IsNotFound(err):
		g.fail(w, http.StatusNotFound, "%s: not found (%s).\nCheck the path; the directory above it lists what there is.", what, msg)
	case status.Code(err) == codes.InvalidArgument:
		g.fail(w, http.StatusBadRequest, "%s: the node refused it as malformed: %s.", what, msg)
	case status.Code(err) == codes.ResourceExhausted:
		g.fail(w, http.StatusBadGateway, "%s: the node refused its content: %s.", what, msg)
	case errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded:
		g.fail(w, http.StatusGatewayTimeout, "%s: no answer within %s (fetch_timeout): %s.\n"+
			"Its hosts may be slow or unreachable; try again.", what, g.timeout, msg)
	default:
		g.fail(w, http.StatusBadGateway, "%s: its content could not be fetched: %s.\n"+
			"No host or provider answered: they may be offline. Try again later; the owner can keep it available with a mirror.", what, msg)
	}
}

// fail writes a short plain-text error page.
func (g *gateway) fail(w http.ResponseWriter, code int, format string, args ...any) {
	g.errors.Add(1)
	h := w.Header()
	h.Del("ETag")
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", noStore)
	w.WriteHeader(code)
	fmt.Fprintf(w, "%d %s: %s\n", code, http.StatusText(code), fmt.Sprintf(format, args...))
}
