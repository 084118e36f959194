package approval

import (
	"encoding/json"
	"testing"

	"github.com/spuff-dev/spuff/app/config"
	"github.com/spuff-dev/spuff/helpers/helper"
)

// A shed's approval.require names only the classes it changes; the rest
// keep the global block. Reading a partial block as the whole one would turn
// ssh_login and ssh_sign approval off for a shed whose section meant to add
// aws to them.
func TestShedRequireOverridesOnlyWhatItNames(t *testing.T) {
	c, err := config.Parse([]byte(`
approval:
  enabled: true
  require: {ssh_login: true, ssh_sign: ["*"], aws: false, docker: false}
sheds:
  web:
    approval: {require: {aws: true}}
  quiet:
    approval: {require: {ssh_login: false}}
  nosign:
    approval: {require: {ssh_sign: []}}
  gitonly:
    approval: {require: {ssh_sign: [git], docker: true}}
`), "config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The provider child gets the config as JSON; an empty ssh_sign must
	// cross as empty, not as unset.
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	crossed := new(config.Config)
	if err := json.Unmarshal(body, crossed); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*config.Config{c, crossed} {
		asks(t, c)
	}
}

func asks(t *testing.T, c *config.Config) {
	t.Helper()
	type ask struct{ login, signGit, signFile, aws, docker bool }
	for shed, want := range map[string]ask{
		"other":   {true, true, true, false, false},
		"web":     {true, true, true, true, false},
		"quiet":   {false, true, true, false, false},
		"nosign":  {true, false, false, false, false},
		"gitonly": {true, true, false, false, true},
	} {
		p := c.ForShed(shed).Approval
		got := ask{}
		for _, q := range []struct {
			class, scope string
			into         *bool
		}{
			{helper.ClassSSHLogin, "", &got.login},
			{helper.ClassSSHSign, "git", &got.signGit},
			{helper.ClassSSHSign, "file", &got.signFile},
			{helper.ClassAWS, "", &got.aws},
			{helper.ClassDocker, "", &got.docker},
		} {
			_, a, err := resolve(p, q.class, q.scope)
			if err != nil {
				t.Fatalf("%s %s: %v", shed, q.class, err)
			}
			*q.into = a
		}
		if got != want {
			t.Errorf("shed %s asks %+v, want %+v (require %+v)", shed, got, want, p.Require)
		}
	}
}
