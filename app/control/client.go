package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"

	"github.com/spuff-dev/spuff/app/audit"
	"github.com/spuff-dev/spuff/app/control/api"
)

// ErrNotRunning means nothing answers on the control socket.
var ErrNotRunning = errors.New("spuff is not running on this computer: start it from the menu bar or with `spuff-app --headless`")

// Client talks to spuff-app over its control socket.
type Client struct {
	sock string
	hc   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{sock: path, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.open(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("control: decoding %s %s: %w", method, path, err)
	}
	return nil
}

// open sends a request and returns a 2xx response, or the API's error.
func (c *Client) open(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://spuff"+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return nil, ErrNotRunning
		}
		if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("control: %s refused this connection (is it owned by another user?): %w", c.sock, err)
		}
		return nil, fmt.Errorf("control: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var eb api.ErrorBody
		if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&eb) != nil || eb.Error == "" {
			eb.Error = resp.Status
		}
		return nil, errors.New(eb.Error)
	}
	return resp, nil
}

// Status returns GET /v1/status.
func (c *Client) Status(ctx context.Context) (*api.Status, error) {
	var st api.Status
	return &st, c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
}

// Sheds lists attached sheds.
func (c *Client) Sheds(ctx context.Context) ([]api.Attachment, error) {
	var out []api.Attachment
	return out, c.do(ctx, http.MethodGet, "/v1/sheds", nil, &out)
}

// Attach asks the broker to dial a shed.
func (c *Client) Attach(ctx context.Context, name, u string) error {
	return c.do(ctx, http.MethodPost, "/v1/sheds", api.AttachRequest{Name: name, URL: u}, nil)
}

// Detach drops a shed.
func (c *Client) Detach(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodDelete, "/v1/sheds/"+url.PathEscape(name), nil, nil)
}

// Audit streams audit records matching f to fn; with follow it waits for
// new ones until ctx ends.
func (c *Client) Audit(ctx context.Context, f audit.Filter, follow bool, fn func(audit.Record) error) error {
	q := url.Values{}
	if f.Shed != "" {
		q.Set("shed", f.Shed)
	}
	if f.NS != "" {
		q.Set("ns", f.NS)
	}
	if f.Result != "" {
		q.Set("result", f.Result)
	}
	if follow {
		q.Set("follow", "1")
	}
	return c.stream(ctx, "/v1/audit?"+q.Encode(), func(line []byte) error {
		var rec audit.Record
		if err := json.Unmarshal(line, &rec); err != nil {
			return fmt.Errorf("control: bad audit line: %w", err)
		}
		return fn(rec)
	})
}

// Events streams the one change stream (attachments, requests, approvals)
// until ctx ends.
func (c *Client) Events(ctx context.Context, fn func(api.Event) error) error {
	return c.stream(ctx, "/v1/events", func(line []byte) error {
		var e api.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("control: bad event: %w", err)
		}
		return fn(e)
	})
}

func (c *Client) stream(ctx context.Context, path string, fn func([]byte) error) error {
	resp, err := c.open(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// Up makes (or starts) a shed; its steps come as EventProvision meanwhile.
func (c *Client) Up(ctx context.Context, req api.UpRequest) (*api.MadeShed, error) {
	var m api.MadeShed
	return &m, c.do(ctx, http.MethodPost, "/v1/up", req, &m)
}

// Down destroys a made shed.
func (c *Client) Down(ctx context.Context, name string, force bool) error {
	return c.do(ctx, http.MethodPost, "/v1/down", api.ShedRequest{Name: name, Force: force}, nil)
}

// Start boots a stopped local shed.
func (c *Client) Start(ctx context.Context, name string) (*api.MadeShed, error) {
	var m api.MadeShed
	return &m, c.do(ctx, http.MethodPost, "/v1/start", api.ShedRequest{Name: name}, &m)
}

// Stop powers a local shed off.
func (c *Client) Stop(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/v1/stop", api.ShedRequest{Name: name}, nil)
}

// Made lists the sheds spuff made.
func (c *Client) Made(ctx context.Context) (*api.MadeList, error) {
	var l api.MadeList
	return &l, c.do(ctx, http.MethodGet, "/v1/made", nil, &l)
}

// MadeRows lists the made sheds as spuff-app's state holds them, listing
// no provider's machines (GET /v1/made?reconcile=false): no cloud API
// call, no orphans, no machine states.
func (c *Client) MadeRows(ctx context.Context) (*api.MadeList, error) {
	var l api.MadeList
	return &l, c.do(ctx, http.MethodGet, "/v1/made?reconcile=false", nil, &l)
}
