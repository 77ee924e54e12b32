package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/avnode/avnode/core/fault"
)

// ErrNoDaemon means no daemon answers on the repo's socket.
var ErrNoDaemon error = fault.New(fault.Unavailable, "no avnode daemon is running")

// Client calls a running daemon's control API.
type Client struct {
	repo   string
	socket string
	http   *http.Client
}

// NewClient talks to the daemon of the repo in dir.
func NewClient(repoDir, socketFile string) *Client {
	socket := filepath.Join(repoDir, socketFile)
	return NewClientDialing(repoDir, socketFile, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	})
}

// NewClientDialing talks to the daemon of the repo in dir through the
// connections dial makes: a daemon serving with Server.ListenOn.
func NewClientDialing(repoDir, socketFile string, dial func(context.Context) (net.Conn, error)) *Client {
	return &Client{
		repo:   repoDir,
		socket: filepath.Join(repoDir, socketFile),
		http: &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) },
		}},
	}
}

// Call performs method on path with query parameters and an optional body,
// and decodes the JSON answer into out (if out is not nil).
func (c *Client) Call(ctx context.Context, method, path string, query url.Values, body io.Reader, out any) error {
	resp, err := c.do(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		// Read to the end, so that the connection serves the next call.
		_, err := io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

type serverTimeKey struct{}

// WithServerTime returns a context whose calls store in *took how long the
// daemon spent on them, answer encoded (its Server-Timing header; 0 where
// an answer has none): the daemon's share, without the socket's or the
// client's.
func WithServerTime(ctx context.Context, took *time.Duration) context.Context {
	return context.WithValue(ctx, serverTimeKey{}, took)
}

// serverTime reads a Server-Timing header of the form NAME;dur=MS.
func serverTime(header string) time.Duration {
	_, ms, ok := strings.Cut(header, "dur=")
	if !ok {
		return 0
	}
	v, err := strconv.ParseFloat(ms, 64)
	if err != nil || v < 0 {
		return 0
	}
	return time.Duration(v * float64(time.Millisecond))
}

// Stream performs a call whose answer is raw bytes, copied to out.
func (c *Client) Stream(ctx context.Context, method, path string, query url.Values, out io.Writer) (int64, error) {
	resp, err := c.do(ctx, method, path, query, nil)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(out, resp.Body)
	if err == nil && resp.Trailer.Get("X-Avnode-Error") != "" {
		err = errors.New(resp.Trailer.Get("X-Avnode-Error"))
	}
	return n, err
}

// do sends one request and returns a 200 answer, or the daemon's error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body io.Reader) (*http.Response, error) {
	u := "http://avnode" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if token := readToken(filepath.Dir(c.socket)); token != "" {
		req.Header.Set(tokenHeader, "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if took, ok := ctx.Value(serverTimeKey{}).(*time.Duration); ok && err == nil {
		*took = serverTime(resp.Header.Get(serverTimingHeader))
	}
	if err != nil {
		if isNoDaemon(err) {
			return nil, fmt.Errorf("%w for repo %s; start it with `avnode run --repo %s`", ErrNoDaemon, c.repo, c.repo)
		}
		return nil, fmt.Errorf("control API %s: %w", c.socket, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var body ErrorBody
		if json.NewDecoder(resp.Body).Decode(&body) != nil || body.Message == "" {
			body = ErrorBody{Message: fmt.Sprintf("daemon answered %s", resp.Status)}
		}
		return nil, errorOf(body)
	}
	return resp, nil
}

// CallStream performs a streamed call (see Server.HandleStream): progress
// lines go to onProgress, the result is decoded into out.
func (c *Client) CallStream(ctx context.Context, method, path string, query url.Values, onProgress func(json.RawMessage), out any) error {
	pr, pw := io.Pipe()
	var callErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, callErr = c.Stream(ctx, method, path, query, pw)
		pw.CloseWithError(callErr)
	}()
	dec := json.NewDecoder(pr)
	for {
		var line struct {
			Progress json.RawMessage `json:"progress"`
			Result   json.RawMessage `json:"result"`
			Error    *ErrorBody      `json:"error"`
		}
		if err := dec.Decode(&line); err != nil {
			pr.CloseWithError(err)
			<-done
			if callErr != nil {
				return callErr
			}
			return fmt.Errorf("control API %s: the answer ended early: %w", path, err)
		}
		switch {
		case line.Error != nil:
			pr.Close()
			<-done
			return errorOf(*line.Error)
		case line.Result != nil:
			pr.Close()
			<-done
			if out == nil {
				return nil
			}
			return json.Unmarshal(line.Result, out)
		case line.Progress != nil && onProgress != nil:
			onProgress(line.Progress)
		}
	}
}

func isNoDaemon(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}
