package harness

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Secret is a value no shed may hold, and what to call it when one does
// (the value itself is never printed).
type Secret struct {
	What  string
	Value []byte
}

// AssertNoSecret fails t if any secret is anywhere the shed keeps things:
// its environment (with extraEnv, what its tools ran with), its log, and
// every regular file under its directory (home and run dir).
func (g *Guest) AssertNoSecret(t testing.TB, secrets []Secret, extraEnv ...string) {
	t.Helper()
	if len(secrets) == 0 {
		t.Fatal("no secrets to look for")
	}
	var hay bytes.Buffer
	hay.WriteString(strings.Join(append(g.Env(), extraEnv...), "\n"))
	hay.WriteString(g.Log())
	err := filepath.WalkDir(g.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Type()&fs.ModeType != 0 {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil {
			hay.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if hay.Len() == 0 {
		t.Fatal("nothing was searched")
	}
	for _, s := range secrets {
		if len(s.Value) == 0 {
			t.Fatalf("the secret %q to look for is empty", s.What)
		}
		if bytes.Contains(hay.Bytes(), s.Value) {
			t.Errorf("%s is in shed %s's files, environment or log", s.What, g.Name)
		}
	}
}
