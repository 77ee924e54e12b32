package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/avnode/avnode/core/api"
)

// hostileAgent is what a peer calls its software: the dashboard must show
// it as text.
const hostileAgent = `<img src=x onerror="document.title='pwned'">`

// dashboardPage is what the test reads off the page in Chromium.
type dashboardPage struct {
	Title       string   `json:"title"`
	Status      string   `json:"status"`
	PeerID      string   `json:"peerID"`
	PeerCount   int      `json:"peerCount"`
	Agents      []string `json:"agents"`
	Connections []string `json:"connections"`
	InjectedImg int      `json:"injectedImg"`
	Names       []string `json:"names"`
	Roles       []string `json:"roles"`
	Mirror      string   `json:"mirror"`
	Content     []string `json:"content"`
	Pins        int      `json:"pins"`
	Refusals    []string `json:"refusals"`
	ChartPoints []int    `json:"chartPoints"`
}

const readDashboard = `(() => {
  const rows = id => [...document.querySelectorAll("#" + id + " tr")].filter(r => !r.querySelector(".empty"));
  const text = id => rows(id).map(r => [...r.cells].map(c => c.textContent).join(" | "));
  return {
    title: document.title,
    status: document.getElementById("status").textContent,
    peerID: (document.querySelector("#node-facts dd") || {}).textContent || "",
    peerCount: rows("peer-rows").length,
    agents: rows("peer-rows").map(r => r.cells[4].textContent),
    connections: rows("peer-rows").map(r => r.cells[1].textContent),
    injectedImg: document.querySelectorAll("main img").length,
    names: text("name-rows"),
    roles: text("role-rows"),
    mirror: document.getElementById("mirror-status").textContent,
    content: [...document.querySelectorAll("#content-facts dd")].map(d => d.textContent),
    pins: rows("pin-rows").length,
    refusals: text("refusal-rows"),
    chartPoints: [...document.querySelectorAll(".chart")].map(c => Number(c.dataset.points || 0)),
  };
})()`

// A node's dashboard in headless Chromium, as its user sees it: every
// section filled from a live network (a name it owns with a mirror's
// copy, a mirror role, pins, a policy refusal, a hostile peer's agent
// string shown as text), then the ways in for everyone else refused.
func TestDashboardInChromium(t *testing.T) {
	t.Parallel()
	exe := chromiumPath(t)
	nodes := startNetwork(t, 4, "--names.resolve_timeout=3s")
	join := append(append([]string{}, lowWork...), "--bootstrap", nodes[0].addr, "--names.resolve_timeout=3s")

	// einstein.avtr, which the dashboard's node mirrors.
	mustCLI(t, nodes[1].repo, "key", "gen", "albert")
	mustCLI(t, nodes[1].repo, "name", "claim", "einstein.avtr", "--key", "albert")
	site, _ := writeWebSite(t)
	mustCLI(t, nodes[1].repo, "publish", site, "--name", "einstein.avtr")

	refuse := writeScript(t, "refuse.lua", `return {
  store_record = function(r)
    if r.name == "spam.avtr" then return {allow = false, reason = "no spam here"} end
  end,
}`)
	cfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{"einstein.avtr"}, "republish_interval": "3s"}}})
	dash := startDaemon(t, filepath.Join(t.TempDir(), "dash"), append(join, "--config", cfg,
		"--policy.scripts", refuse, "--dashboard.listen", "127.0.0.1:0")...)
	mustCLI(t, dash.repo, "key", "gen", "marie")
	mustCLI(t, dash.repo, "name", "claim", "curie.avtr", "--key", "marie")
	own, _ := writeWebSite(t)
	os.WriteFile(filepath.Join(own, "index.html"), []byte("<h1>Marie Curie</h1>\n"), 0o644)
	mustCLI(t, dash.repo, "publish", own, "--name", "curie.avtr")
	// A mirror of curie.avtr elsewhere: its copy shows on the owner's page.
	copyCfg := writeConfig(t, map[string]any{"roles": []string{"mirror"}, "role_config": map[string]any{
		"mirror": map[string]any{"names": []string{"curie.avtr"}, "republish_interval": "3s"}}})
	copier := startDaemon(t, filepath.Join(t.TempDir(), "copier"), append(join, "--config", copyCfg)...)
	// A name whose records the dashboard's node refuses to hold.
	mustCLI(t, nodes[2].repo, "key", "gen", "spammer")
	cli(t, nodes[2].repo, nil, "name", "claim", "spam.avtr", "--key", "spammer")

	// A bare libp2p host that calls itself something a page must not run.
	evil, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.UserAgent(hostileAgent))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { evil.Close() })
	info, _ := peer.AddrInfoFromString(dash.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := evil.Connect(ctx, *info); err != nil {
		t.Fatal(err)
	}

	var login api.DashboardLogin
	cliJSON(t, dash.repo, &login, "dashboard")
	var id api.Info
	cliJSON(t, dash.repo, &id, "id")
	if !strings.HasPrefix(login.URL, id.Dashboard+"/#code=") || !strings.HasPrefix(id.Dashboard, "http://127.0.0.1:") {
		t.Fatalf("dashboard %q, id says %q", login.URL, id.Dashboard)
	}

	browser := newBrowser(t, exe)
	if err := chromedp.Run(browser, chromedp.EmulateViewport(1400, 1100), chromedp.Navigate(login.URL)); err != nil {
		t.Fatal(err)
	}
	var seen dashboardPage
	eventually(t, 90*time.Second, "the dashboard shows the node's network, names, roles, content and refusals", func() error {
		if err := chromedp.Run(browser, chromedp.Evaluate(readDashboard, &seen)); err != nil {
			return err
		}
		var missing []string
		check := func(ok bool, what string) {
			if !ok {
				missing = append(missing, what)
			}
		}
		check(strings.HasPrefix(seen.Status, "updated"), "status "+seen.Status)
		check(seen.PeerID == dash.peerID, "peer id "+seen.PeerID)
		check(seen.PeerCount >= 6 && !slices.Contains(seen.Connections, "relayed"), fmt.Sprintf("peers %d %v", seen.PeerCount, seen.Connections))
		check(slices.Contains(seen.Agents, hostileAgent), fmt.Sprintf("the hostile agent as text, in %q", seen.Agents))
		check(rowWith(seen.Names, "curie.avtr", "marie", "ok", " ago", short(copier.peerID)), fmt.Sprintf("names %q", seen.Names))
		check(rowWith(seen.Roles, "mirror", "running"), fmt.Sprintf("roles %q", seen.Roles))
		check(strings.Contains(seen.Mirror, "einstein.avtr"), "mirror "+seen.Mirror)
		check(len(seen.Content) == 3 && seen.Content[0] != "0" && seen.Pins >= 2, fmt.Sprintf("content %q, %d pins", seen.Content, seen.Pins))
		check(rowWith(seen.Refusals, "store_record", short(nodes[2].peerID), "refuse.lua", "no spam here"), fmt.Sprintf("refusals %q", seen.Refusals))
		check(len(seen.ChartPoints) == 6 && slices.Min(seen.ChartPoints) >= 3, fmt.Sprintf("chart points %v", seen.ChartPoints))
		if len(missing) > 0 {
			return fmt.Errorf("%s", strings.Join(missing, "; "))
		}
		return nil
	})
	if seen.Title != "avnode dashboard" || seen.InjectedImg != 0 {
		t.Errorf("a peer's agent string ran in the page: title %q, %d images", seen.Title, seen.InjectedImg)
	}
	var shot []byte
	if err := chromedp.Run(browser, chromedp.FullScreenshot(&shot, 100)); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(t.ArtifactDir(), "dashboard.png"), shot, 0o644)

	t.Run("ReloadKeepsTheTab", func(t *testing.T) {
		var location string
		if err := chromedp.Run(browser, chromedp.Location(&location), chromedp.Reload()); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(location, "code=") {
			t.Errorf("the code stayed in the address bar: %s", location)
		}
		eventually(t, 30*time.Second, "the reloaded page shows data", func() error {
			var p dashboardPage
			if err := chromedp.Run(browser, chromedp.Evaluate(readDashboard, &p)); err != nil {
				return err
			}
			if !strings.HasPrefix(p.Status, "updated") || p.PeerID != dash.peerID {
				return fmt.Errorf("status %q peer %q", p.Status, p.PeerID)
			}
			return nil
		})
	})

	t.Run("UsedCodeInAnotherTab", func(t *testing.T) {
		other := newBrowser(t, exe)
		var status string
		err := chromedp.Run(other, chromedp.Navigate(login.URL),
			chromedp.Poll(`document.getElementById("status").className.includes("error")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
			chromedp.Text("#status", &status, chromedp.ByQuery))
		if err != nil || !strings.Contains(status, "unknown, used or expired") {
			t.Fatalf("the used code in another browser: %q, %v", status, err)
		}
		var hidden bool
		chromedp.Run(other, chromedp.Evaluate(`document.getElementById("main").hidden`, &hidden))
		if !hidden {
			t.Error("a browser with a used code sees the node's data")
		}
	})

	attacks := dashboardAttacks{dash: dash, addr: strings.TrimPrefix(id.Dashboard, "http://"), exe: exe}
	t.Run("NoSession", attacks.noSession)
	t.Run("ForeignHost", attacks.foreignHost)
	t.Run("OtherUser", attacks.otherUser)
	t.Run("CrossOriginPage", attacks.crossOriginPage)
}

func short(id string) string {
	if len(id) <= 16 {
		return id
	}
	return id[:8] + "…" + id[len(id)-6:]
}

// rowWith reports whether one of rows holds every word.
func rowWith(rows []string, words ...string) bool {
	for _, r := range rows {
		if !slices.ContainsFunc(words, func(w string) bool { return !strings.Contains(r, w) }) {
			return true
		}
	}
	return false
}

type dashboardAttacks struct {
	dash *proc
	addr string // host:port
	exe  string
}

// rawHTTP speaks HTTP/1.1 by hand: the Host header is whatever the
// attacker writes.
func rawHTTP(t *testing.T, addr, host, method, path, headers, body string) (int, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\nConnection: close\r\n\r\n%s", method, path, host, headers, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// session logs in with a fresh code, by hand.
func (a dashboardAttacks) session(t *testing.T) string {
	var login api.DashboardLogin
	cliJSON(t, a.dash.repo, &login, "dashboard")
	code := login.URL[strings.Index(login.URL, "#code=")+len("#code="):]
	status, body := rawHTTP(t, a.addr, a.addr, "POST", "/api/login", "Content-Type: application/json\r\n", `{"code":"`+code+`"}`)
	var answer struct{ Session string }
	if json.Unmarshal([]byte(body), &answer); status != 200 || answer.Session == "" {
		t.Fatalf("login: %d %s", status, body)
	}
	return answer.Session
}

func (a dashboardAttacks) noSession(t *testing.T) {
	for _, auth := range []string{"", "Authorization: Bearer \r\n", "Authorization: Bearer " + strings.Repeat("a", 48) + "\r\n"} {
		status, body := rawHTTP(t, a.addr, a.addr, "GET", "/api/state", auth, "")
		if status != http.StatusUnauthorized || strings.Contains(body, a.dash.peerID) {
			t.Errorf("%q: %d %s, want 401 and no data", auth, status, body)
		}
	}
}

// A web page whose own name resolves to 127.0.0.1 (DNS rebinding) sends its
// name as Host: even with a session, it gets nothing.
func (a dashboardAttacks) foreignHost(t *testing.T) {
	session := a.session(t)
	_, port, _ := net.SplitHostPort(a.addr)
	// localhost:PORT too: a browser may try it on ::1 first, where another
	// user can listen on the same port.
	for _, host := range []string{"attacker.example:" + port, "attacker.example", "127.0.0.1.attacker.example:" + port, "localhost:" + port} {
		status, body := rawHTTP(t, a.addr, host, "GET", "/api/state", "Authorization: Bearer "+session+"\r\n", "")
		if status != http.StatusForbidden || strings.Contains(body, a.dash.peerID) {
			t.Errorf("Host %s: %d %s, want 403", host, status, body)
		}
	}
	if status, _ := rawHTTP(t, a.addr, a.addr, "GET", "/api/state", "Authorization: Bearer "+session+"\r\n", ""); status != 200 {
		t.Errorf("Host %s with the session: %d, want 200", a.addr, status)
	}
}

// Another user of the machine, even holding a session, gets its connection
// closed before a byte is read.
func (a dashboardAttacks) otherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to act as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	session := a.session(t)
	host, port, _ := net.SplitHostPort(a.addr)
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s || exit 3
printf 'GET /api/state HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' >&3
timeout 10 cat <&3`, host, port, a.addr, session)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "bash", "-c", script).CombinedOutput()
	if strings.Contains(string(out), "HTTP/1.1") || strings.Contains(string(out), a.dash.peerID) {
		t.Fatalf("another user got an answer: %s (%v)", out, err)
	}
	eventually(t, 10*time.Second, "the node logs the refusal", func() error {
		if !strings.Contains(a.dash.log.String(), "dashboard: refused a connection from another user") {
			return fmt.Errorf("no refusal in the log; the client said %q (%v)", out, err)
		}
		return nil
	})
	// The same request from the node's own user is answered.
	if status, _ := rawHTTP(t, a.addr, a.addr, "GET", "/api/state", "Authorization: Bearer "+session+"\r\n", ""); status != 200 {
		t.Fatalf("the node's own user with the session: %d", status)
	}
}

// A page of another origin in the user's browser, given a fresh code (as
// if it had read a leaked address), can neither redeem it nor read the
// node's data: a cross-origin JSON post needs a preflight the dashboard
// never answers, and a form-style post is refused.
func (a dashboardAttacks) crossOriginPage(t *testing.T) {
	var login api.DashboardLogin
	cliJSON(t, a.dash.repo, &login, "dashboard")
	code := login.URL[strings.Index(login.URL, "#code=")+len("#code="):]
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, "<!doctype html><title>evil</title>")
	}))
	defer evil.Close()
	browser := newBrowser(t, a.exe)
	target := "http://" + a.addr
	attack := fmt.Sprintf(`(async () => {
  const out = [];
  const tryIt = async (what, f) => { try { const r = await f(); out.push(what + ":" + r.type + ":" + r.status + ":" + (await r.text()).slice(0, 200)); } catch (e) { out.push(what + ":blocked"); } };
  await tryIt("json", () => fetch(%[1]q + "/api/login", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({code: %[2]q})}));
  await tryIt("form", () => fetch(%[1]q + "/api/login", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: JSON.stringify({code: %[2]q})}));
  await tryIt("state", () => fetch(%[1]q + "/api/state"));
  return out;
})()`, target, code)
	var results []string
	err := chromedp.Run(browser, chromedp.Navigate(evil.URL),
		chromedp.Evaluate(attack, &results, func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if strings.Contains(r, "session") || strings.Contains(r, a.dash.peerID) {
			t.Errorf("the page read %q", r)
		}
	}
	// The form-style post reaches the dashboard, which refuses it; its
	// answer is unreadable either way (opaque, or blocked by the
	// Cross-Origin-Resource-Policy header).
	if len(results) != 3 || results[0] != "json:blocked" || results[2] != "state:blocked" {
		t.Errorf("the page's attempts: %q", results)
	}
	// The code was not spent by either post: its user can still open the page.
	status, body := rawHTTP(t, a.addr, a.addr, "POST", "/api/login", "Content-Type: application/json\r\n", `{"code":"`+code+`"}`)
	if status != 200 {
		t.Errorf("the code after the page's attempts: %d %s", status, body)
	}
}
