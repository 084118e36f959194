package keychain

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"math/big"
)

// The Secret Service's encrypted session ("dh-ietf1024-sha256-aes128-cbc-pkcs7"):
// Diffie-Hellman over the RFC 2409 second Oakley group, HKDF-SHA256 (no salt,
// no info) to an AES-128 key, and AES-CBC with PKCS#7 padding. Without it a
// secret crosses the session bus in the clear, readable by any eavesdropper.
const dhAlgorithm = "dh-ietf1024-sha256-aes128-cbc-pkcs7"

var dhPrime, _ = new(big.Int).SetString(
	"FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1"+
		"29024E088A67CC74020BBEA63B139B22514A08798E3404DD"+
		"EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245"+
		"E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"+
		"EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381"+
		"FFFFFFFFFFFFFFFF", 16)

const dhPrimeLen = 128

// dhKey is our half of a session key exchange.
type dhKey struct {
	priv *big.Int
	pub  []byte
}

func newDHKey() (*dhKey, error) {
	// priv in [2, p-2]
	n, err := rand.Int(rand.Reader, new(big.Int).Sub(dhPrime, big.NewInt(3)))
	if err != nil {
		return nil, err
	}
	priv := n.Add(n, big.NewInt(2))
	pub := new(big.Int).Exp(big.NewInt(2), priv, dhPrime)
	return &dhKey{priv: priv, pub: pub.FillBytes(make([]byte, dhPrimeLen))}, nil
}

// aesKey derives the session key from the service's public value.
func (k *dhKey) aesKey(peer []byte) ([]byte, error) {
	y := new(big.Int).SetBytes(peer)
	// 1 < y < p-1: anything else makes the shared secret guessable.
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(new(big.Int).Sub(dhPrime, big.NewInt(1))) >= 0 {
		return nil, errors.New("keychain: secret service sent a bad session key")
	}
	z := new(big.Int).Exp(y, k.priv, dhPrime)
	return hkdf.Key(sha256.New, z.FillBytes(make([]byte, dhPrimeLen)), nil, "", 16)
}

// seal returns the IV (the secret's "parameters") and the ciphertext.
func seal(key, plain []byte) (iv, ct []byte, err error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	buf := make([]byte, len(plain)+pad)
	copy(buf, plain)
	for i := len(plain); i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	iv = make([]byte, aes.BlockSize)
	if _, err := rand.Read(iv); err != nil {
		return nil, nil, err
	}
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(buf, buf)
	return iv, buf, nil
}

var errBadSecret = errors.New("keychain: secret service sent a secret that does not decrypt")

func open(key, iv, ct []byte) ([]byte, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	if len(iv) != aes.BlockSize || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errBadSecret
	}
	buf := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(buf, ct)
	pad := int(buf[len(buf)-1])
	if pad == 0 || pad > aes.BlockSize {
		return nil, errBadSecret
	}
	want := make([]byte, pad)
	for i := range want {
		want[i] = byte(pad)
	}
	if subtle.ConstantTimeCompare(buf[len(buf)-pad:], want) != 1 {
		return nil, errBadSecret
	}
	return buf[:len(buf)-pad], nil
}
