package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// Provision configures how `spuff up` makes sheds and when the host ends them.
type Provision struct {
	Provider    string        `mapstructure:"provider" yaml:"provider" json:"provider"` // default for `spuff up`
	User        string        `mapstructure:"user" yaml:"user" json:"user"`             // the shed's login user
	IdleTimeout time.Duration `mapstructure:"idle_timeout" yaml:"idle_timeout" json:"idle_timeout"`
	IdleNotice  time.Duration `mapstructure:"idle_notice" yaml:"idle_notice" json:"idle_notice"`
	// Run are shell commands run as root, in order, at a shed's first boot
	// (cloud-init runcmd, after spuff's own setup). One that fails makes
	// `spuff up` fail with cloud-init's reason. They travel in user-data,
	// which any process in a cloud VM can read: never put a secret here.
	Run []string `mapstructure:"run" yaml:"run" json:"run,omitempty"`
}

// QEMU configures local VM sheds.
type QEMU struct {
	Image  string `mapstructure:"image" yaml:"image" json:"image"`
	CPUs   int    `mapstructure:"cpus" yaml:"cpus" json:"cpus"`
	Memory string `mapstructure:"memory" yaml:"memory" json:"memory"` // e.g. 2GiB
	Disk   string `mapstructure:"disk" yaml:"disk" json:"disk"`       // e.g. 20GiB
	Accel  string `mapstructure:"accel" yaml:"accel" json:"accel"`    // auto | kvm | hvf | tcg
}

// DigitalOcean configures DigitalOcean droplet sheds. The API token comes
// from DIGITALOCEAN_TOKEN (or DIGITALOCEAN_ACCESS_TOKEN), never from here.
type DigitalOcean struct {
	Region  string   `mapstructure:"region" yaml:"region" json:"region"`
	Size    string   `mapstructure:"size" yaml:"size" json:"size"`
	Image   string   `mapstructure:"image" yaml:"image" json:"image"`
	SSHFrom []string `mapstructure:"ssh_from" yaml:"ssh_from" json:"ssh_from"` // CIDRs admitted to port 22; empty = anywhere
}

// Hetzner configures Hetzner Cloud server sheds. The API token comes from
// HCLOUD_TOKEN, never from here.
type Hetzner struct {
	Location   string   `mapstructure:"location" yaml:"location" json:"location"`
	ServerType string   `mapstructure:"server_type" yaml:"server_type" json:"server_type"`
	Image      string   `mapstructure:"image" yaml:"image" json:"image"`
	SSHFrom    []string `mapstructure:"ssh_from" yaml:"ssh_from" json:"ssh_from"`
}

// Providers that `spuff up` can name. A provider registers itself in
// provisioning; this list is what config accepts.
var Providers = []string{"qemu", "digitalocean", "hetzner"}

// QEMUAccels are the accelerators qemu.accel may name.
var QEMUAccels = []string{"auto", "kvm", "hvf", "tcg"}

// A bounded repetition compiles to one copy per repeat, held for the
// process's life, so lengths are checked beside the patterns.
var (
	userName = regexp.MustCompile(`^[a-z_][a-z0-9_-]*$`)    // at most 32
	slug     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`) // at most 64
)

// Reserved user names a shed's login user may not take.
var reservedUsers = []string{"root", "daemon", "bin", "sys", "sync", "games", "man", "lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc", "nobody", "sshd", "systemd-network", "messagebus"}

func defaultProvision() (Provision, QEMU, DigitalOcean, Hetzner) {
	return Provision{Provider: "qemu", User: "dev", IdleTimeout: 2 * time.Hour, IdleNotice: 10 * time.Minute},
		QEMU{Image: "debian-12", CPUs: 2, Memory: "2GiB", Disk: "20GiB", Accel: "auto"},
		DigitalOcean{Region: "fra1", Size: "s-2vcpu-4gb", Image: "debian-12-x64"},
		Hetzner{Location: "fsn1", ServerType: "cx22", Image: "debian-12"}
}

// Bytes parses a size such as "2GiB", "512MiB" or "20G" (binary units).
func Bytes(s string) (int64, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("config: %q is not a size like 2GiB", s)
	}
	return n, nil
}

func (v *validator) provision(c *Config) {
	p := c.Provision
	v.oneOf("provision.provider", p.Provider, Providers)
	if len(p.User) > 32 || !userName.MatchString(p.User) || slices.Contains(reservedUsers, p.User) {
		v.addf("provision.user", "%q is not a user name a shed can log in as (lowercase letters, digits, _ and -, at most 32, not a system user)", p.User)
	}
	v.idle("provision", p.IdleTimeout, p.IdleNotice)
	for i, c := range p.Run {
		if strings.TrimSpace(c) == "" || strings.ContainsRune(c, 0) {
			v.addf(fmt.Sprintf("provision.run[%d]", i), "must be a non-empty shell command")
		}
	}

	q := c.QEMU
	v.slug("qemu.image", q.Image)
	if q.CPUs < 1 || q.CPUs > 64 {
		v.addf("qemu.cpus", "%d must be between 1 and 64", q.CPUs)
	}
	v.size("qemu.memory", q.Memory, 256<<20)
	v.size("qemu.disk", q.Disk, 2<<30)
	v.oneOf("qemu.accel", q.Accel, QEMUAccels)

	d := c.DigitalOcean
	v.slug("digitalocean.region", d.Region)
	v.slug("digitalocean.size", d.Size)
	v.slug("digitalocean.image", d.Image)
	v.cidrs("digitalocean.ssh_from", d.SSHFrom)

	h := c.Hetzner
	v.slug("hetzner.location", h.Location)
	v.slug("hetzner.server_type", h.ServerType)
	v.slug("hetzner.image", h.Image)
	v.cidrs("hetzner.ssh_from", h.SSHFrom)
}

func (v *validator) idle(key string, timeout, notice time.Duration) {
	if timeout < 0 {
		v.addf(key+".idle_timeout", "%s must be 0 (never) or positive", timeout)
	}
	if notice < 0 {
		v.addf(key+".idle_notice", "%s must be 0 (no notice) or positive", notice)
	}
	if timeout > 0 && notice >= timeout {
		v.addf(key+".idle_notice", "%s must be shorter than idle_timeout (%s)", notice, timeout)
	}
}

func (v *validator) slug(key, s string) {
	if len(s) > 64 || !slug.MatchString(s) {
		v.addf(key, "%q is not a name like the provider lists (lowercase letters, digits, '.', '_' and '-')", s)
	}
}

func (v *validator) size(key, s string, min int64) {
	n, err := Bytes(s)
	if err != nil {
		v.addf(key, "%q is not a size like 2GiB", s)
		return
	}
	if n < min {
		v.addf(key, "%s is less than the least a shed can run with (%s)", s, units.BytesSize(float64(min)))
	}
}

func (v *validator) cidrs(key string, cidrs []string) {
	for i, c := range cidrs {
		if _, err := netip.ParsePrefix(c); err != nil {
			v.addf(fmt.Sprintf("%s[%d]", key, i), "%q is not a CIDR like 203.0.113.0/24 or 2001:db8::/32", c)
		}
	}
}
