package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncd/syncd/redact"
)

// urlFile, inside the data dir, holds the client URL of the embedded server
// of a running `syncd serve`, so the other subcommands can reach it.
const urlFile = "nats.url"

// DataDirDefault holds the embedded server's store unless configured.
const DataDirDefault = "./data"

// ConnConfig says where JetStream is.
type ConnConfig struct {
	// URL of an external NATS server; empty means the embedded server.
	URL string
	// DataDir holds the embedded server's store and its URL file.
	DataDir string
	// Serve is set by `syncd serve`: it owns the embedded server. Other
	// subcommands first look for a running serve through DataDir and only
	// start an embedded server of their own when none answers.
	Serve bool
	// Sync is when the embedded server fsyncs; the zero value is
	// SyncAlways. An external server follows its own configuration.
	Sync SyncMode
	// Name identifies the connection in server monitoring.
	Name   string
	Logger *slog.Logger
}

// MaxPendingPublishes is how many async publishes a connection keeps
// waiting for their PubAck; past it a publish stalls and then fails.
const MaxPendingPublishes = 4096

// SyncMode is when the embedded JetStream server writes its store to disk.
type SyncMode string

const (
	// SyncAlways fsyncs every stored message before its PubAck, so a 2xx
	// survives an OS crash or power loss, not only a process kill.
	SyncAlways SyncMode = "always"
	// SyncInterval leaves fsync to nats-server's background interval (2
	// minutes): faster, and a process kill still loses nothing, but an OS
	// crash loses what was acknowledged since the last sync.
	SyncInterval SyncMode = "interval"
)

// ParseSyncMode reads a SyncMode; empty is SyncAlways.
func ParseSyncMode(s string) (SyncMode, error) {
	switch m := SyncMode(s); m {
	case "", SyncAlways:
		return SyncAlways, nil
	case SyncInterval:
		return m, nil
	}
	return "", fmt.Errorf("JetStream sync %q: want %s or %s", s, SyncAlways, SyncInterval)
}

// Conn is a connection to JetStream and, when embedded, the server itself.
type Conn struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	srv     *server.Server
	urlPath string
	closed  chan struct{}
	lock    *os.File
}

// ErrDataDirInUse means another `syncd serve` already runs the embedded
// server over the same data dir.
var ErrDataDirInUse = errors.New("data dir in use by a running syncd serve")

// Open connects to JetStream as cfg says.
func Open(ctx context.Context, cfg ConnConfig) (*Conn, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = "syncd"
	}
	sync, err := ParseSyncMode(string(cfg.Sync))
	if err != nil {
		return nil, err
	}
	if cfg.URL != "" {
		c, err := dial(cfg.URL, cfg.Name, nil)
		if err != nil {
			return nil, err
		}
		if err := checkVersion(c.NC.ConnectedServerVersion()); err != nil {
			c.Close()
			return nil, fmt.Errorf("NATS at %s: %w", redact.URL(cfg.URL), err)
		}
		return c, nil
	}
	if cfg.DataDir == "" {
		cfg.DataDir = DataDirDefault
	}
	urlPath := filepath.Join(cfg.DataDir, urlFile)
	if b, err := os.ReadFile(urlPath); err == nil {
		url := strings.TrimSpace(string(b))
		c, err := dial(url, cfg.Name, []nats.Option{nats.Timeout(time.Second), nats.MaxReconnects(0)})
		if err == nil {
			if cfg.Serve {
				c.Close()
				return nil, fmt.Errorf("embedded NATS at %s (%s): %w", url, urlPath, ErrDataDirInUse)
			}
			return c, nil
		}
		// A stale file from a serve that did not stop cleanly.
	}
	// One embedded server per store: two writing the same files would lose
	// events. The lock is held for as long as this process runs it.
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	srv, err := startEmbedded(filepath.Join(cfg.DataDir, "jetstream"), 0, sync)
	if err != nil {
		lock.Close()
		return nil, err
	}
	c, err := dial("", cfg.Name, []nats.Option{nats.InProcessServer(srv)})
	if err != nil {
		srv.Shutdown()
		lock.Close()
		return nil, err
	}
	c.srv, c.lock = srv, lock
	if cfg.Serve {
		if err := os.WriteFile(urlPath, []byte(srv.ClientURL()+"\n"), 0o600); err != nil {
			c.Close()
			return nil, fmt.Errorf("write %s: %w", urlPath, err)
		}
		c.urlPath = urlPath
	}
	cfg.Logger.Info("embedded JetStream started", "url", srv.ClientURL(), "store", filepath.Join(cfg.DataDir, "jetstream"), "sync", sync)
	return c, nil
}

// MinServerVersion is the oldest nats-server syncd runs against: the
// consumer and stream settings it uses need 2.10.
const MinServerVersion = "2.10.0"

// checkVersion refuses a server older than MinServerVersion, which would
// otherwise fail later and less clearly.
func checkVersion(v string) error {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return fmt.Errorf("unrecognised server version %q", v)
	}
	if major < 2 || (major == 2 && minor < 10) {
		return fmt.Errorf("nats-server %s is too old: syncd needs %s or newer (or leave NATS_URL empty for the embedded server)", v, MinServerVersion)
	}
	return nil
}

// StartEmbedded starts a JetStream server storing under dir, listening on
// loopback only, syncing every message to disk before its PubAck. Port 0
// picks a free port, so it never collides with a NATS server already on
// 4222.
func StartEmbedded(dir string, port int) (*server.Server, error) {
	return startEmbedded(dir, port, SyncAlways)
}

// EmbeddedMaxPayload is the embedded server's max payload: room for a
// large webhook body and its dead-letter copy.
const EmbeddedMaxPayload = 8 << 20

func startEmbedded(dir string, port int, sync SyncMode) (*server.Server, error) {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create JetStream store %s: %w", dir, err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "syncd-embedded",
		Host:       "127.0.0.1",
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: EmbeddedMaxPayload,
		// With SyncAlways nats-server fsyncs each write before the PubAck;
		// without it, SyncInterval 0 means its default interval.
		SyncAlways: sync == SyncAlways,
	})
	if err != nil {
		return nil, fmt.Errorf("configure embedded NATS: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded NATS did not become ready within 30s")
	}
	return srv, nil
}

func dial(url, name string, extra []nats.Option) (*Conn, error) {
	closed := make(chan struct{})
	opts := append([]nats.Option{
		nats.Name(name),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		// Keep reconnecting: a NATS restart must not end the process.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
	}, extra...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", redact.URL(url), err)
	}
	js, err := jetstream.New(nc,
		// Ingest handlers publish asynchronously and each waits for its own
		// PubAck: many requests share one reply subscription and flush.
		jetstream.WithPublishAsyncMaxPending(MaxPendingPublishes),
		jetstream.WithPublishAsyncTimeout(30*time.Second),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open JetStream: %w", err)
	}
	return &Conn{NC: nc, JS: js, closed: closed}, nil
}

// Embedded reports whether this connection runs its own server.
func (c *Conn) Embedded() bool { return c.srv != nil }

// EmbeddedSync reports when the embedded server syncs to disk, as the
// server itself is configured; ok is false on an external server.
func (c *Conn) EmbeddedSync() (always bool, interval time.Duration, ok bool) {
	if c.srv == nil {
		return false, 0, false
	}
	jc := c.srv.JetStreamConfig()
	if jc == nil {
		return false, 0, false
	}
	return jc.SyncAlways, jc.SyncInterval, true
}

// CheckMaxBody reports whether a body of maxBody bytes, with its headers
// and its dead-letter copy's (HeaderRoom), fits the connected server's max
// payload; a larger one could be neither stored nor set aside.
func (c *Conn) CheckMaxBody(maxBody int64) error {
	mp := c.NC.MaxPayload()
	if maxBody+HeaderRoom > mp {
		return fmt.Errorf("max body %d bytes plus %d bytes of headers (for the dead-letter copy) is over the NATS server's max_payload of %d bytes: lower the max body to at most %d or raise max_payload on the server",
			maxBody, HeaderRoom, mp, mp-HeaderRoom)
	}
	return nil
}

// Close drains the connection and stops the embedded server, if any.
func (c *Conn) Close() {
	if c.NC != nil {
		// Drain is asynchronous; wait for it so buffered acks reach the
		// server before an embedded server goes away.
		if err := c.NC.Drain(); err == nil {
			select {
			case <-c.closed:
			case <-time.After(10 * time.Second):
			}
		}
		c.NC.Close()
	}
	if c.urlPath != "" {
		_ = os.Remove(c.urlPath)
	}
	if c.srv != nil {
		c.srv.Shutdown()
		c.srv.WaitForShutdown()
	}
	if c.lock != nil {
		c.lock.Close() // releases the flock
	}
}

// lockDataDir takes the data dir's lock, or says which process holds it.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir %s: %w", dir, err)
	}
	path := filepath.Join(dir, "jetstream.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		return nil, fmt.Errorf("embedded JetStream store %s is held by another syncd process (pid %s) that did not answer: %w",
			dir, strings.TrimSpace(string(holder)), ErrDataDirInUse)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}

// Ready checks that NATS is connected and the WEBHOOKS stream exists.
func (c *Conn) Ready(ctx context.Context) error {
	if !c.NC.IsConnected() {
		return errors.New("NATS not connected")
	}
	if _, err := c.JS.Stream(ctx, Webhooks); err != nil {
		return fmt.Errorf("stream %s: %w", Webhooks, err)
	}
	return nil
}
