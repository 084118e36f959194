package cli

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/spuff-dev/spuff/app/control/api"
)

// list --json keeps an attachment's entry exactly as it was, adds a made
// shed's row under "made" (merged by name with its attachment), and lists
// made sheds that are not attached, orphans on their own.
func TestListJSON(t *testing.T) {
	since := time.Date(2026, 3, 31, 15, 4, 5, 0, time.UTC)
	att := []api.Attachment{
		{Name: "plain", URL: "unix:///run/spuff/bus.sock", State: "connected", Since: since},
		{Name: "demo", URL: "ssh://dev@127.0.0.1:2222", State: "connected", Since: since},
	}
	made := []api.MadeShed{
		{Name: "demo", Provider: "qemu", State: "ready", Addr: "127.0.0.1:2222"},
		{Name: "broken", Provider: "qemu", State: "failed", Reason: "bootstrapping: upload failed"},
		{Name: "plain", Provider: "hetzner", State: "running", Orphan: "no row"},
	}
	b, err := json.Marshal(mergeList(att, made))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := json.Marshal(att[0])
	want := `[` + string(plain) + `,` +
		`{"name":"demo","url":"ssh://dev@127.0.0.1:2222","state":"connected","since":"2026-03-31T15:04:05Z","requests":0,"denied":0,"errors":0,"made":{"name":"demo","provider":"qemu","state":"ready","addr":"127.0.0.1:2222"}},` +
		`{"name":"broken","made":{"name":"broken","provider":"qemu","state":"failed","reason":"bootstrapping: upload failed"}},` +
		`{"name":"plain","made":{"name":"plain","provider":"hetzner","state":"running","orphan":"no row"}}]`
	if string(b) != want {
		t.Fatalf("list --json\n got %s\nwant %s", b, want)
	}
	// Readers of the old array (name, state, last_error) still read it.
	var old []api.Attachment
	if err := json.Unmarshal(b, &old); err != nil || old[0].URL != att[0].URL || old[1].State != "connected" || old[2].Name != "broken" || old[2].State != "" {
		t.Fatalf("old readers: %+v %v", old, err)
	}
}
