package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

const (
	defaultUser           = "root"
	defaultPort           = 22
	defaultDialErrorLimit = 10 // failed dials allowed before giving up; -1: no limit
	defaultPerDialTimeout = 15 // seconds; 0: no limit
)

// endpoint is what both the target host and a bastion host are described with. It is embedded
// (unexported) so that its fields appear directly in command:remote:Connection and
// command:remote:ProxyConnection.
type endpoint struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	Host               *string  `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

// Connection is the type command:remote:Connection.
type Connection struct {
	endpoint
	Proxy *ProxyConnection `pulumi:"proxy,optional"`
}

// ProxyConnection is the type command:remote:ProxyConnection: a bastion host to go through.
type ProxyConnection struct {
	endpoint
}

func (c *Connection) Annotate(a infer.Annotator) {
	a.Describe(&c, "How to connect to a remote host over SSH.")
	annotateEndpoint(a, &c.endpoint, "the remote host")
	a.Describe(&c.Proxy, "A bastion host to connect through.")
}

func (c *ProxyConnection) Annotate(a infer.Annotator) {
	a.Describe(&c, "How to connect to a bastion host over SSH.")
	annotateEndpoint(a, &c.endpoint, "the bastion host")
}

func annotateEndpoint(a infer.Annotator, e *endpoint, what string) {
	a.Describe(&e.Host, "The address of "+what+".")
	a.Describe(&e.Port, "The SSH port of "+what+". Defaults to 22.")
	a.SetDefault(&e.Port, defaultPort)
	a.Describe(&e.User, "The user to log in to "+what+" as. Defaults to root.")
	a.SetDefault(&e.User, defaultUser)
	a.Describe(&e.Password, "A password for "+what+".")
	a.Describe(&e.PrivateKey, "A private SSH key (its text) for "+what+".")
	a.Describe(&e.PrivateKeyPassword, "The passphrase of privateKey, if it is encrypted.")
	a.Describe(&e.AgentSocketPath, "The socket of an SSH agent to authenticate with. "+
		"Defaults to $SSH_AUTH_SOCK when that is set.")
	a.Describe(&e.DialErrorLimit, "How many failed attempts to connect to "+what+" are retried "+
		"(-1: no limit). Defaults to 10.")
	a.SetDefault(&e.DialErrorLimit, defaultDialErrorLimit)
	a.Describe(&e.PerDialTimeout, "The timeout in seconds of one attempt to connect "+
		"(0: none). Defaults to 15.")
	a.SetDefault(&e.PerDialTimeout, defaultPerDialTimeout)
	a.Describe(&e.HostKey, "The host's public key (an authorized_keys line) that the server must "+
		"present. When not set, the server's host key is not checked.")
}

func (e *endpoint) address() string {
	port := float64(defaultPort)
	if e.Port != nil {
		port = *e.Port
	}
	host := ""
	if e.Host != nil {
		host = *e.Host
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}

func (e *endpoint) dialErrorLimit() int {
	if e.DialErrorLimit == nil {
		return defaultDialErrorLimit
	}
	return *e.DialErrorLimit
}

// clientConfig builds the SSH client configuration of this endpoint. The returned closer
// releases the SSH agent connection, if one was opened; call it once dialling is done.
func (e *endpoint) clientConfig() (*ssh.ClientConfig, io.Closer, error) {
	user := defaultUser
	if e.User != nil {
		user = *e.User
	}
	timeout := defaultPerDialTimeout
	if e.PerDialTimeout != nil {
		timeout = *e.PerDialTimeout
	}
	cfg := &ssh.ClientConfig{
		User:    user,
		Timeout: time.Duration(timeout) * time.Second,
	}

	if e.HostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*e.HostKey))
		if err != nil {
			return nil, nil, fmt.Errorf("failed to parse host key: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(key)
		// Ask for the host key of that type, so a server with several host keys presents it.
		cfg.HostKeyAlgorithms = []string{key.Type()}
	} else {
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey() //nolint:gosec // no hostKey given: not checked
	}

	// Authentication methods, in this order: private key, password (also answering
	// keyboard-interactive prompts), SSH agent.
	if e.PrivateKey != nil {
		var signer ssh.Signer
		var err error
		if e.PrivateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*e.PrivateKey), []byte(*e.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*e.PrivateKey))
		}
		if err != nil {
			return nil, nil, err
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if e.Password != nil {
		password := *e.Password
		cfg.Auth = append(cfg.Auth,
			ssh.Password(password),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = password
				}
				return answers, nil
			}))
	}

	socket := os.Getenv("SSH_AUTH_SOCK")
	if e.AgentSocketPath != nil {
		socket = *e.AgentSocketPath
	}
	var closer io.Closer = nopCloser{}
	if e.AgentSocketPath != nil || socket != "" {
		conn, err := net.Dial("unix", socket)
		if err != nil {
			return nil, nil, err
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		closer = conn
	}
	return cfg, closer, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// retryDial calls dial until it succeeds, the context ends, or it has failed more than limit
// times (limit -1: no limit), logging each retried failure as "<what> n/limit failed: retrying".
// It backs off as pulumi's retry.Until does by default (100 ms, ×1.5, at most 5 s), so with
// the default limit of 10 it makes 11 attempts over about 11 s.
func retryDial[T any](ctx context.Context, what string, limit int, dial func() (T, error)) (T, error) {
	var zero T
	ok, result, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			v, dialErr := dial()
			if dialErr == nil {
				return true, v, nil
			}
			attempts := try + 1
			if limit >= 0 && attempts > limit {
				return true, nil, fmt.Errorf("after %d failed attempts: %w", try, dialErr)
			}
			of := "inf"
			if limit >= 0 {
				of = strconv.Itoa(limit)
			}
			p.GetLogger(ctx).InfoStatusf("%s %d/%s failed: retrying", what, attempts, of)
			return false, nil, nil
		},
	})
	if err != nil {
		return zero, err
	}
	if !ok {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return zero, ctxErr
		}
		return zero, errors.New("dial abandoned")
	}
	return result.(T), nil
}

// dial opens one SSH client connection to the host, through the bastion host if there is one.
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	cfg, agentConn, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	defer agentConn.Close()

	addr := c.address()
	limit := c.dialErrorLimit()
	if c.Proxy == nil {
		return retryDial(ctx, "Dial", limit, func() (*ssh.Client, error) {
			return ssh.Dial("tcp", addr, cfg)
		})
	}

	proxyCfg, proxyAgentConn, err := c.Proxy.clientConfig()
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	defer proxyAgentConn.Close()
	bastion, err := retryDial(ctx, "Dial proxy", c.Proxy.dialErrorLimit(), func() (*ssh.Client, error) {
		return ssh.Dial("tcp", c.Proxy.address(), proxyCfg)
	})
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// A TCP connection from the bastion to the host...
	tunnel, err := retryDial(ctx, "Dial from proxy", limit, func() (net.Conn, error) {
		return bastion.Dial("tcp", addr)
	})
	if err != nil {
		bastion.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	// ...and SSH over it.
	type handshake struct {
		conn  ssh.Conn
		chans <-chan ssh.NewChannel
		reqs  <-chan *ssh.Request
	}
	hs, err := retryDial(ctx, "Dial", limit, func() (handshake, error) {
		conn, chans, reqs, err := ssh.NewClientConn(tunnel, addr, cfg)
		return handshake{conn, chans, reqs}, err
	})
	if err != nil {
		tunnel.Close()
		bastion.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	client := ssh.NewClient(hs.conn, hs.chans, hs.reqs)
	go func() {
		// The bastion connection lives as long as the client connection through it.
		_ = client.Wait()
		bastion.Close()
	}()
	return client, nil
}
