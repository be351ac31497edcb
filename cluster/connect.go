package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// ConnOptions are a client's credentials and TLS files. At most one of
// User/Password, Token, CredsFile and NKeyFile may be set.
type ConnOptions struct {
	// Name identifies the client in the server's monitoring (default "fleetcal").
	Name string
	// User and Password: plain user authentication.
	User, Password string
	// Token: token authentication.
	Token string
	// CredsFile: a JWT user credentials file (decentralized auth).
	CredsFile string
	// NKeyFile: a file holding an NKey user seed.
	NKeyFile string
	// TLSCA is a PEM file of CAs to verify the server with; TLSCert and
	// TLSKey are the client certificate and key (both or neither).
	TLSCA, TLSCert, TLSKey string
	// Timeout bounds the first connection attempt to each server (default 3s).
	Timeout time.Duration
}

// Validate checks that the options are consistent.
func (o ConnOptions) Validate() error {
	kinds := 0
	if o.User != "" || o.Password != "" {
		if o.User == "" || o.Password == "" {
			return fmt.Errorf("%w: set both user and password", ErrBadSpec)
		}
		kinds++
	}
	for _, s := range []string{o.Token, o.CredsFile, o.NKeyFile} {
		if s != "" {
			kinds++
		}
	}
	if kinds > 1 {
		return fmt.Errorf("%w: user/password, token, creds and nkey are exclusive", ErrBadSpec)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return fmt.Errorf("%w: set both the TLS certificate and its key", ErrBadSpec)
	}
	return nil
}

// Connect connects to the NATS servers at url (comma-separated for
// several). The first connection does not retry: an unreachable server or
// refused credentials fail within Timeout with a message naming the URL.
// Once connected, the client reconnects for ever.
func Connect(ctx context.Context, rawURL string, o ConnOptions) (*nats.Conn, error) {
	shown := redactURL(rawURL)
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("connect: %w: empty NATS URL", ErrBadSpec)
	}
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("connect %s: %w", shown, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	name := o.Name
	if name == "" {
		name = "fleetcal"
	}
	opts := []nats.Option{
		nats.Name(name),
		nats.Timeout(timeout),
		nats.RetryOnFailedConnect(false),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
	}
	switch {
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	case o.Token != "":
		opts = append(opts, nats.Token(o.Token))
	case o.CredsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	case o.NKeyFile != "":
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("connect %s: nkey %s: %w", shown, o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	nc, err := nats.Connect(rawURL, opts...)
	if err != nil {
		return nil, connectError(shown, err)
	}
	return nc, nil
}

// connectError turns nats.Connect's error into one line naming the URL.
func connectError(shown string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, nats.ErrAuthorization) || strings.Contains(msg, "authorization violation") ||
		errors.Is(err, nats.ErrAuthExpired) || errors.Is(err, nats.ErrAuthRevoked):
		return fmt.Errorf("connect %s: %w by the server (check the user and password, token, creds or nkey)", shown, ErrAuth)
	case errors.Is(err, nats.ErrNoServers):
		return fmt.Errorf("connect %s: %w: no server answered (is NATS running there, and reachable?)", shown, ErrConnect)
	}
	return fmt.Errorf("connect %s: %w: %v", shown, ErrConnect, err)
}

// redactURL hides passwords and tokens of URLs for messages.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		u, err := url.Parse(p)
		if err != nil || u.User == nil {
			parts[i] = p
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
