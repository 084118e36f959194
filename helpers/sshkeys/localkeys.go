package sshkeys

import (
	"crypto/dsa" //lint:ignore SA1019 only to recognise and skip DSA keys
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// SkippedKey is a key file in ~/.ssh the local-keys backend does not serve,
// with the reason and what to do, for `spuff doctor`.
type SkippedKey struct {
	Path   string
	Reason string
}

// defaultKeyFiles are the identity files ssh itself tries, in its order.
var defaultKeyFiles = []string{"id_rsa", "id_ecdsa", "id_ecdsa_sk", "id_ed25519", "id_ed25519_sk", "id_xmss", "id_dsa"}

var (
	errKeyNotFound = errors.New("sshkeys: no such key")
	errReadOnly    = errors.New("sshkeys: spuff never changes the keys on your computer")
)

// localKeys is an agent over the unencrypted keys of ~/.ssh, read once at
// start. Signing takes no lock: the keys never change after loading.
type localKeys struct {
	readOnly
	keys   []*localKey
	byBlob map[string]*localKey
}

type localKey struct {
	signer  ssh.AlgorithmSigner
	blob    []byte
	comment string
}

var _ agent.ExtendedAgent = (*localKeys)(nil)

// loadLocalKeys reads the default identity files of dir. Files that are
// absent are ignored; files it cannot serve are returned as skipped.
func loadLocalKeys(dir string) (*localKeys, []SkippedKey) {
	lk := &localKeys{byBlob: make(map[string]*localKey)}
	var skipped []SkippedKey
	for _, name := range defaultKeyFiles {
		p := filepath.Join(dir, name)
		k, reason := readLocalKey(p, name)
		switch {
		case k == nil && reason == "":
		case k == nil:
			skipped = append(skipped, SkippedKey{Path: p, Reason: reason})
		case lk.byBlob[string(k.blob)] != nil:
		default:
			lk.keys = append(lk.keys, k)
			lk.byBlob[string(k.blob)] = k
		}
	}
	return lk, skipped
}

// readLocalKey returns the key at p, or why it is skipped ("" when there is
// no file at all).
func readLocalKey(p, name string) (*localKey, string) {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ""
		}
		return nil, fmt.Sprintf("cannot be read (%v)", err)
	}
	if fi.IsDir() {
		return nil, "is a directory"
	}
	if strings.HasSuffix(name, "_sk") {
		return nil, fmt.Sprintf("is a security key, which needs an agent: run `ssh-add %s` and use ssh.mode auto or agent-forward", p)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// ssh refuses such a key too; spuff is no laxer.
		return nil, fmt.Sprintf("is readable by others (mode %04o), which ssh refuses too: run `chmod 600 %s`", fi.Mode().Perm(), p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Sprintf("cannot be read (%v)", err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	clear(b)
	var pm *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &pm):
		return nil, fmt.Sprintf("is protected by a passphrase: load it into your ssh agent with `ssh-add %s` and use ssh.mode auto or agent-forward", p)
	case err != nil:
		return nil, fmt.Sprintf("is not a private key spuff can read (%v); load it into your ssh agent with `ssh-add %s` instead", err, p)
	}
	if _, ok := raw.(*dsa.PrivateKey); ok {
		return nil, "is a DSA key, which current OpenSSH refuses; make a new key with `ssh-keygen -t ed25519`"
	}
	s, err := ssh.NewSignerFromKey(raw)
	if err != nil {
		return nil, fmt.Sprintf("is not a key type spuff can sign with (%v)", err)
	}
	as, ok := s.(ssh.AlgorithmSigner)
	if !ok {
		return nil, "is not a key type spuff can sign with"
	}
	k := &localKey{signer: as, blob: s.PublicKey().Marshal(), comment: p}
	if c := pubComment(p+".pub", k.blob); c != "" {
		k.comment = c
	}
	return k, ""
}

// pubComment returns the comment of the .pub file next to a private key,
// when that file holds the same key.
func pubComment(p string, blob []byte) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	pub, comment, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil || string(pub.Marshal()) != string(blob) {
		return ""
	}
	return comment
}

func (l *localKeys) List() ([]*agent.Key, error) {
	out := make([]*agent.Key, len(l.keys))
	for i, k := range l.keys {
		out[i] = &agent.Key{Format: k.signer.PublicKey().Type(), Blob: k.blob, Comment: k.comment}
	}
	return out, nil
}

func (l *localKeys) Sign(key ssh.PublicKey, data []byte) (*ssh.Signature, error) {
	return l.SignWithFlags(key, data, 0)
}

// SignWithFlags signs as OpenSSH's agent does: the RSA flags choose
// rsa-sha2-256/512 for RSA keys and mean nothing for other keys.
func (l *localKeys) SignWithFlags(key ssh.PublicKey, data []byte, flags agent.SignatureFlags) (*ssh.Signature, error) {
	k := l.byBlob[string(key.Marshal())]
	if k == nil {
		return nil, errKeyNotFound
	}
	algo := ""
	if k.signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		switch {
		case flags&agent.SignatureFlagRsaSha512 != 0:
			algo = ssh.KeyAlgoRSASHA512
		case flags&agent.SignatureFlagRsaSha256 != 0:
			algo = ssh.KeyAlgoRSASHA256
		default:
			algo = ssh.KeyAlgoRSA
		}
	}
	return k.signer.SignWithAlgorithm(rand.Reader, data, algo)
}

func (l *localKeys) Signers() ([]ssh.Signer, error) {
	out := make([]ssh.Signer, len(l.keys))
	for i, k := range l.keys {
		out[i] = k.signer
	}
	return out, nil
}

func (l *localKeys) Extension(string, []byte) ([]byte, error) {
	return nil, agent.ErrExtensionUnsupported
}
