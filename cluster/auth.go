package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinSecretLen is the shortest fleet secret accepted, in bytes.
const MinSecretLen = 16

// EnvSecret is the environment variable that may hold the fleet secret.
const EnvSecret = "FLEETCAL_SECRET"

// NewSecret returns a random fleet secret: 32 random bytes in hex.
func NewSecret() string { return randomID(32) }

// LoadSecret returns the fleet secret from file (its content, surrounding
// white space removed) or, when file is empty, from $FLEETCAL_SECRET; ""
// when neither is set.
func LoadSecret(file string) (string, error) {
	s := os.Getenv(EnvSecret)
	src := "$" + EnvSecret
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%w: --secret-file: %v", ErrBadSpec, err)
		}
		s, src = string(b), file
	}
	s = strings.TrimSpace(s)
	if s != "" && len(s) < MinSecretLen {
		return "", fmt.Errorf("%w: secret in %s: %d bytes, want at least %d", ErrBadSpec, src, len(s), MinSecretLen)
	}
	return s, nil
}

// checkSecret validates a secret given to NewEngine or NewWorker.
func checkSecret(s string) error {
	if len(s) < MinSecretLen {
		return fmt.Errorf("%w: the fleet secret has %d bytes, want at least %d (the coordinator and its workers share it: --secret-file or $%s)",
			ErrBadSpec, len(s), MinSecretLen, EnvSecret)
	}
	return nil
}

// runKey is the key that authenticates the messages of run runID: every
// holder of the fleet secret derives it; nobody else can.
func runKey(secret, runID string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("fleetcal run key v1\x00"))
	m.Write([]byte(runID))
	return m.Sum(nil)
}

// keyID names a run key without revealing it, so that a worker holding
// another secret knows it cannot serve the run.
func keyID(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("fleetcal key id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// Purposes of sealed messages: a MAC made for one never verifies as another.
const (
	purposeRun    = "run"
	purposeShard  = "shard"
	purposeResult = "result"
)

// A sealed message is a message authenticated with a run key: sealMagic,
// then the HMAC-SHA256, under the run key, of the purpose, the context
// (the run id, or the result key of a shard or result) and the body, then
// the body: the message's JSON, exactly as it was marshaled. The MAC comes
// before the body, outside it, so that neither side parses JSON twice.
const (
	sealMagic  = "FCS\x03" // wireVersion 3
	sealHeader = len(sealMagic) + sha256.Size
)

func mac(key []byte, purpose, context string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("fleetcal/" + purpose + "/v1\x00"))
	m.Write([]byte(context))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

// errUnauthenticated: a message whose MAC does not verify (forged, replayed
// from another run or shard, or made with another secret).
var errUnauthenticated = errors.New("message not authenticated by the run key")

// seal marshals v and authenticates it for purpose and context.
func seal(key []byte, purpose, context string, v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, sealHeader+len(body))
	out = append(out, sealMagic...)
	out = append(out, mac(key, purpose, context, body)...)
	return append(out, body...), nil
}

// sealedBody returns the body of a sealed message, not authenticated yet.
func sealedBody(b []byte) ([]byte, error) {
	if len(b) < sealHeader || string(b[:len(sealMagic)]) != sealMagic {
		return nil, fmt.Errorf("%w: not a sealed message of wire version %d", errUnauthenticated, wireVersion)
	}
	return b[sealHeader:], nil
}

// unseal checks b's MAC for purpose and context and decodes its body into v.
func unseal(key []byte, purpose, context string, b []byte, v any) error {
	body, err := sealedBody(b)
	if err != nil {
		return err
	}
	if !hmac.Equal(b[len(sealMagic):sealHeader], mac(key, purpose, context, body)) {
		return errUnauthenticated
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadResult, err)
	}
	return nil
}
