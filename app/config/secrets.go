package config

import (
	"strings"
)

// Hints for where a secret lives instead of the config file.
const (
	hintDO      = "set DIGITALOCEAN_TOKEN in the environment spuff runs in"
	hintHetzner = "set HCLOUD_TOKEN in the environment spuff runs in"
	hintToken   = "provider API tokens come from the environment spuff runs in: DIGITALOCEAN_TOKEN (DigitalOcean) or HCLOUD_TOKEN (Hetzner)"
	hintAWS     = "AWS keys stay in ~/.aws: keep them in a profile there (aws configure --profile NAME, SSO or credential_process) and name it with aws.source_profile; spuff assumes roles from it and only short-lived tokens reach a shed"
	hintSSH     = "SSH private keys stay in ~/.ssh or your ssh-agent; allow keys by fingerprint in ssh.keys"
	hintDocker  = "registry passwords stay in the host's docker credential store (run docker login on this computer); spuff reads them from there"
	hintOther   = "pass secrets to spuff through environment variables, never the config file"
)

// secretNames maps key names (lowercase, without '_' or '-') to hints.
var secretNames = map[string]string{
	"token":              hintToken,
	"apitoken":           hintToken,
	"dotoken":            hintDO,
	"digitaloceantoken":  hintDO,
	"hcloudtoken":        hintHetzner,
	"hetznertoken":       hintHetzner,
	"awsaccesskeyid":     hintAWS,
	"awssecretaccesskey": hintAWS,
	"secretaccesskey":    hintAWS,
	"accesskeyid":        hintAWS,
	"secretkey":          hintAWS,
	"sessiontoken":       hintAWS,
	"awssessiontoken":    hintAWS,
	"authkey":            hintOther,
	"password":           hintDocker,
	"passwd":             hintDocker,
	"secret":             hintOther,
	"privatekey":         hintSSH,
}

// secretSuffixes catch spellings like "registry_password" or "api-secret".
var secretSuffixes = []struct{ suffix, hint string }{
	{"token", hintToken},
	{"secretaccesskey", hintAWS},
	{"accesskeyid", hintAWS},
	{"password", hintDocker},
	{"passwd", hintDocker},
	{"secret", hintOther},
	{"privatekey", hintSSH},
	{"authkey", hintOther},
}

// secretKey reports whether a key's name says it carries a secret, and where
// that secret belongs instead. It looks at the name only, never the value,
// so no error built from it can echo a secret.
func secretKey(key, fullPath string) (hint string, ok bool) {
	n := strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(key))
	hint, ok = secretNames[n]
	if !ok {
		for _, s := range secretSuffixes {
			if strings.HasSuffix(n, s.suffix) {
				hint, ok = s.hint, true
				break
			}
		}
	}
	if !ok {
		return "", false
	}
	if hint == hintToken {
		// Under a provider's section the generic token is that provider's.
		p := strings.ToLower(fullPath)
		switch {
		case strings.Contains(p, "digitalocean"):
			hint = hintDO
		case strings.Contains(p, "hetzner"), strings.Contains(p, "hcloud"):
			hint = hintHetzner
		case strings.Contains(p, "aws"):
			hint = hintAWS
		}
	}
	return hint, true
}
