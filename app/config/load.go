package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// maxFile bounds the config file; a real one is a few kilobytes.
const maxFile = 1 << 20

// Load reads the config file at path. A missing file is no error: it yields
// Default(). The file must be private to its owner (mode 0600 or tighter),
// name only keys spuff knows, carry no secret, and pass Validate.
func Load(path string) (*Config, error) {
	// A FIFO would block the open; only a regular file is a config.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config: %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		c := Default()
		c.resolve()
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("config: opening %s: %w", path, err)
	}
	defer f.Close()
	// Check what was opened, not what the name pointed at a moment before.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("config: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("config: %s is accessible to group or others (mode %04o); it must be private to you, run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	if len(data) > maxFile {
		return nil, fmt.Errorf("config: %s is larger than %d bytes", path, maxFile)
	}
	return Parse(data, path)
}

// Parse decodes and validates config YAML; name says where it came from in
// errors. Secret-carrying keys are refused first (naming the environment
// variable to use instead), then unknown keys (each by its dotted path),
// then the decoded values are validated.
func Parse(data []byte, name string) (*Config, error) {
	if err := checkKeys(data, name); err != nil {
		return nil, err
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("config: parsing %s: %w", name, err)
	}
	c := Default()
	// Decoding onto Default() is what makes every key optional.
	err := v.UnmarshalExact(c,
		viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(durationHook, wholeNumberHook)),
		func(dc *mapstructure.DecoderConfig) { dc.WeaklyTypedInput = false },
	)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("config: %s is invalid", name), decodeErrors(err))
	}
	if !v.IsSet("aws.cache_refresh_before") && c.AWS.CacheRefreshBefore > c.AWS.SessionDuration/2 {
		// The default window would spend most of a short session (STS
		// grants 15m at least) re-minting; half the session keeps each
		// token in use at least as long as it waits to be replaced.
		c.AWS.CacheRefreshBefore = c.AWS.SessionDuration / 2
	}
	c.resolve()
	if err := c.Validate(); err != nil {
		return nil, errors.Join(fmt.Errorf("config: %s is invalid", name), err)
	}
	return c, nil
}

// resolve fills what has a computed default.
func (c *Config) resolve() {
	if c.Audit.Path == "" {
		c.Audit.Path = DefaultAuditPath()
	}
	c.Audit.Path = ExpandHome(c.Audit.Path)
}

var durationType = reflect.TypeFor[time.Duration]()

// durationHook reads "1h30m"-style durations and refuses bare numbers, which
// would silently mean nanoseconds.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != durationType {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		v, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (write e.g. \"30s\", \"15m\", \"1h\")", d)
		}
		return v, nil
	case time.Duration:
		return d, nil
	case nil:
		return d, nil
	default:
		return nil, fmt.Errorf("%v is not a duration: give it a unit, e.g. \"%vs\" or \"%vm\"", d, d, d)
	}
}

// wholeNumberHook refuses 1.5 where a count is wanted, which mapstructure
// would quietly truncate.
func wholeNumberHook(from, to reflect.Type, data any) (any, error) {
	if f, ok := data.(float64); ok && to.Kind() >= reflect.Int && to.Kind() <= reflect.Uint64 && f != float64(int64(f)) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	return data, nil
}

// decodeErrors restates mapstructure's errors as "config: KEY: problem".
func decodeErrors(err error) error {
	var out []error
	var walk func(error)
	walk = func(err error) {
		var de *mapstructure.DecodeError
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(err, &de) {
			inner := de.Unwrap()
			var nested *mapstructure.DecodeError
			if errors.As(inner, &nested) {
				walk(inner)
				return
			}
			out = append(out, fmt.Errorf("config: %s: %w", de.Name(), inner))
			return
		}
		if u := errors.Unwrap(err); u != nil {
			walk(u)
			return
		}
		out = append(out, fmt.Errorf("config: %w", err))
	}
	walk(err)
	return errors.Join(out...)
}

// checkKeys walks the YAML itself, before viper lowercases keys and loses
// their lines, to find secret-carrying keys and keys spuff does not know.
func checkKeys(data []byte, name string) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: parsing %s: %w", name, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	k := &keyCheck{name: name, budget: maxNodes}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s: the top level must be a mapping of keys (ssh:, aws:, …)", name)
	}
	k.walk(root, reflect.TypeFor[Config](), "")
	if k.budget < 0 {
		return fmt.Errorf("config: %s is too deeply nested or aliased to be a spuff config", name)
	}
	if len(k.secrets) > 0 {
		return errors.Join(k.secrets...)
	}
	return errors.Join(k.unknown...)
}

// Bounds on the YAML tree: a real config is a few levels deep and a few
// hundred nodes; aliases could otherwise make a small file enormous.
const (
	maxNodes = 20_000
	maxDepth = 32
)

type keyCheck struct {
	name    string
	budget  int // nodes left to visit; aliases can make a small file huge
	secrets []error
	unknown []error
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// walk checks mapping n against type t (a struct or map type, or nil when
// the subtree is opaque and only secrets are looked for).
func (k *keyCheck) walk(n *yaml.Node, t reflect.Type, path string) {
	if k.budget--; k.budget < 0 || strings.Count(path, ".") > maxDepth {
		k.budget = -1
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			k.walk(n.Alias, t, path)
		}
		return
	}
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.Kind() != reflect.Struct && t.Kind() != reflect.Map {
		t = nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if k.budget < 0 {
				return
			}
			k.walk(c, nil, path+"[]")
		}
		return
	case yaml.MappingNode:
	default:
		return
	}
	seen := make(map[string]int, len(n.Content)/2)
	var fields map[string]reflect.Type
	if t != nil && t.Kind() == reflect.Struct {
		fields = fieldsOf(t)
	}
	for i := 0; i+1 < len(n.Content) && k.budget >= 0; i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := kn.Value
		if kn.Kind != yaml.ScalarNode {
			key = "?"
		}
		if kn.Tag == "!!merge" {
			k.walk(vn, t, path)
			continue
		}
		full := join(path, key)
		if line, dup := seen[key]; dup {
			k.unknown = append(k.unknown, fmt.Errorf("config: key %q appears twice in %s (lines %d and %d)", full, k.name, line, kn.Line))
		}
		seen[key] = kn.Line
		isName := t != nil && t.Kind() == reflect.Map // a shed's name, not a key
		if hint, ok := secretKey(key, full); ok && !isName {
			k.secrets = append(k.secrets, fmt.Errorf(
				"config: key %q in %s (line %d) would hold a secret, and spuff never reads secrets from its config file: %s; remove the key",
				full, k.name, kn.Line, hint))
			continue
		}
		switch {
		case t == nil:
			k.walk(vn, nil, full)
		case t.Kind() == reflect.Map:
			if path == "sheds" && !ValidShedName(key) {
				k.unknown = append(k.unknown, fmt.Errorf(
					"config: shed name %q in %s (line %d) must be lowercase letters, digits and dashes (at most 63, not starting with a dash)",
					key, k.name, kn.Line))
			}
			k.walk(vn, t.Elem(), full)
		default:
			ft, ok := fields[key]
			if !ok {
				msg := fmt.Sprintf("config: unknown key %q in %s (line %d)", full, k.name, kn.Line)
				if s := closest(key, fields); s != "" {
					msg += fmt.Sprintf("; did you mean %q?", join(path, s))
				}
				k.unknown = append(k.unknown, errors.New(msg))
				k.walk(vn, nil, full) // a secret may still hide below
				continue
			}
			k.walk(vn, ft, full)
		}
	}
}

// fieldsOf maps a struct's config keys to their types.
func fieldsOf(t reflect.Type) map[string]reflect.Type {
	m := make(map[string]reflect.Type, t.NumField())
	for f := range t.Fields() {
		if tag := f.Tag.Get("mapstructure"); tag != "" && tag != "-" {
			m[tag] = f.Type
		}
	}
	return m
}

// closest is the known key nearest to a misspelt one, if near enough.
func closest(key string, fields map[string]reflect.Type) string {
	lk := strings.ToLower(key)
	best, bestD := "", max(1, len(key)/3)+1
	for f := range fields {
		if d := editDistance(lk, f); d < bestD || (d == bestD && f < best) {
			best, bestD = f, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
